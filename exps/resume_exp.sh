#!/usr/bin/env bash
# Submit with: sbatch resume_exp.sh <sbgm|gan> <experiment name> <id>
# Resumes a stopped run through resume.sh; edit the #SBATCH lines as in launch_exp.sh.
# --signal=B:USR1@120 sends SIGUSR1 to the batch script 120 s before the time limit; the
# scripts exec into Python, so Python is that process: it writes model.pt at the step it is
# in and requeues the job (--requeue), which then resumes in the same run directory.
#SBATCH --job-name=diffusion-operators-resume
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=32G
#SBATCH --time=24:00:00
#SBATCH --output=slurm-%j.out
#SBATCH --requeue
#SBATCH --signal=B:USR1@120
set -euo pipefail
EXPS_DIR="${SLURM_SUBMIT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
cd "$EXPS_DIR"
exec bash resume.sh "$@"
