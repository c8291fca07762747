#!/usr/bin/env bash
# Resume a stopped run: bash resume.sh <sbgm|gan> <experiment name> <id>
#
# Runs resume.py (sbgm) or resume_gano.py (gan) on $SAVEDIR/<experiment name>/<id> (SAVEDIR and DATA_DIR from the environment
# or from env.sh next to this script), with the run's own copy of the code (<run>/code, made by
# main.sh) when it has one, so that a resumed run is trained by the code that started it.
set -euo pipefail
EXPS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCRIPT=resume.sh

usage() { echo "usage: bash resume.sh <sbgm|gan> <experiment name> <id>" >&2; exit 2; }
[ $# -eq 3 ] || usage
METHOD="$1"; NAME="$2"; ID="$3"
case "$METHOD" in
  sbgm) ENTRY=resume.py ;;
  gan) ENTRY=resume_gano.py ;;
  *) echo "resume.sh: unknown method '$METHOD'" >&2; usage ;;
esac
source "$EXPS_DIR/run_env.sh"
RUN="$SAVEDIR/$NAME/$ID"
[ -d "$RUN" ] || { echo "resume.sh: no run $RUN; runs of $NAME: $(ls "$SAVEDIR/$NAME" 2>/dev/null | tr '\n' ' ')" >&2; exit 2; }

CODE_DIR="$REPO_DIR"
if [ -f "$RUN/code/train.py" ]; then CODE_DIR="$RUN/code"; fi
echo "resuming $RUN with the code in $CODE_DIR"
cd "$CODE_DIR"
if [ -f "$ENTRY" ]; then
  run_python "$ENTRY" "$RUN"
fi
if [ "$METHOD" = gan ]; then
  echo "resume.sh: the code of $RUN has no $ENTRY (it predates the GANO baseline)" >&2; exit 2
fi
# A code copy older than resume.py: the same thing through train.py.
run_python train.py --cfg "$RUN/config.json" --savedir "$RUN"
