"""`python -m patch_tool COMMAND`: the command line over patch_tool.ops."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from patch_tool import PatchToolError, ops
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
    return 0


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
