"""Your own data: the starting config of ``python -m src.array_config`` on two array files, trained
and sampled over seeds, beside the held-out floor.

    python -m benchmarks.array_data [--datasets grf darcy] [--n 512] [--resolution 32] [--seeds 0 1 2]
        [--epochs E] [--outdir DIR] [--quick]

For each dataset, the benchmark writes N functions on an R x R grid (data seed 0) into
``<outdir>/data/<dataset>/``, writes their config with ``python -m src.array_config`` (printing
what it chose), and for each seed trains that config with train.py (the config's ``seed``: the
weights, the split and the training noise) and samples its last weights (model.pt, EMA) with
eval.py --mode=generate and the same seed, scored against the training split
(metrics.model.pt.json): `claims.train_and_score`. The held-out row scores the validation
split of that seed the same way (`claims.held_out_scores`): the floor that a perfect model
reaches with as many functions. Both use as many functions as the validation split holds, so
that they compare at the same sample size. Every cell is the mean +- standard deviation over
the seeds; the ratio is each seed's samples' w_total over its floor; ``std / data`` is the
pixel standard deviation of the samples (or of the held-out functions) over the training split's.

The datasets:
- ``grf``: the known law of `src.synthetic.grf` on the file's grid, so two columns score against
  the law itself (``exact_marginal``, ``exact_spectrum``: `claims.exact_law_metrics`).
- ``darcy``: Darcy-flow solutions, `src.synthetic.darcy`, with the source ``--darcy_forcing``
  (default 150, so that their root mean square is about 1; u is proportional to it, and FNO's
  f = 1 gives 0.0068, an amplitude the network hardly learns in these steps).

Training records once, after its last epoch (record_interval = epochs), with as many samples:
bookkeeping only, the model is the config's. ``--epochs`` replaces the config's epochs (for a
test). ``--quick`` is a smoke test of the path: 40 functions at 16 px, 1 epoch, seeds 0 and 1.
The defaults (512 functions at 32 px, 15 epochs, 3 seeds, 2 datasets) take about 20 minutes on 2
CPU cores.
"""

import argparse
import os
import pickle
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

# Before torch, which imports tqdm: tqdm reads TQDM_DISABLE when it is imported.
os.environ.setdefault("TQDM_DISABLE", "1")
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

from src import array_config  # noqa: E402
from src.config import load_config  # noqa: E402
from src.data import load_data, steps_per_epoch, validation_count  # noqa: E402
from src.evaluation import samples_name  # noqa: E402
from src.synthetic.darcy import DarcyProblem, write_darcy_dataset  # noqa: E402
from src.synthetic.grf import GRFLaw, read_law, write_grf_dataset  # noqa: E402
from benchmarks.claims import CHECKPOINT, EXACT_COLUMNS, held_out_scores, train_and_score  # noqa: E402
from benchmarks.seed_spread import mean_spread, table_header  # noqa: E402

DATASETS = ("grf", "darcy")
COLUMNS = ("w_total", "w_mean", "w_std", "w_marginal", "log_spectrum_rms")
# The Darcy source: u is proportional to it, and FNO's f = 1 gives functions of root mean square
# 0.0068, which the network hardly learns in these steps (benchmarks/RESULTS.md, "Your own data").
DARCY_FORCING = 150.0
QUICK = {"n": 40, "resolution": 16, "epochs": 1, "seeds": [0, 1]}


def write_data(dataset: str, folder: Path, n: int, resolution: int, darcy_forcing: float) -> Path:
    """The dataset's .npy file in ``folder``, written with data seed 0."""
    if dataset == "grf":
        return write_grf_dataset(folder, n, seed=0, law=GRFLaw(resolution=resolution))
    return write_darcy_dataset(folder, n, seed=0, problem=DarcyProblem(resolution=resolution, forcing=darcy_forcing))


def pixel_std(u: torch.Tensor) -> float:
    return float(u.double().std())


def score_seed(args, seed: int, run_dir: Path, data: Path, n_samples: int, law) -> tuple[dict, dict]:
    """(samples' metrics, held-out metrics) of one seed, each with the std ratio and the ratio to the floor."""
    args = replace(args, seed=seed, record_interval=args.epochs, Ntest=n_samples, val_batch_size=n_samples)
    scores = train_and_score(args, run_dir, [1], n_samples, law, ["config"], sampling_seed=seed)["config"][1]
    trained = load_config(run_dir / "config.json")
    floor = held_out_scores(trained, data, [1], n_samples, law)[1]
    train, valid = load_data(trained, str(data))
    with open(run_dir / "eval" / samples_name(CHECKPOINT), "rb") as f:
        samples = torch.from_numpy(pickle.load(f)["samples"])
    scores["std_ratio"] = pixel_std(samples) / pixel_std(train)
    floor["std_ratio"] = pixel_std(valid[:n_samples]) / pixel_std(train)
    scores["ratio"], floor["ratio"] = scores["w_total"] / floor["w_total"], 1.0
    return scores, floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--n", type=int, default=512, help="functions per dataset (default 512)")
    parser.add_argument("--resolution", type=int, default=32, help="their grid's side (default 32)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="replace the config's epochs (default: its own)")
    parser.add_argument("--darcy_forcing", type=float, default=DARCY_FORCING,
                        help=f"the Darcy source f (default {DARCY_FORCING:g}: a unit root mean square; 1: FNO's)")
    parser.add_argument("--outdir", type=Path, default=None, help="the data and runs (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help=f"a smoke test: {QUICK}")
    cli = parser.parse_args()
    if cli.quick:
        cli.n, cli.resolution, cli.epochs, cli.seeds = QUICK["n"], QUICK["resolution"], QUICK["epochs"], QUICK["seeds"]
    outdir = cli.outdir or Path(tempfile.mkdtemp(prefix="array_data_"))
    if outdir.exists() and any(outdir.iterdir()):
        parser.error(f"--outdir {outdir} is not empty: never train into an earlier run; pass another")

    header, rows = [], []
    for dataset in cli.datasets:
        data = write_data(dataset, outdir / "data" / dataset, cli.n, cli.resolution, cli.darcy_forcing)
        cfg = outdir / f"{dataset}.json"
        print(f"\n$ python -m src.array_config {data} --out {cfg}")
        if array_config.main([str(data), "--out", str(cfg)]) != 0:
            sys.exit(f"error: no config for {data}")
        args = load_config(cfg)
        if cli.epochs is not None:
            args = replace(args, epochs=cli.epochs)
        law = read_law(data) if dataset == "grf" else None
        n_samples = validation_count(args.ntrain, args.val_size)
        os.environ["DATA_DIR"] = str(data)  # train.py and eval.py read the data from there
        per_seed = [score_seed(args, seed, outdir / f"{dataset}-seed{seed}", data, n_samples, law)
                    for seed in cli.seeds]
        steps = args.epochs * steps_per_epoch(args.ntrain - n_samples, args.batch_size)
        header.append(f"- {dataset}: {cli.n} functions at {cli.resolution} px (data std "
                      f"{pixel_std(load_data(args, str(data))[0]):.3g}), trained at {args.data_resolution} px for "
                      f"{args.epochs} epochs ({steps} steps); sigma_1 {args.sigma_1:g}, sigma_L {args.sigma_L:g}, "
                      f"rbf_scale {args.rbf_scale:g}; {n_samples} samples and held-out functions")
        for label, index in (("samples", 0), ("held-out data", 1)):
            rows.append((dataset, label, [scores[index] for scores in per_seed]))

    columns = COLUMNS + ("ratio", "std_ratio") + EXACT_COLUMNS
    names = COLUMNS + ("w_total / held-out", "std / data") + EXACT_COLUMNS
    print(f"\nRuns in {outdir}; mean +- standard deviation over seeds {cli.seeds}\n")
    print("\n".join(header) + "\n")
    print(table_header(["dataset", "functions", *names]))
    for dataset, label, scores in rows:
        cells = [mean_spread([score.get(c) for score in scores], 2 if c in ("ratio", "std_ratio") else 4)
                 for c in columns]
        print(f"| {dataset} | {label} | " + " | ".join(cells) + " |")
    ratios = {dataset: statistics.mean(s["ratio"] for s in scores) for dataset, label, scores in rows
              if label == "samples"}
    print("\n" + "; ".join(f"{dataset}: {ratio:.2f} x the held-out floor" for dataset, ratio in ratios.items()))


if __name__ == "__main__":
    main()
