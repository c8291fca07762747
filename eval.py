"""Evaluate a trained experiment: generate samples, super-resolve, plot.

eval.py evaluates the diffusion operator's experiments (method 'sbgm'); eval_gano.py, the
same code, GANO's (method 'gan'): the same flags, modes and output files, so plot_stats.py and
every comparison read both. From ``exps/`` (the original README), with SAVEDIR and DATA_DIR set in ``exps/env.sh``::

    bash launch_eval.py sbgm <name>/<id> --checkpoint=model.w_total.pt --mode=generate
    bash launch_eval.py sbgm <name>/<id> --checkpoint=model.w_total.pt --mode=superres
    bash launch_eval.py sbgm <name>/<id> --checkpoint=model.w_total.pt --mode=plot

which run, from the repository root::

    DATA_DIR=/path/to/volcano python eval.py --exp_name=$SAVEDIR/<name>/<id> \\
        --savedir=$SAVEDIR/<name>/<id>/eval --mode=generate

Modes:

generate  Ntest samples at the training resolution with the checkpoint's EMA weights
          (the config's sampler with the score network; the generator applied to noise for GANO):
          samples.<ckpt>.pkl, stats.<ckpt>.pkl, metrics.<ckpt>.json; w_var, w_skew and
          w_total (array data: w_mean, w_std, w_marginal, log_spectrum_rms, w_total; see
          src/metrics.py) against the experiment's gt_stats.pkl. With DATA_DIR set, also the
          mean-image metrics and the data's mean function (for the mean image figure).
superres  the same weights on a grid --factor times as fine: gt_stats_<f>x.pkl (from
          DATA_DIR at factor x the resolution), samples_<f>x.<ckpt>.pkl, stats_<f>x.<ckpt>.pkl,
          metrics_<f>x.<ckpt>.json.
plot      for every samples[_<f>x].<ckpt>.pkl in savedir: sample grids (presets 4x4, 4x5,
          4x3, four pages each), the mean images and the statistics histograms, PNG and PDF.

--sampler KEY=VALUE ... samples with the sampler keys of the config changed (sbgm only), e.g.
``--sampler sampler=heun sampler_steps=10``: one checkpoint sampled several ways. The outputs
are then named after the change, <ckpt>.sampler=heun.sampler_steps=10 for <ckpt>, so they never
overwrite the config's; pass the same flags to --mode=plot. metrics*.json records the sampler
keys used and the network evaluations per sample.

The experiment directory is only read; everything is written into --savedir, each file
atomically (a temporary file, then a rename), so a failed run leaves earlier results whole.
Runs on CUDA when present, else on the CPU.
"""

# First, before anything imports torch: libgomp reads the number of threads and how idle threads
# wait once, when torch loads it, so src/threads.py sets them up here (a run started as a script).
if __name__ == "__main__":
    from src.threads import configure
    configure()

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch

from src.config import SAMPLER_KEYS, ConfigError, load_config, parse_key_value, with_sampler
from src.evaluation import (GT_STATS, EvaluationError, check_experiment, evaluate_samples, figure_stem,
                            find_sample_factors, format_metrics, gt_stats_name, load_model, metrics_name,
                            read_pickle, read_stats, same_stats, samples_name, samples_record, stats_name)
from src.distributed import default_device
from src.experiment import build_noise, load_data, native_side, network_evaluations, sample
from src.files import write_outputs
from src.metrics import function_stats, mean_image_metrics, wasserstein_metrics
from src.plotting import (FIGURE_FORMATS, GRID_PAGES, GRID_PRESETS, figure_paths, plot_mean_images,
                          plot_sample_pages, plot_stats_histograms)

MODES = ("generate", "plot", "superres")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_name", required=True,
                        help="the experiment directory (full path), e.g. $SAVEDIR/<name>/<id>")
    parser.add_argument("--savedir", required=True,
                        help="where outputs are written (created if missing), e.g. $SAVEDIR/<name>/<id>/eval")
    parser.add_argument("--checkpoint", default="model.w_total.pt",
                        help="checkpoint file in the experiment directory (default: %(default)s)")
    parser.add_argument("--mode", required=True, choices=MODES)
    parser.add_argument("--val_batch_size", type=positive_int, default=512,
                        help="functions sampled at once (default: %(default)s)")
    parser.add_argument("--Ntest", type=positive_int, default=1024,
                        help="number of functions to sample (default: %(default)s)")
    parser.add_argument("--factor", type=positive_int, default=2,
                        help="superres: sample on a grid this many times as fine (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler's noise (default: %(default)s)")
    parser.add_argument("--sampler", nargs="+", default=[], type=parse_key_value, metavar="KEY=VALUE",
                        help=f"sample with these config keys changed, of {', '.join(SAMPLER_KEYS)} "
                             "(sbgm only); the outputs are named after them")
    cli = parser.parse_args(argv)
    # What the output files are named after: the checkpoint, and the sampler if it is changed.
    cli.outputs_of = cli.checkpoint + "".join(f".{key}={value}" for key, value in cli.sampler)
    return cli


def results(savedir: Path, args, factor: int, samples, stats: dict, metrics: dict, data_mean, epoch: int,
            cli) -> dict:
    """{path: value} of the samples pickle, the stats pickle and the metrics JSON of one set of samples."""
    checkpoint = cli.outputs_of
    record = samples_record(samples, stats, metrics, data_mean, checkpoint, epoch, factor, cli.seed, cli.Ntest)
    summary = {**metrics, "checkpoint": record["checkpoint"], "epoch": epoch, "factor": factor,
               "resolution": record["resolution"], "n_samples": len(samples), "n_requested": cli.Ntest,
               "seed": cli.seed, "network_evaluations": network_evaluations(args),
               "sampler": {key: getattr(args, key) for key in SAMPLER_KEYS if hasattr(args, key)}}
    return {savedir / samples_name(checkpoint, factor): record, savedir / stats_name(checkpoint, factor): stats,
            savedir / metrics_name(checkpoint, factor): summary}


def sample_checkpoint(cli, args, exp_dir: Path, factor: int, device):
    model, state = load_model(args, exp_dir / cli.checkpoint, device)
    epoch = int(state["last_epoch"]) + 1
    res = factor * args.data_resolution
    print(f"Sampling {cli.Ntest} functions of {res} x {res} px ({factor} x the training resolution) "
          f"with {cli.checkpoint} (epoch {epoch}, {'EMA' if state.get('ema') is not None else 'raw'} weights), "
          f"seed {cli.seed}, device {device}")
    evaluations = network_evaluations(args)
    batches = math.ceil(cli.Ntest / cli.val_batch_size)
    print(f"{evaluations} network evaluations a function: {evaluations * cli.Ntest} in all, in {batches} batch(es) "
          f"of {min(cli.val_batch_size, cli.Ntest)} functions (--Ntest and --val_batch_size set them)")
    samples = sample(model, args, build_noise(args, res, device), cli.Ntest, cli.val_batch_size, seed=cli.seed,
                     estimate=True)
    if len(samples) == 0:
        raise EvaluationError(f"all {cli.Ntest} samples diverged (NaN or inf); nothing was written. "
                              "The config's Langevin step size epsilon may be too large")
    if len(samples) < cli.Ntest:
        print(f"warning: {cli.Ntest - len(samples)} of {cli.Ntest} samples diverged and were dropped")
    return samples, epoch


def run_generate(cli, args, exp_dir: Path, savedir: Path, data_dir, device) -> list[str]:
    real_stats = read_stats(exp_dir / GT_STATS)
    real = None
    if data_dir:
        real = load_data(args, data_dir)[0]
        same = same_stats(function_stats(real, args.metric_kind), real_stats)
        if not same:
            print(f"warning: the training data under DATA_DIR={data_dir} differs from the data of "
                  f"{exp_dir / GT_STATS}; the mean image compares against DATA_DIR")
    else:
        print("note: DATA_DIR is not set, so there is no data mean: no mean-image metrics, and "
              "--mode=plot will draw no mean image")
    samples, epoch = sample_checkpoint(cli, args, exp_dir, 1, device)
    metrics, stats = evaluate_samples(samples, real_stats, real)
    print(f"{len(samples)} samples against the training data ({exp_dir / GT_STATS}):")
    print(format_metrics(metrics))
    files = results(savedir, args, 1, samples, stats, metrics, None if real is None else real.mean(0), epoch, cli)
    write_outputs(files)
    return [path.name for path in files]


def run_superres(cli, args, exp_dir: Path, savedir: Path, data_dir, device) -> list[str]:
    factor = cli.factor
    if factor < 2:
        raise EvaluationError("--mode=superres needs --factor >= 2 (use --mode=generate at the training resolution)")
    if not data_dir:
        raise EvaluationError("--mode=superres needs the environment variable DATA_DIR (the ground truth at "
                              f"{factor} x the resolution comes from the data)")
    real = load_data(args, data_dir, factor)[0]
    native = native_side(args, data_dir)
    if factor * args.resize_to > native:
        print(f"note: the ground truth at {factor * args.resize_to} px is interpolated from the data's "
              f"{native} px grid, so it has no detail finer than that grid's")
    real_stats = function_stats(real, args.metric_kind)
    samples, epoch = sample_checkpoint(cli, args, exp_dir, factor, device)
    metrics, stats = evaluate_samples(samples, real_stats, real)
    print(f"{len(samples)} samples against the training data at {factor} x the resolution "
          f"({real.shape[1]} x {real.shape[2]} px, {len(real)} functions):")
    print(format_metrics(metrics))
    files = {savedir / gt_stats_name(factor): real_stats,
             **results(savedir, args, factor, samples, stats, metrics, real.mean(0), epoch, cli)}
    write_outputs(files)
    return [path.name for path in files]


def run_plot(cli, args, exp_dir: Path, savedir: Path) -> list[str]:
    checkpoint = cli.outputs_of
    factors = find_sample_factors(savedir, checkpoint)
    if not factors:
        present = sorted(p.name for p in savedir.glob("samples*.pkl")) if savedir.is_dir() else []
        raise EvaluationError(f"no {samples_name(checkpoint)} nor samples_<factor>x.{Path(checkpoint).name}.pkl in "
                              f"{savedir} (run --mode=generate or --mode=superres first); samples there: "
                              f"{', '.join(present) if present else 'none'}")
    # Read and check every input before drawing anything.
    inputs = []
    for factor in factors:
        record = read_pickle(savedir / samples_name(checkpoint, factor), keys=("samples",))
        shape = np.shape(record["samples"])
        channels = args.function_channels
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != channels or shape[0] == 0:
            raise EvaluationError(f"{savedir / samples_name(checkpoint, factor)}: samples of shape {shape}, "
                                  f"expected (N, res, res, {channels})")
        gt_path = exp_dir / GT_STATS if factor == 1 else savedir / gt_stats_name(factor)
        stats = read_stats(savedir / stats_name(checkpoint, factor))
        inputs.append((factor, record, gt_path, read_stats(gt_path), stats))

    extensions = "{" + ",".join(FIGURE_FORMATS) + "}"
    written = []
    for factor, record, gt_path, real_stats, stats in inputs:
        samples = torch.from_numpy(np.asarray(record["samples"]))
        print(f"{samples_name(checkpoint, factor)}: {len(samples)} samples of "
              f"{samples.shape[1]} x {samples.shape[2]} px")
        stem = figure_stem("samples", checkpoint, factor)
        plot_sample_pages(samples, savedir, stem, kind=args.metric_kind)
        written.append(f"{stem}.{{{','.join(GRID_PRESETS)}}}.{{0..{GRID_PAGES - 1}}}.{extensions}")

        stem = figure_stem("mean_sample", checkpoint, factor)
        if record.get("data_mean") is not None:
            data_mean = torch.from_numpy(np.asarray(record["data_mean"]))[None]
            # No suptitle: it would sit over the panel titles; the metrics are printed instead.
            plot_mean_images(data_mean, samples, figure_paths(savedir, stem), kind=args.metric_kind)
            print(format_metrics(mean_image_metrics(data_mean, samples, args.metric_kind)))
            written.append(f"{stem}.{extensions}")
        else:
            print(f"note: {samples_name(checkpoint, factor)} holds no data mean (DATA_DIR was not set when it "
                  f"was generated), so {stem}.png is not drawn")

        stem = figure_stem("stats", checkpoint, factor)
        metrics = wasserstein_metrics(real_stats, stats)
        plot_stats_histograms(real_stats, stats, metrics, figure_paths(savedir, stem))
        print(f"{stats_name(checkpoint, factor)} against {gt_path}:")
        print(format_metrics(metrics))
        written.append(f"{stem}.{extensions}")
    return written


def main(argv=None, method: str = "sbgm") -> int:
    """eval.py's command line; ``method`` 'gan' is eval_gano.py's (the same, for GANO's experiments)."""
    cli = parse_args(argv)
    exp_dir, savedir = Path(cli.exp_name), Path(cli.savedir)
    try:
        check_experiment(exp_dir, None if cli.mode == "plot" else cli.checkpoint)
        args = with_sampler(load_config(exp_dir / "config.json", method), dict(cli.sampler))
        if cli.mode == "plot":
            written = run_plot(cli, args, exp_dir, savedir)
        else:
            run = run_generate if cli.mode == "generate" else run_superres
            written = run(cli, args, exp_dir, savedir, os.environ.get("DATA_DIR"), default_device())
    except (EvaluationError, ConfigError, ValueError, FileNotFoundError, NotADirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote to {savedir}:")
    for name in written:
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
