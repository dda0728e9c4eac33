#!/usr/bin/env bash
# Lock the Pipfile and strip the index URL pipenv writes into Pipfile.lock (_meta.sources),
# so that no package registry host is committed. `pipenv sync` works with the list empty.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIPENV_VENV_IN_PROJECT=1
pipenv lock
python3 - <<'PY'
import json, pathlib
p = pathlib.Path("Pipfile.lock")
lock = json.loads(p.read_text())
lock["_meta"]["sources"] = []
p.write_text(json.dumps(lock, indent=4, sort_keys=True) + "\n")
PY
echo "Pipfile.lock written (sources emptied)"
