#!/usr/bin/env bash
# Run the test suite on a fresh machine: a virtual environment from requirements.txt (if
# there is none), then pytest on tests/.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_DIR"
source scripts/setup_venv.sh
# -n auto: one pytest-xdist worker a CPU, each test file on one worker (--dist loadfile), so that a
# module's fixtures are made once; -rs: the reason of every skip (e.g. no Slurm here).
# `bash scripts/test.sh -m "not slow"` is the fast subset (no training, no Slurm) for iteration.
exec "$PYTHON" -m pytest -q -rs -n auto --dist loadfile "$@"
