"""Upstream releases beyond the pin: list them from the package index and fetch any of them.

Both go through pip, the ordinary client, against the same index as `fetch`. A release that
is not pinned has no sha256 of ours: pip checks it against the index's own hash, and the
cache records the hash seen at download time so a corrupted entry is caught on reuse.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from patch_tool import PatchToolError
from patch_tool.cache import touch
from patch_tool.fetch import _pip, pip_env, pip_source_args, sha256_of


@dataclass(frozen=True)
class Release:
    version: str
    wheel: Path
    sha256: str


def list_versions(package: str) -> list[str]:
    """Every released version on the index, oldest first (post-releases included)."""
    cmd = [*_pip(), "index", "versions", package, *pip_source_args()]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=pip_env())
    m = re.search(r"Available versions:\s*(.+)", proc.stdout)
    if proc.returncode != 0 or not m:
        raise PatchToolError(f"cannot list releases of {package}: {(proc.stderr or proc.stdout).strip()[-400:]}")
    versions = []
    for v in m.group(1).split(","):
        try:
            versions.append(Version(v.strip()))
        except InvalidVersion:
            continue
    return [str(v) for v in sorted(versions)]


def between(versions: list[str], low: str, high: str) -> list[str]:
    lo, hi = Version(low), Version(high)
    if lo > hi:
        raise PatchToolError(f"{low} is newer than {high}")
    chosen = [v for v in versions if lo <= Version(v) <= hi]
    for end in (low, high):
        if not any(Version(v) == Version(end) for v in chosen):
            raise PatchToolError(f"release {end} is not on the index (known: {', '.join(versions[-8:])} ...)")
    return chosen


def fetch_release(package: str, version: str, cache: Path, log=print) -> Release:
    """The wheel of `package==version` that installs on this host, from the cache or via pip."""
    folder = cache / "releases" / package / version
    for whl in folder.glob("*.whl") if folder.is_dir() else []:
        recorded = whl.with_suffix(".whl.sha256")
        if recorded.exists() and sha256_of(whl) == recorded.read_text().strip():
            touch(folder)
            return Release(version, whl, recorded.read_text().strip())
        whl.unlink(missing_ok=True)  # corrupted or half-recorded: fetch again
        recorded.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
        log(f"downloading {package}=={version} with pip ...")
        cmd = [*_pip(), "download", "--no-deps", "--only-binary=:all:", "--dest", tmp,
               *pip_source_args(), f"{package}=={version}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=pip_env())
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            raise PatchToolError(f"pip could not download {package}=={version}: {tail}")
        digest = sha256_of(wheels[0])
        target = folder / wheels[0].name
        Path(str(target) + ".sha256").write_text(digest + "\n")
        os.replace(wheels[0], target)
    return Release(version, target, digest)
