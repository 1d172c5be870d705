"""The download cache: what it holds, how big it is, and pruning it to a size limit.

Layout: wheels/FILE (pinned wheels), releases/PACKAGE/VERSION/ (other releases' wheels and
the sha256 seen at download), pristine/SHA256/ (unpacked wheels), probe/ (scratch trees of
bisect and matrix). Using an entry touches it, so its mtime is its last use, and pruning
removes the least recently used entries first. Names starting with '.' are downloads or
unpacks in progress and are left alone.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from patch_tool import PatchToolError

DEFAULT_LIMIT = "3G"  # ~20 releases: a sglang wheel is 25-40 MB, its unpacked tree 85-120 MB
LIMIT_ENV = "PATCH_TOOL_CACHE_LIMIT"
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclass
class Entry:
    path: Path
    kind: str  # wheel | release | pristine | scratch
    size: int
    last_used: float


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise PatchToolError(f"cannot read the cache size limit {text!r}: use bytes or a number with K, M, G or T")
    return int(float(m.group(1)) * UNITS[m.group(2).upper()])


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def limit_from_env() -> int:
    return parse_size(os.environ.get(LIMIT_ENV, DEFAULT_LIMIT))


def touch(path: Path) -> None:
    """Mark a cache entry as just used."""
    try:
        os.utime(path)
    except FileNotFoundError:
        pass


def entries(cache: Path) -> list[Entry]:
    """Every entry, least recently used first."""
    found = []
    for kind, folder in (("wheel", cache / "wheels"), ("pristine", cache / "pristine"), ("scratch", cache / "probe")):
        found += [_entry(p, kind) for p in _children(folder)]
    for package in _children(cache / "releases"):
        found += [_entry(p, "release") for p in _children(package)]
    return sorted(found, key=lambda e: e.last_used)


def _children(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.is_dir() else []


def _entry(path: Path, kind: str) -> Entry:
    return Entry(path, kind, _size(path), path.stat().st_mtime)


def _size(path: Path) -> int:
    if not path.is_dir():
        return path.stat().st_size
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                pass
    return total


def prune(cache: Path, limit: int, keep: set[Path] = frozenset()) -> list[Entry]:
    """Remove least recently used entries (never those in `keep`) until the cache fits `limit`
    bytes; returns what was removed."""
    all_entries = entries(cache)
    total = sum(e.size for e in all_entries)
    keep = {Path(p).resolve() for p in keep}
    removed = []
    for e in all_entries:
        if total <= limit:
            break
        if e.path.resolve() in keep:
            continue
        _remove(e.path, cache)
        total -= e.size
        removed.append(e)
    return removed


def _remove(path: Path, cache: Path) -> None:
    """Rename first, so that no reader ever sees a half-deleted tree, then delete."""
    trash = Path(tempfile.mkdtemp(dir=cache, prefix=".trash-"))
    os.replace(path, trash / path.name)
    shutil.rmtree(trash, ignore_errors=True)


def enforce_limit(cache: Path, keep: set[Path], log=print) -> list[Entry]:
    removed = prune(cache, limit_from_env(), keep)
    if removed:
        freed = human(sum(e.size for e in removed))
        log(f"cache over its limit ({os.environ.get(LIMIT_ENV, DEFAULT_LIMIT)}, ${LIMIT_ENV}): "
            f"removed {len(removed)} least recently used entr{'y' if len(removed) == 1 else 'ies'} ({freed})")
    return removed


def describe(cache: Path, limit: int, keep: set[Path]) -> str:
    keep = {Path(p).resolve() for p in keep}
    rows = entries(cache)
    lines = [f"cache {cache}: {human(sum(e.size for e in rows))} in {len(rows)} entries, limit {human(limit)}"]
    now = time.time()
    for e in reversed(rows):  # most recently used first
        age = (now - e.last_used) / 86400
        mark = "  [pinned, kept]" if e.path.resolve() in keep else ""
        lines.append(f"  {e.kind:8s} {human(e.size):>10s}  used {age:5.1f} days ago  {e.path.relative_to(cache)}{mark}")
    return "\n".join(lines)
