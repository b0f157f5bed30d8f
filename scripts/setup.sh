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
  # Say what is going on: the first install downloads torch, transformers and faiss (a few minutes), and a
  # quiet pip showed nothing but its warnings meanwhile.
  echo "setup: installing iiif-visual-search $target and its dependencies into .venv (the first time takes" \
       "a few minutes)" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install --progress-bar on -e "$target" \
    | { grep --line-buffered -v -e '^Requirement already satisfied' || true; }
  touch "$stamp"
  echo "setup: done" >&2
fi
