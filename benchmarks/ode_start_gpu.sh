#!/usr/bin/env bash
# The figures of the ODE's start (benchmarks/ode_start.py, benchmarks/claims.py) in one call on a
# GPU machine:
#
#     bash benchmarks/ode_start_gpu.sh OUTDIR      # about 8 minutes on one H200
#
# 1. the synthetic Volcano data in $DATA_DIR (default data/synthetic_volcano) if it holds none;
# 2. the quickstart config trained for seeds 0 1 2, and the same with sigma_1 = BIG_SIGMA_1 (the
#    alternative cure: a prior as wide as the data in every direction), the six runs at once;
# 3. ode_start.py on each three: Heun from the prior and from the data's Gaussian fit at 5, 9, 19
#    and 35 evaluations (fits of 64, 256 and all 1568 principal components), annealed Langevin's 181 and the held-out floor, at 1x and 2x, 3 sampler
#    seeds of 128 samples;
# 4. beside them, claims.py (white against GRF noise, trained at 14 and at 28 px, sampled at 1x,
#    2x, 4x, 3 seeds) for each dataset, with Heun at 9 evaluations from the data fit and from the prior.
#
# Everything ends by SECONDS_IN_ALL (540) after the start, the trainings by TRAIN_SECONDS (240), so
# that one call holds it; OUTDIR gets ode_start.<group>.txt and a .json a run, claims.txt, trainings.txt. Knobs (environment):
# DATA_DIR, BIG_SIGMA_1 (5000), SECONDS_IN_ALL, TRAIN_SECONDS, CFG (exps/json/quickstart.json),
# N_SAMPLES (128, ode_start.py's), COMPONENTS (the fits compared: "64 256 1568"), CLAIMS_FLAGS (more flags of claims.py, e.g. --seeds 0 for a quick
# look), TRAIN_SEEDS ("0 1 2"), CLAIMS (1; 0 skips step 4), PYTHON (python3). It needs the project's requirements with a CUDA build of torch.
set -uo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_DIR"
OUTDIR="${1:?usage: bash benchmarks/ode_start_gpu.sh OUTDIR}"
PYTHON="${PYTHON:-python3}"
BIG_SIGMA_1="${BIG_SIGMA_1:-5000}"
SECONDS_IN_ALL="${SECONDS_IN_ALL:-540}"
TRAIN_SECONDS="${TRAIN_SECONDS:-240}"
CFG="${CFG:-exps/json/quickstart.json}"
N_SAMPLES="${N_SAMPLES:-128}"
CLAIMS_FLAGS="${CLAIMS_FLAGS:-}"
TRAIN_SEEDS="${TRAIN_SEEDS:-0 1 2}"
CLAIMS="${CLAIMS:-1}"
COMPONENTS="${COMPONENTS:-64 256 1568}"
export DATA_DIR="${DATA_DIR:-$REPO_DIR/data/synthetic_volcano}"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 OMP_NUM_THREADS=1
mkdir -p "$OUTDIR"
RUNS="$(mktemp -d)"
deadline=$((SECONDS + SECONDS_IN_ALL))
left() { echo $((deadline - SECONDS > 1 ? deadline - SECONDS : 1)); }

"$PYTHON" -c 'import torch; print(f"torch {torch.__version__}, " + (torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU: the CPU"))'
if [ -z "$(find -L "$DATA_DIR" -name '*.int' -print -quit 2>/dev/null)" ]; then
  "$PYTHON" -m src.synthetic --outdir "$DATA_DIR" > "$RUNS/data.log" 2>&1
fi
echo "data ready, $(left) s left"

# 2. Six trainings at once: the GPU is far from full with one 1 M parameter network at 28 px.
HEUN_9="sampler=heun,sampler_steps=5,sampler_rho=2,sampler_churn=0"
trainings=()
for seed in $TRAIN_SEEDS; do
  for group in quickstart big_sigma; do
    extra='{}'
    [ "$group" = big_sigma ] && extra="{\"sigma_1\": $BIG_SIGMA_1}"
    "$PYTHON" - "$CFG" "$seed" "$extra" "$RUNS/$group.seed$seed.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config.update(seed=int(sys.argv[2]), record_interval=10**6, **json.loads(sys.argv[3]))
json.dump(config, open(sys.argv[4], "w"), indent=1)
PY
    timeout "$TRAIN_SECONDS" "$PYTHON" train.py --cfg "$RUNS/$group.seed$seed.json" --savedir "$RUNS/$group/seed$seed" \
      > "$RUNS/train.$group.$seed.log" 2>&1 &
    trainings+=($!)
  done
done
# 4. claims.py beside the trainings, one process a dataset, a training grid and a noise.
for dataset in $([ "$CLAIMS" = 1 ] && echo volcano grf); do
  for resolution in 16 32; do
    npad=$((resolution / 8))
    [ "$dataset" = grf ] && "$PYTHON" -m src.synthetic --kind grf --outdir "$RUNS/grf.$resolution" \
      --resolution $((4 * resolution)) > /dev/null 2>&1  # the known law at the 4x grid, made once for both noises
    for noise in white GRF; do
      # shellcheck disable=SC2086  # the flags are meant to split
      timeout "$(left)" "$PYTHON" -m benchmarks.claims --datasets "$dataset" --resolution "$resolution" --npad "$npad" \
        --noises "$noise" --cfg "$CFG" $CLAIMS_FLAGS --outdir "$RUNS/claims.$dataset.$resolution.$noise" \
        --volcano_dir "$DATA_DIR" --grf_dir "$RUNS/grf.$resolution" \
        --samplers "$HEUN_9,sampler_start=data_fit" "$HEUN_9,sampler_start=prior" \
        > "$RUNS/claims.$dataset.$resolution.$noise.txt" 2>&1 &
    done
  done
done
wait "${trainings[@]}"
echo "trainings done, $(left) s left"

# 3. The ODE's starts, a process a run, then each group's tables over its runs.
for group in quickstart big_sigma; do
  for seed in $TRAIN_SEEDS; do
    # shellcheck disable=SC2086  # the list is meant to split
    timeout "$(left)" "$PYTHON" -m benchmarks.ode_start --runs "$RUNS/$group/seed$seed" --n_samples "$N_SAMPLES" \
      --components $COMPONENTS --json "$RUNS/ode_start.$group.$seed.json" > "$RUNS/ode_start.$group.$seed.txt" 2>&1 &
  done
done
wait
echo "all done, $(left) s left"
for group in quickstart big_sigma; do
  "$PYTHON" -m benchmarks.ode_start --merge "$RUNS"/ode_start."$group".*.json --n_samples "$N_SAMPLES" \
    > "$OUTDIR/ode_start.$group.txt" 2>&1
  cat "$RUNS"/ode_start."$group".*.txt >> "$OUTDIR/ode_start.$group.txt"  # each run's lines, even one cut short
  cp "$RUNS"/ode_start."$group".*.json "$OUTDIR/" 2>/dev/null
done
tail -n 2 "$RUNS"/train.*.log > "$OUTDIR/trainings.txt"
tail -n 30 "$RUNS"/claims.*.txt > "$OUTDIR/claims.txt"
