"""Replay the series onto another upstream release, using the old pristine tree as merge base.

Per patch, in order: already upstream (its reverse applies to the new tree) -> droppable;
applies with fuzz 0 -> clean; else each file is merged three ways (base: old release + the
earlier patches, ours: that + this patch, theirs: new release + the earlier rebased
patches) -> merged, or conflict with the conflicting region. Rebased patches keep their
headers and are re-exported against the new release.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from patch_tool.apply import HunkFailed, Reader, apply_file, apply_series
from patch_tool.merge import merge3
from patch_tool.patchfile import PatchFile, diff_file


@dataclass
class RebaseResult:
    name: str
    verdict: str  # clean | merged | droppable | conflict
    detail: str = ""
    patch: PatchFile | None = None  # the rebased patch (clean, merged)
    files: list[str] = field(default_factory=list)


def _already_applied(patch: PatchFile, read: Reader) -> bool:
    try:
        for fd in patch.files:
            apply_file(patch.name, read(fd.path), fd.reversed())
    except HunkFailed:
        return False
    return True


def rebase_series(patches: list[PatchFile], old: Reader, new: Reader) -> list[RebaseResult]:
    old_overlay: dict[str, str | None] = {}
    new_overlay: dict[str, str | None] = {}
    old_read = lambda p: old_overlay[p] if p in old_overlay else old(p)  # noqa: E731
    new_read = lambda p: new_overlay[p] if p in new_overlay else new(p)  # noqa: E731
    results = []
    for patch in patches:
        before = {fd.path: old_read(fd.path) for fd in patch.files}
        ours, _ = apply_series([patch], old_read)  # the patch on the release it was made for
        old_overlay.update(ours)
        results.append(_rebase_one(patch, before, ours, new_read, new_overlay))
    return results


def _rebase_one(patch, before, ours, new_read, new_overlay) -> RebaseResult:
    files = [fd.path for fd in patch.files]
    if _already_applied(patch, new_read):
        return RebaseResult(patch.name, "droppable", "its change is already in the new release", files=files)
    try:
        out, _ = apply_series([patch], new_read)
        verdict, detail = "clean", ""
    except HunkFailed as strict:
        out, conflicts = {}, []
        for path in files:
            theirs = new_read(path)
            if theirs is None or before[path] is None or ours[path] is None:
                conflicts.append(f"{path}: {strict.reason if path == strict.path else 'file created/deleted/removed upstream'}")
                continue
            merged = merge3(before[path], ours[path], theirs)
            if merged.conflicts:
                conflicts.append(f"{path} ({merged.conflicts} conflict(s); hunk #{strict.index} "
                                 f"{strict.hunk.header if strict.hunk else ''} fails):\n{merged.conflict_regions()}")
            out[path] = merged.text
        if conflicts:
            return RebaseResult(patch.name, "conflict", "\n".join(conflicts), files=files)
        verdict, detail = "merged", f"three-way merge ({strict.path} hunk #{strict.index} did not apply as is)"
    diffs = [d for p in files if (d := diff_file(p, new_read(p), out[p]))]
    new_overlay.update(out)
    return RebaseResult(patch.name, verdict, detail, PatchFile(patch.name, patch.header, diffs), files)
