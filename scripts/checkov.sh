#!/usr/bin/env bash
# Scan the CloudFormation template with checkov, from its own locked environment (.ci/checkov/).
# Every failed check fails this script, except those suppressed in the template with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIPENV_VENV_IN_PROJECT=1 PIPENV_NOSPIN=1 PIPENV_YES=1
export PATH="$HOME/.local/bin:$PATH"
if [ ! -x .ci/checkov/.venv/bin/checkov ]; then
  (cd .ci/checkov && pipenv sync >/dev/null)
fi
exec .ci/checkov/.venv/bin/checkov --quiet --compact --framework cloudformation --skip-download \
  -f infra/template.yaml "$@"
