#!/usr/bin/env bash
# The README's main command: set up from the lock, then run the whole loop on the embedded default
# (local Spark, local store under ./var, local API on 127.0.0.1). Extra arguments go to `fraud demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
exec .venv/bin/python -m fraud_cli demo "$@"
