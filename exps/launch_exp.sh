#!/usr/bin/env bash
# Submit with: sbatch launch_exp.sh <sbgm|gan> <experiment name> <json file>
# Outside Slurm, `bash launch_exp.sh ...` runs the same thing in the foreground, as one process,
# and so does `SLURM_JOB_ID=<your id> bash launch_exp.sh ...` (the id names the run directory).
#
# The headers ask for one GPU. Flags of sbatch override them (so do SBATCH_* variables, e.g.
# SBATCH_PARTITION), one task per GPU, each task one rank (srun; batch_size is the global batch):
#   N GPUs on one node:   sbatch --ntasks-per-node=N --gres=gpu:N launch_exp.sh ...
#   M nodes of N GPUs:    sbatch --nodes=M --ntasks-per-node=N --gres=gpu:N launch_exp.sh ...
# Edit the other #SBATCH lines for your cluster (partition, GPU type, memory per node, time).
#
# --signal=USR1@120: 120 s before the time limit Slurm sends SIGUSR1 to every task (not B:, the
# batch shell: the tasks are srun's). The ranks agree to stop after the same step, rank 0 writes
# model.pt and requeues the job (--requeue), which resumes in the same run directory and appends
# to the same log (--open-mode=append). A preemption's SIGTERM is handled the same way.
#SBATCH --job-name=diffusion-operators
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
# sbatch runs a copy of this script from its spool folder: find exps/ from where it was submitted.
EXPS_DIR="${SLURM_SUBMIT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
cd "$EXPS_DIR"
export SRUN_TASKS=1  # main.sh starts the Python processes as srun's tasks
exec bash main.sh "$@"
