#!/usr/bin/env bash
# Create .venv with the project installed (idempotent). Extra pip arguments may follow, e.g. ".[test]".
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
target="${1:-.}"
stamp=".venv/.installed-$(echo "$target" | tr -c 'a-z' '_')"
# Reinstall only when the dependencies changed: pip's own resolution takes a while even when nothing is new.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e "$target"
  touch "$stamp"
fi
