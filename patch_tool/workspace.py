"""Where things live in the repo, and the applied tree's state manifest."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from patch_tool import PatchToolError
from patch_tool.fetch import default_cache_dir, sha256_of
from patch_tool.patchfile import PatchFile, parse_patch
from patch_tool.pin import Pin, load_pin


@dataclass
class Workspace:
    root: Path
    cache: Path

    @classmethod
    def at(cls, root: Path | None = None, cache: Path | None = None) -> "Workspace":
        root = root or Path(os.environ.get("PATCH_TOOL_ROOT", Path(__file__).resolve().parent.parent))
        return cls(Path(root).resolve(), Path(cache) if cache else default_cache_dir())

    pin_file = property(lambda self: self.root / "third_party" / "sglang.toml")
    patches_dir = property(lambda self: self.root / "sglang_patches")
    series_file = property(lambda self: self.patches_dir / "series")
    tree = property(lambda self: self.root / "third_party" / "sglang")
    state_file = property(lambda self: self.root / "third_party" / ".state.json")

    def pin(self) -> Pin:
        return load_pin(self.pin_file)

    def series_names(self) -> list[str]:
        if not self.series_file.exists():
            raise PatchToolError(f"series file not found: {self.series_file}")
        names = []
        for line in self.series_file.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                names.append(line)
        return names

    def patches(self) -> list[PatchFile]:
        return [parse_patch(self.patches_dir / n) for n in self.series_names()]

    def series_hash(self) -> str:
        h = hashlib.sha256()
        for name in self.series_names():
            h.update(name.encode() + b"\0" + (self.patches_dir / name).read_bytes() + b"\0")
        return h.hexdigest()

    def read_state(self) -> dict | None:
        if not self.state_file.exists() or not self.tree.is_dir():
            return None
        return json.loads(self.state_file.read_text())

    def write_state(self, state: dict) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        os.replace(tmp, self.state_file)


def hash_tree(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for fn in filenames:
            p = Path(dirpath) / fn
            out[p.relative_to(root).as_posix()] = sha256_of(p)
    return out


def tree_edits(recorded: dict[str, str], root: Path) -> dict[str, list[str]]:
    """Files modified, added or deleted in root since the manifest was recorded."""
    current = hash_tree(root)
    return {
        "modified": sorted(p for p in current.keys() & recorded.keys() if current[p] != recorded[p]),
        "added": sorted(current.keys() - recorded.keys()),
        "deleted": sorted(recorded.keys() - current.keys()),
    }
