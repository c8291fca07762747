#!/usr/bin/env bash
# Run the test suite on a fresh machine: a virtual environment from requirements.txt (if
# there is none), then pytest on tests/.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_DIR"
source scripts/setup_venv.sh
exec "$PYTHON" -m pytest -q -rs "$@"  # -rs: the reason of every skip (e.g. no Slurm here)
