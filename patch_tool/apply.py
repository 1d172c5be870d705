"""Apply a patch series in memory with fuzz 0, then materialise the result atomically.

Hunks may move (offset), never lose context (fuzz): a hunk whose context does not match
exactly fails and names the patch, the file and the hunk. `check` additionally tries fuzz
1-2 only to tell the user *why* a patch fails (it would need fuzz, i.e. a refresh).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from patch_tool import PatchToolError
from patch_tool.patchfile import FileDiff, Hunk, PatchFile

Reader = Callable[[str], "str | None"]


class HunkFailed(PatchToolError):
    def __init__(self, patch: str, path: str, index: int, hunk: Hunk | None, reason: str, near: str = ""):
        self.patch, self.path, self.index, self.hunk, self.reason = patch, path, index, hunk, reason
        where = f"hunk #{index} ({hunk.header})" if hunk else "file header"
        msg = f"patch {patch}: file {path}: {where} does not apply: {reason}"
        if near:
            msg += "\n" + near
        super().__init__(msg)


@dataclass
class HunkResult:
    offset: int
    fuzz: int


@dataclass
class PatchReport:
    name: str
    hunks: dict[str, list[HunkResult]] = field(default_factory=dict)

    @property
    def max_fuzz(self) -> int:
        return max((h.fuzz for hs in self.hunks.values() for h in hs), default=0)

    @property
    def offsets(self) -> list[tuple[str, int, int]]:
        return [(p, i + 1, h.offset) for p, hs in self.hunks.items() for i, h in enumerate(hs) if h.offset]


def apply_file(patch: str, content: str | None, fd: FileDiff, fuzz: int = 0) -> tuple[str | None, list[HunkResult]]:
    if fd.created and content is not None:
        raise HunkFailed(patch, fd.path, 1, fd.hunks[0] if fd.hunks else None, "the file to create already exists")
    if not fd.created and content is None:
        raise HunkFailed(patch, fd.path, 1, fd.hunks[0] if fd.hunks else None, "the file does not exist")
    lines = (content or "").splitlines()
    eol = content is None or content.endswith("\n") or content == ""
    results: list[HunkResult] = []
    delta = 0
    floor = 0
    for k, hunk in enumerate(fd.hunks, start=1):
        pos, used, trim_a, trim_b = _locate(lines, hunk, delta, floor, fuzz)
        if pos is None:
            raise HunkFailed(patch, fd.path, k, hunk, "context not found" if fuzz == 0 else f"context not found even with fuzz {fuzz}",
                             _near(lines, hunk, delta))
        body = hunk.lines[trim_a: len(hunk.lines) - trim_b]
        old = [x[1:] for x in body if x[0] in " -"]
        new = [x[1:] for x in body if x[0] in " +"]
        expected = max(hunk.old_start - 1, 0) + trim_a + delta
        lines[pos: pos + len(old)] = new
        results.append(HunkResult(pos - expected, used))
        delta += len(new) - len(old) + (pos - expected)
        floor = pos + len(new)
        if pos + len(new) == len(lines) and (hunk.new_no_eol or hunk.old_no_eol):
            eol = not hunk.new_no_eol
    if fd.deleted:
        if lines:
            raise HunkFailed(patch, fd.path, len(fd.hunks), fd.hunks[-1], "file to delete has content the patch does not know")
        return None, results
    text = "\n".join(lines)
    return (text + "\n" if eol and lines else text), results


def _locate(lines: list[str], hunk: Hunk, delta: int, floor: int, fuzz: int):
    lead = next((i for i, x in enumerate(hunk.lines) if x[0] != " "), len(hunk.lines))
    trail = next((i for i, x in enumerate(reversed(hunk.lines)) if x[0] != " "), len(hunk.lines))
    for f in range(fuzz + 1):
        trim_a, trim_b = min(f, lead), min(f, trail)
        if f and not (trim_a or trim_b):
            continue
        body = hunk.lines[trim_a: len(hunk.lines) - trim_b]
        old = [x[1:] for x in body if x[0] in " -"]
        start = max(hunk.old_start - 1, 0) + trim_a + delta
        if not hunk.old_lines:  # pure insertion: old_start names the line after which to insert
            start = hunk.old_start + delta
        pos = _search(lines, old, start, floor)
        if pos is not None:
            return pos, f, trim_a, trim_b
    return None, 0, 0, 0


def _search(lines: list[str], old: list[str], start: int, floor: int) -> int | None:
    n, last = len(old), len(lines) - len(old)
    if last < floor:
        return None
    for dist in range(max(abs(start - floor), abs(last - start)) + 1):
        for pos in (start + dist, start - dist):
            if floor <= pos <= last and lines[pos: pos + n] == old:
                return pos
    return None


def _near(lines: list[str], hunk: Hunk, delta: int) -> str:
    at = max(hunk.old_start - 1 + delta, 0)
    want = "\n".join("    " + x for x in hunk.old_lines[:8])
    have = "\n".join("    " + x for x in lines[at: at + min(len(hunk.old_lines), 8)])
    return f"  expected at line {at + 1}:\n{want}\n  found:\n{have or '    <end of file>'}"


def apply_series(patches: list[PatchFile], read: Reader, fuzz: int = 0) -> tuple[dict[str, str | None], list[PatchReport]]:
    """Apply every patch in order; returns the overlay {path: new content or None if deleted}."""
    overlay: dict[str, str | None] = {}
    reports = []
    for patch in patches:
        report = PatchReport(patch.name)
        for fd in patch.files:
            current = overlay[fd.path] if fd.path in overlay else read(fd.path)
            overlay[fd.path], report.hunks[fd.path] = apply_file(patch.name, current, fd, fuzz)
        reports.append(report)
    return overlay, reports


def tree_reader(root: Path) -> Reader:
    def read(rel: str) -> str | None:
        try:
            return (root / rel).read_text()
        except FileNotFoundError:
            return None
    return read


def materialize(pristine: Path, overlay: dict[str, str | None], dest: Path) -> None:
    """Build pristine+overlay next to dest, then swap it in; dest is untouched on any failure."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.new-"))
    old = dest.parent / f".{dest.name}.old-{os.getpid()}"
    try:
        shutil.copytree(pristine, scratch, dirs_exist_ok=True, symlinks=True)
        for rel, text in overlay.items():
            target = scratch / rel
            if text is None:
                target.unlink(missing_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        if dest.exists():
            os.replace(dest, old)
        os.replace(scratch, dest)
    except BaseException:
        if old.exists() and not dest.exists():
            os.replace(old, dest)
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
