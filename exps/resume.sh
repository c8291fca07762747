#!/usr/bin/env bash
# Resume a stopped run: bash resume.sh <sbgm|gan> <experiment name> <id>
#
# Runs resume.py (sbgm) or resume_gano.py (gan) on $SAVEDIR/<experiment name>/<id> (SAVEDIR and
# DATA_DIR from the environment or from env.sh next to this script), with the run's own copy of the
# code (<run>/code, made by main.sh) when it has one, so that a resumed run is trained by the code
# that started it.
set -euo pipefail
EXPS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCRIPT=resume.sh

usage() { echo "usage: bash resume.sh <sbgm|gan> <experiment name> <id>" >&2; exit 2; }
[ $# -eq 3 ] || usage
METHOD="$1"; NAME="$2"; ID="$3"; KIND=resume
source "$EXPS_DIR/run_env.sh"
RUN="$SAVEDIR/$NAME/$ID"
[ -d "$RUN" ] || { echo "resume.sh: no run $RUN; runs of $NAME: $(ls "$SAVEDIR/$NAME" 2>/dev/null | tr '\n' ' ')" >&2; exit 2; }

CODE_DIR="$REPO_DIR"
if [ -f "$RUN/code/train.py" ]; then CODE_DIR="$RUN/code"; fi
echo "resuming $RUN with the code in $CODE_DIR"
cd "$CODE_DIR"
run_python "$ENTRY" "$RUN"
