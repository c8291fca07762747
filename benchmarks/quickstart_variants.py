"""Variants of the quickstart config, each trained by train.py and scored the same way, side by side.

    DATA_DIR=... python -m benchmarks.quickstart_variants [--cfg exps/json/quickstart.json] [--epochs N]
        [--Ntest N] [--seeds S [S ...]] [--outdir DIR] [--variant NAME KEY=VALUE [KEY=VALUE ...]] ...
        [--no_variants] [--sampler NAME KEY=VALUE [KEY=VALUE ...]] ...

The first row is the config as shipped (--cfg, default exps/json/quickstart.json): the
reference. Each --variant adds a row: the same config with these keys changed (type-checked as
any config; a variant may change epochs unless --epochs sets them for every row). Every row
trains through train.py into its own run directory under --outdir (a fresh temporary folder if
not given) and records once, after its last epoch: Ntest samples of the EMA weights, drawn
with the same seed in every row (train.py's validation). The table shows that last line of
its results.json. Without --variant the rows are the choices the quickstart made: its noise
(sigma_1 20, rbf_scale 0.1) against the previous one (sigma_1 2, rbf_scale 0.2), and its GRF
against white noise. A row takes about as long as the quickstart (3.5 minutes on 2 CPU cores).

``--seeds`` trains every variant once per seed (the config's ``seed``: weights, split and
training noise; validation samples with seed + epoch), into ``<outdir>/<row>-seed<S>``; each
cell is then the mean +- standard deviation over the seeds. Each ``--sampler`` adds, under
every variant, a row that samples the same last weights (EMA) with these sampler keys changed
(eval.py --sampler's keys), Ntest functions with the validation's seed, scored the same way
against the training split, so that samplers compare on the same trained models.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from src.cli import parse_key_value
from src.config import ConfigError, config_from_dict, from_command_line, load_config
from src.data import load_data, steps_per_epoch, validation_count
from src.distributed import default_device
from src.evaluation import load_model, score_samples
from src.experiment import build_noise, sample
from src.methods.diffusion import METHOD as DIFFUSION, network_evaluations
from benchmarks.runs import train_run
from benchmarks.seed_spread import mean_spread, table_header

REPO = Path(__file__).resolve().parents[1]

QUICKSTART = REPO / "exps" / "json" / "quickstart.json"
DEFAULT_VARIANTS = [["previous noise", "sigma_1=2.0", "rbf_scale=0.2"], ["white noise", "white_noise=true"]]
COLUMNS = ("loss", "loss_valid", "w_var", "w_skew", "w_total", "w_rough")


def training_steps(args) -> int:
    """Optimiser steps of a train.py run of this config."""
    n_train = args.ntrain - validation_count(args.ntrain, args.val_size)
    return args.epochs * steps_per_epoch(n_train, args.batch_size)


def named_changes(parser, items: list[list[str]], flag: str) -> list[tuple[str, dict]]:
    """(name, {key: value}) of each ``flag NAME KEY=VALUE ...`` of the command line."""
    named = []
    for name, *changes in items:
        try:
            named.append((name, dict(parse_key_value(item) for item in changes)))
        except argparse.ArgumentTypeError as error:
            parser.error(f"{flag} {name}: {error}")
    return named


def sampler_scores(run_dir: Path, samplers: list[tuple[str, dict]], device) -> list[dict]:
    """The run's last weights sampled by each sampler as its validation samples (Ntest
    functions, the last validation's seed), scored against its training split."""
    args = load_config(run_dir / "config.json")
    train, _ = load_data(args, os.environ["DATA_DIR"])
    model, _ = load_model(DIFFUSION, args, run_dir / "model.pt", device)
    noise_sampler = build_noise(args, args.data_resolution, device)
    scores = []
    for _, changes in samplers:
        samples = sample(DIFFUSION, model, DIFFUSION.with_sampler(args, changes), noise_sampler, args.Ntest, args.val_batch_size,
                         seed=args.seed + args.epochs, progress=False)
        scores.append(score_samples(samples, train, args.metric_kind))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default=str(QUICKSTART), help="the reference config")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of every row (default: each row's own, so a variant may set epochs)")
    parser.add_argument("--Ntest", type=int, default=None, help="functions sampled and scored (default: the config's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="train every variant with each of these seeds (default: once, with the config's)")
    parser.add_argument("--outdir", default=None, help="keep the run directories here (default: a temporary one)")
    parser.add_argument("--variant", nargs="+", action="append", metavar=("NAME", "KEY=VALUE"),
                        help="a row: its name, then the config keys it changes")
    parser.add_argument("--no_variants", action="store_true", help="the reference only (no default variants)")
    parser.add_argument("--sampler", nargs="+", action="append", default=[], metavar=("NAME", "KEY=VALUE"),
                        help="under every variant, a row sampling its weights with these sampler keys changed")
    cli = parser.parse_args()

    try:
        reference = load_config(cli.cfg)
    except ConfigError as error:
        parser.error(str(error))
    variants = [] if cli.no_variants else cli.variant or DEFAULT_VARIANTS
    rows = [(f"{Path(cli.cfg).name} (reference)", {})] + named_changes(parser, variants, "--variant")
    samplers = named_changes(parser, cli.sampler, "--sampler")
    configs = []
    for name, changes in rows:
        try:
            args = config_from_dict(asdict(reference) | from_command_line(changes), source=f"--variant {name}")
            for sampler_name, sampler_changes in samplers:
                DIFFUSION.with_sampler(args, sampler_changes, source=f"--sampler {sampler_name}")
        except ConfigError as error:
            parser.error(str(error))
        epochs = cli.epochs or args.epochs
        configs.append(replace(args, epochs=epochs, record_interval=epochs, Ntest=cli.Ntest or args.Ntest))

    seeds = cli.seeds or [None]
    outdir = Path(cli.outdir or tempfile.mkdtemp(prefix="quickstart_variants_"))
    run_dirs = [[outdir / (str(index) if seed is None else f"{index}-seed{seed}") for seed in seeds]
                for index in range(len(rows))]
    taken = [str(d) for dirs in run_dirs for d in dirs if d.exists()]
    if taken:  # never train into (and append to) an earlier run
        parser.error(f"run directories already exist: {', '.join(taken)}; pass another --outdir")
    device = default_device()
    results = []  # per row: (training seconds, last results.json line, [score of each sampler]) per seed
    for (name, _), args, dirs in zip(rows, configs, run_dirs):
        per_seed = []
        for seed, run_dir in zip(seeds, dirs):
            started = time.time()
            train_run(args if seed is None else replace(args, seed=seed), run_dir, "variant.json")
            wall = time.time() - started
            last = json.loads((run_dir / "results.json").read_text().splitlines()[-1])
            per_seed.append((wall, last, sampler_scores(run_dir, samplers, device)))
        results.append(per_seed)

    seeds_said = "" if cli.seeds is None else f"; mean +- standard deviation over seeds {cli.seeds}"
    print(f"\nNtest {configs[0].Ntest} samples per row{seeds_said}; run directories in {outdir}\n")
    print(table_header(["variant", "changes", "sampler", "evaluations", "steps", "wall (s)", *COLUMNS]))
    for (name, changes), args, per_seed in zip(rows, configs, results):
        changed = " ".join(f"{k}={v}" for k, v in changes.items()) or "-"
        wall = statistics.mean(wall for wall, _, _ in per_seed)
        cells = [mean_spread([last.get(c) for _, last, _ in per_seed]) for c in COLUMNS]
        print(f"| {name} | {changed} | {args.sampler} (config) | {network_evaluations(args)} | "
              f"{training_steps(args)} | {wall:.0f} | " + " | ".join(cells) + " |")
        for index, (sampler_name, sampler_changes) in enumerate(samplers):
            scores = [scores[index] for _, _, scores in per_seed]
            cells = [mean_spread([score.get(c) for score in scores]) if c.startswith("w_") else "-" for c in COLUMNS]
            evaluations = network_evaluations(DIFFUSION.with_sampler(args, sampler_changes))
            print(f"| {name} | {changed} | {sampler_name} | {evaluations} | - | - | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
