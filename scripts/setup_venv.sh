#!/usr/bin/env bash
# Create the project's virtual environment .venv from requirements.txt, unless it is there.
# Sourced by quickstart.sh and test.sh; sets PYTHON to the venv's interpreter.
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="$REPO_DIR/.venv/bin/python"
STAMP="$REPO_DIR/.venv/.requirements.txt"
if [ ! -x "$PYTHON" ] || ! cmp -s "$REPO_DIR/requirements.txt" "$STAMP"; then
  echo "Setting up $REPO_DIR/.venv from requirements.txt ..."
  python3 -m venv "$REPO_DIR/.venv"
  "$PYTHON" -m pip install --quiet -r "$REPO_DIR/requirements.txt"
  cp "$REPO_DIR/requirements.txt" "$STAMP"
fi
