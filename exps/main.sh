#!/usr/bin/env bash
# Run one experiment: bash main.sh <sbgm|gan> <experiment name> <json file>
#
#   RUN_LOCAL=1  run the code of this checkout (from the parent of exps/); without it the
#                code is first copied to $SAVEDIR/<name>/<id>/code and run from there, so
#                that a queued Slurm job is not affected by later edits of the checkout.
#   SLURM_JOB_ID identifies the run; outside Slurm set it yourself (`date +%s`), else the
#                current Unix time is used. Set by hand, it only names the run: the training
#                runs in the foreground, as one process (run_env.sh's inside_slurm_job).
#   SRUN_TASKS=1 (set by launch_exp.sh) inside a Slurm job: the training runs as srun's
#                tasks, one rank each (see run_env.sh); without it, as one process.
#
# Results go to $SAVEDIR/<name>/<SLURM_JOB_ID>. SAVEDIR and DATA_DIR come from the
# environment or from env.sh next to this script (copy env.sh.bak to env.sh and edit it).
set -euo pipefail
EXPS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCRIPT=main.sh

usage() { echo "usage: bash main.sh <sbgm|gan> <experiment name> <json file>" >&2; exit 2; }
# The original README also shows `bash main.sh <experiment name> <json file>`: that means sbgm.
if [ $# -eq 2 ]; then set -- sbgm "$@"; fi
[ $# -eq 3 ] || usage
METHOD="$1"; NAME="$2"; CFG="$3"; KIND=train
[ -f "$CFG" ] || { echo "main.sh: config file not found: $CFG" >&2; exit 2; }
CFG="$(cd "$(dirname "$CFG")" && pwd)/$(basename "$CFG")"
source "$EXPS_DIR/run_env.sh"

RUN_ID="${SLURM_JOB_ID:-$(date +%s)}"
OUT="$SAVEDIR/$NAME/$RUN_ID"
# The config, DATA_DIR and its data, and SAVEDIR checked before anything is made or copied: a
# typo stops here (exit status 2, the culprit named) and leaves no empty run behind.
(cd "$REPO_DIR" && "$PYTHON" "$ENTRY" --check --cfg "$CFG" --savedir "$OUT")
mkdir -p "$OUT"

if [ -n "${RUN_LOCAL:-}" ]; then
  CODE_DIR="$REPO_DIR"
else
  CODE_DIR="$OUT/code"
  # A requeued job finds its copy already there and keeps it.
  if [ ! -d "$CODE_DIR" ]; then
    mkdir -p "$CODE_DIR.partial"
    cp -r "$REPO_DIR"/{train,resume,eval}{,_gano}.py "$REPO_DIR"/plot_stats.py "$REPO_DIR"/src "$REPO_DIR"/exps \
      "$REPO_DIR"/requirements.txt "$CODE_DIR.partial"/
    mv "$CODE_DIR.partial" "$CODE_DIR"
  fi
fi

echo "method=$METHOD name=$NAME config=$CFG"
echo "results: $OUT"
echo "code:    $CODE_DIR"
cd "$CODE_DIR"
run_python "$ENTRY" --cfg "$CFG" --savedir "$OUT"
