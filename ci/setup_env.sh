#!/usr/bin/env bash
# Create (or reuse) the virtualenv, build THE wheel, install it with its dependencies.
# Sourced by ci/run_tests.sh and ci/main_job.sh. Env: SGLMS_VENV (default: .venv in the repo).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SGLMS_VENV:-$REPO/.venv}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3

step() { echo "==> [$(date +%H:%M:%S)] $*"; }

if [ ! -x "$VENV/bin/python" ]; then
  step "creating virtualenv $VENV"
  "$PY" -m venv "$VENV"
fi
export PATH="$VENV/bin:$PATH"
PIP="$VENV/bin/python -m pip"
# A fresh venv (torch 2.14.1 is a CUDA build, plus MindSpore) takes ~8.1 GB; when torch comes from
# PyPI instead of this machine's disk its wheels sit in TMPDIR while they install. Say so up front
# rather than failing half-way through with ENOSPC. Pip's cache would hold a second copy: skip it.
export PIP_NO_CACHE_DIR="${PIP_NO_CACHE_DIR:-1}"
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  NEED_GB="${SGLMS_MIN_FREE_GB:-9}"
  for dir in "$VENV" "${TMPDIR:-/tmp}"; do
    free_kb="$(df -Pk "$dir" | awk 'NR==2 {print $4}')"
    if [ "$free_kb" -lt $((NEED_GB * 1024 * 1024)) ]; then
      echo "error: $dir has $((free_kb / 1024 / 1024)) GB free; installing torch + MindSpore into a new" \
           "venv needs about ${NEED_GB} GB (set SGLMS_MIN_FREE_GB to override)" >&2
      exit 1
    fi
  done
fi

step "installing torch (MindSpore and the patched SGLang run beside it)"
case "$(uname -m)" in
  x86_64) TORCH=(torch==2.14.1 torchvision==0.29.1) ;;
  aarch64) TORCH=(torch==2.9.1 torchvision==0.24.1) ;;
  *) echo "unsupported machine $(uname -m)"; exit 1 ;;
esac
$PIP install -q "${TORCH[@]}" "numpy<2" setuptools wheel "cmake>=3.18"

step "building the wheel (fetch + verify pinned SGLang, apply sglang_patches, CMake kernels)"
rm -rf "$REPO/dist"
(cd "$REPO" && $PIP wheel . --no-deps -w dist)  # the documented user path, build isolation included
WHEEL="$(ls "$REPO"/dist/sglang_mindspore-*.whl)"
step "installing $(basename "$WHEEL") and its dependencies"
$PIP install -q "$WHEEL" pytest matplotlib
$PIP install -q --force-reinstall --no-deps "$WHEEL"  # same version string, newer build
# from / so that python -c imports the installed wheel, not the source tree in the cwd
step "installed: $(cd / && "$VENV/bin/python" -c 'import mindspore_models.provenance as p; d=p.load(); print(d["wheel_version"], "=", d["upstream"], "+", len(d["patches"]), "patches")')"
