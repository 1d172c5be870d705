#!/usr/bin/env bash
# Upstream tracking (needs the PyPI registry): does the series still apply to, and serve on,
# the newest SGLang releases? The matrix covers the last N releases; when the newest one
# fails, bisect between the pinned release (known good) and it to name the first bad one.
#   bash ci/upstream_report.sh [N]      reports: out/upstream/{matrix,bisect}.{md,json}, matrix.png
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
N="${1:-5}"
OUT="$REPO/out/upstream"
cd "$REPO"
step "matrix over the last $N sglang releases"
python -m patch_tool matrix --last "$N" --out "$OUT" || true
verdict=$(python -c "import json; rows=json.load(open('$OUT/matrix.json')); print(rows[-1]['version'], rows[-1]['verdict'])")
read -r newest result <<<"$verdict"
pinned=$(python -c "import tomllib; print(next(iter(tomllib.load(open('third_party/sglang.toml','rb')).values()))['version'])")
if [ "$result" = "good" ]; then
  step "newest release $newest passes; nothing to bisect"
elif [ "$newest" = "$pinned" ]; then
  step "the pinned release $pinned itself fails: fix the series first"; exit 1
else
  step "newest release $newest is $result: bisecting $pinned..$newest"
  python -m patch_tool bisect --good "$pinned" --bad "$newest" --out "$OUT"
fi
