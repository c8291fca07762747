#!/usr/bin/env bash
# benchmarks/sampler_quality.py on a paper-sized network, in one call on a GPU machine:
#
#     bash benchmarks/sampler_quality_gpu.sh            # about 9 minutes on one H100/H200-class GPU
#
# 1. synthetic Volcano data in $DATA_DIR (default data/synthetic_volcano) if it holds no *.int file;
# 2. train.py on the paper's config (exps/json/rbf-copied.json: a UNO of width 128 at 120 px, 500
#    levels x 3 Langevin steps = 1500 network calls a sample) for TRAIN_SECONDS, then a SIGUSR1,
#    which makes train.py write its checkpoint and stop (the preemption path), so the training
#    fits the call whatever the GPU's speed; no validation sampling during it;
# 3. sampler_quality.py on those weights: the config's Langevin (1500 calls) against Langevin on
#    fewer levels and Euler / Heun, deterministic and with churn, at BUDGETS calls a sample,
#    N_SAMPLES functions for each of SEEDS, and the figure.
#
# The weights are minutes old, not the paper's days of training: the table says how the samplers
# rank on a network of the paper's size and noise, not the paper's quality. Knobs (environment):
# CFG, TRAIN_SECONDS (300), N_SAMPLES (64), SEEDS ("0 1 2"), BUDGETS ("18 36 72"), RUN_DIR (a fresh
# temporary folder), PYTHON (python3). It needs the project's requirements (requirements.txt)
# with a CUDA build of torch; the output is the table to put in benchmarks/RESULTS.md.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_DIR"
PYTHON="${PYTHON:-python3}"
CFG="${CFG:-exps/json/rbf-copied.json}"
TRAIN_SECONDS="${TRAIN_SECONDS:-300}"
N_SAMPLES="${N_SAMPLES:-64}"
SEEDS="${SEEDS:-0 1 2}"
BUDGETS="${BUDGETS:-18 36 72}"
RUN_DIR="${RUN_DIR:-$(mktemp -d)/run}"
export DATA_DIR="${DATA_DIR:-$REPO_DIR/data/synthetic_volcano}"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1

if [ -e "$RUN_DIR" ]; then
  echo "error: RUN_DIR $RUN_DIR already exists; name a new one" >&2
  exit 2
fi
if [ -z "$(find -L "$DATA_DIR" -name '*.int' -print -quit 2>/dev/null)" ]; then
  "$PYTHON" -m src.synthetic --outdir "$DATA_DIR"
fi
"$PYTHON" -c 'import torch; print(f"torch {torch.__version__}, " + (torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU: the CPU"))'

# The paper's config, validating only after an epoch count it will not reach in TRAIN_SECONDS.
mkdir -p "$RUN_DIR"
"$PYTHON" - "$CFG" "$RUN_DIR/benchmark.json" "$N_SAMPLES" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config.update(record_interval=10**6, Ntest=int(sys.argv[3]))
json.dump(config, open(sys.argv[2], "w"), indent=1)
PY
status=0
timeout --signal=USR1 --kill-after=120 "$TRAIN_SECONDS" \
  "$PYTHON" train.py --cfg "$RUN_DIR/benchmark.json" --savedir "$RUN_DIR" || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 124 ]; then  # 124: stopped by the SIGUSR1, as planned
  echo "error: training failed (exit status $status)" >&2
  exit "$status"
fi

# shellcheck disable=SC2086  # the lists are meant to split into arguments
"$PYTHON" -m benchmarks.sampler_quality --exp_name "$RUN_DIR" --n_samples "$N_SAMPLES" --seeds $SEEDS \
  --budgets $BUDGETS --figure "$RUN_DIR/sampler_quality_gpu.png"
