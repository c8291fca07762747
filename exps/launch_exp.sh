#!/usr/bin/env bash
# Submit with: sbatch launch_exp.sh <sbgm|gan> <experiment name> <json file>
# Outside Slurm, `bash launch_exp.sh ...` runs the same thing in the foreground.
# Edit the #SBATCH lines for your cluster (partition, GPU type, memory, time).
# --signal=B:USR1@120 sends SIGUSR1 to the batch script 120 s before the time limit; this
# script and main.sh exec into Python, so Python is that process: it writes model.pt at the
# step it is in and requeues the job (--requeue), which then resumes in the same run directory.
#SBATCH --job-name=diffusion-operators
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=32G
#SBATCH --time=24:00:00
#SBATCH --output=slurm-%j.out
#SBATCH --requeue
#SBATCH --signal=B:USR1@120
set -euo pipefail
# sbatch runs a copy of this script from its spool folder: find exps/ from where it was submitted.
EXPS_DIR="${SLURM_SUBMIT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
cd "$EXPS_DIR"
exec bash main.sh "$@"
