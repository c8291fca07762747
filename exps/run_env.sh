# Sourced by main.sh and resume.sh after their arguments are checked: exps/env.sh, then
# SAVEDIR and DATA_DIR required and made absolute, and PYTHON (the repository's .venv if any).
# Expects EXPS_DIR and SCRIPT (the caller's name, for messages).
REPO_DIR="$(dirname "$EXPS_DIR")"
if [ -f "$EXPS_DIR/env.sh" ]; then source "$EXPS_DIR/env.sh"; fi
: "${SAVEDIR:?$SCRIPT: SAVEDIR is not set (export it, or set it in exps/env.sh)}"
: "${DATA_DIR:?$SCRIPT: DATA_DIR is not set (export it, or set it in exps/env.sh)}"
# Relative paths (plain shell, no GNU realpath: macOS too) mean relative to where the user typed
# the command, not to where the code runs.
case "$SAVEDIR" in /*) ;; *) SAVEDIR="$PWD/$SAVEDIR" ;; esac
case "$DATA_DIR" in /*) ;; *) DATA_DIR="$PWD/$DATA_DIR" ;; esac
export DATA_DIR
PYTHON=python3
if [ -x "$REPO_DIR/.venv/bin/python" ]; then PYTHON="$REPO_DIR/.venv/bin/python"; fi
