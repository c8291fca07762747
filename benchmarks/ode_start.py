"""Where the probability-flow ODE starts: the prior against the data's Gaussian fit, against
network evaluations, beside annealed Langevin's reference and the held-out floor, at the
training grid and finer, over training seeds x sampler seeds.

    DATA_DIR=data/synthetic_volcano python -m benchmarks.ode_start --runs RUN [RUN ...]
        [--factors 1 2] [--budgets 5 9 19 35] [--seeds 0 1 2] [--n_samples 128] [--rho 2]
        [--checkpoint model.pt] [--components K ...] [--json OUT.json]
    python -m benchmarks.ode_start --merge A.json B.json ...   # the tables of runs measured apart
    DATA_DIR=... python -m benchmarks.ode_start --train_seeds 0 1 2 --cfg exps/json/quickstart.json
        --outdir DIR [--set sigma_1=2000 ...] [the flags above]

With ``--train_seeds`` it first trains the config once a seed (``--set KEY=VALUE`` changes
keys, e.g. a larger sigma_1) into DIR/seed<s>, then measures those runs. For each run's
weights (``--checkpoint``, EMA) and each factor, every row draws ``--n_samples`` functions per
sampler seed, scored against the training split at that grid (w_total, w_rough):

- ``heun, prior`` and ``heun, data_fit``: Heun's method on the ODE, deterministic (no churn),
  ``(budget + 1) / 2`` levels spaced by ``--rho``, from sqrt(sigma_1) z or from a draw of the
  run's gaussian_fit.pkl (fitted from DATA_DIR if it has none) + sqrt(sigma_1) z; with
  ``--components``, ``heun, data_fit k=K`` instead, a fit of the training split with K
  principal components each (the rest in the residual);
- ``langevin``: annealed Langevin dynamics with the config's L, T, epsilon, step rule and
  final denoising step (the quickstart's: 60 x 3 + 1 = 181 evaluations), from z: the reference;
- ``held-out``: as many functions of the validation split: the floor.

A cell is the mean +- standard deviation over all (training seed, sampler seed) pairs (9 for
3 x 3); ``train sd`` is the standard deviation of the training seeds' means. Before the tables,
each run's data against its noise: the largest ratio of the data's variance along an
eigenfunction of C to sigma_1 times its eigenvalue (what the prior start leaves out), how many
directions make the true p_sigma_1 10 % wider than the prior, and the sigma_1 that would bring
every ratio under 1 %.
"""

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # the tables are the output
import torch  # noqa: E402

from src.cli import parse_key_value  # noqa: E402
from src.config import config_from_dict, from_command_line, load_config  # noqa: E402
from src.data import data_grid_of, load_data  # noqa: E402
from src.gaussian_fit import fit_gaussian  # noqa: E402
from src.distributed import default_device  # noqa: E402
from src.evaluation import data_fit_for, held_out_floor, load_model, score_samples  # noqa: E402
from src.experiment import build_noise, sample  # noqa: E402
from src.methods.diffusion import METHOD as DIFFUSION, network_evaluations  # noqa: E402
from benchmarks.runs import train_run  # noqa: E402
from benchmarks.seed_spread import mean_spread, table_header  # noqa: E402

COLUMNS = ("w_total", "w_rough")
BATCH = 128


def prior_shortfall(train: torch.Tensor, noise_sampler, sigma_1: float) -> dict:
    """The data's variance along C's eigenfunctions over sigma_1 lambda, per channel pooled."""
    res = noise_sampler.res
    covariance = noise_sampler.covariance_block(res * res)
    if covariance is None:  # white noise: C = I, every direction is an eigenfunction of eigenvalue 1
        eigenvalues, vectors = torch.ones(res * res, dtype=torch.float64), torch.eye(res * res, dtype=torch.float64)
    else:
        eigenvalues, vectors = torch.linalg.eigh(covariance)
    ratios = []
    for channel in range(train.shape[-1]):
        flat = train[..., channel].reshape(len(train), -1).double()
        along = (flat - flat.mean(0)) @ vectors
        ratios.append(along.var(0) / (sigma_1 * eigenvalues.clamp(min=1e-12)))
    ratio = torch.cat(ratios)
    return {"max_ratio": ratio.max().item(), "wider_by_10_percent": int((ratio > 1.1 ** 2 - 1).sum()),
            "directions": len(ratio), "sigma_1_for_1_percent": sigma_1 * ratio.max().item() / 0.01}


def sampler_rows(args, budgets: list[int], rho: float, fits: dict) -> list[tuple[str, int, object, object]]:
    """(family, evaluations, config, fit) of every row; ``fits``: {name: Gaussian fit}."""
    langevin = DIFFUSION.with_sampler(args, {"sampler": "langevin", "sampler_start": "prior"}, "--budgets")
    rows = [("langevin", network_evaluations(langevin), langevin, None)]
    for start, fit in [("prior", None), *[(f"data_fit{name}", fit) for name, fit in fits.items()]]:
        for budget in budgets:
            row = DIFFUSION.with_sampler(args, {"sampler": "heun", "sampler_steps": (budget + 1) // 2, "sampler_rho": rho,
                                                "sampler_churn": 0.0, "sampler_start": start.split()[0]}, "--budgets")
            rows.append((f"heun, {start}", network_evaluations(row), row, fit))
    return rows


def measure_run(run: Path, cli, data_dir: str, device) -> dict:
    """The run's table {factor: {'family @ evaluations': [metrics per sampler seed]}}, the seconds
    of each row {factor: {row: seconds a sampler seed}}, and its facts; JSON as it stands."""
    args = load_config(run / "config.json")
    model, _ = load_model(DIFFUSION, args, run / cli.checkpoint, device)
    train, valid = load_data(args, data_dir)
    if cli.components:
        variance = build_noise(args, args.data_resolution, "cpu").point_variance()
        fits = {f" k={k}": fit_gaussian(train, variance, components=k, flips=args.augment, grid=data_grid_of(args))
                for k in cli.components}
    else:
        fits = {"": data_fit_for(DIFFUSION, DIFFUSION.with_sampler(args, {"sampler_start": "data_fit"}), run, data_dir)}
    facts = {"prior_shortfall": prior_shortfall(train, build_noise(args, args.data_resolution, "cpu"), args.sigma_1)}
    table, seconds = {}, {}
    for factor in cli.factors:
        if factor > 1:
            train, valid = load_data(args, data_dir, factor)
        noise_sampler = build_noise(args, factor * args.data_resolution, device)
        cells, times = table[str(factor)], seconds[str(factor)] = {}, {}
        cells["held-out @ 0"] = [held_out_floor(valid, train, args.metric_kind, cli.n_samples)]
        for family, evaluations, row, fit in sampler_rows(args, cli.budgets, cli.rho, fits):
            scores = cells[f"{family} @ {evaluations}"] = []
            started = time.perf_counter()
            for seed in cli.seeds:
                drawn = sample(DIFFUSION, model, row, noise_sampler, cli.n_samples, BATCH, seed=1000 + seed,
                               progress=False, data_fit=fit)
                scores.append(score_samples(drawn, train, args.metric_kind))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[f"{family} @ {evaluations}"] = (time.perf_counter() - started) / len(cli.seeds)
            print(f"  {run.name} {factor}x {family} at {evaluations}: w_total "
                  f"{mean_spread([m['w_total'] for m in scores], 3)}", file=sys.stderr, flush=True)
    return {"table": table, "seconds": seconds, "facts": facts, "sigma_1": args.sigma_1,
            "resolution": args.data_resolution}


def print_tables(results: dict, cli) -> None:
    runs = list(results)
    print(f"{len(runs)} run(s) ({', '.join(runs)}), {cli.checkpoint}, {cli.n_samples} samples per "
          f"sampler seed, sampler seeds {cli.seeds}, Heun's levels spaced by rho {cli.rho}; cells: mean +- sd over "
          f"every (training seed, sampler seed), against the training split at each grid\n")
    for run, result in results.items():
        facts = result["facts"]["prior_shortfall"]
        print(f"- {run}: sigma_1 {result['sigma_1']:g}; the data's largest variance along C's "
              f"eigenfunctions is {facts['max_ratio']:.3f} x sigma_1 lambda; {facts['wider_by_10_percent']} of "
              f"{facts['directions']} directions make p_sigma_1 10 % wider than the prior; under 1 % everywhere "
              f"needs sigma_1 >= {facts['sigma_1_for_1_percent']:.0f}")
    for factor in map(str, cli.factors):
        res = int(factor) * results[runs[0]]["resolution"]
        print(f"\n{factor}x ({res} px):\n")
        columns = [f"{c}" for c in COLUMNS] + [f"{c} train sd" for c in COLUMNS] + ["s / 64 samples"]
        print(table_header(["sampler", "evaluations", *columns]))
        for key in results[runs[0]]["table"][factor]:
            family, evaluations = key.rsplit(" @ ", 1)
            pooled = [m for run in runs for m in results[run]["table"][factor][key]]
            cells = [mean_spread([m[c] for m in pooled], 3) for c in COLUMNS]
            per_run = [[statistics.mean(m[c] for m in results[run]["table"][factor][key]) for run in runs] for c in COLUMNS]
            cells += [f"{statistics.stdev(v):.3f}" if len(v) > 1 else "-" for v in per_run]
            if family == "held-out":
                cells.append("-")
            else:
                per_64 = [results[run]["seconds"][factor][key] * 64 / cli.n_samples for run in runs]
                cells.append(f"{statistics.median(per_64):.2f}")
            print(f"| {family} | {evaluations if evaluations != '0' else '-'} | " + " | ".join(cells) + " |")


def train_runs(cli) -> list[Path]:
    base = load_config(cli.cfg)
    changes = from_command_line(dict(parse_key_value(item) for item in cli.set), "sbgm") if cli.set else {}
    runs = []
    for seed in cli.train_seeds:
        run = cli.outdir / f"seed{seed}"
        if not (run / "model.pt").is_file():
            train_run(config_from_dict(asdict(replace(base, seed=seed)) | changes, source="--set"), run,
                      Path(cli.cfg).name)
        runs.append(run)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, nargs="+", default=[], help="run directories of train.py")
    parser.add_argument("--train_seeds", type=int, nargs="+", default=[], help="train --cfg once a seed first")
    parser.add_argument("--cfg", default="exps/json/quickstart.json")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config keys changed for training")
    parser.add_argument("--outdir", type=Path, help="where --train_seeds' runs go")
    parser.add_argument("--checkpoint", default="model.pt")
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--budgets", type=int, nargs="+", default=[5, 9, 19, 35], help="Heun's evaluations")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="sampler seeds")
    parser.add_argument("--n_samples", type=int, default=128)
    parser.add_argument("--rho", type=float, default=2.0, help="spacing of Heun's levels")
    parser.add_argument("--components", type=int, nargs="+", default=[],
                        help="fit the training split with these numbers of principal components, a row family each")
    parser.add_argument("--json", type=Path, help="also write every metric here")
    parser.add_argument("--merge", type=Path, nargs="+", default=[],
                        help="print the tables of these --json files (the same flags) instead of measuring")
    cli = parser.parse_args()
    if cli.merge:
        print_tables({name: result for path in cli.merge for name, result in json.loads(path.read_text()).items()}, cli)
        return
    if cli.train_seeds and not cli.outdir:
        parser.error("--train_seeds needs --outdir")
    data_dir, device = os.environ["DATA_DIR"], default_device()
    runs = cli.runs + (train_runs(cli) if cli.train_seeds else [])
    if not runs:
        parser.error("give --runs or --train_seeds")
    results = {str(run): measure_run(run, cli, data_dir, device) for run in runs}
    print_tables(results, cli)
    if cli.json:
        cli.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
