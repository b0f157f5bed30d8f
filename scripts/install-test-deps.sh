#!/usr/bin/env bash
# System packages the tests use (a real IIIF image server, a browser). Installs only what is missing,
# and only as root; otherwise says what to install. Idempotent.
set -euo pipefail
packages=(iipimage-server lighttpd libvips-tools chromium chromium-driver)
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
