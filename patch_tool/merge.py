"""Three-way merge of one file with `git merge-file` (diff3 style conflict markers)."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from patch_tool import PatchToolError


@dataclass
class MergeResult:
    text: str
    conflicts: int

    def conflict_regions(self, limit: int = 3, max_lines: int = 24) -> str:
        """The first conflict regions, for reports."""
        out, region, inside = [], [], False
        for line in self.text.splitlines():
            if line.startswith("<<<<<<< "):
                inside, region = True, [line]
            elif inside:
                region.append(line)
                if line.startswith(">>>>>>> "):
                    inside = False
                    out.append("\n".join(region[:max_lines] + (["    ..."] if len(region) > max_lines else [])))
                    if len(out) == limit:
                        break
        return "\n\n".join(out)


def merge3(base: str, ours: str, theirs: str, labels=("patched", "old upstream", "new upstream")) -> MergeResult:
    """ours = base + our change; theirs = base + upstream's change; returns the merge of both."""
    git = shutil.which("git")
    if git is None:
        raise PatchToolError("the three-way merge needs git (git merge-file) on PATH")
    with tempfile.TemporaryDirectory(prefix="patch-tool-merge-") as tmp:
        paths = []
        for name, text in (("ours", ours), ("base", base), ("theirs", theirs)):
            p = Path(tmp) / name
            p.write_text(text)
            paths.append(str(p))
        cmd = [git, "merge-file", "-p", "--diff3", "-L", labels[0], "-L", labels[1], "-L", labels[2], *paths]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode < 0 or proc.returncode > 127:
        raise PatchToolError(f"git merge-file failed: {proc.stderr.strip()}")
    return MergeResult(proc.stdout, proc.returncode)
