#!/usr/bin/env bash
# Submit with: sbatch resume_exp.sh <sbgm|gan> <experiment name> <id>
# Resumes a stopped run through resume.sh, on any number of GPUs and nodes (the checkpoint does
# not depend on them): the same headers and overrides as launch_exp.sh, which explains them.
# Outside Slurm, `bash resume_exp.sh ...` resumes in the foreground, as one process.
#SBATCH --job-name=diffusion-operators-resume
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=32G
#SBATCH --time=24:00:00
#SBATCH --output=slurm-%j.out
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=USR1@120
set -euo pipefail
EXPS_DIR="${SLURM_SUBMIT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
cd "$EXPS_DIR"
export SRUN_TASKS=1  # resume.sh starts the Python processes as srun's tasks
exec bash resume.sh "$@"
