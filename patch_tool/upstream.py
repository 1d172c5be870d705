"""Probe upstream releases with the series, tabulate them, and name the release that breaks it.

Every probed release goes through five stages, each with its own verdict:

  fetch   download the wheel, verify its hash       good | skip (index, network, hash: not ours)
  apply   the series as is, fuzz 0                  good | bad (patch, file, hunk)
  rebase  when apply fails: replay the series three  good (clean / merged / droppable)
          ways from the pinned release               | bad (conflict: patch, file, hunk)
  import  the patched (or rebased) tree imports      good | bad | skip (the release itself does
          every module the series touches            not import in this environment)
  test    COMMAND on that tree, `git bisect run`     good (exit 0) | skip (125) | bad (1-127);
          exit codes                                 >= 128 aborts the whole run

A stage after a bad or skip one is "not run". Three questions are read off these verdicts,
and `bisect` answers each with its own bisection over the same probes:

  applies  does the series apply as is?                 the apply verdict
  rebases  does it apply, or rebase cleanly?            apply good, else the rebase verdict
  works    does the (rebased) series pass COMMAND?      import, then test; skip when nothing
                                                        could be built (rebase conflict)

A release that could not be fetched is a skip for every question.
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

from patch_tool import PatchToolError, ops
from patch_tool.apply import HunkFailed, apply_series, materialize, tree_reader
from patch_tool.patchfile import PatchFile
from patch_tool.rebase import rebase_series
from patch_tool.workspace import Workspace

SKIP_EXIT = 125
STAGES = ("fetch", "apply", "rebase", "import", "test")
QUESTIONS = {
    "applies": "the series applies as is",
    "rebases": "the series applies or rebases cleanly",
    "works": "the (rebased) series passes the test",
}
CODE_ROOT = Path(__file__).resolve().parent.parent  # the checkout holding patch_tool and mindspore_models


class HarnessError(PatchToolError):
    pass


class _Verdict(Exception):
    """A stage ended other than good."""

    def __init__(self, verdict: str, detail: str):
        super().__init__(detail)
        self.verdict, self.detail = verdict, detail


@dataclass
class Stage:
    verdict: str = "not run"  # good | bad | skip | not run
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Probe:
    version: str
    stages: dict[str, Stage] = field(default_factory=lambda: {s: Stage() for s in STAGES})

    def answer(self, question: str) -> str:
        """good | bad | skip for one of QUESTIONS."""
        return self._decided_by(question)[0]

    def culprit(self, question: str) -> str:
        """The detail of the stage that decided `question`, naming it."""
        stage = self._decided_by(question)[1]
        return f"{stage}: {self.stages[stage].detail}"

    def _decided_by(self, question: str) -> tuple[str, str]:
        s = self.stages
        if s["fetch"].verdict != "good":
            return "skip", "fetch"
        if question == "applies":
            return s["apply"].verdict, "apply"
        if question == "rebases":
            return ("good", "apply") if s["apply"].verdict == "good" else (s["rebase"].verdict, "rebase")
        if s["rebase"].verdict != "good":
            return "skip", "rebase"
        for name in ("import", "test"):
            if s[name].verdict != "good":
                return ("bad" if s[name].verdict == "bad" else "skip"), name
        return "good", "test"

    @property
    def verdict(self) -> str:
        """bad when any stage is bad, else skip when any is, else good."""
        verdicts = {st.verdict for st in self.stages.values()}
        return "bad" if "bad" in verdicts else "skip" if "skip" in verdicts else "good"

    def summary(self) -> str:
        parts = [f"{name} {st.verdict.upper() if st.verdict in ('bad', 'skip') else st.verdict}"
                 for name, st in self.stages.items()]
        first = next((st for st in self.stages.values() if st.verdict in ("bad", "skip")), None)
        return ", ".join(parts) + (f"; {_first_line(first.detail)}" if first else "")


def default_command() -> list[str]:
    return [sys.executable, "-m", "patch_tool.smoke"]


def probe(ws: Workspace, version: str, command: list[str] | None, log=print) -> Probe:
    """All stages for one release; with no command, import and test are not run."""
    result = Probe(version)
    sub = lambda m: log(f"  {m}")  # noqa: E731
    src = _run_stage(result, "fetch", lambda: _fetch(ws, version, sub))
    if src is None:
        return result
    patches = ws.patches()
    overlay = _run_stage(result, "apply", lambda: _apply(patches, src))
    if overlay is None:
        overlay = _run_stage(result, "rebase", lambda: _rebase(ws, patches, src))
    else:
        result.stages["rebase"] = Stage("good", "not needed")
    if overlay is None or command is None:
        return result
    with tempfile.TemporaryDirectory(dir=_scratch(ws), prefix=f"{version}-") as tmp:
        tree = Path(tmp) / "sglang"
        materialize(src, overlay, tree)
        if _run_stage(result, "import", lambda: _import(ws, tree, src, overlay)):
            _run_stage(result, "test", lambda: _test(command, tree, ws))
    return result


def _run_stage(result: Probe, name: str, action):
    """Runs one stage, records its verdict and time; returns its value, None unless good."""
    t = time.perf_counter()
    try:
        value, detail = action()
        stage = Stage("good", detail)
    except _Verdict as v:
        value, stage = None, Stage(v.verdict, v.detail)
    stage.seconds = time.perf_counter() - t
    result.stages[name] = stage
    return value


def _fetch(ws: Workspace, version: str, log) -> tuple[Path, str]:
    try:
        if version == ws.pin().version:  # the pinned wheel: cached and verified against the pin
            return ops.pristine(ws, None, log), "the pinned wheel (sha256 from the pin)"
        release, src = ops.release_tree(ws, version, log)
    except PatchToolError as e:
        raise _Verdict("skip", f"download/verify failed: {e}") from None
    return src, f"{release.wheel.name} (sha256 {release.sha256[:12]}...)"


def _apply(patches: list[PatchFile], src: Path) -> tuple[dict, str]:
    try:
        overlay, _ = apply_series(patches, tree_reader(src), fuzz=0)
    except HunkFailed as e:
        raise _Verdict("bad", _does_not_apply(e)) from None
    return overlay, f"{len(patches)} patches apply with fuzz 0"


def _does_not_apply(e: HunkFailed) -> str:
    where = f"hunk #{e.index} ({e.hunk.header})" if e.hunk else "file header"
    return f"{e.patch} does not apply: {e.path} {where}: {e.reason}"


def _rebase(ws: Workspace, patches: list[PatchFile], src: Path) -> tuple[dict, str]:
    pin = ws.pin()
    old = ops.pristine(ws, None, log=lambda *_: None)
    try:
        results = rebase_series(patches, tree_reader(old), tree_reader(src))
    except HunkFailed as e:
        raise _Verdict("bad", f"the series does not apply to its own pin {pin.version}: {_does_not_apply(e)}") from None
    conflict = next((r for r in results if r.verdict == "conflict"), None)
    if conflict:
        raise _Verdict("bad", f"{conflict.name} conflicts (three-way from {pin.version}): {conflict.detail}")
    try:
        overlay, _ = apply_series([r.patch for r in results if r.patch], tree_reader(src), fuzz=0)
    except HunkFailed as e:  # a rebased patch that does not apply to the release it was rebased on
        raise _Verdict("bad", f"rebased {_does_not_apply(e)}") from None
    return overlay, f"from {pin.version}: " + ", ".join(f"{r.name} {r.verdict}" for r in results)


def _scratch(ws: Workspace) -> Path:
    path = ws.cache / "probe"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _env(tree: Path, ws: Workspace, **extra: str) -> dict[str, str]:
    paths = [str(tree), str(CODE_ROOT)] + ([str(ws.root)] if ws.root != CODE_ROOT else [])
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return dict(os.environ, PATCH_TOOL_TREE=str(tree), PYTHONPATH=os.pathsep.join(paths), **extra)


def _tail(proc: subprocess.CompletedProcess, n: int = 12) -> str:
    return "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-n:])


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def touched_modules(paths) -> list[str]:
    """The Python modules behind the tree paths a series touches, packages first."""
    modules = set()
    for path in paths:
        if path.endswith(".py") and "/" in path:
            parts = path[: -len(".py")].split("/")
            modules.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
            modules.add(parts[0])
    return sorted(modules, key=lambda m: (m.count("."), m))


def _import_modules(modules: list[str], tree: Path, ws: Workspace, **extra: str) -> subprocess.CompletedProcess:
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)"
    return subprocess.run([sys.executable, "-c", code, *modules], env=_env(tree, ws, **extra),
                          capture_output=True, text=True, cwd=tree.parent)


def _import(ws: Workspace, tree: Path, src: Path, overlay: dict) -> tuple[bool, str]:
    """Import every module the series touches from the built tree. When that fails, the same
    modules from the unpatched release tell whose fault it is."""
    modules = touched_modules(p for p, text in overlay.items() if text is not None)
    proc = _import_modules(modules, tree, ws)
    if proc.returncode == 0:
        return True, f"imported {len(modules)} modules"
    upstream_only = [m for m in modules if _module_exists(src, m)]
    pristine = _import_modules(upstream_only, src, ws, PYTHONDONTWRITEBYTECODE="1")  # the cache stays pristine
    if pristine.returncode != 0:
        raise _Verdict("skip", f"the release itself does not import here (not the series):\n{_tail(pristine)}")
    raise _Verdict("bad", f"the patched tree does not import (the release alone does):\n{_tail(proc)}")


def _module_exists(root: Path, module: str) -> bool:
    path = root.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _test(command: list[str], tree: Path, ws: Workspace) -> tuple[bool, str]:
    proc = subprocess.run(command, env=_env(tree, ws), capture_output=True, text=True, cwd=tree.parent)
    tail = _tail(proc)
    if proc.returncode == 0:
        return True, "test passed"
    if proc.returncode == SKIP_EXIT:
        raise _Verdict("skip", f"test asked to skip (exit 125)\n{tail}")
    if 0 < proc.returncode < 128:
        last = tail.splitlines()[-1] if tail else "no output"
        raise _Verdict("bad", f"test failed (exit {proc.returncode}): {last}\n{tail}")
    raise HarnessError(f"test command aborted (exit {proc.returncode}); stopping\n{tail}")


@dataclass
class Answer:
    question: str
    status: str  # found | unbroken | ambiguous | unknown | error
    first_bad: str | None = None
    last_good: str | None = None
    candidates: list[str] = field(default_factory=list)  # ambiguous / unknown: releases that could not be judged
    detail: str = ""  # the first bad release's deciding stage: patch, file, hunk, or the test's last lines
    message: str = ""


PHRASES = {  # question -> (breaks, holds) for the one-line summary
    "applies": ("stops applying as is at", "applies as is through"),
    "rebases": ("stops rebasing cleanly at", "rebases cleanly through"),
    "works": ("fails the test from", "passes the test through"),
}


@dataclass
class BisectReport:
    package: str
    good: str
    bad: str
    candidates: list[str]
    probes: list[Probe] = field(default_factory=list)
    answers: dict[str, Answer] = field(default_factory=dict)
    status: str = "running"  # done | ambiguous | interrupted | error
    message: str = ""

    def answer(self, question: str) -> Answer | None:
        return self.answers.get(question)

    def to_json(self) -> str:
        data = asdict(self)
        data["summary"] = self.summary()
        return json.dumps(data, indent=2)

    def summary(self) -> str:
        """One line naming the breaking release per question."""
        parts = []
        for q, a in self.answers.items():
            breaks, holds = PHRASES[q]
            if a.status == "found":
                parts.append(f"{breaks} {a.first_bad} ({_first_line(a.detail)})")
            elif a.status == "unbroken":
                parts.append(f"{holds} {a.last_good}")
            elif a.status == "ambiguous":
                parts.append(f"{breaks} one of {', '.join(a.candidates)} (skips hide which)")
            elif a.status == "unknown":
                parts.append(f"{holds} {a.last_good}, then {', '.join(a.candidates)} could not be judged")
            else:
                parts.append(f"{QUESTIONS[q]}: {a.message}")
        text = "; ".join(parts) or self.message
        return f"{self.package} {self.good}..{self.bad}: {text}"

    def to_markdown(self) -> str:
        lines = [f"# Bisect of {self.package} releases {self.good}..{self.bad}", "", f"**{self.status}**: {self.summary()}",
                 "", "| question | answer | first bad | last good |", "|---|---|---|---|"]
        for q, a in self.answers.items():
            lines.append(f"| {QUESTIONS[q]} | {a.status} | {a.first_bad or '-'} | {a.last_good or '-'} |")
        if self.status in ("interrupted", "error"):
            lines += ["", self.message]
        lines += ["", *probe_table(sorted(self.probes, key=lambda p: self.candidates.index(p.version)))]
        for q, a in self.answers.items():
            if a.status == "found":
                lines += ["", f"## {QUESTIONS[q]}: first bad {a.first_bad}", "", "```", a.detail, "```"]
        return "\n".join(lines) + "\n"


def bisect(ws: Workspace, versions: list[str], command: list[str] | None, log=print,
           report: BisectReport | None = None, probed: list[Probe] = ()) -> BisectReport:
    """Answers every question in QUESTIONS over `versions` (oldest first; the first is the
    known good end). Probes are shared between the questions, and `probed` ones (made with
    the same command, e.g. by `matrix`) are reused. Fills `report` as it goes, so a caller
    still holds what was learned after a Ctrl-C."""
    pin = ws.pin()
    report = report or BisectReport(pin.package, versions[0], versions[-1], versions)
    known: dict[int, Probe] = {versions.index(p.version): p for p in probed if p.version in versions}
    report.probes.extend(known.values())

    def at(i: int) -> Probe:
        if i not in known:
            step = len(report.probes) + 1
            log(f"[{step}] probing {pin.package} {versions[i]} ...")
            known[i] = probe(ws, versions[i], command, log)
            report.probes.append(known[i])
            log(f"[{step}] {versions[i]}: {known[i].summary()}")
        return known[i]

    try:
        for question in QUESTIONS:
            answer = _bisect_question(question, versions, at, known, log)
            report.answers[question] = answer
            log(f"==> {QUESTIONS[question]}: {answer.message}")
        statuses = {a.status for a in report.answers.values()}
        report.status = "error" if "error" in statuses else "ambiguous" if statuses & {"ambiguous", "unknown"} else "done"
        report.message = "\n".join(f"{QUESTIONS[q]}: {a.message}" for q, a in report.answers.items())
    except KeyboardInterrupt:
        report.status = "interrupted"
        report.message = "interrupted; " + _learned(versions, known)
        raise
    except HarnessError as e:
        report.status, report.message = "error", str(e)
    return report


def _bisect_question(question: str, versions: list[str], at, known: dict[int, Probe], log) -> Answer:
    verdict = lambda i: at(i).answer(question)  # noqa: E731
    if verdict(0) != "good":
        return Answer(question, "error", message=f"the good end {versions[0]} is {verdict(0)}, not good: "
                                                 f"{_first_line(at(0).culprit(question))}")
    hi = len(versions) - 1
    while hi > 0 and verdict(hi) == "skip":  # the newest releases may not be judgeable (no download)
        hi -= 1
    if verdict(hi) == "good":
        unjudged = versions[hi + 1:]
        if not unjudged:
            return Answer(question, "unbroken", last_good=versions[hi], message=f"no release up to {versions[hi]} breaks it")
        return Answer(question, "unknown", last_good=versions[hi], candidates=unjudged,
                      message=f"no release up to {versions[hi]} breaks it; {', '.join(unjudged)} could not be judged "
                              f"({_first_line(at(hi + 1).culprit(question))})")
    lo = 0
    while True:
        known_here = {i: p.answer(question) for i, p in known.items() if lo < i < hi}
        hi = min([i for i, v in known_here.items() if v == "bad"], default=hi)  # the earliest known break first
        lo = max([i for i, v in known_here.items() if v == "good" and i < hi], default=lo)
        untried = [i for i in range(lo + 1, hi) if i not in known]
        if not untried:
            break
        mid = (lo + hi) / 2
        log(f"    {QUESTIONS[question]}: {len(untried)} untested release(s) between "
            f"{versions[lo]} (good) and {versions[hi]} (bad)")
        at(min(untried, key=lambda j: (abs(j - mid), j)))
    between = versions[lo + 1: hi]
    if between:  # every release between is known and skip
        return Answer(question, "ambiguous", last_good=versions[lo], candidates=between + [versions[hi]],
                      message=f"skipped releases hide the answer: the first bad release is one of "
                              f"{', '.join(between + [versions[hi]])} (last good: {versions[lo]})")
    detail = known[hi].culprit(question)
    return Answer(question, "found", versions[hi], versions[lo], detail=detail,
                  message=f"first bad release: {versions[hi]} (last good: {versions[lo]}); {_first_line(detail)}")


def _learned(versions: list[str], known: dict[int, Probe]) -> str:
    facts = []
    for q in QUESTIONS:
        good = [i for i, p in known.items() if p.answer(q) == "good"]
        bad = [i for i, p in known.items() if p.answer(q) == "bad"]
        if good and bad and max(good) < min(bad):
            facts.append(f"{QUESTIONS[q]}: the first bad release is after {versions[max(good)]} "
                         f"and at or before {versions[min(bad)]}")
    return "; ".join(facts) or "too few probes to narrow the range"


def track(ws: Workspace, versions: list[str], command: list[str] | None, out: Path, log=print) -> tuple[int, str]:
    """CI's question: does the newest release break the series? Tabulates `versions` (oldest
    first), and when the newest is not good, bisects from the pin to it. Returns (exit code,
    one line naming the breaking releases); the code is 1 only when the newest release breaks
    the series (a bad stage), not when it merely could not be judged or an older one fails."""
    pin = ws.pin()
    for stale in ("bisect.md", "bisect.json"):  # a bisect report from an earlier run would mislead
        (out / stale).unlink(missing_ok=True)
    rows = matrix(ws, versions, command, log)
    write_reports(out, "matrix", matrix_markdown(pin.package, rows, command), matrix_json(rows))
    matrix_png(out / "matrix.png", rows)
    newest = rows[-1]
    name = f"{pin.package} {newest.version} (newest)"
    if newest.verdict == "good":
        return 0, f"UPSTREAM OK: {name} takes the series as is and passes the test; nothing breaks it"
    if _version(newest.version) <= _version(pin.version):
        return (1 if newest.verdict == "bad" else 0), f"UPSTREAM {newest.verdict.upper()}: {name} is the pin itself: {newest.summary()}"
    span = releases_between(ws, pin.version, newest.version)
    log(f"{name} is {newest.verdict}: bisecting {pin.version}..{newest.version}")
    report = bisect(ws, span, command, log, probed=rows)
    write_reports(out, "bisect", report.to_markdown(), report.to_json())
    if newest.verdict == "bad":
        return 1, f"UPSTREAM BROKEN: {name} breaks the series: {report.summary()}"
    return 0, f"UPSTREAM UNKNOWN: {name} could not be judged ({newest.summary()}): {report.summary()}"


def _version(text: str):
    from packaging.version import Version

    return Version(text)


def releases_between(ws: Workspace, good: str, bad: str) -> list[str]:
    from patch_tool.releases import between, list_versions

    return between(list_versions(ws.pin().package), good, bad)


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
        rows.append(probe(ws, v, command, log))
        log(f"[{n}/{len(versions)}] {v}: {rows[-1].summary()}")
    return rows


GOOD_WORDS = {"fetch": "ok", "apply": "yes", "import": "ok", "test": "pass"}
BAD_WORDS = {"apply": "no", "rebase": "conflict", "import": "fails", "test": "fails"}


def _cell(name: str, stage: Stage) -> str:
    if stage.verdict == "not run":
        return "-"
    line = _first_line(stage.detail).replace("|", "\\|")
    if stage.verdict == "good":
        return GOOD_WORDS.get(name, line)  # rebase: "not needed" or each patch's verdict
    if stage.verdict == "bad":
        return f"**{BAD_WORDS[name]}**: {line}"
    return f"skip: {line}"


def probe_table(probes: list[Probe]) -> list[str]:
    lines = ["| release | download | applies as is | rebase | import | test | seconds |",
             "|---|---|---|---|---|---|---|"]
    for p in probes:
        secs = " / ".join(f"{n} {s.seconds:.1f}" for n, s in p.stages.items() if s.verdict != "not run")
        lines.append(f"| {p.version} | " + " | ".join(_cell(n, s) for n, s in p.stages.items()) + f" | {secs} |")
    return lines


def matrix_markdown(package: str, rows: list[Probe], command: list[str] | None) -> str:
    test = "no test (--no-test)" if command is None else f"test: `{' '.join(command)}`"
    lines = [f"# {package} release matrix for the patch series", "", test, "", *probe_table(rows)]
    for p in rows:
        failed = [(n, s) for n, s in p.stages.items() if s.verdict in ("bad", "skip") and "\n" in s.detail]
        for name, stage in failed:
            lines += ["", f"## {p.version}: {name} {stage.verdict}", "", "```", stage.detail, "```"]
    return "\n".join(lines) + "\n"


def matrix_json(rows: list[Probe]) -> str:
    return json.dumps([dict(asdict(p), verdict=p.verdict, answers={q: p.answer(q) for q in QUESTIONS})
                       for p in rows], indent=2)


def matrix_png(path: Path, rows: list[Probe]) -> bool:
    """A release x stage grid. False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    colors = {"good": "#3a3", "bad": "#d33", "skip": "#e9b330", "not run": "#ddd", "not needed": "#b5dfb5"}
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(STAGES), 0.9 + 0.35 * len(rows)))
    for y, p in enumerate(rows):
        for x, name in enumerate(STAGES):
            stage = p.stages[name]
            color = colors["not needed"] if stage.detail == "not needed" else colors[stage.verdict]
            ax.add_patch(plt.Rectangle((x, y), 0.95, 0.9, color=color))
    ax.set_xlim(0, len(STAGES))
    ax.set_ylim(0, len(rows))
    ax.set_xticks([i + 0.47 for i in range(len(STAGES))], STAGES)
    ax.set_yticks([i + 0.45 for i in range(len(rows))], [p.version for p in rows])
    ax.set_title("series vs upstream releases\n(green good, pale green not needed, red bad, amber skip, grey not run)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
