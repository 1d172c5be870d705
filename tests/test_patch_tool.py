"""patch_tool against a synthetic release (a fake wheel in a local pip find-links dir): offline."""
import hashlib
import zipfile
from pathlib import Path

import pytest

from patch_tool import PatchToolError, ops
from patch_tool.cli import main as cli_main
from patch_tool.patchfile import parse_patch
from patch_tool.workspace import Workspace, hash_tree

WHEEL = "sglang-0.5.23-cp311-cp311-manylinux_2_34_x86_64.whl"
FILES = {
    "sglang/__init__.py": "__version__ = '0.5.23'\n",
    "sglang/engine.py": "".join(f"line {i}\n" for i in range(1, 41)),
    "sglang/util.py": "def helper():\n    return 1\n",
}
HEADER = "Subject: {s}\nWhy: tests need it\nUpstream-Status: not submitted: test fixture\n\n"


def make_wheel(dirpath: Path, files=FILES) -> str:
    dirpath.mkdir(parents=True, exist_ok=True)
    path = dirpath / WHEEL
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
        zf.writestr("sglang-0.5.23.dist-info/METADATA", "Metadata-Version: 2.1\nName: sglang\nVersion: 0.5.23\n")
        zf.writestr("sglang-0.5.23.dist-info/WHEEL",
                    "Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp311-cp311-manylinux_2_34_x86_64\n")
        zf.writestr("sglang-0.5.23.dist-info/RECORD", "")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_repo(root: Path, sha: str, patches: dict[str, str]) -> Workspace:
    (root / "third_party").mkdir(parents=True, exist_ok=True)
    (root / "sglang_patches").mkdir(exist_ok=True)
    (root / "third_party" / "sglang.toml").write_text(
        f'[sglang]\nversion = "0.5.23"\npython = "cp311"\n[sglang.wheels.x86_64]\nfile = "{WHEEL}"\nsha256 = "{sha}"\n')
    for name, text in patches.items():
        (root / "sglang_patches" / name).write_text(text)
    (root / "sglang_patches" / "series").write_text("# test series\n" + "".join(n + "\n" for n in patches))
    return Workspace.at(root, root / "cache")


ENGINE_PATCH = HEADER.format(s="change line 5") + """diff --git a/sglang/engine.py b/sglang/engine.py
--- a/sglang/engine.py
+++ b/sglang/engine.py
@@ -3,5 +3,5 @@
 line 3
 line 4
-line 5
+line five
 line 6
 line 7
@@ -30,3 +30,4 @@
 line 30
 line 31
+inserted after 31
 line 32
"""
UTIL_PATCH = HEADER.format(s="util returns 2") + """diff --git a/sglang/util.py b/sglang/util.py
--- a/sglang/util.py
+++ b/sglang/util.py
@@ -1,2 +1,2 @@
 def helper():
-    return 1
+    return 2
"""


@pytest.fixture
def repo(tmp_path, monkeypatch):
    index = tmp_path / "index"
    sha = make_wheel(index)
    monkeypatch.setenv("PATCH_TOOL_FIND_LINKS", str(index))
    monkeypatch.setattr("patch_tool.pin.host_arch", lambda: "x86_64")
    return write_repo(tmp_path / "repo", sha, {"0001-engine.patch": ENGINE_PATCH, "0002-util.patch": UTIL_PATCH})


def quiet(*_):
    pass


def test_fetch_verifies_then_serves_from_cache(repo, monkeypatch):
    ops.pristine(repo, None, quiet)
    cached = repo.cache / "wheels" / WHEEL
    assert cached.is_file()
    monkeypatch.setenv("PATCH_TOOL_FIND_LINKS", str(repo.root / "no-such-index"))  # pip would fail now
    logs = []
    ops.pristine(repo, None, logs.append)
    assert any(m.startswith("cached:") for m in logs)


def test_hash_mismatch_is_refused_and_not_cached(repo):
    pin = repo.pin_file.read_text()
    good = repo.pin().wheel("x86_64").sha256
    repo.pin_file.write_text(pin.replace(good, "0" * 64))
    with pytest.raises(PatchToolError, match="sha256 mismatch.*not cached"):
        ops.pristine(repo, None, quiet)
    wheels = repo.cache / "wheels"
    assert list(wheels.iterdir()) == []  # neither the file nor a temp download stays


def test_corrupted_cache_entry_is_refused_and_removed(repo):
    ops.pristine(repo, None, quiet)
    cached = repo.cache / "wheels" / WHEEL
    cached.write_bytes(cached.read_bytes() + b"x")
    with pytest.raises(PatchToolError, match="sha256 mismatch"):
        ops.verify(repo, None, quiet)
    assert not cached.exists()


def test_apply_produces_patched_tree_and_is_idempotent(repo):
    ops.apply(repo, log=quiet)
    engine = (repo.tree / "sglang/engine.py").read_text().splitlines()
    assert engine[4] == "line five" and engine[31] == "inserted after 31" and len(engine) == 41
    assert (repo.tree / "sglang/util.py").read_text() == "def helper():\n    return 2\n"
    first = hash_tree(repo.tree)
    ops.apply(repo, log=quiet)
    assert hash_tree(repo.tree) == first


def test_conflict_names_patch_file_hunk_and_leaves_tree_untouched(repo):
    ops.apply(repo, log=quiet)
    before = hash_tree(repo.tree)
    bad = ENGINE_PATCH.replace(" line 31\n+inserted", " line 31 changed upstream\n+inserted").replace(
        "@@ -30,3 +30,4 @@", "@@ -30,3 +30,4 @@")
    (repo.patches_dir / "0001-engine.patch").write_text(bad)
    with pytest.raises(PatchToolError) as err:
        ops.apply(repo, log=quiet)
    msg = str(err.value)
    assert "0001-engine.patch" in msg and "sglang/engine.py" in msg and "hunk #2" in msg
    assert hash_tree(repo.tree) == before
    leftovers = [p.name for p in repo.tree.parent.iterdir() if p.name.startswith(".sglang")]
    assert leftovers == []


def test_check_reports_fuzz_and_apply_refuses_it(repo):
    # upstream changed the first context line of hunk 1: applies only with fuzz
    fuzzy = ENGINE_PATCH.replace(" line 3\n line 4\n-line 5", " line 3 (old)\n line 4\n-line 5")
    (repo.patches_dir / "0001-engine.patch").write_text(fuzzy)
    results = {r.name: r for r in ops.check(repo, log=quiet)}
    assert results["0001-engine.patch"].verdict == "fuzz"
    assert "fuzz 1" in results["0001-engine.patch"].detail
    assert results["0002-util.patch"].verdict == "clean"
    with pytest.raises(PatchToolError, match="hunk #1"):
        ops.apply(repo, log=quiet)
    assert cli_main(["--root", str(repo.root), "--cache", str(repo.cache), "check"]) == 1


def test_check_reports_offset_as_clean_with_note(repo, tmp_path, monkeypatch):
    files = dict(FILES)
    files["sglang/engine.py"] = "new first line\n" + FILES["sglang/engine.py"]
    index = tmp_path / "index2"
    sha = make_wheel(index, files)
    monkeypatch.setenv("PATCH_TOOL_FIND_LINKS", str(index))
    repo.pin_file.write_text(repo.pin_file.read_text().replace(repo.pin().wheel().sha256, sha))
    results = {r.name: r for r in ops.check(repo, log=quiet)}
    assert results["0001-engine.patch"].verdict == "offset"
    assert "+1" in results["0001-engine.patch"].detail


def test_incomplete_header_is_rejected(repo):
    (repo.patches_dir / "0002-util.patch").write_text(UTIL_PATCH.replace("Why: tests need it\n", ""))
    with pytest.raises(PatchToolError, match="0002-util.patch: header lacks 'Why:'"):
        ops.apply(repo, log=quiet)
    verdicts = {r.name: r.verdict for r in ops.check(repo, log=quiet)}
    assert verdicts["0002-util.patch"] == "header"


def test_apply_refuses_to_discard_uncaptured_edits(repo):
    ops.apply(repo, log=quiet)
    (repo.tree / "sglang/util.py").write_text("edited\n")
    with pytest.raises(PatchToolError, match="not captured"):
        ops.apply(repo, log=quiet)
    assert (repo.tree / "sglang/util.py").read_text() == "edited\n"
    ops.apply(repo, force=True, log=quiet)
    assert (repo.tree / "sglang/util.py").read_text() == "def helper():\n    return 2\n"


def test_new_and_refresh_round_trip(repo):
    ops.apply(repo, log=quiet)
    init = repo.tree / "sglang/__init__.py"
    init.write_text(init.read_text() + "PATCHED = True\n")
    (repo.tree / "sglang/extra.py").write_text("x = 1\n")
    path = ops.new(repo, "mark-patched", "Mark the tree", "tests", "not submitted", log=quiet)
    assert path.name == "0003-mark-patched.patch"
    assert repo.series_names()[-1] == path.name
    assert not any(ops.status(repo)["edits"].values())
    expected = hash_tree(repo.tree)
    ops.apply(repo, force=True, log=quiet)  # rebuild from pristine + series
    assert hash_tree(repo.tree) == expected

    # refresh a patch in the middle of the series: fold an edit into 0001
    engine = repo.tree / "sglang/engine.py"
    engine.write_text(engine.read_text().replace("line 20\n", "line twenty\n"))
    ops.refresh(repo, "engine", log=quiet)
    text = (repo.patches_dir / "0001-engine.patch").read_text()
    assert "+line twenty" in text and "+line five" in text and text.startswith("Subject: change line 5")
    expected = hash_tree(repo.tree)
    ops.apply(repo, force=True, log=quiet)
    assert hash_tree(repo.tree) == expected
    # export is deterministic: parsing and re-rendering every patch is byte-identical
    for name in repo.series_names():
        f = repo.patches_dir / name
        assert parse_patch(f).render() == f.read_text(), name


LATER_TWO_HUNKS_PATCH = HEADER.format(s="two hunks in engine.py") + """diff --git a/sglang/engine.py b/sglang/engine.py
--- a/sglang/engine.py
+++ b/sglang/engine.py
@@ -11,3 +11,3 @@
 line 11
-line 12
+line twelve
 line 13
@@ -23,3 +23,4 @@
 line 23
 line 24
+inserted after 24
 line 25
"""


def test_refresh_peels_a_later_patch_with_several_hunks_in_the_same_file(repo):
    (repo.patches_dir / "0003-later.patch").write_text(LATER_TWO_HUNKS_PATCH)
    with open(repo.series_file, "a") as f:
        f.write("0003-later.patch\n")
    ops.apply(repo, log=quiet)
    engine = repo.tree / "sglang/engine.py"
    engine.write_text(engine.read_text().replace("line 20\n", "line twenty\n"))
    ops.refresh(repo, "engine", log=quiet)
    first = (repo.patches_dir / "0001-engine.patch").read_text()
    assert "+line twenty" in first and "+line five" in first
    assert "line twelve" not in first and "inserted after 24" not in first  # still 0003's
    assert (repo.patches_dir / "0003-later.patch").read_text() == LATER_TWO_HUNKS_PATCH
    expected = hash_tree(repo.tree)
    ops.apply(repo, force=True, log=quiet)  # pristine + refreshed series == the edited tree
    assert hash_tree(repo.tree) == expected


def test_status_lists_edits(repo, capsys):
    ops.apply(repo, log=quiet)
    (repo.tree / "sglang/util.py").write_text("edited\n")
    (repo.tree / "sglang/engine.py").unlink()
    assert cli_main(["--root", str(repo.root), "--cache", str(repo.cache), "status"]) == 0
    out = capsys.readouterr().out
    assert "modified: sglang/util.py" in out and "deleted: sglang/engine.py" in out and "2 file(s)" in out


def test_real_series_applies_cleanly_to_the_pinned_release():
    """The shipped series against the real pinned SGLang wheel (pip registry or cache)."""
    ws = Workspace.at()
    results = ops.check(ws, log=quiet)
    assert results and all(r.verdict == "clean" for r in results), [(r.name, r.verdict, r.detail) for r in results]
    for p in ws.patches():
        assert not p.header_problems(), p.name
        assert p.render() == (ws.patches_dir / p.name).read_text(), f"{p.name} is not in canonical form"
