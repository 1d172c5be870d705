"""Patch files: a justification header followed by unified diffs (git style, a/ b/ prefixes)."""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

from patch_tool import PatchToolError

REQUIRED_FIELDS = ("Subject", "Why", "Upstream-Status")
HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
NO_EOL = "\\ No newline at end of file"


@dataclass
class Hunk:
    old_start: int
    new_start: int
    lines: list[str]  # each starts with ' ', '-' or '+'; no newline; NO_EOL markers folded below
    old_no_eol: bool = False
    new_no_eol: bool = False

    @property
    def header(self) -> str:
        return f"@@ -{self.old_start},{len(self.old_lines)} +{self.new_start},{len(self.new_lines)} @@"

    @property
    def old_lines(self) -> list[str]:
        return [ln[1:] for ln in self.lines if ln[0] in " -"]

    @property
    def new_lines(self) -> list[str]:
        return [ln[1:] for ln in self.lines if ln[0] in " +"]

    def reversed(self) -> "Hunk":
        swap = {"+": "-", "-": "+", " ": " "}
        return Hunk(self.new_start, self.old_start, [swap[ln[0]] + ln[1:] for ln in self.lines],
                    self.new_no_eol, self.old_no_eol)


@dataclass
class FileDiff:
    path: str  # relative to the tree root, without a/ b/
    hunks: list[Hunk]
    created: bool = False
    deleted: bool = False

    def reversed(self) -> "FileDiff":
        """The diff that undoes this one. Hunks keep their order: each is located in the
        patched file, where they appear in the same order as in the original."""
        return FileDiff(self.path, [h.reversed() for h in self.hunks], created=self.deleted, deleted=self.created)


@dataclass
class PatchFile:
    name: str
    header: str
    files: list[FileDiff] = field(default_factory=list)

    def fields(self) -> dict[str, str]:
        out: dict[str, str] = {}
        key = None
        for line in self.header.splitlines():
            m = re.match(r"^([A-Za-z][A-Za-z-]*):\s?(.*)$", line)
            if m:
                key = m.group(1)
                out[key] = m.group(2).strip()
            elif key and line.startswith((" ", "\t")):
                out[key] += " " + line.strip()
            else:
                key = None
        return out

    def header_problems(self) -> list[str]:
        fields = self.fields()
        problems = [f"header lacks '{f}:'" for f in REQUIRED_FIELDS if not fields.get(f)]
        problems += [f"header field '{k}' still says TODO" for k, v in fields.items() if "TODO" in v]
        return problems

    def render(self) -> str:
        parts = [self.header.rstrip("\n") + "\n\n"]
        for fd in sorted(self.files, key=lambda f: f.path):
            parts.append(render_file_diff(fd))
        return "".join(parts)


def render_file_diff(fd: FileDiff) -> str:
    old = "/dev/null" if fd.created else f"a/{fd.path}"
    new = "/dev/null" if fd.deleted else f"b/{fd.path}"
    out = [f"diff --git a/{fd.path} b/{fd.path}\n"]
    if fd.created:
        out.append("new file mode 100644\n")
    if fd.deleted:
        out.append("deleted file mode 100644\n")
    out += [f"--- {old}\n", f"+++ {new}\n"]
    for h in fd.hunks:
        out.append(h.header + "\n")
        last_old = max((i for i, ln in enumerate(h.lines) if ln[0] in " -"), default=None)
        last_new = max((i for i, ln in enumerate(h.lines) if ln[0] in " +"), default=None)
        for i, ln in enumerate(h.lines):
            out.append(ln + "\n")
            if (i == last_old and h.old_no_eol) or (i == last_new and h.new_no_eol):
                out.append(NO_EOL + "\n")
    return "".join(out)


def parse_patch(path: Path) -> PatchFile:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PatchToolError(f"patch file not found: {path}") from None
    return parse_patch_text(path.name, text)


def parse_patch_text(name: str, text: str) -> PatchFile:
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith(("diff --git ", "--- "))), len(lines))
    patch = PatchFile(name, "\n".join(lines[:start]).strip("\n") + "\n")
    i = start
    current: FileDiff | None = None
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- "):
            if i + 1 >= len(lines) or not lines[i + 1].startswith("+++ "):
                raise PatchToolError(f"{name}: line {i + 1}: '---' not followed by '+++'")
            old, new = line[4:].split("\t")[0], lines[i + 1][4:].split("\t")[0]
            path = _strip_prefix(new if new != "/dev/null" else old)
            current = FileDiff(path, [], created=old == "/dev/null", deleted=new == "/dev/null")
            patch.files.append(current)
            i += 2
        elif line.startswith("@@"):
            if current is None:
                raise PatchToolError(f"{name}: line {i + 1}: hunk before any file header")
            i = _parse_hunk(name, lines, i, current)
        else:
            i += 1  # 'diff --git', mode lines, index lines
    if not patch.files:
        raise PatchToolError(f"{name}: contains no diff")
    return patch


def _strip_prefix(p: str) -> str:
    return p[2:] if p[:2] in ("a/", "b/") else p


def _parse_hunk(name: str, lines: list[str], i: int, fd: FileDiff) -> int:
    m = HUNK_RE.match(lines[i])
    if not m:
        raise PatchToolError(f"{name}: line {i + 1}: malformed hunk header {lines[i]!r}")
    old_len = int(m.group(2) or 1)
    new_len = int(m.group(4) or 1)
    hunk = Hunk(int(m.group(1)), int(m.group(3)), [])
    i += 1
    n_old = n_new = 0
    while i < len(lines) and (n_old < old_len or n_new < new_len or lines[i] == NO_EOL):
        ln = lines[i]
        if ln == NO_EOL:
            if hunk.lines[-1][0] == "-":
                hunk.old_no_eol = True
            elif hunk.lines[-1][0] == "+":
                hunk.new_no_eol = True
            else:
                hunk.old_no_eol = hunk.new_no_eol = True
            i += 1
            continue
        ln = ln or " "  # some editors strip the space of an empty context line
        if ln[0] not in " +-":
            raise PatchToolError(f"{name}: line {i + 1}: unexpected line in hunk {lines[i]!r}")
        n_old += ln[0] in " -"
        n_new += ln[0] in " +"
        hunk.lines.append(ln)
        i += 1
    if n_old != old_len or n_new != new_len:
        raise PatchToolError(f"{name}: hunk {m.group(0)} for {fd.path} is truncated")
    fd.hunks.append(hunk)
    return i


def diff_file(path: str, old: str | None, new: str | None, context: int = 3) -> FileDiff | None:
    """The unified diff of one file (None when unchanged), built deterministically with difflib."""
    if old == new:
        return None
    a = (old or "").splitlines()
    b = (new or "").splitlines()
    fd = FileDiff(path, [], created=old is None, deleted=new is None)
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(context):
        h_lines: list[str] = []
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                h_lines += [" " + x for x in a[i1:i2]]
                continue
            h_lines += ["-" + x for x in a[i1:i2]]
            h_lines += ["+" + x for x in b[j1:j2]]
        i0, j0 = group[0][1], group[0][3]
        n_old = sum(1 for x in h_lines if x[0] in " -")
        n_new = sum(1 for x in h_lines if x[0] in " +")
        hunk = Hunk(i0 + 1 if n_old else i0, j0 + 1 if n_new else j0, h_lines)
        hunk.old_no_eol = bool(old) and not old.endswith("\n") and group[-1][2] == len(a)
        hunk.new_no_eol = bool(new) and not new.endswith("\n") and group[-1][4] == len(b)
        fd.hunks.append(hunk)
    if not fd.hunks and old != new:  # only the final newline changed
        fd.hunks.append(Hunk(len(a), len(b), ["-" + a[-1], "+" + b[-1]],
                             not (old or "").endswith("\n"), not (new or "").endswith("\n")))
    return fd
