#!/usr/bin/env bash
# The test command (README): builds and installs the wheel, then runs every test against it,
# slow end-to-end tests included. Extra arguments go to pytest (e.g. -m "not slow").
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
export SGLMS_REQUIRE_KERNELS=1   # a missing kernel library fails the tests instead of skipping them
export SGLMS_TEST_INSTALLED=1    # tests must import the installed wheel, not the source tree
step "running tests"
cd "$REPO"
"$VENV/bin/pytest" tests "$@"
