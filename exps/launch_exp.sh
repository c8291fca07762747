#!/usr/bin/env bash
# Submit with: sbatch launch_exp.sh <sbgm|gan> <experiment name> <json file>
# Outside Slurm, `bash launch_exp.sh ...` runs the same thing in the foreground.
# Edit the #SBATCH lines for your cluster (partition, GPU type, memory, time).
#SBATCH --job-name=diffusion-operators
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=32G
#SBATCH --time=24:00:00
#SBATCH --output=slurm-%j.out
#SBATCH --requeue
set -euo pipefail
# sbatch runs a copy of this script from its spool folder: find exps/ from where it was submitted.
EXPS_DIR="${SLURM_SUBMIT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
cd "$EXPS_DIR"
exec bash main.sh "$@"
