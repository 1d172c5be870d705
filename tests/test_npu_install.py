"""The Ascend (NPU) install set: ONE pinned set (requirements-npu.txt) that pip can resolve for an
Ascend host (linux aarch64, CPython 3.11) with torch and torch-npu of the same release.

Nothing here installs anything: the resolver test is `pip install --dry-run --report` for another
platform. No NPU, CANN or aarch64 machine is needed; the resolver test needs PyPI (marker `network`).
pip reads wheel metadata by downloading the wheels (torch's aarch64 wheel pulls ~3 GB of CUDA
libraries), so it takes about a minute on the CI machine.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from mindspore_models.provenance import NPU_REQUIREMENTS_FILE, parse_npu_set

ROOT = Path(__file__).resolve().parent.parent
NPU_FILE = ROOT / NPU_REQUIREMENTS_FILE
DIST = "sglang-mindspore"
# An Ascend host: aarch64, glibc >= 2.28 (torch-npu's wheels are manylinux_2_28). pip does not widen
# a manylinux --platform to older glibc tags by itself, so every tag a real host accepts is listed.
AARCH64_PLATFORMS = ([f"manylinux_2_{minor}_aarch64" for minor in range(28, 16, -1)]
                     + ["manylinux2014_aarch64", "linux_aarch64"])


def npu_set() -> dict:
    return parse_npu_set(NPU_FILE.read_text())


def by_name(reqs: list[str]) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, reqs)}


def pinned(req: Requirement) -> Version:
    (spec,) = req.specifier
    assert spec.operator == "==", f"{req} is not pinned with =="
    return Version(spec.version)


def wheel_under_test() -> bool:
    """ci/run_tests.sh builds the wheel from this checkout, installs it and sets SGLMS_TEST_INSTALLED=1."""
    if os.environ.get("SGLMS_TEST_INSTALLED") != "1":
        return False
    try:
        importlib.metadata.distribution(DIST)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def wheel_requirements(extra: str, only_extra: bool = False) -> list[str]:
    """The installed wheel's Requires-Dist as `pip install '<wheel>[extra]'` sees it (only_extra:
    just the lines the extra adds)."""
    out = []
    for line in importlib.metadata.requires(DIST) or []:
        req = Requirement(line)
        if req.marker is not None and "extra" in str(req.marker):
            if not req.marker.evaluate({"extra": extra}):
                continue
            req.marker = None
        elif only_extra:
            continue
        out.append(str(req))
    return out


def test_npu_set_pins_one_release_of_torch_and_torch_npu():
    info = npu_set()
    reqs = by_name(info["requirements"])
    assert {"torch", "torch-npu", "triton-ascend", "mindspore", "numpy"} <= reqs.keys()
    torch, torch_npu = pinned(reqs["torch"]), pinned(reqs["torch-npu"])
    assert torch.release == torch_npu.release, f"torch {torch} vs torch-npu {torch_npu}: not one release"
    pinned(reqs["triton-ascend"])
    assert pinned(reqs["mindspore"]) == Version("2.10.0")
    assert not reqs["numpy"].specifier.contains("2.0.0") and reqs["numpy"].specifier.contains("1.26.4")
    assert re.fullmatch(r"\d+\.\d+\.\w+", info["cann"]), f"CANN version not recorded: {info['cann']!r}"
    assert info["cann_source"] != "unknown"


@pytest.mark.skipif(not wheel_under_test(),
                    reason="checks the installed wheel; ci/run_tests.sh sets SGLMS_TEST_INSTALLED=1")
def test_installed_wheel_declares_and_records_the_npu_set():
    from mindspore_models import provenance

    info = npu_set()
    assert by_name(wheel_requirements("npu", only_extra=True)) == by_name(info["requirements"])
    recorded = provenance.load()["npu"]
    assert recorded == info, "the wheel was built from another requirements-npu.txt"
    assert f"CANN: {info['cann']}" in provenance.npu_lines(provenance.load())


def resolve_for_ascend_host(reqs: list[str], tmp_path: Path) -> dict[str, str]:
    """pip's resolver, for linux aarch64 / CPython 3.11; nothing is installed. {name: version}."""
    req_file = tmp_path / "requirements.txt"
    req_file.write_text("\n".join(reqs) + "\n")
    report = tmp_path / "report.json"
    platforms = [arg for tag in AARCH64_PLATFORMS for arg in ("--platform", tag)]
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--report", str(report),
           # --target: pip < 23.3 refuses --platform without it; a dry run writes nothing there
           "--target", str(tmp_path / "target"), *platforms, "--python-version", "3.11",
           "--implementation", "cp", "--only-binary=:all:", "--no-input", "-r", str(req_file)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        pytest.fail("pip cannot resolve the NPU set for linux aarch64 / Python 3.11:\n"
                    + "\n".join(line for line in proc.stderr.splitlines() if "is ignored" not in line)[-3000:])
    installs = json.loads(report.read_text())["install"]
    return {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in installs}


@pytest.mark.network
def test_npu_set_resolves_for_linux_aarch64_py311(tmp_path):
    """In CI (wheel installed) this resolves exactly what `pip install '<wheel>[npu]'` resolves on an
    Ascend host: the wheel's own requirements plus the npu extra. From a source checkout: the NPU set."""
    info = npu_set()
    reqs = wheel_requirements("npu") if wheel_under_test() else info["requirements"]
    got = resolve_for_ascend_host(reqs, tmp_path)
    print("resolved:", {k: got[k] for k in ("torch", "torch-npu", "triton", "triton-ascend", "mindspore", "numpy")
                        if k in got})

    assert "torch" in got and "torch-npu" in got
    assert Version(got["torch"]).release == Version(got["torch-npu"]).release, \
        f"torch {got['torch']} and torch-npu {got['torch-npu']} are not one release"
    assert "triton-ascend" in got
    assert got["mindspore"] == "2.10.0"
    assert Version(got["numpy"]) < Version("2")
    for name, req in by_name(info["requirements"]).items():
        assert req.specifier.contains(got[name], prereleases=True), f"{name} resolved to {got[name]}, not {req}"
