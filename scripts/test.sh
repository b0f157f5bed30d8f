#!/usr/bin/env bash
# Set up everything the tests need, then run every test: Python (pytest) and the viewer plugin (npm).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh ".[test,ray]"
bash scripts/install-test-deps.sh
(cd tests/browser && npm ci --silent --no-audit --no-fund) || echo "note: npm ci in tests/browser failed; the axe-core checks will be skipped" >&2
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ -f viewer-plugin/package.json ]; then
  bash scripts/test-plugin.sh || status=$?
fi
exit $status
