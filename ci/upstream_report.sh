#!/usr/bin/env bash
# Upstream tracking (needs the PyPI registry): does the newest SGLang release break the series?
# Tabulates the last N releases (download, apply as is, three-way rebase, import, smoke test);
# when the newest one is not good, bisects from the pinned release to it and names the first
# release where the series stops applying, stops rebasing cleanly, and fails the smoke test.
#   bash ci/upstream_report.sh [N]   reports: out/upstream/{matrix,bisect}.{md,json}, matrix.png
# The last line names the breaking release(s). Exit 1 only when the newest release breaks the
# series; older releases failing, or a newest one that cannot be downloaded/imported here, exit 0.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
N="${1:-5}"
OUT="$REPO/out/upstream"
cd "$REPO"
step "tracking the last $N sglang releases against the series; reports in $OUT"
python -m patch_tool track --last "$N" --out "$OUT"
