"""Probe upstream releases with the series: fetch -> apply -> test, then bisect or tabulate.

A probe's verdict follows `git bisect run`: good (command exit 0), skip (the release could
not be fetched, the series does not apply, or the command exited 125), bad (exit 1-127 but
125). Exit >= 128 (a crash of the harness itself, or a signal) aborts the run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from patch_tool import PatchToolError
from patch_tool.apply import HunkFailed, apply_series, materialize, tree_reader
from patch_tool.fetch import pristine_tree
from patch_tool.ops import pristine
from patch_tool.releases import fetch_release
from patch_tool.workspace import Workspace

SKIP_EXIT = 125


@dataclass
class Probe:
    version: str
    verdict: str  # good | bad | skip
    stage: str  # fetch | apply | test
    detail: str = ""
    seconds: dict[str, float] = field(default_factory=dict)


class HarnessError(PatchToolError):
    pass


def default_command() -> list[str]:
    return [sys.executable, "-m", "patch_tool.smoke"]


def probe(ws: Workspace, version: str, command: list[str] | None, log=print) -> Probe:
    pin = ws.pin()
    times: dict[str, float] = {}
    t = time.perf_counter()
    try:
        if version == pin.version:  # the pinned wheel is already cached and verified against the pin
            src = pristine(ws, None, log=lambda m: log(f"  {m}"))
        else:
            release = fetch_release(pin.package, version, ws.cache, log=lambda m: log(f"  {m}"))
            src = pristine_tree(release.wheel, release.sha256, ws.cache)
    except PatchToolError as e:
        return Probe(version, "skip", "fetch", f"download/verify failed: {e}", {"fetch": time.perf_counter() - t})
    times["fetch"] = time.perf_counter() - t
    t = time.perf_counter()
    try:
        overlay, _ = apply_series(ws.patches(), tree_reader(src), fuzz=0)
    except HunkFailed as e:
        times["apply"] = time.perf_counter() - t
        return Probe(version, "skip", "apply", f"{e.patch} does not apply: {e.path} hunk #{e.index}: {e.reason}", times)
    times["apply"] = time.perf_counter() - t
    if command is None:
        return Probe(version, "good", "apply", "series applies (no test run)", times)
    with tempfile.TemporaryDirectory(dir=_scratch(ws), prefix=f"{version}-") as tmp:
        tree = Path(tmp) / "sglang"
        materialize(src, overlay, tree)
        t = time.perf_counter()
        verdict, detail = _run(command, tree, ws.root)
        times["test"] = time.perf_counter() - t
    return Probe(version, verdict, "test", detail, times)


def _scratch(ws: Workspace) -> Path:
    path = ws.cache / "probe"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run(command: list[str], tree: Path, repo: Path) -> tuple[str, str]:
    env = dict(os.environ, PATCH_TOOL_TREE=str(tree),
               PYTHONPATH=os.pathsep.join([str(tree), str(repo), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    proc = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tree.parent)
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-12:])
    if proc.returncode == 0:
        return "good", "test passed"
    if proc.returncode == SKIP_EXIT:
        return "skip", f"test asked to skip (exit 125)\n{tail}"
    if 0 < proc.returncode < 128:
        return "bad", f"test failed (exit {proc.returncode})\n{tail}"
    raise HarnessError(f"test command aborted (exit {proc.returncode}); stopping\n{tail}")


@dataclass
class BisectReport:
    package: str
    good: str
    bad: str
    candidates: list[str]
    probes: list[Probe] = field(default_factory=list)
    first_bad: str | None = None
    ambiguous: list[str] = field(default_factory=list)
    status: str = "running"  # done | ambiguous | interrupted | error
    message: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def to_markdown(self) -> str:
        lines = [f"# Bisect of {self.package} releases {self.good}..{self.bad}", "",
                 f"**{self.status}**: {self.message}", "",
                 "| release | verdict | stage | detail | seconds |", "|---|---|---|---|---|"]
        for p in sorted(self.probes, key=lambda p: self.candidates.index(p.version)):
            detail = p.detail.splitlines()[0] if p.detail else ""
            secs = " / ".join(f"{k} {v:.1f}" for k, v in p.seconds.items())
            lines.append(f"| {p.version} | {p.verdict} | {p.stage} | {detail} | {secs} |")
        return "\n".join(lines) + "\n"


def bisect(ws: Workspace, versions: list[str], command: list[str] | None, log=print,
           report: BisectReport | None = None) -> BisectReport:
    """Fills `report` as it goes, so a caller still holds what was learned after a Ctrl-C."""
    pin = ws.pin()
    report = report or BisectReport(pin.package, versions[0], versions[-1], versions)
    known: dict[int, Probe] = {}

    def run(i: int) -> Probe:
        step = len(report.probes) + 1
        log(f"[{step}] probing {pin.package} {versions[i]} ...")
        p = probe(ws, versions[i], command, log)
        known[i] = p
        report.probes.append(p)
        log(f"[{step}] {versions[i]}: {p.verdict.upper()} ({p.stage}) {p.detail.splitlines()[0] if p.detail else ''}")
        return p

    try:
        for i, want in ((0, "good"), (len(versions) - 1, "bad")):  # check both ends first
            got = run(i).verdict
            if got != want:
                report.status = "error"
                report.message = f"the {want} end {versions[i]} is {got}, not {want}; nothing to bisect"
                return report
        lo, hi = 0, len(versions) - 1
        while hi - lo > 1:
            untried = [i for i in range(lo + 1, hi) if i not in known]
            if not untried:
                break
            mid = (lo + hi) / 2
            i = min(untried, key=lambda j: (abs(j - mid), j))
            left = len(untried)
            log(f"    {left} untested release(s) between {versions[lo]} (good) and {versions[hi]} (bad)")
            verdict = run(i).verdict
            if verdict == "good":
                lo = i
            elif verdict == "bad":
                hi = i
        between = [versions[i] for i in range(lo + 1, hi)]
        if not between:
            report.status, report.first_bad = "done", versions[hi]
            culprit = known[hi]
            report.message = f"first bad release: {versions[hi]} (last good: {versions[lo]}); {culprit.detail.splitlines()[0]}"
        else:
            report.status = "ambiguous"
            report.ambiguous = between + [versions[hi]]
            report.message = (f"skipped releases hide the answer: the first bad release is one of "
                              f"{', '.join(report.ambiguous)} (last good: {versions[lo]})")
    except KeyboardInterrupt:
        report.status = "interrupted"
        report.message = "interrupted; " + _learned(versions, known)
        raise
    except HarnessError as e:
        report.status, report.message = "error", str(e)
    return report


def _learned(versions: list[str], known: dict[int, Probe]) -> str:
    good = [i for i, p in known.items() if p.verdict == "good"]
    bad = [i for i, p in known.items() if p.verdict == "bad"]
    if not good or not bad:
        return "too few probes to narrow the range"
    return f"first bad release is after {versions[max(good)]} and at or before {versions[min(bad)]}"


def write_reports(out: Path, stem: str, markdown: str, json_text: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.md", out / f"{stem}.json"]
    paths[0].write_text(markdown)
    paths[1].write_text(json_text)
    return paths


def matrix(ws: Workspace, versions: list[str], command: list[str] | None, log=print) -> list[Probe]:
    rows = []
    for n, v in enumerate(versions, 1):
        log(f"[{n}/{len(versions)}] {v} ...")
        p = probe(ws, v, command, log)
        log(f"[{n}/{len(versions)}] {v}: {p.verdict.upper()} ({p.stage}) {p.detail.splitlines()[0] if p.detail else ''}")
        rows.append(p)
    return rows


def matrix_markdown(package: str, rows: list[Probe], tested: bool) -> str:
    lines = [f"# {package} release matrix for the patch series", "",
             "| release | series applies | smoke test | fetch s | apply s | test s |", "|---|---|---|---|---|---|"]
    for p in rows:
        if p.stage == "fetch":
            applies = "n/a (fetch failed)"
        elif p.stage == "test" or p.verdict == "good":
            applies = "yes"
        else:
            applies = f"**no**: {p.detail}"
        if not tested or p.stage != "test":
            test = "not run"
        else:
            test = "pass" if p.verdict == "good" else f"**{p.verdict}**: {p.detail.splitlines()[0]}"
        s = p.seconds
        test_s = f"{s['test']:.1f}" if "test" in s else "-"
        lines.append(f"| {p.version} | {applies} | {test} | {s.get('fetch', 0):.1f} | {s.get('apply', 0):.2f} | {test_s} |")
    return "\n".join(lines) + "\n"


def matrix_png(path: Path, rows: list[Probe], tested: bool) -> bool:
    """A green/red/grey grid, release x stage. False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    stages = ["fetch", "apply"] + (["test"] if tested else [])
    colors = {"pass": "#3a3", "fail": "#d33", "skip": "#bbb"}
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(stages), 0.8 + 0.35 * len(rows)))
    for y, p in enumerate(rows):
        for x, stage in enumerate(stages):
            order = stages.index(p.stage)
            state = "pass" if x < order or (x == order and p.verdict == "good") else ("fail" if x == order else "skip")
            ax.add_patch(plt.Rectangle((x, y), 0.95, 0.9, color=colors[state]))
    ax.set_xlim(0, len(stages))
    ax.set_ylim(0, len(rows))
    ax.set_xticks([i + 0.47 for i in range(len(stages))], stages)
    ax.set_yticks([i + 0.45 for i in range(len(rows))], [p.version for p in rows])
    ax.set_title("series vs upstream releases (green pass, red fail, grey not reached)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
