"""The commands, as functions the CLI and the build (setup.py) call."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from patch_tool import PatchToolError, cache
from patch_tool.apply import HunkFailed, PatchReport, apply_file, apply_series, materialize, tree_reader
from patch_tool.fetch import fetch, pristine_tree, sha256_of, verify_file
from patch_tool.patchfile import FileDiff, PatchFile, diff_file
from patch_tool.workspace import Workspace, hash_tree, tree_edits


def pristine(ws: Workspace, arch: str | None, log=print) -> Path:
    pin = ws.pin()
    wheel_path = fetch(pin, arch, ws.cache, log)
    return pristine_tree(wheel_path, pin.wheel(arch).sha256, ws.cache)


def pinned_cache_paths(ws: Workspace) -> set[Path]:
    """The pinned wheels and their unpacked trees: pruning the cache never removes them."""
    pin = ws.pin()
    return {path for w in pin.wheels.values()
            for path in (ws.cache / "wheels" / w.file, ws.cache / "pristine" / w.sha256)}


def release_tree(ws: Workspace, version: str, log=print):
    """(release, its unpacked tree) for any release on the index, keeping the cache within its limit."""
    from patch_tool.releases import fetch_release

    release = fetch_release(ws.pin().package, version, ws.cache, log)
    src = pristine_tree(release.wheel, release.sha256, ws.cache)
    cache.enforce_limit(ws.cache, pinned_cache_paths(ws) | {release.wheel.parent, src}, log)
    return release, src


def verify(ws: Workspace, arch: str | None, log=print) -> None:
    pin = ws.pin()
    wheel = pin.wheel(arch)
    path = ws.cache / "wheels" / wheel.file
    if not path.exists():
        raise PatchToolError(f"{wheel.file} is not in the cache {ws.cache}; run `python -m patch_tool fetch`")
    verify_file(path, wheel)
    log(f"ok: {path} matches sha256 {wheel.sha256}")


def _checked_patches(ws: Workspace) -> list[PatchFile]:
    patches = ws.patches()
    problems = [f"{p.name}: {msg}" for p in patches for msg in p.header_problems()]
    if problems:
        raise PatchToolError("patch headers are incomplete:\n  " + "\n  ".join(problems))
    return patches


def apply(ws: Workspace, arch: str | None = None, force: bool = False, log=print) -> Path:
    state = ws.read_state()
    if state and not force:
        edits = tree_edits(state["files"], ws.tree)
        if any(edits.values()):
            n = sum(map(len, edits.values()))
            raise PatchToolError(
                f"{ws.tree} has {n} edited file(s) not captured in any patch (see `status`); "
                "capture them with `new`/`refresh`, or pass --force to discard them"
            )
    src = pristine(ws, arch, log)
    patches = _checked_patches(ws)
    overlay, reports = apply_series(patches, tree_reader(src), fuzz=0)
    for r in reports:
        log(f"applied {r.name}" + _offset_note(r))
    materialize(src, overlay, ws.tree)
    pin = ws.pin()
    ws.write_state({
        "version": pin.version, "arch": pin.wheel(arch).arch, "wheel_sha256": pin.wheel(arch).sha256,
        "series_hash": ws.series_hash(), "patches": [p.name for p in patches], "files": hash_tree(ws.tree),
    })
    log(f"tree ready: {ws.tree} (sglang {pin.version} + {len(patches)} patches)")
    return ws.tree


def _offset_note(r: PatchReport) -> str:
    offs = r.offsets
    return "" if not offs else " (offsets: " + ", ".join(f"{p} hunk #{k} {o:+d}" for p, k, o in offs) + ")"


@dataclass
class CheckResult:
    name: str
    verdict: str  # clean | offset | fuzz | conflict | header
    detail: str = ""


def check(ws: Workspace, arch: str | None = None, log=print) -> list[CheckResult]:
    src = pristine(ws, arch, log)
    read = tree_reader(src)
    overlay: dict[str, str | None] = {}
    results = []
    for patch in ws.patches():
        res = _check_one(patch, lambda p: overlay[p] if p in overlay else read(p), overlay)
        if patch.header_problems() and res.verdict in ("clean", "offset"):
            res = CheckResult(patch.name, "header", "; ".join(patch.header_problems()))
        results.append(res)
        log(f"{res.verdict.upper():9s} {res.name}" + (f"\n{res.detail}" if res.detail else ""))
    return results


def _check_one(patch: PatchFile, read, overlay: dict) -> CheckResult:
    try:
        out, reports = apply_series([patch], read, fuzz=0)
    except HunkFailed as strict:
        try:
            _, fuzzy = apply_series([patch], read, fuzz=2)
        except HunkFailed:
            return CheckResult(patch.name, "conflict", "  " + str(strict))
        return CheckResult(patch.name, "fuzz",
                           f"  applies only with fuzz {fuzzy[0].max_fuzz} (context changed); refresh it. {strict}")
    overlay.update(out)
    note = _offset_note(reports[0])
    return CheckResult(patch.name, "offset" if note else "clean", note.strip())


def status(ws: Workspace, arch: str | None = None) -> dict:
    pin = ws.pin()
    wheel = pin.wheel(arch)
    state = ws.read_state()
    info = {
        "pin": f"{pin.package}=={pin.version} ({wheel.file}, sha256 {wheel.sha256[:16]}...)",
        "cached": (ws.cache / "wheels" / wheel.file).exists(),
        "patches": [(p.name, p.fields().get("Subject", "?")) for p in ws.patches()],
        "tree": "not applied" if state is None else str(ws.tree),
    }
    if state is not None:
        info["stale"] = state["series_hash"] != ws.series_hash() or state["wheel_sha256"] != wheel.sha256
        info["edits"] = tree_edits(state["files"], ws.tree)
    return info


def _expected(ws: Workspace, state: dict, patches: list[PatchFile]):
    src = pristine(ws, state["arch"], log=lambda *_: None)
    read = tree_reader(src)
    overlay, _ = apply_series(patches, read)
    return lambda p: overlay[p] if p in overlay else read(p)


def _edited_files(ws: Workspace) -> tuple[dict, list[str]]:
    state = ws.read_state()
    if state is None:
        raise PatchToolError("no applied tree; run `python -m patch_tool apply` first")
    if state["series_hash"] != ws.series_hash():
        raise PatchToolError("the series changed since the tree was applied; run `apply` first")
    edits = tree_edits(state["files"], ws.tree)
    files = edits["modified"] + edits["added"] + edits["deleted"]
    if not files:
        raise PatchToolError(f"no edits in {ws.tree} to capture")
    return state, files


def _current(ws: Workspace, rel: str) -> str | None:
    p = ws.tree / rel
    if not p.exists():
        return None
    try:
        return p.read_text()
    except UnicodeDecodeError:
        raise PatchToolError(f"{rel} is not a text file; binary edits cannot go into a patch") from None


def new(ws: Workspace, name: str, subject: str, why: str, upstream: str, log=print) -> Path:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise PatchToolError(f"patch name {name!r} must be lowercase words joined by '-'")
    state, files = _edited_files(ws)
    patches = ws.patches()
    expected = _expected(ws, state, patches)
    diffs = [d for f in files if (d := diff_file(f, expected(f), _current(ws, f)))]
    number = 1 + max((int(p.name[:4]) for p in patches if p.name[:4].isdigit()), default=0)
    fname = f"{number:04d}-{name}.patch"
    header = f"Subject: {subject}\nWhy: {why}\nUpstream-Status: {upstream}\n"
    patch = PatchFile(fname, header, diffs)
    (ws.patches_dir / fname).write_text(patch.render())
    with open(ws.series_file, "a") as f:
        f.write(fname + "\n")
    _record(ws, state, files)
    log(f"wrote {ws.patches_dir / fname} ({len(diffs)} file(s)) and appended it to the series")
    return ws.patches_dir / fname


def refresh(ws: Workspace, name: str, log=print) -> Path:
    """Fold the tree's edits into patch `name`, keeping the patches after it applying on top."""
    state, files = _edited_files(ws)
    patches = ws.patches()
    idx = next((i for i, p in enumerate(patches) if p.name == name or p.name[5:-6] == name), None)
    if idx is None:
        raise PatchToolError(f"no patch named {name!r} in the series")
    target = patches[idx]
    before = _expected(ws, state, patches[:idx])
    later = patches[idx + 1:]
    touched = sorted({fd.path for fd in target.files} | set(files))
    diffs: list[FileDiff] = []
    for rel in touched:
        content = _current(ws, rel)
        for p in reversed(later):  # peel the later patches off the edited file
            for fd in p.files:
                if fd.path == rel:
                    try:
                        content, _ = apply_file(p.name, content, fd.reversed())
                    except HunkFailed as e:
                        raise PatchToolError(f"edits to {rel} overlap the later patch {p.name}; "
                                             f"refresh that patch instead ({e.reason})") from None
        if (d := diff_file(rel, before(rel), content)):
            diffs.append(d)
    target.files = diffs
    path = ws.patches_dir / target.name
    path.write_text(target.render())
    _record(ws, state, files)
    log(f"refreshed {path} ({len(diffs)} file(s))")
    return path


def _record(ws: Workspace, state: dict, files: list[str]) -> None:
    """The tree now matches the series again: record its new hashes for the edited files."""
    for f in files:
        if (ws.tree / f).exists():
            state["files"][f] = sha256_of(ws.tree / f)
        else:
            state["files"].pop(f, None)
    state["series_hash"] = ws.series_hash()
    state["patches"] = ws.series_names()
    ws.write_state(state)
    expected = _expected(ws, state, ws.patches())
    wrong = [f for f in files if expected(f) != _current(ws, f)]
    if wrong:
        raise PatchToolError(f"internal check failed: the series does not reproduce {', '.join(wrong)}")


def rebase(ws: Workspace, version: str, out: Path | None = None, update_pin: bool = False,
           in_place: bool = False, log=print):
    """Replay the series onto `version`; writes the rebased series to `out` (never over the
    current series unless in_place). Returns the per-patch results."""
    from patch_tool.rebase import rebase_series

    pin = ws.pin()
    old_src = pristine(ws, None, log)
    release, new_src = release_tree(ws, version, log)
    results = rebase_series(_checked_patches(ws), tree_reader(old_src), tree_reader(new_src))
    for r in results:
        log(f"{r.verdict.upper():9s} {r.name}" + (f"\n  {r.detail}" if r.detail else ""))
    ok = all(r.verdict != "conflict" for r in results)
    target = ws.patches_dir if in_place else (out or ws.root / f"sglang_patches.rebased-{version}")
    if in_place and not ok:
        raise PatchToolError("conflicts: the current series was left unchanged")
    _write_series(target, pin.package, version, results, ws, report=not in_place)
    log(f"rebased series written to {target}" + ("" if ok else " (conflicting patches copied unchanged; see REBASE.md)"))
    if update_pin:
        if not ok:
            raise PatchToolError("conflicts: the pin was not moved")
        _move_pin(ws, version, release, log)
    return results


def _write_series(target: Path, package: str, version: str, results, ws: Workspace, report: bool = True) -> None:
    target.mkdir(parents=True, exist_ok=True)
    names = []
    for r in results:
        if r.verdict == "droppable":
            (target / r.name).unlink(missing_ok=True)
            continue
        text = r.patch.render() if r.patch else (ws.patches_dir / r.name).read_text()
        (target / r.name).write_text(text)
        names.append(r.name)
    lines = [f"# This series applies on {package} {version} (third_party/sglang.toml).",
             "# One patch a line, applied in order with fuzz 0 by `python -m patch_tool apply`."] + names
    (target / "series").write_text("\n".join(lines) + "\n")
    if report:  # not into sglang_patches/ itself: the printed report says the same
        _write_rebase_report(target / "REBASE.md", package, version, results)


def _write_rebase_report(path: Path, package: str, version: str, results) -> None:
    report = [f"# Rebase onto {package} {version}", "", "| patch | verdict | detail |", "|---|---|---|"]
    report += [f"| {r.name} | {r.verdict} | {r.detail.splitlines()[0] if r.detail else ''} |" for r in results]
    for r in results:
        if r.verdict == "conflict":
            report += ["", f"## {r.name}", "", "```", r.detail, "```"]
    path.write_text("\n".join(report) + "\n")


def _move_pin(ws: Workspace, version: str, release, log) -> None:
    """Point the pin at `version`: the host wheel just verified, the other pinned arches fetched
    and hashed now. Nothing is written unless every arch has a wheel."""
    from patch_tool.fetch import fetch_other_platform

    pin = ws.pin()
    entries = {}
    for arch, old in pin.wheels.items():
        if release.wheel.name.endswith(f"_{arch}.whl") or release.wheel.name.endswith("-any.whl"):
            entries[arch] = (release.wheel.name, release.sha256)
        else:
            entries[arch] = fetch_other_platform(pin, version, arch, release.wheel.name, ws.cache, log)
    python = release.wheel.name.split("-")[2] if "-any" not in release.wheel.name else pin.python
    lines = ["# The upstream SGLang release this series applies on (moved by `patch_tool rebase --update-pin`).",
             f"[{pin.package}]", f'version = "{version}"', f'python = "{python}"']
    for arch, (file, sha) in entries.items():
        lines += ["", f"[{pin.package}.wheels.{arch}]", f'file = "{file}"', f'sha256 = "{sha}"']
    ws.pin_file.write_text("\n".join(lines) + "\n")
    log(f"pin moved to {pin.package} {version}")
