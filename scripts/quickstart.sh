#!/usr/bin/env bash
# The main job on the embedded default, on a fresh machine:
#   1. a virtual environment from requirements.txt (if there is none),
#   2. synthetic Volcano data in $DATA_DIR (default data/synthetic_volcano) if it holds no *.int file,
#   3. training of exps/json/quickstart.json through exps/main.sh (3.5 min on 2 CPU cores),
#   4. where the results and pictures are, and how to evaluate them.
# An argument names another config of exps/json instead: `bash scripts/quickstart.sh debug` (seconds);
# a gano-*.json config trains the GANO baseline (method gan): `bash scripts/quickstart.sh gano-quickstart`.
# A training stopped before its last epoch (SIGTERM, SIGUSR1) exits non-zero with how to resume it.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_DIR"
configs() { (cd exps/json && ls *.json | sed 's/\.json$//' | tr '\n' ' '); }
usage() { echo "usage: bash scripts/quickstart.sh [config of exps/json: $(configs)]" >&2; exit "$1"; }
case "${1:-}" in -h|--help) usage 0 ;; esac
[ $# -le 1 ] || { echo "quickstart.sh: one argument at most, got $#: $*" >&2; usage 2; }
CONFIG="${1:-quickstart}"
if [ ! -f "exps/json/$CONFIG.json" ]; then
  echo "error: no config exps/json/$CONFIG.json; the configs are: $(configs)" >&2
  exit 2
fi
METHOD=sbgm
case "$CONFIG" in gano-*) METHOD=gan ;; esac
source scripts/setup_venv.sh

export DATA_DIR="${DATA_DIR:-$REPO_DIR/data/synthetic_volcano}"
export SAVEDIR="${SAVEDIR:-$REPO_DIR/results}"
if [ -z "$(find -L "$DATA_DIR" -name '*.int' -print -quit 2>/dev/null)" ]; then
  "$PYTHON" -m src.synthetic --outdir "$DATA_DIR"
fi

RUN_ID="${SLURM_JOB_ID:-$(date +%Y%m%d-%H%M%S)}"
OUT="$SAVEDIR/$CONFIG/$RUN_ID"
status=0
(cd exps && RUN_LOCAL=1 SLURM_JOB_ID="$RUN_ID" bash main.sh "$METHOD" "$CONFIG" "json/$CONFIG.json") || status=$?
if [ "$status" -eq 75 ]; then  # src/training.py's STOPPED_EXIT: stopped by a signal, model.pt written
  EPOCHS_DONE=$(wc -l < "$OUT/results.json" 2>/dev/null || echo 0)
  echo "quickstart.sh: training stopped at epoch $((EPOCHS_DONE + 1)); resume with:" \
    "(cd exps && DATA_DIR=$DATA_DIR SAVEDIR=$SAVEDIR bash resume.sh $METHOD $CONFIG $RUN_ID)" >&2
fi
[ "$status" -eq 0 ] || exit "$status"
cat <<MSG

Done. Results in $OUT:
  results.json                  one JSON line per epoch (loss, w_total, ...)
  samples/<epoch>.png           generated phase maps at each record
  samples/best_w_total.png      samples of the best checkpoint, model.w_total.pt
  noise/                        draws of the noise
Evaluate it from exps/ (--Ntest=64: about a minute on a quiet CPU; launch_eval.py's default 1024 is 16 times the samples):
  DATA_DIR=$DATA_DIR SAVEDIR=$SAVEDIR bash launch_eval.py $METHOD $CONFIG/$RUN_ID --mode=generate --Ntest=64
MSG
