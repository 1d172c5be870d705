#!/usr/bin/env bash
# Set up sglang-mindspore on an Ascend host: linux aarch64, Python 3.11, CANN installed.
#
# NOT RUN ON THE CI MACHINES: they are x86_64 with no NPU and no CANN. What runs there is
# `--dry-run` (prints this plan) and the `--verify-only` check against fake site-packages
# (tests/test_npu_install.py); the real install has never run here.
#
# The set comes from requirements-npu.txt (the wheel's [npu] extra, ONE file). Why the steps:
# the wheel requires community `triton` (its CPU path needs it; torch 2.10.0 also requires it, on
# x86_64); triton-ascend installs the same `triton/` directory under another distribution name, so
# whichever pip installs last overwrites the other's files and no resolver can prevent it (an extra
# cannot remove a requirement). So, in this order:
#   0. checks: aarch64, Python 3.11, the CANN toolkit's version, CANN's nnal (ATB) sourced
#   1. pip install '<wheel>[npu]'        torch + torch-npu (one release), mindspore, triton-ascend,
#                                        and community triton (the wheel's own requirement)
#   2. pip uninstall triton triton-ascend  both: each one's RECORD lists the shared triton/ files
#   3. pip install --no-deps --force-reinstall triton-ascend==<pin>   a clean triton/ tree
#   4. sgl-kernel-npu (not on PyPI; SGLang's ascend attention backend imports it), --no-deps
#   5. verify: exactly one distribution owns triton/ (triton-ascend); torch == torch-npu release
# Afterwards `pip check` reports "sglang-mindspore ... requires triton, which is not installed":
# expected, triton-ascend provides the `triton` package. Any later `pip install` that pulls community triton
# undoes step 2-3: run `bash ci/setup_npu.sh --fix-triton` again.
#
# Usage: bash ci/setup_npu.sh [--dry-run] [--wheel PATH] [--sgl-kernel-npu WHL_OR_ZIP]
#                             [--torch-index URL] [--fix-triton] [--verify-only] [--no-smoke]
#   --wheel            the sglang-mindspore wheel (default: newest dist/sglang_mindspore-*.whl, else
#                      build it here with `pip wheel . --no-deps -w dist`)
#   --sgl-kernel-npu   a sgl_kernel_npu wheel, or a release zip from
#                      https://github.com/sgl-project/sgl-kernel-npu/releases
#                      (sgl-kernel-npu-<tag>-torch2.10.0-py311-cann<ver>-<910b|a3>-aarch64.zip)
#   --torch-index      install torch==<pin> from this index first (default: PyPI, with the rest)
#   --fix-triton       only steps 2, 3 and 5
#   --verify-only      only step 5 (SGLMS_SITE=dir[:dir] checks those dirs instead of sys.path)
#   --no-smoke         skip the final import checks that need CANN and an NPU
# Env: PYTHON (default python3; use the venv's python).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQ="$REPO/requirements-npu.txt"
PY="${PYTHON:-python3}"
DRY=0; WHEEL=""; SKN=""; TORCH_INDEX=""; MODE=full; SMOKE=1
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --wheel) WHEEL="$2"; shift ;;
    --sgl-kernel-npu) SKN="$2"; shift ;;
    --torch-index) TORCH_INDEX="$2"; shift ;;
    --fix-triton) MODE=fix ;;
    --verify-only) MODE=verify ;;
    --no-smoke) SMOKE=0 ;;
    -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

step() { echo "==> [$(date +%H:%M:%S)] $*"; }
run() {  # print, then run unless --dry-run
  echo "+ $*"
  [ "$DRY" = 1 ] || "$@"
}
warn() { echo "WARNING: $*" >&2; }

# The set: requirement lines and "# cann:" of requirements-npu.txt
mapfile -t NPU_REQS < <(grep -v '^[[:space:]]*#' "$REQ" | sed 's/#.*//; s/[[:space:]]*$//' | grep -v '^$')
CANN="$(sed -n 's/^#[[:space:]]*cann:[[:space:]]*//p' "$REQ" | head -1)"
pin() { printf '%s\n' "${NPU_REQS[@]}" | grep -i -E "^$1[[:space:]]*==" | head -1; }
TRITON_ASCEND="$(pin 'triton[-_]ascend')"
TORCH="$(pin 'torch')"
if [ -z "$TRITON_ASCEND" ] || [ -z "$TORCH" ]; then
  echo "error: $REQ must pin torch and triton-ascend with ==" >&2; exit 1
fi
PIP=("$PY" -m pip)

verify() {
  step "5. verify: one triton on disk (triton-ascend), torch == torch-npu release, the pinned set"
  echo "+ $PY - <<check (importlib.metadata; nothing is imported)"
  [ "$DRY" = 1 ] && return 0
  SGLMS_REQ="$REQ" "$PY" - <<'EOF'
import importlib.metadata as md, os, re, sys
paths = os.environ["SGLMS_SITE"].split(":") if os.environ.get("SGLMS_SITE") else None
dists = list(md.distributions(path=paths) if paths else md.distributions())
def norm(n): return re.sub(r"[-_.]+", "-", n).lower()
def ver(name):
    for d in dists:
        if norm(d.metadata["Name"]) == name:
            return d.version
    return None
owners = sorted({norm(d.metadata["Name"]) for d in dists
                 if any(str(f).replace("\\", "/") == "triton/__init__.py" for f in (d.files or []))})
problems = []
print(f"    distributions owning triton/__init__.py: {owners}")
if owners != ["triton-ascend"]:
    problems.append(f"expected exactly one triton on disk, triton-ascend; found {owners or 'none'}")
torch, npu = ver("torch"), ver("torch-npu")
print(f"    torch {torch}, torch-npu {npu}, mindspore {ver('mindspore')}, numpy {ver('numpy')}, "
      f"triton-ascend {ver('triton-ascend')}, sgl-kernel-npu {ver('sgl-kernel-npu') or 'not installed'}")
base = lambda v: re.match(r"\d+(\.\d+)*", v).group(0).split("+")[0] if v else None
if not torch or not npu or base(torch) != base(npu):
    problems.append(f"torch {torch} and torch-npu {npu} are not one release")
for line in open(os.environ["SGLMS_REQ"]):
    line = line.split("#", 1)[0].strip()
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*==\s*(\S+)", line)
    if m and (ver(norm(m.group(1))) or "").split("+")[0] != m.group(2):  # 2.10.0+cpu satisfies ==2.10.0
        problems.append(f"{m.group(1)}: installed {ver(norm(m.group(1)))}, pinned {m.group(2)}")
if ver("numpy") and int(ver("numpy").split(".")[0]) >= 2:
    problems.append(f"numpy {ver('numpy')}: MindSpore 2.10 needs numpy<2")
for p in problems:
    print(f"ERROR: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
  echo "    OK"
}

fix_triton() {
  step "2. remove community triton AND triton-ascend (both RECORDs list the shared triton/ files)"
  run "${PIP[@]}" uninstall -y triton triton-ascend
  step "3. reinstall $TRITON_ASCEND alone: a clean triton/ tree, nothing else touched"
  run "${PIP[@]}" install --no-deps --force-reinstall "$TRITON_ASCEND"
}

if [ "$MODE" = verify ]; then verify; exit 0; fi

step "NPU set (requirements-npu.txt): ${NPU_REQS[*]}; CANN $CANN"
[ "$DRY" = 1 ] && echo "    --dry-run: printing the plan; nothing is installed"
if [ "$MODE" = full ]; then
  step "0. checks: machine, Python, CANN toolkit, CANN nnal"
  [ "$(uname -m)" = aarch64 ] || warn "this is $(uname -m); the set is resolved and tested for aarch64 Ascend hosts"
  PYV="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo none)"
  [ "$PYV" = 3.11 ] || warn "Python $PYV: the set is pinned for Python 3.11 (triton-ascend 3.2.0 supports 3.9-3.11)"
  if [ -z "${ASCEND_HOME_PATH:-}" ]; then
    warn "ASCEND_HOME_PATH is not set: install CANN $CANN and 'source <cann>/set_env.sh' first (https://www.hiascend.com/cann/download)"
  else
    HAVE="$(sed -n 's/^[Vv]ersion=//p' "$ASCEND_HOME_PATH/compiler/version.info" 2>/dev/null | head -1 || true)"
    echo "    CANN at $ASCEND_HOME_PATH: ${HAVE:-version unknown}; the set needs $CANN"
    case "$HAVE" in "$CANN"*) ;; *) warn "CANN ${HAVE:-?} is not $CANN (python -m mindspore_models.provenance --npu says why $CANN)" ;; esac
  fi
  # CANN's nnal package (ATB): sgl-mindspore's README requires it beside the toolkit and kernels;
  # its set_env.sh exports ATB_HOME_PATH.
  if [ -n "${ATB_HOME_PATH:-}" ]; then
    echo "    CANN nnal (ATB) at $ATB_HOME_PATH"
  else
    NNAL="${ASCEND_HOME_PATH:-/usr/local/Ascend/ascend-toolkit/latest}/../../nnal/atb/set_env.sh"
    if [ -f "$NNAL" ]; then
      warn "CANN nnal is installed but not sourced: 'source $NNAL' first"
    else
      warn "CANN nnal (ATB) not found: install the nnal package of CANN $CANN (https://www.hiascend.com/cann/download), then 'source <Ascend>/nnal/atb/set_env.sh'"
    fi
  fi

  if [ -z "$WHEEL" ]; then
    # shellcheck disable=SC2012  # newest first; wheel names have no odd characters
    WHEEL="$(ls -t "$REPO"/dist/sglang_mindspore-*.whl 2>/dev/null | head -1 || true)"
    if [ -z "$WHEEL" ]; then
      step "building the wheel on this host (CMake builds the CPU kernels; SGLMS_SKIP_KERNELS=1 skips them, loudly)"
      (cd "$REPO" && run "${PIP[@]}" wheel . --no-deps -w dist)
      # shellcheck disable=SC2012
      WHEEL="$(ls -t "$REPO"/dist/sglang_mindspore-*.whl 2>/dev/null | head -1 || true)"
      [ -n "$WHEEL" ] || WHEEL="$REPO/dist/sglang_mindspore-<version>-cp311-cp311-linux_aarch64.whl"  # --dry-run
    fi
  fi
  if [ -n "$TORCH_INDEX" ]; then
    step "1a. $TORCH from $TORCH_INDEX (pip keeps it: it satisfies the wheel's pin)"
    run "${PIP[@]}" install "$TORCH" --index-url "$TORCH_INDEX"
  fi
  step "1. install the wheel with [npu]: torch, torch-npu, mindspore, triton-ascend, + community triton (the wheel requires it)"
  run "${PIP[@]}" install "${WHEEL}[npu]"
fi

fix_triton

install_sgl_kernel_npu() {
  case "$SKN" in
    *.zip)
      if [ "$DRY" = 1 ]; then TMPD="<tmpdir>"; else TMPD="$(mktemp -d)"; fi
      run unzip -o -q "$SKN" -d "$TMPD"
      run "${PIP[@]}" install --no-deps "$TMPD"/sgl_kernel_npu*.whl ;;  # --no-deps: no community triton
    *) run "${PIP[@]}" install --no-deps "$SKN" ;;
  esac
}
step "4. sgl-kernel-npu (not on PyPI; SGLang's ascend attention backend and NPU page allocator import it)"
if [ -n "$SKN" ]; then
  install_sgl_kernel_npu
elif [ "$MODE" = full ]; then
  warn "no --sgl-kernel-npu given: without it '--device npu' fails at 'import sgl_kernel_npu'. Get"
  warn "  sgl-kernel-npu-<tag>-torch2.10.0-py311-cann<ver>-<910b|a3>-aarch64.zip from"
  warn "  https://github.com/sgl-project/sgl-kernel-npu/releases, then: bash ci/setup_npu.sh --fix-triton --sgl-kernel-npu <zip>"
fi

verify

if [ "$SMOKE" = 1 ]; then
  step "6. smoke (needs CANN + an NPU): torch_npu sees the NPU, MindSpore runs on Ascend, the wheel's NPU set"
  run "$PY" -c "import torch, torch_npu; print('torch', torch.__version__, 'torch_npu', torch_npu.__version__, 'npu available:', torch.npu.is_available())"
  run "$PY" -c "import mindspore as ms; ms.set_device('Ascend'); ms.run_check()"
  (cd / && run "$PY" -m mindspore_models.provenance --npu)
fi
step "done. 'pip check' will list 'requires triton, which is not installed': expected (triton-ascend provides triton)"
