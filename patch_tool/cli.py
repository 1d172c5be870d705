"""`python -m patch_tool COMMAND`: the command line over patch_tool.ops."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from patch_tool import PatchToolError, cache, ops, releases, upstream
from patch_tool.workspace import Workspace


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m patch_tool", description=__doc__)
    p.add_argument("--root", type=Path, help="repo root (default: the checkout holding patch_tool)")
    p.add_argument("--cache", type=Path, help="download cache (default: $PATCH_TOOL_CACHE or ~/.cache/sglang-mindspore-patch-tool)")
    p.add_argument("--arch", help="wheel architecture from the pin: x86_64 or aarch64 (default: this host)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("fetch", help="download the pinned wheel with pip, verify sha256, cache it")
    sub.add_parser("verify", help="re-check the cached wheel's sha256")
    a = sub.add_parser("apply", help="build third_party/sglang = pristine release + series (atomic, fuzz 0)")
    a.add_argument("--force", action="store_true", help="discard edits in the tree not captured in a patch")
    sub.add_parser("check", help="dry run: does every patch apply cleanly (fuzz is a failure)?")
    sub.add_parser("status", help="pin, patches, and edits in the tree not captured in any patch")
    n = sub.add_parser("new", help="turn the tree's uncaptured edits into a new patch at the end of the series")
    n.add_argument("name", help="short name, e.g. cpu-rotary-fallback")
    n.add_argument("--subject", required=True)
    n.add_argument("--why", default="TODO: why this patch exists")
    n.add_argument("--upstream-status", default="TODO: not submitted / submitted (link) / merged upstream in X")
    r = sub.add_parser("refresh", help="fold the tree's uncaptured edits into an existing patch")
    r.add_argument("name", help="patch file name, or its name without number and .patch")
    rb = sub.add_parser("rebase", help="replay the series onto another release (three-way, old pristine as base)")
    rb.add_argument("--to", required=True, metavar="VERSION")
    rb.add_argument("--out", type=Path, help="where to write the rebased series (default: sglang_patches.rebased-VERSION)")
    rb.add_argument("--in-place", action="store_true", help="overwrite sglang_patches/ (only when nothing conflicts)")
    rb.add_argument("--update-pin", action="store_true", help="move the pin to VERSION when every patch applied")
    sub.add_parser("releases", help="list the upstream releases on the index")
    b = sub.add_parser("bisect", usage="%(prog)s --good VERSION --bad VERSION [--out DIR] [-- COMMAND ...]",
                       help="name the first release where the series stops applying, stops rebasing, fails the test",
                       epilog=COMMAND_HELP)
    b.add_argument("--good", required=True, metavar="VERSION")
    b.add_argument("--bad", required=True, metavar="VERSION")
    b.add_argument("--out", type=Path, help="report directory (default: out/upstream)")
    m = sub.add_parser("matrix", usage="%(prog)s [VERSION ...] [--last N] [--no-test] [--out DIR] [-- COMMAND ...]",
                       help="per release: download, apply, rebase, import, test", epilog=COMMAND_HELP)
    m.add_argument("versions", nargs="*", metavar="VERSION")
    m.add_argument("--last", type=int, help="the newest N releases on the index")
    m.add_argument("--no-test", action="store_true", help="only download, apply and rebase: no import, no test")
    m.add_argument("--out", type=Path, help="report directory (default: out/upstream)")
    t = sub.add_parser("track", usage="%(prog)s [--last N] [--out DIR] [-- COMMAND ...]",
                       help="CI: matrix of the newest releases; bisect from the pin when the newest is not good; "
                            "exit 1 only when the newest release breaks the series", epilog=COMMAND_HELP)
    t.add_argument("--last", type=int, default=5, help="the newest N releases on the index (default 5)")
    t.add_argument("--out", type=Path, help="report directory (default: out/upstream)")
    c = sub.add_parser("cache", help="show the download cache; --prune it to its size limit (least recently used first)")
    c.add_argument("--prune", action="store_true", help="remove least recently used entries until the cache fits")
    c.add_argument("--limit", help=f"size limit, e.g. 500M or 3G (default: ${cache.LIMIT_ENV} or {cache.DEFAULT_LIMIT}); "
                                   "the pinned wheels and their trees are always kept")
    return p


COMMAND_HELP = ("-- COMMAND (default: the tiny-Qwen3 MindSpore smoke test) runs with the probed tree first on "
                "PYTHONPATH and in $PATCH_TOOL_TREE; exit codes as in `git bisect run`: 0 good, 125 skip, "
                "1-127 bad, >=128 abort.")
TAKES_COMMAND = ("bisect", "matrix", "track")


def _split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """Everything after the first `--` is the test command, untouched by argparse."""
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1:]
    return argv, []


def main(argv: list[str] | None = None) -> int:
    argv, command = _split_command(sys.argv[1:] if argv is None else list(argv))
    parser = _parser()
    args = parser.parse_args(argv)
    if command and args.cmd not in TAKES_COMMAND:
        parser.error(f"only {', '.join(TAKES_COMMAND)} take `-- COMMAND`")
    args.command = command
    ws = Workspace.at(args.root, args.cache)
    try:
        return _run(args, ws)
    except PatchToolError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the tree and the cache are unchanged", file=sys.stderr)
        return 130


def _run(args, ws: Workspace) -> int:
    if args.cmd == "fetch":
        ops.pristine(ws, args.arch)
    elif args.cmd == "verify":
        ops.verify(ws, args.arch)
    elif args.cmd == "apply":
        ops.apply(ws, args.arch, force=args.force)
    elif args.cmd == "check":
        results = ops.check(ws, args.arch)
        bad = [r for r in results if r.verdict not in ("clean", "offset")]
        print(f"{len(results) - len(bad)} of {len(results)} patches apply cleanly")
        return 1 if bad else 0
    elif args.cmd == "status":
        _print_status(ops.status(ws, args.arch))
    elif args.cmd == "new":
        ops.new(ws, args.name, args.subject, args.why, args.upstream_status)
    elif args.cmd == "refresh":
        ops.refresh(ws, args.name)
    elif args.cmd == "rebase":
        results = ops.rebase(ws, args.to, args.out, args.update_pin, args.in_place)
        return 1 if any(r.verdict == "conflict" for r in results) else 0
    elif args.cmd == "releases":
        print("\n".join(releases.list_versions(ws.pin().package)))
    elif args.cmd == "bisect":
        return _bisect(ws, args)
    elif args.cmd == "matrix":
        return _matrix(ws, args)
    elif args.cmd == "track":
        versions = releases.list_versions(ws.pin().package)[-args.last:]
        code, line = upstream.track(ws, versions, args.command or upstream.default_command(),
                                    args.out or ws.root / "out" / "upstream")
        print(line)
        return code
    elif args.cmd == "cache":
        _cache(ws, args)
    return 0


def _cache(ws: Workspace, args) -> None:
    limit = cache.parse_size(args.limit) if args.limit else cache.limit_from_env()
    keep = ops.pinned_cache_paths(ws)
    if args.prune:
        removed = cache.prune(ws.cache, limit, keep)
        for e in removed:
            print(f"removed {e.kind} {e.path.relative_to(ws.cache)} ({cache.human(e.size)})")
        print(f"pruned {len(removed)} entries, {cache.human(sum(e.size for e in removed))}")
    print(cache.describe(ws.cache, limit, keep))


def _bisect(ws: Workspace, args) -> int:
    versions = upstream.releases_between(ws, args.good, args.bad)
    out = args.out or ws.root / "out" / "upstream"
    print(f"bisecting {len(versions)} releases {args.good}..{args.bad}; reports in {out}")
    report = upstream.BisectReport(ws.pin().package, versions[0], versions[-1], versions)
    try:
        upstream.bisect(ws, versions, args.command or upstream.default_command(), report=report)
    except KeyboardInterrupt:
        print("interrupted: the cache is consistent (entries are written atomically)", file=sys.stderr)
        raise
    finally:
        paths = upstream.write_reports(out, "bisect", report.to_markdown(), report.to_json())
        print(f"\n{report.status.upper()}:\n{report.message}\nreports: {', '.join(map(str, paths))}\n{report.summary()}")
    return {"done": 0, "ambiguous": 3}.get(report.status, 1)


def _matrix(ws: Workspace, args) -> int:
    package = ws.pin().package
    versions = list(args.versions)
    if args.last:
        versions += releases.list_versions(package)[-args.last:]
    if not versions:
        raise PatchToolError("name releases, or pass --last N")
    if args.no_test and args.command:
        raise PatchToolError("--no-test and `-- COMMAND` contradict each other")
    command = None if args.no_test else (args.command or upstream.default_command())
    rows = upstream.matrix(ws, versions, command)
    out = args.out or ws.root / "out" / "upstream"
    md = upstream.matrix_markdown(package, rows, command)
    paths = upstream.write_reports(out, "matrix", md, upstream.matrix_json(rows))
    if upstream.matrix_png(out / "matrix.png", rows):
        paths.append(out / "matrix.png")
    print("\n" + md + f"reports: {', '.join(map(str, paths))}")
    return 0 if all(r.verdict == "good" for r in rows) else 1


def _print_status(info: dict) -> None:
    print(f"pin:     {info['pin']}  [{'cached' if info['cached'] else 'not downloaded'}]")
    print(f"series:  {len(info['patches'])} patches")
    for name, subject in info["patches"]:
        print(f"  {name}: {subject}")
    print(f"tree:    {info['tree']}" + ("  [STALE: series or pin changed; run apply]" if info.get("stale") else ""))
    edits = info.get("edits")
    if edits is not None:
        n = sum(map(len, edits.values()))
        print(f"edits:   {n} file(s) not captured in any patch" if n else "edits:   none (tree == pristine + series)")
        for kind, files in edits.items():
            for f in files:
                print(f"  {kind}: {f}")
