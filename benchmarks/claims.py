"""The paper's two claims measured with this code: Gaussian-random-field noise against white noise,
and one trained model sampled at 2x and 4x its training resolution, with the spread over seeds.

    python -m benchmarks.claims [--datasets volcano grf] [--seeds 0 1 2] [--factors 1 2 4]
        [--outdir DIR] [--figure assets/claims.png] [--cfg exps/json/quickstart.json]
        [--resolution 16] [--npad 2] [--epochs 6] [--n_samples 64] [--noises white GRF] [--rbf_scale L]
        [--samplers config sampler_start=prior ...]

For each dataset, each noise (``white``: white_noise true; ``GRF``: the config's field) and each
seed, train.py trains the config (--cfg with --resolution, --npad, --epochs and that seed: the
weights, the split and the training noise), and eval.py samples its last weights (model.pt,
EMA) at each factor: --mode=generate at 1, --mode=superres --factor F above, --n_samples
functions with the sampler of the config, scored against the training split at that resolution
(metrics.model.pt.json, metrics_<F>x.model.pt.json); ``--samplers`` samples each run once per
entry, a row each: ``config`` (the config's sampler) or eval.py's ``--sampler`` changes, comma
separated (``sampler_start=prior``: the same sampler from the prior). The held-out row scores as many functions
of the validation split the same way: the floor that a perfect model reaches at that sample size.
Every cell is the mean +- standard deviation over the seeds.

The datasets, made if their folder holds none:
- ``volcano``: the synthetic Volcano interferograms (data/synthetic_volcano, or --volcano_dir;
  ``python -m src.synthetic``), 128 px files resized to each resolution; circular metrics.
- ``grf``: the known-law dataset (data/synthetic_grf/grf.npy, or --grf_dir; ``python -m
  src.synthetic --kind grf``) written at the largest factor's grid, so that the ground truth at
  that factor is the law itself: the field metrics, and two columns against the exact law
  (`src.synthetic.grf.GRFLaw`), not a finite sample: ``exact_marginal``, the Wasserstein
  distance between the pooled pixel values and the exact pixel law, and ``exact_spectrum``, the
  log-spectrum distance (`src.metrics.log_spectrum_distance`) between the set's mean spectrum
  and the exact one. Below that grid the data are resized (which changes the law): only the
  empirical metrics.

The defaults train at 14 px (16 px resized, 2 cropped) for 6 epochs, so that the 12 runs and
their sampling at 14, 28 and 56 px take about an hour on 2 CPU cores. At the paper's scale on a
GPU (the paper trains at 60 px and samples at 120):
``python -m benchmarks.claims --cfg exps/json/rbf-64px-superres.json --resolution 64 --npad 4
--factors 1 2 --epochs <E> --n_samples 256``, with the data at 128 px (--grf_dir's dataset is
then written at 128 px).
"""

import argparse
import json
import os
import pickle
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

# Before torch, which imports tqdm: tqdm reads TQDM_DISABLE when it is imported.
os.environ.setdefault("TQDM_DISABLE", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

import eval as eval_script  # noqa: E402
from src.config import ConfigError, config_from_dict, load_config  # noqa: E402
from src.evaluation import held_out_floor, metrics_name, samples_name  # noqa: E402
from src.data import load_data  # noqa: E402
from src.metrics import field_stats, log_spectrum_distance  # noqa: E402
from src.synthetic import write_dataset  # noqa: E402
from src.synthetic.grf import GRFLaw, dataset_paths, read_law, write_grf_dataset  # noqa: E402
from benchmarks.runs import train_run  # noqa: E402
from benchmarks.seed_spread import (errorbar_line, mean_spread, save_w_total_figure, table_header,  # noqa: E402
                                     w_total_figure)

NOISES = {"white": {"white_noise": True}, "GRF": {"white_noise": False}}
COLUMNS = {"circular": ("w_total", "w_var", "w_skew", "w_rough"),
           "field": ("w_total", "w_mean", "w_std", "w_marginal", "log_spectrum_rms")}
EXACT_COLUMNS = ("exact_marginal", "exact_spectrum")
CHECKPOINT = "model.pt"


def volcano_data(folder: Path) -> Path:
    """The synthetic Volcano interferograms in ``folder`` (written if it holds none)."""
    if not any(folder.rglob("*.int")):
        write_dataset(folder, 4096, seed=0)
    return folder


def grf_data(folder: Path, resolution: int) -> Path:
    """The known-law dataset on a resolution x resolution grid (written if missing)."""
    array_path, _ = dataset_paths(folder)
    if not array_path.exists():
        write_grf_dataset(folder, 4096, seed=0, law=GRFLaw(resolution=resolution))
    law = read_law(folder)
    if law.resolution != resolution:
        sys.exit(f"error: {array_path} is on a {law.resolution} px grid; these factors need {resolution} px: "
                 "pass another --grf_dir")
    return array_path


def exact_law_metrics(u: torch.Tensor, law: GRFLaw) -> dict:
    """Functions u (N, M, M, C) against the law itself: the Wasserstein distance between their
    pooled pixel values and the exact pixel law, the integral of |F_n - F| (per channel, averaged),
    and the log-spectrum distance of their mean radial spectrum to the exact one."""
    scale = np.sqrt(law.amplitude_second_moment())
    marginal = []
    for channel in range(u.shape[-1]):
        pixels = np.sort(u[..., channel].double().flatten().numpy())
        reach = max(np.abs(pixels).max(), 12 * scale)
        x = np.linspace(-reach, reach, 40001)
        empirical = np.searchsorted(pixels, x, side="right") / len(pixels)
        marginal.append(np.trapezoid(np.abs(empirical - law.marginal_cdf(x)), x))
    exact_spectrum = np.repeat(law.expected_radial_spectrum(u.shape[1])[None], u.shape[-1], axis=0)
    return {"exact_marginal": float(np.mean(marginal)),
            "exact_spectrum": log_spectrum_distance(field_stats(u)["spectrum"].mean(0), exact_spectrum)}


def train_and_score(args, run_dir: Path, factors: list[int], n_samples: int, law, samplers: list[str],
                    sampling_seed: int = 0) -> dict:
    """{sampler: {factor: metrics}} of the trained run's samples at each factor, drawn by eval.py
    with ``sampling_seed`` and each of ``samplers`` (see the module's docstring)."""
    train_run(args, run_dir, "claims.json")
    scores, eval_dir = {}, run_dir / "eval"
    for sampler in samplers:
        changes = [] if sampler == "config" else sampler.split(",")
        outputs_of = CHECKPOINT + "".join(f".{change}" for change in changes)  # eval.py's name of them
        scores[sampler] = {}
        for factor in factors:
            mode = ["--mode=generate"] if factor == 1 else ["--mode=superres", f"--factor={factor}"]
            if eval_script.main([f"--exp_name={run_dir}", f"--savedir={eval_dir}", f"--checkpoint={CHECKPOINT}",
                                 f"--Ntest={n_samples}", f"--val_batch_size={n_samples}", f"--seed={sampling_seed}",
                                 *mode, *(["--sampler", *changes] if changes else [])]) != 0:
                sys.exit(f"error: evaluating {run_dir} at factor {factor} with {sampler} failed")
            scores[sampler][factor] = json.loads((eval_dir / metrics_name(outputs_of, factor)).read_text())
            if law is not None and factor == factors[-1]:
                with open(eval_dir / samples_name(outputs_of, factor), "rb") as f:
                    samples = torch.from_numpy(pickle.load(f)["samples"])
                scores[sampler][factor].update(exact_law_metrics(samples, law))
    return scores


def held_out_scores(args, data: Path, factors: list[int], n_samples: int, law) -> dict:
    """{factor: metrics} of the held-out floor at each factor (`held_out_floor`: n_samples validation
    functions against the training split at that factor), with `exact_law_metrics` at the last factor
    when the law is known."""
    scores = {}
    for factor in factors:
        train, valid = load_data(args, str(data), factor)
        scores[factor] = held_out_floor(valid, train, args.metric_kind, n_samples)
        if law is not None and factor == factors[-1]:
            scores[factor].update(exact_law_metrics(valid[:n_samples], law))
    return scores


def draw_figure(path: Path, panels: dict) -> None:
    """w_total against the resolution, one line per noise and the held-out floor, a panel per dataset."""
    figure, axes = w_total_figure(len(panels), (5.2, 4.0))
    for axis, (dataset, (resolutions, lines)) in zip(axes, panels.items()):
        for label, per_factor in lines.items():
            style = {"linestyle": "--", "color": "grey"} if label == "held-out data" else {"marker": "o"}
            errorbar_line(axis, resolutions, per_factor, label=label, **style)
        axis.set_xscale("log", base=2)
        axis.set_xticks(resolutions, [str(r) for r in resolutions])
        axis.set_title(dataset)
    save_w_total_figure(figure, axes, path, "resolution sampled (px); trained at the first")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["volcano", "grf"], choices=["volcano", "grf"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 2, 4], help="1, then the super-resolutions")
    parser.add_argument("--cfg", default=str(REPO / "exps" / "json" / "quickstart.json"))
    parser.add_argument("--resolution", type=int, default=16, help="resize the data to this side for training")
    parser.add_argument("--npad", type=int, default=2, help="then crop this many pixels")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--n_samples", type=int, default=64, help="functions sampled and scored at each factor")
    parser.add_argument("--noises", nargs="+", default=list(NOISES), choices=list(NOISES))
    parser.add_argument("--rbf_scale", type=float, default=None,
                        help="the GRF noise's length scale l (default: the config's; correlation length 2 l^2)")
    parser.add_argument("--outdir", type=Path, default=None, help="the runs (default: a temporary folder)")
    parser.add_argument("--volcano_dir", type=Path, default=REPO / "data" / "synthetic_volcano")
    parser.add_argument("--grf_dir", type=Path, default=REPO / "data" / "synthetic_grf")
    parser.add_argument("--figure", type=Path, default=None)
    parser.add_argument("--samplers", nargs="+", default=["config"],
                        help="'config', or eval.py --sampler changes KEY=VALUE,KEY=VALUE: a row each")
    cli = parser.parse_args()
    if cli.factors[0] != 1 or sorted(set(cli.factors)) != cli.factors:
        parser.error(f"--factors must start at 1 and increase, got {cli.factors}")
    try:
        base = replace(load_config(cli.cfg), resolution=cli.resolution, npad=cli.npad, epochs=cli.epochs,
                       record_interval=cli.epochs, Ntest=cli.n_samples)
        if cli.rbf_scale is not None:
            base = replace(base, rbf_scale=cli.rbf_scale)
        configs = {noise: config_from_dict(asdict(base) | NOISES[noise], source=f"--cfg {cli.cfg} ({noise} noise)")
                   for noise in cli.noises}
    except ConfigError as error:
        parser.error(str(error))
    outdir = cli.outdir or Path(tempfile.mkdtemp(prefix="claims_"))
    if outdir.exists() and any(outdir.iterdir()):
        parser.error(f"--outdir {outdir} is not empty: never train into an earlier run; pass another")

    tables, panels = [], {}
    for dataset in cli.datasets:
        native = cli.factors[-1] * base.resize_to
        data = volcano_data(cli.volcano_dir) if dataset == "volcano" else grf_data(cli.grf_dir, native)
        law = read_law(data) if dataset == "grf" else None
        os.environ["DATA_DIR"] = str(data)  # train.py and eval.py read the data from there
        scores, floors = {}, {}
        for seed in cli.seeds:
            for noise, args in configs.items():
                run_dir = outdir / f"{dataset}-{noise}-seed{seed}"
                scores[noise, seed] = train_and_score(replace(args, seed=seed), run_dir, cli.factors, cli.n_samples, law,
                                                      cli.samplers)
            trained = load_config(run_dir / "config.json")  # the data format resolved
            floors[seed] = held_out_scores(trained, data, cli.factors, cli.n_samples, law)
        kind = trained.metric_kind
        columns = COLUMNS[kind] + (EXACT_COLUMNS if law is not None else ())
        rows = [(noise if len(cli.samplers) == 1 else f"{noise}, {sampler}",
                 {f: [scores[noise, s][sampler][f] for s in cli.seeds] for f in cli.factors})
                for noise in configs for sampler in cli.samplers]
        rows.append(("held-out data", {f: [floors[s][f] for s in cli.seeds] for f in cli.factors}))
        resolutions = [f * trained.data_resolution for f in cli.factors]
        lines = [f"### {dataset} ({data}), trained at {resolutions[0]} px for {cli.epochs} epochs; "
                 f"{cli.n_samples} samples; mean +- standard deviation over seeds {cli.seeds}\n",
                 table_header(["noise", "factor", "resolution", *columns])]
        for factor, resolution in zip(cli.factors, resolutions):
            for label, per_factor in rows:
                cells = [mean_spread([m.get(c) for m in per_factor[factor]]) for c in columns]
                lines.append(f"| {label} | {factor} | {resolution} | " + " | ".join(cells) + " |")
        tables.append("\n".join(lines))
        panels[dataset] = (resolutions, {label: [[m["w_total"] for m in per_factor[f]] for f in cli.factors]
                                         for label, per_factor in rows})

    print(f"\nRuns in {outdir}\n")
    print("\n\n".join(tables))
    if cli.figure:
        draw_figure(cli.figure, panels)
        print(f"\nfigure: {cli.figure}")


if __name__ == "__main__":
    main()
