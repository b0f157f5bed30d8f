#!/usr/bin/env bash
# System packages the tests use (a real IIIF image server, a browser, nginx for the README's proxy block).
# Installs only what is missing, and only as root; otherwise says what to install. Idempotent.
set -euo pipefail
packages=(iipimage-server lighttpd nginx-light libvips-tools chromium chromium-driver)
missing=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "note: tests that need ${missing[*]} will be skipped; install them with apt-get as root" >&2
  fi
fi

# iiif-processor (npm; IIIF Image API 2.1 and 3.0) for the fetch tests' second real image server
# (tests/iiif_server.py). Installed outside the repo; IVS_IIIF_PROCESSOR_DIR overrides where.
processor_dir="${IVS_IIIF_PROCESSOR_DIR:-$HOME/.cache/iiif-visual-search/iiif-processor}"
if [ ! -d "$processor_dir/node_modules/iiif-processor" ]; then
  if command -v npm >/dev/null; then
    mkdir -p "$processor_dir"
    [ -f "$processor_dir/package.json" ] || echo '{"name": "ivs-test-iiif-processor", "private": true}' > "$processor_dir/package.json"
    (cd "$processor_dir" && npm install --silent --no-audit --no-fund iiif-processor@7) \
      || echo "note: npm install iiif-processor failed; the IIIF 3.0 server tests will be skipped" >&2
  else
    echo "note: tests that need iiif-processor (Node.js + npm) will be skipped; install nodejs and npm" >&2
  fi
fi
