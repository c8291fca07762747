# Sourced by main.sh and resume.sh after their arguments are checked: exps/env.sh, PYTHON (the
# repository's .venv if any), ENTRY (the method's script of the caller's kind), SAVEDIR and
# DATA_DIR required and made absolute, inside_slurm_job, and run_python, which they end with.
# Expects EXPS_DIR, SCRIPT (the caller's name, for messages), METHOD and KIND (train, resume).
REPO_DIR="$(dirname "$EXPS_DIR")"
if [ -f "$EXPS_DIR/env.sh" ]; then source "$EXPS_DIR/env.sh"; fi
PYTHON=python3
if [ -x "$REPO_DIR/.venv/bin/python" ]; then PYTHON="$REPO_DIR/.venv/bin/python"; fi
# The method's script, from the registry of src/methods/ (no torch is imported): an unknown
# method exits 2, naming the methods.
ENTRY="$(cd "$REPO_DIR" && "$PYTHON" -m src.methods "$METHOD" "$KIND")" || exit 2
for variable in SAVEDIR DATA_DIR; do
  if [ -z "${!variable:-}" ]; then
    echo "$SCRIPT: $variable is not set (export it, or set it in exps/env.sh; see exps/env.sh.bak)" >&2
    exit 2
  fi
done
# Relative paths (plain shell, no GNU realpath: macOS too) mean relative to where the user typed
# the command, not to where the code runs.
case "$SAVEDIR" in /*) ;; *) SAVEDIR="$PWD/$SAVEDIR" ;; esac
case "$DATA_DIR" in /*) ;; *) DATA_DIR="$PWD/$DATA_DIR" ;; esac
export DATA_DIR

# Whether this shell runs inside a Slurm job (sbatch, salloc, srun), which sets SLURM_JOB_NODELIST
# beside SLURM_JOB_ID. SLURM_JOB_ID alone is a user's name for a local run (the original README:
# "set SLURM_JOB_ID to your own unique identifier and launch with bash instead of sbatch"), which
# runs in the foreground. src/training.py's slurm_job_of tells them apart the same way.
inside_slurm_job() { [ -n "${SLURM_JOB_ID:-}" ] && [ -n "${SLURM_JOB_NODELIST:-}" ]; }

# run_python <script> <arguments...>: exec Python on the script, as srun's tasks (one rank each,
# src/distributed.py) inside a Slurm job submitted by launch_exp.sh or resume_exp.sh, else as
# this one process, in the foreground. Every rank's output goes to the job's log, labelled with its rank.
run_python() {
  if inside_slurm_job && [ "${SRUN_TASKS:-0}" = 1 ]; then
    # Since Slurm 22.05 srun no longer inherits sbatch's --cpus-per-task: hand it on.
    if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then export SRUN_CPUS_PER_TASK="$SLURM_CPUS_PER_TASK"; fi
    local label=()
    if [ "${SLURM_NTASKS:-1}" -gt 1 ]; then label=(--label); fi
    # --kill-on-bad-exit: a rank that fails ends the others, which would wait for it forever.
    exec srun --kill-on-bad-exit=1 "${label[@]}" "$PYTHON" "$@"
  fi
  exec "$PYTHON" "$@"
}
