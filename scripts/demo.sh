#!/usr/bin/env bash
# Set up, run the whole pipeline on the demo collection (manifests/demo-collection.json) and serve it.
# Without a network it says so and uses the local sample of page scans in ../shared/data instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -f viewer-plugin/package.json ] && command -v npm >/dev/null 2>&1; then
  (cd viewer-plugin && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run --silent build) \
    || echo "note: the viewer plugin could not be built; /viewer will be unavailable" >&2
fi
exec .venv/bin/ivs demo "$@"
