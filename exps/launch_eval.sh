#!/bin/bash
# Evaluate a trained experiment with eval.py (sbgm) or eval_gano.py (gan): sample, super-resolve, plot.
#
# Edit these Slurm flags for your cluster (they are plain comments under bash):
#SBATCH --gres=gpu:1
#SBATCH --mem=32G
#SBATCH --time=06:00:00
#SBATCH --cpus-per-task=4
#SBATCH --output=slurm-eval-%j.out
#
# usage: launch_eval.sh <sbgm|gan> <experiment name>/<id> [extra eval.py flags...]
#
#   bash launch_eval.sh sbgm my_experiment/3068817 --mode=generate
#   sbatch launch_eval.sh sbgm my_experiment/3068817 --checkpoint=model.w_var.pt --mode=superres --factor=2
#
# exps/env.sh, when present, is sourced first; it defines SAVEDIR (where experiments live)
# and DATA_DIR (the Volcano data). Then, from the repository root (the parent of exps/):
#
#   python eval.py (eval_gano.py for gan) --exp_name=$SAVEDIR/<name>/<id> --savedir=$SAVEDIR/<name>/<id>/eval \
#       --Ntest=1024 --val_batch_size=128 [extra flags]
#
# Extra flags come last, so they override these defaults (argparse keeps the last one).
# The repository's .venv/bin/python is used when it exists, else `python` from the PATH.

set -eo pipefail

usage() {
    echo "usage: bash launch_eval.py <sbgm|gan> <experiment name>/<id> [extra eval.py flags...]" >&2
    echo "       (or launch_eval.sh, the same), e.g. from exps/:" >&2
    echo "  bash launch_eval.py sbgm my_experiment/3068817 --checkpoint=model.w_total.pt --mode=generate" >&2
    exit 2
}

# Where this script lives. sbatch runs a copy from its spool folder, so there the folder
# the job was submitted from (exps/) stands in.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ ! -f "$here/../eval.py" ] && [ -n "${SLURM_SUBMIT_DIR:-}" ]; then
    here="$SLURM_SUBMIT_DIR"
fi
root="$(cd "$here/.." && pwd)"

[ $# -ge 2 ] || usage
method="$1"
name="$2"
shift 2

if [ -f "$here/env.sh" ]; then
    # shellcheck disable=SC1091
    source "$here/env.sh"
fi
python="python"
if [ -x "$root/.venv/bin/python" ]; then
    python="$root/.venv/bin/python"
fi
# The method's script, from the registry of src/methods/ (no torch is imported; 'gano' is 'gan').
entry="$(cd "$root" && "$python" -m src.methods "$method" eval)" || usage
if [ -z "${SAVEDIR:-}" ]; then
    echo "error: SAVEDIR is not set: define it in $here/env.sh (export SAVEDIR=...) or in the environment" >&2
    exit 2
fi
if [ ! -f "$root/eval.py" ]; then
    echo "error: $root/eval.py not found (run this script from the repository's exps/ folder)" >&2
    exit 2
fi

# Relative paths (plain shell, no GNU realpath: macOS too) mean relative to where the user typed the command, not to the repository root.
case "$SAVEDIR" in /*) ;; *) SAVEDIR="$PWD/$SAVEDIR" ;; esac
case "${DATA_DIR:-/}" in /*) ;; *) export DATA_DIR="$PWD/$DATA_DIR" ;; esac
cd "$root"
set -x
exec "$python" "$entry" --exp_name="$SAVEDIR/$name" --savedir="$SAVEDIR/$name/eval" \
    --Ntest=1024 --val_batch_size=128 "$@"
