#!/usr/bin/env bash
# Set up everything the tests need, then run every test: Python (pytest) and the viewer plugin (npm).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh ".[test]"
bash scripts/install-test-deps.sh
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ -f viewer-plugin/package.json ]; then
  bash scripts/test-plugin.sh || status=$?
fi
exit $status
