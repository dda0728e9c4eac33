#!/usr/bin/env bash
# The README's test command: set up from the lock, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
export PIPENV_VENV_IN_PROJECT=1
.venv/bin/python -m pytest "$@"
