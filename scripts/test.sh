#!/usr/bin/env bash
# Set up everything the tests need, then run every test: Python (pytest) and the viewer plugin (npm).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh ".[test,ray]"
bash scripts/install-test-deps.sh
(cd tests/browser && npm ci --silent --no-audit --no-fund) || echo "note: npm ci in tests/browser failed; the axe-core checks will be skipped" >&2
# Stock Mirador 4, Clover 3, TIFY and Universal Viewer 4 (no configuration) for tests/browser/test_stock_clients.py;
# Clover is ES modules only, so its entry is bundled with esbuild.
(cd tests/browser/stock && npm ci --silent --no-audit --no-fund && npm run build --silent) \
  || echo "note: npm ci in tests/browser/stock failed; the stock viewer tests will be skipped" >&2
# The /map page's script (three.js, bundled with esbuild); tests/browser/test_map_page.py draws with it.
[ -f map-page/dist/ivs-map.js ] || (cd map-page && npm ci --silent --no-audit --no-fund && npm run build --silent) \
  || echo "note: building map-page failed; the map page tests will be skipped" >&2
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ -f viewer-plugin/package.json ]; then
  bash scripts/test-plugin.sh || status=$?
fi
exit $status
