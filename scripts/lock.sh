#!/usr/bin/env bash
# Lock the Pipfiles (the project's and checkov's own, .ci/checkov/) and strip the index URL pipenv
# writes into Pipfile.lock (_meta.sources), so that no package registry host is committed.
# `pipenv sync` works with the list empty.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIPENV_VENV_IN_PROJECT=1
for dir in . .ci/checkov; do
  (cd "$dir" && pipenv lock)
  python3 - "$dir/Pipfile.lock" <<'PY'
import json, pathlib, sys
p = pathlib.Path(sys.argv[1])
lock = json.loads(p.read_text())
lock["_meta"]["sources"] = []
p.write_text(json.dumps(lock, indent=4, sort_keys=True) + "\n")
PY
  echo "$dir/Pipfile.lock written (sources emptied)"
done
