"""Posterior sampling (src/posterior.py) beside the classical completions, over training seeds.

    python -m benchmarks.posterior --outdir /tmp/post_bench \\
        --data volcano=data/synthetic_volcano grf=data/grf/grf.npy \\
        --cfg volcano=exps/json/quickstart.json grf=grf.json [--set epochs=2 ...] [--seeds 0 1 2] \\
        [--n_observations 8] [--K 8] [--sampler L=10 T=10] [--unobserved 0.3]

Per dataset (``volcano``: a folder of .int files; ``grf``: the known-law array of
``python -m src.synthetic --kind grf``) and training seed, trains the config (with ``--set``'s keys
and ``seed``) into ``OUTDIR/<dataset>/seed<s>`` (an existing run there is reused), then completes
the first ``--n_observations`` held-out functions on the training grid, for each task:

- ``mask-blobs`` (and, for volcano, ``mask-coherence``: the low-coherence pixels): ``--unobserved``
  of the pixels hidden; beside the posterior, ``linear`` (scipy's griddata, nearest outside the
  hull) and ``biharmonic`` (thin-plate spline, scipy's RBFInterpolator) interpolation of the
  observed pixels;
- ``average-2x``: the 2 x 2 block means given; beside it ``bicubic`` upsampling of the coarse function.

Columns: ``error`` on the unobserved pixels (the posterior's: of the samples' mean; phases: mean
absolute wrapped difference in radians, else RMS), ``sample error`` (each completion's),
``w_total`` and ``w_rough`` (phases) of the completed functions against the training split
(`src.evaluation.score_samples`: interpolation over-smooths), ``misfit`` (RMS of A u - y: the
observation kept), ``calibration`` (the truth's unobserved values inside the samples' central 90
%), network evaluations and seconds per completed function. Cells: mean +- standard deviation over
the training seeds (the held-out functions are each seed's split). Samples are K per observation,
baselines one: the Wasserstein metrics of the posterior pool K times as many functions.
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import scipy.interpolate
import torch

os.environ.setdefault("TQDM_DISABLE", "1")  # the table is the output

from benchmarks.runs import train_run  # noqa: E402
from benchmarks.seed_spread import mean_spread, table_header  # noqa: E402
from src.cli import parse_key_value  # noqa: E402
from src.conditional import (blob_mask, complete, completion_metrics, local_coherence,  # noqa: E402
                             lowest_fraction_observed, observation_misfit, unobserved_pixels)
from src.config import config_from_dict, from_command_line  # noqa: E402
from src.data import keyed_generator, load_data  # noqa: E402
from src.distributed import default_device  # noqa: E402
from src.evaluation import load_model, score_samples  # noqa: E402
from src.experiment import build_noise  # noqa: E402
from src.methods.diffusion import METHOD as DIFFUSION, build_sigmas, network_evaluations  # noqa: E402
from src.posterior import BlockAverage, Mask, ObservationProjection  # noqa: E402

COLUMNS = ("error", "sample_error", "w_total", "w_rough", "observation_misfit", "calibration")


def interpolate(function: torch.Tensor, observed: torch.Tensor, method: str) -> torch.Tensor:
    """A completion (res, res, C) of ``function`` from its ``observed`` pixels (res, res) by
    interpolation: 'linear' (nearest outside the observed pixels' hull) or 'biharmonic'."""
    res = observed.shape[0]
    points = torch.nonzero(observed).double().numpy()
    wanted = torch.nonzero(~observed).double().numpy()
    values = function[observed].double().numpy()  # (m, C)
    if method == "linear":
        filled = scipy.interpolate.griddata(points, values, wanted, method="linear")
        outside = np.isnan(filled)
        filled[outside] = scipy.interpolate.griddata(points, values, wanted, method="nearest")[outside]
    else:  # the thin-plate spline minimises the bending energy: biharmonic interpolation
        filled = scipy.interpolate.RBFInterpolator(points, values, kernel="thin_plate_spline", neighbors=64)(wanted)
    completed = function.clone().double()
    completed[~observed] = torch.from_numpy(filled)
    return completed.reshape(res, res, -1).float()


def bicubic(coarse: torch.Tensor, factor: int) -> torch.Tensor:
    """(res, res, C) from a coarse function (res / factor, res / factor, C) by bicubic upsampling."""
    up = torch.nn.functional.interpolate(coarse.permute(2, 0, 1)[None], scale_factor=factor, mode="bicubic",
                                         align_corners=False)
    return up[0].permute(1, 2, 0)


def tasks_of(kind: str) -> list[str]:
    return ["mask-blobs"] + (["mask-coherence"] if kind == "circular" else []) + ["average-2x"]


def operator_of(task: str, truth: torch.Tensor, unobserved: float, seed: int, index: int):
    res = truth.shape[0]
    if task == "mask-blobs":
        return Mask(blob_mask(res, unobserved, keyed_generator(seed, index)))
    if task == "mask-coherence":
        return Mask(lowest_fraction_observed(local_coherence(truth[None])[0], unobserved))
    return BlockAverage(res, 2)


def seed_rows(args, run_dir: Path, data_dir: str, cli, device) -> dict:
    """{(task, method): metrics} of one trained run."""
    train, valid = load_data(args, data_dir)
    truths = valid[: cli.n_observations]
    model, _ = load_model(DIFFUSION, args, run_dir / cli.checkpoint, device)
    noise_sampler = build_noise(args, args.data_resolution, device)
    sigmas, kind = build_sigmas(args, device), args.metric_kind
    rows = {}
    for task in tasks_of(kind):
        methods = ["posterior"] + (["linear", "biharmonic"] if task.startswith("mask") else ["bicubic"])
        completions = {method: [] for method in methods}
        records = {method: [] for method in methods}
        seconds = dict.fromkeys(methods, 0.0)
        for i, truth in enumerate(truths):
            operator = operator_of(task, truth, cli.unobserved, args.seed, i)
            y = operator(truth[None])
            for method in methods:
                started = time.perf_counter()
                if method == "posterior":
                    projection = ObservationProjection(noise_sampler, operator, 0.0)
                    samples = complete(model, args, noise_sampler, sigmas, y.to(device), projection, cli.K,
                                       cli.batch_size, (cli.sample_seed, i))
                elif method == "bicubic":
                    samples = bicubic(operator.as_function(y)[0], 2)[None]
                else:
                    samples = interpolate(truth, operator.observed, method)[None]
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds[method] += time.perf_counter() - started
                row = completion_metrics(samples, truth, unobserved_pixels(operator), kind)
                records[method].append(row | {"observation_misfit": observation_misfit(samples, y, operator)})
                completions[method].append(samples)
        for method in methods:
            pooled = torch.cat(completions[method])
            metrics = {key: float(np.mean([r[key] for r in records[method]])) for key in records[method][0]}
            metrics |= score_samples(pooled, train, kind)
            evaluations = network_evaluations(args) if method == "posterior" else 0
            rows[(task, method)] = metrics | {"evaluations": evaluations, "seconds": seconds[method] / len(pooled)}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outdir", type=Path, required=True, help="where the runs are trained (reused if there)")
    parser.add_argument("--data", nargs="+", type=parse_key_value, required=True, metavar="DATASET=PATH",
                        help="volcano=<folder of .int files>, grf=<grf.npy>")
    parser.add_argument("--cfg", nargs="+", type=parse_key_value, required=True, metavar="DATASET=JSON")
    parser.add_argument("--set", nargs="+", type=parse_key_value, default=[], metavar="KEY=VALUE",
                        help="config keys changed for every dataset's training (e.g. epochs=2)")
    parser.add_argument("--sampler", nargs="+", type=parse_key_value, default=[], metavar="KEY=VALUE",
                        help="the posterior's Langevin keys (L, T, epsilon, step_rule, denoise_last)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--n_observations", type=int, default=8)
    parser.add_argument("--K", type=int, default=8, help="posterior samples per observation")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--unobserved", type=float, default=0.3, help="fraction of the pixels the masks hide")
    parser.add_argument("--sample_seed", type=int, default=1000)
    parser.add_argument("--checkpoint", default="model.pt")
    cli = parser.parse_args()
    data, configs = dict(cli.data), dict(cli.cfg)
    device = default_device()

    table = {}
    for dataset, data_dir in data.items():
        base = json.loads(Path(configs[dataset]).read_text()) | from_command_line(dict(cli.set))
        for seed in cli.seeds:
            args = config_from_dict(base | {"seed": seed}, source=f"--cfg {dataset}")
            run_dir = cli.outdir / dataset / f"seed{seed}"
            if not (run_dir / cli.checkpoint).is_file():
                os.environ["DATA_DIR"] = data_dir  # train.py reads it
                train_run(args, run_dir, "config.json")
            args = DIFFUSION.with_sampler(config_from_dict(json.loads((run_dir / "config.json").read_text())),
                                          {"sampler": "langevin", **dict(cli.sampler)}, "--sampler")
            for key, metrics in seed_rows(args, run_dir, data_dir, cli, device).items():
                table.setdefault((dataset, *key), []).append(metrics)
            print(f"  {dataset} seed {seed} done", flush=True)

    print(f"\n{cli.n_observations} held-out functions a seed, {cli.K} posterior samples each, seeds {cli.seeds}, "
          f"{device}; mean +- standard deviation over the seeds\n")
    print(table_header(["dataset", "task", "method", *COLUMNS, "evaluations", "s / function"]))
    for (dataset, task, method), per_seed in table.items():
        cells = " | ".join(mean_spread([m.get(c) for m in per_seed], 3) for c in COLUMNS)
        seconds = mean_spread([m["seconds"] for m in per_seed], 3)
        print(f"| {dataset} | {task} | {method} | {cells} | {per_seed[0]['evaluations']} | {seconds} |")


if __name__ == "__main__":
    main()
