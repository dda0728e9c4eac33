#!/usr/bin/env bash
# Set up everything from Pipfile.lock on a fresh machine (Python 3.11 + Java 17 present).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIPENV_VENV_IN_PROJECT=1 PIPENV_NOSPIN=1 PIPENV_YES=1
command -v pipenv >/dev/null 2>&1 || python3 -m pip install --quiet --user pipenv
export PATH="$HOME/.local/bin:$PATH"
command -v java >/dev/null 2>&1 || { echo "setup: Java 17 is required by Spark (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
pipenv sync --categories="packages dev-packages api glue lambda"
echo "setup: environment ready in .venv"
