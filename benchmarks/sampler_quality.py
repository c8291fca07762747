"""Sample quality against network evaluations, for every sampler, side by side in one run.

    DATA_DIR=data/synthetic_volcano python -m benchmarks.sampler_quality --exp_name results/quickstart/<id>
        [--checkpoint model.pt] [--n_samples 128] [--seeds 0 1 2] [--budgets 10 20 36]
        [--samplers euler heun] [--churns 0 1000] [--starts prior data_fit] [--rho 2] [--no_langevin_budgets]
        [--figure PNG]

For the weights of one checkpoint (EMA when it has them), each row samples ``--n_samples``
functions per seed and scores them against the training split (w_total, w_var, w_skew,
w_rough), with the same noise seeds for every row:

- ``<sampler> (config)``: the config's own sampler (``langevin (config)`` for the paper's
  configs and for runs trained before the quickstart changed sampler: L x T (+1) evaluations):
  the reference;
- ``langevin``: annealed Langevin with the config's step rule, epsilon and T on fewer levels,
  L = (budget - 1) // T, at each budget (skipped with ``--no_langevin_budgets``);
- ``euler``, ``heun`` and ``<sampler> churn C``: Euler's or Heun's method on the
  probability-flow ODE, rho-spaced levels from sqrt(sigma_1) to sqrt(sigma_L) then a
  denoising step, at each budget (Euler: one evaluation a level; Heun: 2 x levels - 1, the
  budget rounded down to an odd number), deterministic or with EDM's churn C (1000: the
  largest churn at any budget, noise equal to the noise present added before every step); each
  from the prior, sqrt(sigma_1) z, and (``<family>, data_fit``) from a draw of the run's Gaussian
  fit of the training functions (gaussian_fit.pkl, fitted from DATA_DIR if it has none) plus
  sqrt(sigma_1) z (``--starts``);
- ``held-out``: the validation split, the same number of functions: the floor a perfect
  sampler scores at this sample size.

Cells are mean +- standard deviation over the seeds. Seconds per 64 samples are the median
over seeds. The last line splits one sampling run of the reference into the time spent inside
the network's calls (each timed where it happens) and the loop's, to check that the sampling
loop costs under 5 % beside the network. The figure draws w_total against
evaluations per sample, one line per sampler, the reference and the floor as references.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TQDM_DISABLE", "1")  # the tables are the output

from src.config import load_config  # noqa: E402
from src.data import load_data  # noqa: E402
from src.distributed import default_device  # noqa: E402
from src.evaluation import data_fit_for, held_out_floor, load_model, score_samples  # noqa: E402
from src.experiment import build_noise, sample  # noqa: E402
from src.methods.diffusion import METHOD as DIFFUSION, network_evaluations  # noqa: E402
from benchmarks.seed_spread import (errorbar_line, mean_spread, save_w_total_figure, table_header,  # noqa: E402
                                     w_total_figure)

COLUMNS = ("w_total", "w_var", "w_skew", "w_rough")
BATCH = 128  # functions sampled at once


def sampler_rows(args, cli) -> list[tuple[str, object]]:
    """(family, config) of every row: the config's Langevin, then each family at each budget."""
    rows = [(f"{args.sampler} (config)", args)]
    extra = 1 if args.denoise_last else 0
    for budget in cli.budgets:
        if not cli.no_langevin_budgets and (budget - extra) // args.T >= 2:
            rows.append(("langevin", DIFFUSION.with_sampler(args, {"sampler": "langevin", "L": (budget - extra) // args.T},
                                                  "--budgets")))
        for sampler in cli.samplers:
            steps = budget if sampler == "euler" else (budget + 1) // 2
            for churn in cli.churns:
                for start in cli.starts:
                    family = (sampler if churn == 0 else f"{sampler} churn {churn:g}") + (
                        ", data_fit" if start == "data_fit" else "")
                    rows.append((family, DIFFUSION.with_sampler(args, {"sampler": sampler, "sampler_steps": steps,
                                                                       "sampler_rho": cli.rho, "sampler_churn": churn,
                                                                       "sampler_start": start}, "--budgets")))
    return rows


def timed_sample(model, args, noise_sampler, n: int, seed: int, device, data_fit) -> tuple[torch.Tensor, float]:
    started = time.perf_counter()
    samples = sample(DIFFUSION, model, args, noise_sampler, n, BATCH, seed=seed, progress=False, data_fit=data_fit)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return samples, time.perf_counter() - started


class TimedNetwork(torch.nn.Module):
    """The network, adding up the seconds of its calls (synchronised on CUDA, so the timing
    run is not the timed sampling runs)."""

    def __init__(self, network, device):
        super().__init__()
        self.network, self.device, self.seconds, self.calls = network, device, 0.0, 0

    def forward(self, x, sigma):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        started = time.perf_counter()
        out = self.network(x, sigma)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - started
        self.calls += 1
        return out


def network_share(model, args, noise_sampler, n: int, device, data_fit) -> dict:
    """Seconds of one reference sampling run, and of the network's calls inside it."""
    timed = TimedNetwork(model, device)
    _, total = timed_sample(timed, args, noise_sampler, n, seed=12345, device=device, data_fit=data_fit)
    return {"total": total, "network": timed.seconds, "calls": timed.calls}


def draw_figure(path: Path, table: dict, evaluations: dict, floor: float) -> None:
    figure, (axes,) = w_total_figure(1, (6.4, 4.2))
    families = {}
    for key, per_seed in table.items():
        families.setdefault(key[0], []).append((evaluations[key], [metrics["w_total"] for metrics in per_seed]))
    for family, points in families.items():
        points.sort()
        xs = [x for x, _ in points]
        style = {"marker": "*", "markersize": 12, "linestyle": "none"} if family.endswith("(config)") else {"marker": "o"}
        errorbar_line(axes, xs, [values for _, values in points], label=family, **style)
    axes.axhline(floor, color="grey", linestyle="--", label="held-out data (floor)")
    axes.set_xscale("log")
    save_w_total_figure(figure, [axes], path, "network evaluations per sample")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_name", required=True, help="a run directory of train.py")
    parser.add_argument("--checkpoint", default="model.pt")
    parser.add_argument("--n_samples", type=int, default=128)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="sampler noise seeds")
    parser.add_argument("--budgets", type=int, nargs="+", default=[10, 20, 36],
                        help="network evaluations per sample of the new rows")
    parser.add_argument("--samplers", nargs="+", default=["euler", "heun"], choices=["euler", "heun"])
    parser.add_argument("--churns", type=float, nargs="+", default=[0.0, 1000.0], help="EDM S_churn of the ODE rows")
    parser.add_argument("--starts", nargs="+", default=["prior", "data_fit"], choices=["prior", "data_fit"],
                        help="where the ODE rows start")
    parser.add_argument("--rho", type=float, default=2.0, help="spacing of the ODE rows' levels")
    parser.add_argument("--no_langevin_budgets", action="store_true", help="no Langevin rows on fewer levels")
    parser.add_argument("--figure", type=Path, default=None, help="where to draw w_total against evaluations")
    cli = parser.parse_args()

    exp_dir, device = Path(cli.exp_name), default_device()
    args = load_config(exp_dir / "config.json")
    train, valid = load_data(args, os.environ["DATA_DIR"])
    model, state = load_model(DIFFUSION, args, exp_dir / cli.checkpoint, device)
    noise_sampler = build_noise(args, args.data_resolution, device)
    data_fit = data_fit_for(DIFFUSION, DIFFUSION.with_sampler(args, {"sampler_start": "data_fit"}), exp_dir,
                            os.environ["DATA_DIR"])

    rows = sampler_rows(args, cli)
    table, seconds, evaluations = {}, {}, {}
    counts = {}
    for family, row_args in rows:
        index = counts[family] = counts.get(family, -1) + 1
        key = (family, index)
        evaluations[key] = network_evaluations(row_args)
        table[key], times = [], []
        for seed in cli.seeds:
            samples, elapsed = timed_sample(model, row_args, noise_sampler, cli.n_samples, 1000 + seed, device,
                                            data_fit)
            table[key].append(score_samples(samples, train, args.metric_kind))
            times.append(elapsed * 64 / cli.n_samples)
        seconds[key] = statistics.median(times)
        print(f"  {family} at {evaluations[key]} evaluations: w_total {mean_spread([m['w_total'] for m in table[key]], 3)}",
              file=sys.stderr, flush=True)
    held_out = held_out_floor(valid, train, args.metric_kind, cli.n_samples)

    print(f"{exp_dir / cli.checkpoint} (epoch {state['last_epoch'] + 1}), {cli.n_samples} samples per seed, "
          f"seeds {cli.seeds}, {device}; mean +- standard deviation over the seeds, against the training split\n")
    print(table_header(["sampler", "evaluations", *COLUMNS, "s / 64 samples"]))
    for key, per_seed in table.items():
        cells = " | ".join(mean_spread([m[c] for m in per_seed], 3) for c in COLUMNS)
        print(f"| {key[0]} | {evaluations[key]} | {cells} | {seconds[key]:.1f} |")
    print("| held-out data | - | " + " | ".join(f"{held_out[c]:.3f}" for c in COLUMNS) + " | - |")

    share = network_share(model, args, noise_sampler, cli.n_samples, device, data_fit)
    loop = share["total"] - share["network"]
    print(f"\nReference sampler, {cli.n_samples} samples: {share['total']:.2f} s in all, {share['network']:.2f} s "
          f"in its {share['calls']} network calls, {loop:.2f} s ({100 * loop / share['total']:.1f} %) "
          f"for the loop (noise draws and arithmetic)")
    if cli.figure:
        draw_figure(cli.figure, table, evaluations, held_out["w_total"])
        print(f"\nfigure: {cli.figure}")


if __name__ == "__main__":
    main()
