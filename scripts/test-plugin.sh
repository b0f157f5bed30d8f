#!/usr/bin/env bash
# The viewer plugin's tests: npm ci, unit tests (vitest), build, then the end-to-end test against a live
# `ivs serve` in Debian's Chromium (it skips, exit 0, with its reason when data, ivs or Chromium is missing).
set -euo pipefail
cd "$(dirname "$0")/../viewer-plugin"
npm ci --no-audit --no-fund
npm test
npm run build
npm run test:e2e
# The service's own IIIF in stock Mirador 4 (no plugin): region annotations drawn and listed, Content Search 1.0.
node e2e/mirador-service.mjs
