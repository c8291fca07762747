#!/usr/bin/env bash
# A short local run to check a set-up: bash debug_exp.sh [<sbgm|gan> <experiment name> <json file>]
# Defaults to the tiny json/debug.json; runs the checkout's code (RUN_LOCAL) in the foreground.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [ $# -eq 0 ]; then set -- sbgm debug json/debug.json; fi
RUN_LOCAL=1 SLURM_JOB_ID="${SLURM_JOB_ID:-debug_$(date +%s)}" exec bash main.sh "$@"
