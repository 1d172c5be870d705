"""Build ONE wheel: pinned SGLang + sglang_patches/ + mindspore_models + compiled kernels.

    pip wheel . --no-deps -w dist

Before setuptools runs, the pinned SGLang wheel is fetched (sha256-verified, cached) and the
patch series applied into third_party/sglang (patch_tool). CMake then builds kernels/ into
mindspore_models/_lib; a failed kernel build fails the wheel (SGLMS_SKIP_KERNELS=1 opts out,
loudly). The wheel records its provenance: python -m mindspore_models.provenance
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from setuptools import find_namespace_packages, find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from patch_tool import PatchToolError, ops  # noqa: E402
from patch_tool.workspace import Workspace, tree_edits  # noqa: E402

# Curated run-time dependencies for CPU serving. SGLang's own metadata pulls CUDA-only
# packages, so the upstream requirement list is deliberately not used.
INSTALL_REQUIRES = [
    "torch>=2.9", "numpy<2", "mindspore==2.10.0", "transformers==5.19.0", "tokenizers",
    "safetensors", "sentencepiece", "aiohttp", "fastapi", "uvicorn", "uvloop", "pyzmq>=25.1.2",
    "orjson", "msgspec", "pybase64", "pydantic", "python-multipart", "psutil", "requests", "tqdm",
    "setproctitle", "xxhash", "einops", "partial_json_parser", "prometheus-client>=0.20.0",
    "interegular", "packaging", "pillow", "scipy", "regex", "watchfiles", "zstandard", "blobfile",
    "modelscope", "distro", "easydict", "IPython", "triton", "torchvision", "apache-tvm-ffi==0.1.11",
    "compressed-tensors", "gguf", "openai", "xgrammar==0.2.7", "jsonschema", "soundfile",
    "openai-harmony",
]
# The Ascend set (torch == torch-npu release, triton-ascend, mindspore, numpy) and the CANN version it
# needs: ONE file, also read by ci/setup_npu.sh and tests/test_npu_install.py. Ascend only.
from mindspore_models.provenance import NPU_REQUIREMENTS_FILE, parse_npu_set  # noqa: E402

NPU_SET = parse_npu_set((ROOT / NPU_REQUIREMENTS_FILE).read_text())
# SGLang's load client (`python -m sglang.bench_serving`) imports `datasets`; its releases from 4.0
# on pull numpy >= 2 (through pandas 3 / pyarrow 19), which MindSpore 2.10 cannot run with.
BENCH_REQUIRES = ["datasets>=3,<4", "pyarrow<19", "pandas<3"]
EXTRAS = {"npu": NPU_SET["requirements"], "bench": BENCH_REQUIRES}


def patched_tree(ws: Workspace) -> dict:
    """Reuse third_party/sglang when it is pristine + the current series; else (re)apply."""
    state = ws.read_state()
    pin = ws.pin()
    fresh = (state is not None and state["series_hash"] == ws.series_hash()
             and state["wheel_sha256"] == pin.wheel().sha256)
    if fresh:
        edits = tree_edits(state["files"], ws.tree)
        if any(edits.values()):
            raise SystemExit(f"error: {ws.tree} has edits not captured in a patch; the wheel would not be "
                             "reproducible. Run `python -m patch_tool status`, then `new`/`refresh` or `apply --force`.")
        return state
    try:
        ops.apply(ws, log=lambda m: print(f"[patch_tool] {m}", file=sys.stderr))
    except PatchToolError as e:
        raise SystemExit(f"error: cannot prepare the patched SGLang tree: {e}")
    return ws.read_state()


WS = Workspace.at(ROOT)
STATE = patched_tree(WS)
PIN = WS.pin()
VERSION = f"{PIN.version}+ms.{len(STATE['patches'])}.{STATE['series_hash'][:8]}"


def provenance() -> dict:
    patches = []
    for p in WS.patches():
        f = p.fields()
        patches.append({"file": p.name, "subject": f.get("Subject"), "upstream_status": f.get("Upstream-Status")})
    return {
        "wheel_version": VERSION, "upstream": f"{PIN.package}=={PIN.version}",
        "upstream_wheel": PIN.wheel().file, "upstream_sha256": PIN.wheel().sha256,
        "series_sha256": STATE["series_hash"], "patches": patches, "npu": NPU_SET,
    }


class BuildWithKernels(build_py):
    def run(self):
        super().run()
        out = Path(self.build_lib)
        (out / "mindspore_models" / "_provenance.json").write_text(json.dumps(provenance(), indent=2))
        if os.environ.get("SGLMS_SKIP_KERNELS") == "1":
            print("WARNING: SGLMS_SKIP_KERNELS=1: the wheel ships NO custom kernels", file=sys.stderr)
            return
        self._cmake(out)

    def _cmake(self, out: Path) -> None:
        build = ROOT / "build" / "kernels"
        cmake = ["cmake"]
        try:
            subprocess.run([*cmake, "-S", str(ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"], check=True)
            subprocess.run([*cmake, "--build", str(build), "-j", str(os.cpu_count() or 1)], check=True)
            subprocess.run([*cmake, "--install", str(build), "--prefix", str(out)], check=True)
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            raise SystemExit(f"error: kernel build failed ({e}); the wheel is not built. "
                             "Set SGLMS_SKIP_KERNELS=1 to build without kernels (pure-MindSpore fallbacks).")
        lib = out / "mindspore_models" / "_lib" / "libsglms_cpu_kernels.so"
        if not lib.is_file():
            raise SystemExit(f"error: kernel build produced no {lib}")
        print(f"kernels: built {lib}", file=sys.stderr)


class PlatformWheel(Distribution):
    """The wheel carries compiled code (SGLang's Rust extensions, our kernels): tag it per platform."""

    def has_ext_modules(self):
        return True


sglang_src = WS.tree.relative_to(ROOT).as_posix()
setup(
    name="sglang-mindspore",
    version=VERSION,
    description=f"SGLang {PIN.version} + MindSpore model zoo + kernels, patched to serve MindSpore models",
    python_requires=">=3.10",
    packages=find_packages(include=["mindspore_models", "mindspore_models.*"])
    + find_namespace_packages(where=sglang_src, include=["sglang", "sglang.*"]),
    package_dir={"sglang": f"{sglang_src}/sglang"},
    package_data={"sglang": ["**/*"], "mindspore_models": ["_provenance.json"]},
    exclude_package_data={"": ["*.pyc", "__pycache__/*"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["sglang = sglang.cli.main:main", "killall_sglang = sglang.cli.killall:main"]},
    cmdclass={"build_py": BuildWithKernels},
    distclass=PlatformWheel,
    zip_safe=False,
)
