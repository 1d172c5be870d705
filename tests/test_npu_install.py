"""The Ascend (NPU) install set: ONE pinned set (requirements-npu.txt) that pip can resolve for an
Ascend host (linux aarch64, CPython 3.11) with torch and torch-npu of the same release.

Nothing here installs anything: the resolver test is `pip install --dry-run --report` for another
platform. No NPU, CANN or aarch64 machine is needed; the resolver test needs PyPI (marker `network`).
pip reads wheel metadata by downloading the wheels, so it takes a minute or two on the CI machine.
pip evaluates environment markers for the machine it runs on, not for --platform, so on the x86_64
CI machine it also resolves torch's x86_64-only requirements (triton==3.6.0, nvidia-*-cu12); the test
re-walks the resolved metadata with aarch64 markers to get what an Ascend host would install.
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
    lines = provenance.npu_lines(provenance.load())
    assert f"CANN: {info['cann']}" in lines
    assert any("MS_INTERNAL_DISABLE_CUSTOM_KERNEL_LIST=FlashAttentionScore,PagedAttention" in ln for ln in lines), lines


AARCH64_MARKERS = {"platform_machine": "aarch64", "platform_system": "Linux", "sys_platform": "linux",
                   "os_name": "posix", "python_version": "3.11", "python_full_version": "3.11.0",
                   "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def applies(req: Requirement, extras: set[str]) -> bool:
    return req.marker is None or any(req.marker.evaluate({**AARCH64_MARKERS, "extra": e}) for e in extras | {""})


def aarch64_closure(top: list[str], resolved: dict[str, dict]) -> dict[str, str]:
    """What an aarch64 host installs from pip's (x86_64-marker) resolution: walk the resolved
    packages' Requires-Dist from the top-level requirements, evaluating markers for aarch64."""
    extras: dict[str, set[str]] = {}
    todo = [Requirement(r) for r in top]
    while todo:
        req = todo.pop()
        if not applies(req, set()):
            continue
        name = canonicalize_name(req.name)
        new = set(req.extras) - extras.get(name, set())
        if name in extras and not new:
            continue
        assert name in resolved, f"{req} is needed on aarch64 but pip did not resolve it"
        extras[name] = extras.get(name, set()) | set(req.extras)
        for dep in map(Requirement, resolved[name].get("requires_dist") or []):
            if dep.marker is None or applies(dep, extras[name]):
                dep.marker = None
                todo.append(dep)
    return {name: resolved[name]["version"] for name in extras}


def resolve_for_ascend_host(reqs: list[str], tmp_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """pip's resolver, for linux aarch64 / CPython 3.11; nothing is installed.
    Returns ({name: version} as pip resolved it, the part an aarch64 host installs)."""
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
    resolved = {canonicalize_name(i["metadata"]["name"]): i["metadata"]
                for i in json.loads(report.read_text())["install"]}
    return {k: m["version"] for k, m in resolved.items()}, aarch64_closure(reqs, resolved)


@pytest.mark.network
def test_npu_set_resolves_for_linux_aarch64_py311(tmp_path):
    """In CI (wheel installed) this resolves exactly what `pip install '<wheel>[npu]'` resolves on an
    Ascend host: the wheel's own requirements plus the npu extra. From a source checkout: the NPU set."""
    info = npu_set()
    reqs = wheel_requirements("npu") if wheel_under_test() else info["requirements"]
    resolved, got = resolve_for_ascend_host(reqs, tmp_path)
    keys = ("torch", "torch-npu", "triton", "triton-ascend", "mindspore", "numpy")
    print(f"resolved ({len(resolved)}):", {k: resolved[k] for k in keys if k in resolved})
    print(f"installed on aarch64 ({len(got)}):", {k: got[k] for k in keys if k in got},
          "x86_64-only, skipped:", sorted(set(resolved) - set(got)))

    assert "torch" in got and "torch-npu" in got
    assert Version(got["torch"]).release == Version(got["torch-npu"]).release, \
        f"torch {got['torch']} and torch-npu {got['torch-npu']} are not one release"
    assert "triton-ascend" in got
    assert got["mindspore"] == "2.10.0"
    assert Version(got["numpy"]) < Version("2")
    for name, req in by_name(info["requirements"]).items():
        assert req.specifier.contains(got[name], prereleases=True), f"{name} resolved to {got[name]}, not {req}"


# ci/setup_npu.sh: the real install needs an Ascend host; its plan (--dry-run) and its final check
# (--verify-only, run against fake site-packages) are tested here.
SETUP_NPU = ROOT / "ci" / "setup_npu.sh"


def setup_npu(*args: str, site: Path | str | None = None, **extra_env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("ASCEND_HOME_PATH", None)
    env.pop("ATB_HOME_PATH", None)
    env.update(extra_env)
    if site is not None:
        env["SGLMS_SITE"] = str(site)
    return subprocess.run(["bash", str(SETUP_NPU), *args], capture_output=True, text=True, env=env, timeout=120)


def fake_site(root: Path, dists: dict[str, str], triton_owners: tuple[str, ...]) -> Path:
    """dist-info directories only: {name: version}; triton_owners list triton/__init__.py in RECORD."""
    root.mkdir()
    for name, version in dists.items():
        info = root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        files = ["triton/__init__.py,,"] if name in triton_owners else [f"{name.replace('-', '_')}/__init__.py,,"]
        (info / "RECORD").write_text("\n".join(files + [f"{info.name}/RECORD,,"]) + "\n")
    return root


def pinned_versions() -> dict[str, str]:
    return {name: str(pinned(req)) for name, req in by_name(npu_set()["requirements"]).items()
            if next(iter(req.specifier)).operator == "=="}


def test_setup_npu_dry_run_prints_the_plan_in_order():
    proc = setup_npu("--dry-run", "--wheel", "/w/sglang_mindspore-0-cp311-cp311-linux_aarch64.whl", "--no-smoke")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    info = npu_set()
    assert f"CANN {info['cann']}" in out and " ".join(info["requirements"]) in out
    triton_ascend = str(by_name(info["requirements"])["triton-ascend"])
    steps = [out.index("install /w/sglang_mindspore-0-cp311-cp311-linux_aarch64.whl[npu]"),
             out.index("uninstall -y triton triton-ascend"),
             out.index(f"install --no-deps --force-reinstall {triton_ascend}"),
             out.index("5. verify")]
    assert steps == sorted(steps), out
    assert "sgl-kernel-npu" in proc.stderr and "releases" in proc.stderr  # where to get it, loudly


def test_setup_npu_checks_cann_nnal(tmp_path):
    wheel = "/w/sglang_mindspore-0-cp311-cp311-linux_aarch64.whl"
    missing = setup_npu("--dry-run", "--wheel", wheel, "--no-smoke")
    assert "CANN nnal (ATB) not found" in missing.stderr, missing.stderr
    toolkit = tmp_path / "Ascend" / "ascend-toolkit" / "latest"
    (toolkit / "compiler").mkdir(parents=True)
    (tmp_path / "Ascend" / "nnal" / "atb").mkdir(parents=True)
    (tmp_path / "Ascend" / "nnal" / "atb" / "set_env.sh").write_text("")
    unsourced = setup_npu("--dry-run", "--wheel", wheel, "--no-smoke", ASCEND_HOME_PATH=str(toolkit))
    assert unsourced.returncode == 0 and "version unknown" in unsourced.stdout, unsourced.stderr  # no version.info
    assert "nnal is installed but not sourced" in unsourced.stderr, unsourced.stderr
    sourced = setup_npu("--dry-run", "--wheel", wheel, "--no-smoke", ATB_HOME_PATH="/opt/atb")
    assert "CANN nnal (ATB) at /opt/atb" in sourced.stdout and "nnal" not in sourced.stderr, sourced.stderr


def test_setup_npu_verify_wants_exactly_one_triton_and_one_torch_release(tmp_path):
    good = pinned_versions()  # torch, torch-npu, triton-ascend, mindspore at their pins
    good["numpy"] = "1.26.4"
    # after step 1: community triton (pulled by torch) and triton-ascend both own triton/
    both = fake_site(tmp_path / "both", {**good, "triton": "3.6.0"}, ("triton", "triton-ascend"))
    proc = setup_npu("--verify-only", site=both)
    assert proc.returncode != 0 and "exactly one triton" in proc.stderr, proc.stdout + proc.stderr
    # after steps 2-3: triton-ascend alone
    one = fake_site(tmp_path / "one", good, ("triton-ascend",))
    proc = setup_npu("--verify-only", site=one)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # torch of another release than torch-npu
    skew = fake_site(tmp_path / "skew", {**good, "torch": "2.9.0"}, ("triton-ascend",))
    proc = setup_npu("--verify-only", site=skew)
    assert proc.returncode != 0 and "not one release" in proc.stderr, proc.stdout + proc.stderr


@pytest.mark.network
def test_setup_npu_fix_triton_untangles_real_wheels(tmp_path):
    """Steps 2-3 on the real packages (this machine's x86_64 wheels of the same releases: same file
    layout): community triton installed over triton-ascend leaves one mixed triton/ tree; after
    `--fix-triton` only triton-ascend owns it and the CUDA/ROCm backends are gone."""
    import venv

    venv.create(tmp_path / "venv", with_pip=True)
    py = str(tmp_path / "venv" / "bin" / "python")
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    triton_ascend = str(by_name(npu_set()["requirements"])["triton-ascend"])
    for req in (triton_ascend, "triton==3.6.0"):  # the order pip happens to pick; both are bad
        subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", req], check=True, capture_output=True)
    assert {"ascend", "nvidia"} <= {p.name for p in (site / "triton" / "backends").iterdir()}  # mixed tree

    pinned_dists = {**pinned_versions(), "numpy": "1.26.4"}
    pinned_dists.pop("triton-ascend")
    fakes = fake_site(tmp_path / "fakes", pinned_dists, ())  # torch, torch-npu, mindspore: metadata only
    env_site = f"{site}:{fakes}"
    assert setup_npu("--verify-only", site=env_site).returncode != 0
    proc = subprocess.run(["bash", str(SETUP_NPU), "--fix-triton", "--no-smoke"], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": py, "SGLMS_SITE": env_site}, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "owning triton/__init__.py: ['triton-ascend']" in proc.stdout
    backends = {p.name for p in (site / "triton" / "backends").iterdir() if p.is_dir()} - {"__pycache__"}
    assert backends == {"ascend"}, backends


AARCH64_TOOLCHAIN = """set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
"""


@pytest.mark.skipif(os.environ.get("SGLMS_TEST_AARCH64_CROSS") != "1",
                    reason="opt-in: needs Debian's g++-aarch64-linux-gnu; set SGLMS_TEST_AARCH64_CROSS=1")
def test_cpu_kernels_cross_compile_for_aarch64(tmp_path):
    """The wheel's CMake project, configured and built for aarch64 (an Ascend host's CPU) with the
    same flags (-O3 -Wall -Wextra -Werror): every kernel symbol is exported."""
    import shutil

    if not shutil.which("aarch64-linux-gnu-g++") or not shutil.which("cmake"):
        pytest.skip("aarch64-linux-gnu-g++ or cmake not installed")
    toolchain = tmp_path / "aarch64.cmake"
    toolchain.write_text(AARCH64_TOOLCHAIN)
    build = tmp_path / "build"
    for cmd in (["cmake", "-S", str(ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                 f"-DCMAKE_TOOLCHAIN_FILE={toolchain}"],
                ["cmake", "--build", str(build), "-j", "2"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    lib = build / "kernels" / "cpu" / "libsglms_cpu_kernels.so"
    assert b"\x7fELF" == lib.read_bytes()[:4] and lib.read_bytes()[18] == 183  # e_machine EM_AARCH64
    from mindspore_models import kernels

    nm = subprocess.run(["aarch64-linux-gnu-nm", "-D", "--defined-only", str(lib)],
                        capture_output=True, text=True, check=True).stdout
    exported = {line.split()[-1] for line in nm.splitlines() if line.strip()}
    missing = [k for k in kernels.KERNELS if k not in exported]
    assert not missing, f"not exported by the aarch64 build: {missing}"
