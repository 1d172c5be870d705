"""rebase / bisect / matrix against synthetic releases in a local pip find-links dir (offline)."""
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from patch_tool import PatchToolError, cache, ops, releases, upstream
from patch_tool.cli import main as cli_main
from patch_tool.patchfile import PatchFile, diff_file, parse_patch
from patch_tool.workspace import Workspace
from test_patch_tool import HEADER, write_repo


def engine_with(**changes) -> str:
    """A 40-line importable module, `line_N = N`, with some lines replaced (L5="...")."""
    lines = [f"line_{i} = {i}" for i in range(1, 41)]
    for n, text in changes.items():
        lines[int(n[1:]) - 1] = text
    return "\n".join(lines) + "\n"


ENGINE = engine_with()
FILES = {
    "sglang/__init__.py": "__version__ = '0.1'\n",
    "sglang/engine.py": ENGINE,
    "sglang/util.py": "def helper():\n    return 1\n",
    "sglang/compat.py": "SHIM = True\n",
}


def make_patch(name: str, subject: str, path: str, new: str) -> str:
    return PatchFile(name, HEADER.format(s=subject), [diff_file(path, FILES[path], new)]).render()


PATCHED_ENGINE = ENGINE.replace("line_5 = 5\n", "line_5 = 'five'\n").replace("line_31 = 31\n", "line_31 = 31\ninserted_after_31 = True\n")
ENGINE_PATCH = make_patch("0001-engine.patch", "change line 5", "sglang/engine.py", PATCHED_ENGINE)
PATCHED_UTIL = "from sglang.compat import SHIM\n\n\ndef helper():\n    return 2\n"
UTIL_PATCH = make_patch("0002-util.patch", "util returns 2", "sglang/util.py", PATCHED_UTIL)


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


UPSTREAM_UTIL = PATCHED_UTIL  # upstream took patch 0002
BROKEN = dict(FILES, **{"sglang/broken.py": "raise SystemExit('upstream broke the API we rely on')\n"})
CONTEXT_CHANGED = engine_with(L7="line_7 = 'upstream'")  # 0001 no longer applies as is; a three-way merge works
CONFLICTING = engine_with(L5="line_5 = 'rewritten upstream'")  # 0001's own line changed upstream: conflict
RELEASES = {
    "0.1.0": FILES,
    "0.1.1": dict(FILES, **{"sglang/engine.py": "# new header line\n" + ENGINE}),  # offset only
    "0.1.2": dict(FILES, **{"sglang/engine.py": CONTEXT_CHANGED}),
    "0.2.0": dict(FILES, **{"sglang/util.py": UPSTREAM_UTIL}),                     # patch 0002 upstream
    "0.2.0.post1": dict(BROKEN, **{"sglang/util.py": UPSTREAM_UTIL}),
    "0.3.0": dict(BROKEN, **{"sglang/engine.py": CONFLICTING, "sglang/util.py": UPSTREAM_UTIL}),
}
# the test command: bad once sglang/broken.py exists in the probed tree, skip (125) when sglang/skipme.py does
TEST = [sys.executable, "-c", """import os, sys
tree = os.path.join(os.environ['PATCH_TOOL_TREE'], 'sglang')
if os.path.exists(os.path.join(tree, 'skipme.py')):
    sys.exit(125)
if os.path.exists(os.path.join(tree, 'broken.py')):
    print('checked the tree'); print('sglang/broken.py is there: the API we rely on is gone'); sys.exit(1)
"""]


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
        assert "<<<<<<< patched" in detail and "line_5 = 'rewritten upstream'" in detail and "line_5 = 'five'" in detail
        assert "## 0001-engine.patch" in (out / "REBASE.md").read_text()
    else:  # the rebased series applies with fuzz 0 to the new release and does what the old one did
        from patch_tool.apply import apply_series, tree_reader
        from patch_tool.fetch import pristine_tree

        rel = releases.fetch_release("sglang", version, ws.cache)
        src = pristine_tree(rel.wheel, rel.sha256, ws.cache)
        overlay, _ = apply_series([parse_patch(out / n) for n in series], tree_reader(src))
        engine = overlay.get("sglang/engine.py") or (src / "sglang/engine.py").read_text()
        assert "line_5 = 'five'" in engine and "inserted_after_31 = True" in engine


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
    assert "line_7 = 'upstream'" in (ws.tree / "sglang/engine.py").read_text()
    assert "line_5 = 'five'" in (ws.tree / "sglang/engine.py").read_text()


# One release per way a release can break the series, in order: the three questions of
# `bisect` have three different answers here.
STAGED = {
    "0.1.0": FILES,
    "0.1.1": RELEASES["0.1.1"],                                                  # everything good
    "0.1.2": dict(FILES, **{"sglang/engine.py": CONTEXT_CHANGED}),              # stops applying as is
    "0.2.0": dict(BROKEN, **{"sglang/engine.py": CONTEXT_CHANGED}),             # rebased series fails the test
    "0.2.0.post1": dict(BROKEN, **{"sglang/engine.py": CONFLICTING}),           # stops rebasing cleanly
    "0.3.0": dict(BROKEN, **{"sglang/engine.py": CONFLICTING}),
}


def stages(probe):
    return {name: st.verdict for name, st in probe.stages.items()}


def test_bisect_names_where_the_series_stops_applying_stops_rebasing_and_fails_the_test(tmp_path, index):
    ws = make_repo(tmp_path, index, STAGED)
    report = upstream.bisect(ws, releases.list_versions("sglang"), TEST, log=quiet)
    assert report.status == "done", report.message
    applies, rebases, works = (report.answers[q] for q in ("applies", "rebases", "works"))
    assert (applies.status, applies.first_bad, applies.last_good) == ("found", "0.1.2", "0.1.1")
    assert "apply: 0001-engine.patch does not apply: sglang/engine.py hunk #1 (@@ -2,7 +2,7 @@)" in applies.detail
    assert (rebases.status, rebases.first_bad, rebases.last_good) == ("found", "0.2.0.post1", "0.2.0")
    assert "0001-engine.patch conflicts" in rebases.detail and "sglang/engine.py" in rebases.detail
    assert "hunk #1" in rebases.detail and "<<<<<<< patched" in rebases.detail
    assert (works.status, works.first_bad, works.last_good) == ("found", "0.2.0", "0.1.2")
    assert "test failed (exit 1)" in works.detail and "the API we rely on is gone" in works.detail  # the test's last lines
    probed = {p.version: p for p in report.probes}
    assert len(report.probes) == len(probed)  # every release probed at most once for all three questions
    assert stages(probed["0.1.2"]) == {"fetch": "good", "apply": "bad", "rebase": "good", "import": "good", "test": "good"}
    assert "0001-engine.patch merged" in probed["0.1.2"].stages["rebase"].detail
    assert stages(probed["0.3.0"]) == {"fetch": "good", "apply": "bad", "rebase": "bad", "import": "not run", "test": "not run"}
    assert report.summary() == ("sglang 0.1.0..0.3.0: stops applying as is at 0.1.2 (apply: 0001-engine.patch does not apply: "
                                "sglang/engine.py hunk #1 (@@ -2,7 +2,7 @@): context not found); stops rebasing cleanly at "
                                "0.2.0.post1 (rebase: 0001-engine.patch conflicts (three-way from 0.1.0): sglang/engine.py "
                                "(1 conflict(s); hunk #1 @@ -2,7 +2,7 @@ fails):); fails the test from 0.2.0 (test: test "
                                "failed (exit 1): sglang/broken.py is there: the API we rely on is gone)")


def test_a_release_that_cannot_be_downloaded_is_a_skip_and_the_report_gives_the_range(tmp_path, index):
    ws = make_repo(tmp_path, index, STAGED)
    report = upstream.bisect(ws, ["0.1.0", "0.1.1", "0.1.5", "0.1.2"], TEST, log=quiet)  # 0.1.5 is not on the index
    missing = next(p for p in report.probes if p.version == "0.1.5")
    assert missing.stages["fetch"].verdict == "skip" and "pip could not download sglang==0.1.5" in missing.stages["fetch"].detail
    assert stages(missing)["apply"] == "not run"
    assert report.status == "ambiguous"
    assert report.answers["applies"].status == "ambiguous" and report.answers["applies"].candidates == ["0.1.5", "0.1.2"]
    assert report.answers["works"].status == "unbroken"  # 0.1.2 rebases and passes


def test_skips_at_the_new_end_leave_the_question_open(tmp_path, index):
    ws = make_repo(tmp_path, index, STAGED)
    report = upstream.bisect(ws, ["0.1.0", "0.1.1", "0.3.0"], TEST, log=quiet)
    works = report.answers["works"]  # 0.3.0 cannot be rebased, so the test cannot run there
    assert works.status == "unknown" and works.last_good == "0.1.1" and works.candidates == ["0.3.0"]
    assert report.answers["rebases"].first_bad == "0.3.0" and report.status == "ambiguous"


def test_a_skip_that_hides_the_answer_gives_the_ambiguous_range(tmp_path, index):
    merged = {"sglang/engine.py": CONTEXT_CHANGED}
    ws = make_repo(tmp_path, index, dict(STAGED, **{
        "0.2.0": dict(FILES, **merged, **{"sglang/skipme.py": ""}),  # the test asks to skip here (exit 125)
        "0.2.0.post1": dict(BROKEN, **merged), "0.3.0": dict(BROKEN, **merged)}))
    report = upstream.bisect(ws, releases.list_versions("sglang"), TEST, log=quiet)
    works = report.answers["works"]
    assert report.status == "ambiguous" and works.status == "ambiguous"
    assert works.candidates == ["0.2.0", "0.2.0.post1"] and works.last_good == "0.1.2"
    assert "one of 0.2.0, 0.2.0.post1" in works.message
    assert report.answers["applies"].first_bad == "0.1.2" and report.answers["rebases"].status == "unbroken"


def test_bisect_refuses_a_good_end_that_is_bad(tmp_path, index):
    ws = make_repo(tmp_path, index, STAGED)
    report = upstream.bisect(ws, ["0.2.0", "0.3.0"], TEST, log=quiet)
    assert report.status == "error"
    assert report.answers["works"].status == "error" and "the good end 0.2.0 is bad" in report.answers["works"].message
    assert report.answers["rebases"].first_bad == "0.3.0"  # the other questions are still answered


IMPORTS = {
    "0.1.0": FILES,
    "0.1.1": {k: v for k, v in FILES.items() if k != "sglang/compat.py"},  # the series imports what upstream removed
    "0.1.2": dict(FILES, **{"sglang/__init__.py": "raise ImportError('needs a newer torch')\n"}),  # not ours
    "0.1.3": dict(FILES, **{"sglang/skipme.py": ""}),                       # the test asks to skip
}


def test_import_and_test_stage_verdicts(tmp_path, index):
    ws = make_repo(tmp_path, index, IMPORTS)
    rows = {p.version: p for p in upstream.matrix(ws, list(IMPORTS), TEST, log=quiet)}
    assert stages(rows["0.1.0"]) == {"fetch": "good", "apply": "good", "rebase": "good", "import": "good", "test": "good"}
    assert rows["0.1.0"].stages["rebase"].detail == "not needed"
    bad = rows["0.1.1"].stages["import"]
    assert bad.verdict == "bad" and "the patched tree does not import" in bad.detail and "sglang.compat" in bad.detail
    assert rows["0.1.1"].answer("works") == "bad" and rows["0.1.1"].answer("applies") == "good"
    skip = rows["0.1.2"].stages["import"]
    assert skip.verdict == "skip" and "the release itself does not import" in skip.detail and "needs a newer torch" in skip.detail
    assert not list((ws.cache / "pristine").rglob("__pycache__"))  # importing the pristine tree wrote nothing into it
    assert stages(rows["0.1.3"])["test"] == "skip" and rows["0.1.3"].answer("works") == "skip"


def test_a_test_command_exit_of_128_or_more_aborts_the_bisect(tmp_path, index):
    ws = make_repo(tmp_path, index, STAGED)
    report = upstream.bisect(ws, ["0.1.0", "0.3.0"], [sys.executable, "-c", "import sys; sys.exit(200)"], log=quiet)
    assert report.status == "error" and "test command aborted (exit 200)" in report.message


def test_bisect_cli_writes_markdown_and_json(tmp_path, index, capsys):
    ws = make_repo(tmp_path, index, STAGED)
    out = tmp_path / "reports"
    rc = cli_main(["--root", str(ws.root), "--cache", str(ws.cache), "bisect", "--good", "0.1.0", "--bad", "0.3.0",
                   "--out", str(out), "--", *TEST])
    assert rc == 0
    data = json.loads((out / "bisect.json").read_text())
    assert data["status"] == "done"
    assert {q: a["first_bad"] for q, a in data["answers"].items()} == {"applies": "0.1.2", "rebases": "0.2.0.post1", "works": "0.2.0"}
    assert data["summary"].startswith("sglang 0.1.0..0.3.0: stops applying as is at 0.1.2")
    md = (out / "bisect.md").read_text()
    assert "| the series applies as is | found | 0.1.2 | 0.1.1 |" in md
    assert "| 0.2.0 | ok | **no**: 0001-engine.patch does not apply: sglang/engine.py hunk #1" in md
    assert "## the (rebased) series passes the test: first bad 0.2.0" in md
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == data["summary"]  # the last line names the breaking releases


def test_interrupted_bisect_reports_what_it_learned(tmp_path, index, monkeypatch):
    ws = make_repo(tmp_path, index, STAGED)
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
    assert len(data["probes"]) == 3
    assert not list((ws.cache / "releases" / "sglang").glob("*/.download-*"))  # no half-written cache entries


def test_matrix_cli_takes_a_command_and_shows_every_stage(tmp_path, index):
    ws = make_repo(tmp_path, index, STAGED)
    out = tmp_path / "reports"
    rc = cli_main(["--root", str(ws.root), "--cache", str(ws.cache), "matrix", "0.1.0", "0.1.2", "0.2.0", "0.3.0",
                   "--out", str(out), "--", *TEST])
    assert rc == 1  # not every release is good
    md = (out / "matrix.md").read_text()
    assert "| release | download | applies as is | rebase | import | test |" in md
    assert "| 0.1.0 | ok | yes | not needed | ok | pass |" in md
    assert "| 0.1.2 | ok | **no**: 0001-engine.patch does not apply: sglang/engine.py hunk #1 (@@ -2,7 +2,7 @@): " \
           "context not found | from 0.1.0: 0001-engine.patch merged, 0002-util.patch clean | ok | pass |" in md
    assert "| 0.2.0 |" in md and "| ok | **fails**: test failed (exit 1): sglang/broken.py is there: the API we rely on is gone |" in md
    assert "| 0.3.0 | ok | **no**: " in md and "| **conflict**: 0001-engine.patch conflicts (three-way from 0.1.0)" in md
    rows = json.loads((out / "matrix.json").read_text())
    assert [r["answers"]["applies"] for r in rows] == ["good", "bad", "bad", "bad"]
    assert [r["stages"]["rebase"]["verdict"] for r in rows] == ["good", "good", "good", "bad"]
    if (out / "matrix.png").exists():
        assert (out / "matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit):  # only bisect and matrix take a command
        cli_main(["--root", str(ws.root), "status", "--", "true"])


def test_cache_is_pruned_least_recently_used_first_and_keeps_the_pin(tmp_path, index, monkeypatch, capsys):
    ws = make_repo(tmp_path, index, STAGED)
    upstream.matrix(ws, ["0.1.0", "0.1.1", "0.1.2", "0.2.0"], None, log=quiet)
    pinned = ops.pinned_cache_paths(ws)
    releases_dir = ws.cache / "releases" / "sglang"
    assert sorted(p.name for p in releases_dir.iterdir()) == ["0.1.1", "0.1.2", "0.2.0"]
    os.utime(releases_dir / "0.1.2", (1, 1))  # the least recently used
    release_size = cache.entries(ws.cache)[0].size
    total = sum(e.size for e in cache.entries(ws.cache))
    removed = cache.prune(ws.cache, total - 1, pinned)
    assert [e.path.name for e in removed] == ["0.1.2"] and release_size == removed[0].size
    removed = cache.prune(ws.cache, 0, pinned)  # everything but the pin
    assert {e.path for e in cache.entries(ws.cache)} == {p for p in pinned if p.exists()} and removed
    assert not list(ws.cache.glob(".trash-*"))
    # the limit is enforced whenever a release is fetched
    monkeypatch.setenv(cache.LIMIT_ENV, "1K")
    upstream.matrix(ws, ["0.1.1", "0.1.2"], None, log=quiet)
    assert [p.name for p in releases_dir.iterdir()] == ["0.1.2"]  # 0.1.1 went when 0.1.2 came
    assert cli_main(["--root", str(ws.root), "--cache", str(ws.cache), "cache"]) == 0
    shown = capsys.readouterr().out
    assert "limit 1.0 KiB" in shown and "[pinned, kept]" in shown and "releases/sglang/0.1.2" in shown
    assert cli_main(["--root", str(ws.root), "--cache", str(ws.cache), "cache", "--prune", "--limit", "0"]) == 0
    assert "removed release releases/sglang/0.1.2" in capsys.readouterr().out
    with pytest.raises(PatchToolError, match="cannot read the cache size limit"):
        cache.parse_size("lots")
    assert cache.parse_size("1.5G") == 3 << 29 and cache.parse_size("500M") == 500 << 20



def test_track_fails_only_when_the_newest_release_breaks_the_series(tmp_path, index, capsys):
    ws = make_repo(tmp_path, index, STAGED)
    out = tmp_path / "reports"
    args = ["--root", str(ws.root), "--cache", str(ws.cache), "track", "--last", "3", "--out", str(out), "--", *TEST]
    assert cli_main(args) == 1  # 0.3.0, the newest, conflicts and fails the test
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("UPSTREAM BROKEN: sglang 0.3.0 (newest) breaks the series: sglang 0.1.0..0.3.0: "
                           "stops applying as is at 0.1.2 (")
    assert "stops rebasing cleanly at 0.2.0.post1" in last and "fails the test from 0.2.0" in last
    assert {p.name for p in out.iterdir()} >= {"matrix.md", "matrix.json", "bisect.md", "bisect.json"}
    data = json.loads((out / "bisect.json").read_text())
    assert len({p["version"] for p in data["probes"]}) == len(data["probes"])  # the matrix's probes were reused

    ws.pin_file.write_text(ws.pin_file.read_text().replace("0.1.0", "0.1.1").replace(
        ws.pin().wheel("x86_64").sha256, wheel(index, "0.1.1", STAGED["0.1.1"])))
    wheel(index, "0.0.9", dict(FILES, **{"sglang/engine.py": CONFLICTING}))  # older than the pin: does not apply
    wheel(index, "0.4.0", FILES)
    (index / "sglang-0.4.0.1-py3-none-any.whl").write_bytes(b"not a zip")  # the newest cannot be downloaded
    ws.cache = tmp_path / "cache2"
    assert cli_main(["--root", str(ws.root), "--cache", str(ws.cache), "matrix", "0.0.9", "0.1.1", "--out", str(out)]) == 1
    capsys.readouterr()
    code, line = upstream.track(ws, ["0.0.9", "0.1.1", "0.4.0"], TEST, out, log=quiet)
    assert (code, line) == (0, "UPSTREAM OK: sglang 0.4.0 (newest) takes the series as is and passes the test; nothing breaks it")
    assert not (out / "bisect.json").exists()  # the earlier run's bisect report is gone
    code, line = upstream.track(ws, ["0.1.1", "0.4.0", "0.4.0.1"], TEST, out, log=quiet)
    assert code == 0 and line.startswith("UPSTREAM UNKNOWN: sglang 0.4.0.1 (newest) could not be judged (fetch SKIP")
    assert "applies as is through 0.4.0, then 0.4.0.1 could not be judged" in line


REPO = Path(__file__).resolve().parent.parent


@pytest.mark.network
def test_real_releases_bisect_names_the_release_where_the_series_stops_applying(tmp_path):
    """Network (PyPI): the series pinned back to sglang 0.5.20, then bisected up to 0.5.23 as a
    new user would. Works on a copy: the repo's own pin and series are never touched."""
    root = tmp_path / "repo"
    (root / "third_party").mkdir(parents=True)
    shutil.copy(REPO / "third_party" / "sglang.toml", root / "third_party")
    shutil.copytree(REPO / "sglang_patches", root / "sglang_patches")
    real = {p: p.read_bytes() for p in [REPO / "third_party" / "sglang.toml", *(REPO / "sglang_patches").iterdir()]}
    cli = lambda *args: cli_main(["--root", str(root), *args])  # noqa: E731  (the default, shared download cache)

    assert cli("rebase", "--to", "0.5.20", "--in-place", "--update-pin") == 0
    assert Workspace.at(root).pin().version == "0.5.20"
    out = tmp_path / "reports"
    assert cli("bisect", "--good", "0.5.20", "--bad", "0.5.23", "--out", str(out), "--", "true") == 0
    data = json.loads((out / "bisect.json").read_text())
    applies = data["answers"]["applies"]
    assert (applies["status"], applies["first_bad"], applies["last_good"]) == ("found", "0.5.22", "0.5.21")
    glue_patch = Workspace.at(REPO).series_names()[1]  # 0002: the patch that touches the validation hook
    assert f"{glue_patch} does not apply: sglang/srt/arg_groups/validation_hook.py hunk #1" in applies["detail"]
    assert data["answers"]["rebases"]["status"] == "unbroken"  # the three-way rebase takes the series to 0.5.23
    assert data["summary"].startswith("sglang 0.5.20..0.5.23: stops applying as is at 0.5.22")
    assert {p: p.read_bytes() for p in real} == real
