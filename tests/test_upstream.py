"""rebase / bisect / matrix against synthetic releases in a local pip find-links dir (offline)."""
import json
import sys
import zipfile
from pathlib import Path

import pytest

from patch_tool import PatchToolError, ops, releases, upstream
from patch_tool.cli import main as cli_main
from patch_tool.patchfile import parse_patch
from test_patch_tool import ENGINE_PATCH, FILES, UTIL_PATCH, write_repo

ENGINE = FILES["sglang/engine.py"]


def engine_with(**changes) -> str:
    lines = ENGINE.splitlines()
    for n, text in changes.items():
        lines[int(n[1:]) - 1] = text
    return "\n".join(lines) + "\n"


def wheel(index: Path, version: str, files: dict) -> str:
    import hashlib

    path = index / f"sglang-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
        zf.writestr(f"sglang-{version}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: sglang\nVersion: {version}\n")
        zf.writestr(f"sglang-{version}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"sglang-{version}.dist-info/RECORD", "")
    return hashlib.sha256(path.read_bytes()).hexdigest()


BROKEN = dict(FILES, **{"sglang/broken.py": "raise SystemExit('upstream broke the API we rely on')\n"})
RELEASES = {
    "0.1.0": FILES,
    "0.1.1": dict(FILES, **{"sglang/engine.py": "# new header line\n" + ENGINE}),        # offset only
    "0.1.2": dict(FILES, **{"sglang/engine.py": engine_with(L7="line 7 (upstream)")}),  # context changed: 3-way
    "0.2.0": dict(FILES, **{"sglang/util.py": "def helper():\n    return 2\n"}),         # patch 0002 upstream
    "0.2.0.post1": dict(BROKEN, **{"sglang/util.py": "def helper():\n    return 2\n"}),
    "0.3.0": dict(BROKEN, **{"sglang/engine.py": engine_with(L5="line 5 rewritten upstream"),  # conflict
                             "sglang/util.py": "def helper():\n    return 2\n"}),
}
# the test command: bad once sglang/broken.py exists in the probed tree
TEST = [sys.executable, "-c",
        "import os, sys; sys.exit(1 if os.path.exists(os.path.join(os.environ['PATCH_TOOL_TREE'], 'sglang', 'broken.py')) else 0)"]


def quiet(*_):
    pass


@pytest.fixture
def index(tmp_path, monkeypatch):
    idx = tmp_path / "index"
    idx.mkdir()
    monkeypatch.setenv("PATCH_TOOL_FIND_LINKS", str(idx))
    return idx


def make_repo(tmp_path, index, versions=RELEASES, pinned="0.1.0"):
    shas = {v: wheel(index, v, files) for v, files in versions.items()}
    ws = write_repo(tmp_path / "repo", shas[pinned], {"0001-engine.patch": ENGINE_PATCH, "0002-util.patch": UTIL_PATCH})
    ws.pin_file.write_text(ws.pin_file.read_text().replace(
        "sglang-0.5.23-cp311-cp311-manylinux_2_34_x86_64.whl", f"sglang-{pinned}-py3-none-any.whl").replace(
        'version = "0.5.23"', f'version = "{pinned}"'))
    return ws


def test_releases_are_listed_in_version_order_with_post_releases(tmp_path, index):
    ws = make_repo(tmp_path, index)
    assert releases.list_versions("sglang") == ["0.1.0", "0.1.1", "0.1.2", "0.2.0", "0.2.0.post1", "0.3.0"]
    assert releases.between(releases.list_versions("sglang"), "0.1.2", "0.2.0.post1") == ["0.1.2", "0.2.0", "0.2.0.post1"]
    with pytest.raises(PatchToolError, match="0.9.9 is not on the index"):
        releases.between(releases.list_versions("sglang"), "0.1.0", "0.9.9")
    assert ws.pin().version == "0.1.0"


@pytest.mark.parametrize("version,expected", [
    ("0.1.1", {"0001-engine.patch": "clean", "0002-util.patch": "clean"}),
    ("0.1.2", {"0001-engine.patch": "merged", "0002-util.patch": "clean"}),
    ("0.2.0", {"0001-engine.patch": "clean", "0002-util.patch": "droppable"}),
    ("0.3.0", {"0001-engine.patch": "conflict", "0002-util.patch": "droppable"}),
])
def test_rebase_verdicts(tmp_path, index, version, expected):
    ws = make_repo(tmp_path, index)
    out = tmp_path / "rebased"
    results = ops.rebase(ws, version, out, log=quiet)
    assert {r.name: r.verdict for r in results} == expected
    series = [ln for ln in (out / "series").read_text().splitlines() if not ln.startswith("#")]
    assert series == [n for n, v in expected.items() if v != "droppable"]
    assert f"applies on sglang {version}" in (out / "series").read_text()
    assert (ws.patches_dir / "0001-engine.patch").read_text() == ENGINE_PATCH  # current series untouched
    if expected["0001-engine.patch"] == "conflict":
        detail = next(r.detail for r in results if r.verdict == "conflict")
        assert "sglang/engine.py" in detail and "hunk #1" in detail
        assert "<<<<<<< patched" in detail and "line 5 rewritten upstream" in detail and "line five" in detail
        assert "## 0001-engine.patch" in (out / "REBASE.md").read_text()
    else:  # the rebased series applies with fuzz 0 to the new release and does what the old one did
        from patch_tool.apply import apply_series, tree_reader
        from patch_tool.fetch import pristine_tree

        rel = releases.fetch_release("sglang", version, ws.cache)
        src = pristine_tree(rel.wheel, rel.sha256, ws.cache)
        overlay, _ = apply_series([parse_patch(out / n) for n in series], tree_reader(src))
        engine = overlay.get("sglang/engine.py") or (src / "sglang/engine.py").read_text()
        assert "line five" in engine and "inserted after 31" in engine


def test_rebase_update_pin_moves_only_when_everything_applies(tmp_path, index):
    ws = make_repo(tmp_path, index)
    with pytest.raises(PatchToolError, match="pin was not moved"):
        ops.rebase(ws, "0.3.0", tmp_path / "r1", update_pin=True, log=quiet)
    assert ws.pin().version == "0.1.0"
    with pytest.raises(PatchToolError, match="current series was left unchanged"):
        ops.rebase(ws, "0.3.0", in_place=True, log=quiet)
    ops.rebase(ws, "0.1.2", update_pin=True, in_place=True, log=quiet)
    assert not (ws.patches_dir / "REBASE.md").exists()  # no report file inside the series itself
    pin = ws.pin()
    assert pin.version == "0.1.2" and pin.wheel("x86_64").file == "sglang-0.1.2-py3-none-any.whl"
    ops.apply(ws, log=quiet)  # the moved pin + rebased series build a tree
    assert "line 7 (upstream)" in (ws.tree / "sglang/engine.py").read_text()
    assert "line five" in (ws.tree / "sglang/engine.py").read_text()


CONFLICT = dict(FILES, **{"sglang/engine.py": engine_with(L5="line 5 rewritten upstream")})
# for bisect: the series applies everywhere but where a release is CONFLICT
BISECT = {"0.1.0": FILES, "0.1.1": FILES, "0.1.2": dict(FILES, **{"sglang/extra.py": "x = 1\n"}), "0.2.0": FILES,
          "0.2.0.post1": BROKEN, "0.3.0": BROKEN}


def test_bisect_finds_the_first_bad_release_and_skips_unappliable_ones(tmp_path, index):
    ws = make_repo(tmp_path, index, dict(BISECT, **{"0.1.1": CONFLICT}))
    report = upstream.bisect(ws, releases.list_versions("sglang"), TEST, log=quiet)
    assert report.status == "done" and report.first_bad == "0.2.0.post1", report.message
    probed = {p.version: p.verdict for p in report.probes}
    assert probed["0.1.0"] == "good" and probed["0.3.0"] == "bad"  # both ends checked first
    assert "0.1.1" not in probed or probed["0.1.1"] == "skip"
    assert "test failed (exit 1)" in report.message


def test_bisect_reports_the_ambiguous_range_when_skips_hide_the_answer(tmp_path, index):
    ws = make_repo(tmp_path, index, dict(BISECT, **{"0.2.0": CONFLICT}))
    report = upstream.bisect(ws, releases.list_versions("sglang"), TEST, log=quiet)
    assert report.status == "ambiguous"
    assert report.ambiguous == ["0.2.0", "0.2.0.post1"]
    skipped = next(p for p in report.probes if p.version == "0.2.0")
    assert skipped.stage == "apply" and "0001-engine.patch does not apply: sglang/engine.py hunk #1" in skipped.detail


def test_bisect_refuses_a_good_end_that_is_bad(tmp_path, index):
    ws = make_repo(tmp_path, index, BISECT)
    report = upstream.bisect(ws, ["0.2.0.post1", "0.3.0"], TEST, log=quiet)
    assert report.status == "error" and "good end 0.2.0.post1 is bad" in report.message


def test_bisect_cli_writes_markdown_and_json(tmp_path, index, capsys):
    ws = make_repo(tmp_path, index, BISECT)
    out = tmp_path / "reports"
    rc = cli_main(["--root", str(ws.root), "--cache", str(ws.cache), "bisect", "--good", "0.1.0", "--bad", "0.3.0",
                   "--out", str(out), "--", *TEST])
    assert rc == 0
    data = json.loads((out / "bisect.json").read_text())
    assert data["first_bad"] == "0.2.0.post1" and data["status"] == "done"
    md = (out / "bisect.md").read_text()
    assert "| 0.2.0.post1 | bad | test |" in md
    assert "first bad release: 0.2.0.post1" in capsys.readouterr().out


def test_interrupted_bisect_reports_what_it_learned(tmp_path, index, monkeypatch):
    ws = make_repo(tmp_path, index, BISECT)
    real = upstream.probe
    calls = []

    def probe_then_interrupt(*a, **k):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(upstream, "probe", probe_then_interrupt)
    out = tmp_path / "reports"
    rc = cli_main(["--root", str(ws.root), "--cache", str(ws.cache), "bisect", "--good", "0.1.0", "--bad", "0.3.0",
                   "--out", str(out), "--", *TEST])
    assert rc == 130
    data = json.loads((out / "bisect.json").read_text())
    assert data["status"] == "interrupted" and "first bad release is after" in data["message"]
    assert not list((ws.cache / "releases" / "sglang").glob("*/.download-*"))  # no half-written cache entries


def test_matrix_tables_every_release(tmp_path, index):
    ws = make_repo(tmp_path, index)
    rows = upstream.matrix(ws, ["0.1.0", "0.1.2", "0.3.0"], TEST, log=quiet)
    assert [(r.version, r.verdict, r.stage) for r in rows] == [
        ("0.1.0", "good", "test"), ("0.1.2", "skip", "apply"), ("0.3.0", "skip", "apply")]
    md = upstream.matrix_markdown("sglang", rows, tested=True)
    assert "| 0.1.0 | yes | pass |" in md and "| 0.1.2 | **no**: 0001-engine.patch does not apply" in md
    png = tmp_path / "m.png"
    if upstream.matrix_png(png, rows, tested=True):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
