"""Variants of the quickstart config, each trained by train.py and scored the same way, side by side.

    DATA_DIR=... python benchmarks/quickstart_variants.py [--cfg exps/json/quickstart.json] [--epochs N]
        [--outdir DIR] [--variant NAME KEY=VALUE [KEY=VALUE ...]] ...

The first row is the config as shipped (--cfg, default exps/json/quickstart.json): the
reference. Each --variant adds a row: the same config with these keys changed (type-checked as
any config; a variant may change epochs unless --epochs sets them for every row). Every row
trains through train.py into its own run directory under --outdir (a fresh temporary folder if
not given) and records once, after its last epoch: Ntest samples of the EMA weights, drawn
with the same seed in every row (train.py's validation). The table shows that last line of
its results.json. Without --variant the rows are the choices the quickstart made: its noise
(sigma_1 20, rbf_scale 0.1) against the previous one (sigma_1 2, rbf_scale 0.2), and its GRF
against white noise. A row takes about as long as the quickstart (10 minutes on 2 CPU cores).
"""

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import train  # noqa: E402
from src.config import ConfigError, config_from_dict, load_config, parse_key_value  # noqa: E402
from src.data import steps_per_epoch, validation_count  # noqa: E402

QUICKSTART = REPO / "exps" / "json" / "quickstart.json"
DEFAULT_VARIANTS = [["previous noise", "sigma_1=2.0", "rbf_scale=0.2"], ["white noise", "white_noise=true"]]
COLUMNS = ("loss", "loss_valid", "w_var", "w_skew", "w_total", "w_rough")


def training_steps(args) -> int:
    """Optimiser steps of a train.py run of this config."""
    n_train = args.ntrain - validation_count(args.ntrain, args.val_size)
    return args.epochs * steps_per_epoch(n_train, args.batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default=str(QUICKSTART), help="the reference config")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of every row (default: each row's own, so a variant may set epochs)")
    parser.add_argument("--outdir", default=None, help="keep the run directories here (default: a temporary one)")
    parser.add_argument("--variant", nargs="+", action="append", metavar=("NAME", "KEY=VALUE"),
                        help="a row: its name, then the config keys it changes")
    cli = parser.parse_args()

    try:
        reference = load_config(cli.cfg)
    except ConfigError as error:
        parser.error(str(error))
    rows = [(f"{Path(cli.cfg).name} (reference)", {})]
    for name, *changes in cli.variant or DEFAULT_VARIANTS:
        try:
            rows.append((name, dict(parse_key_value(item) for item in changes)))
        except argparse.ArgumentTypeError as error:
            parser.error(f"--variant {name}: {error}")
    configs = []
    for name, changes in rows:
        try:
            args = config_from_dict(asdict(reference) | changes, source=f"--variant {name}")
        except ConfigError as error:
            parser.error(str(error))
        epochs = cli.epochs or args.epochs
        configs.append(replace(args, epochs=epochs, record_interval=epochs))

    outdir = Path(cli.outdir or tempfile.mkdtemp(prefix="quickstart_variants_"))
    run_dirs = [outdir / str(index) for index in range(len(rows))]
    taken = [str(d) for d in run_dirs if d.exists()]
    if taken:  # never train into (and append to) an earlier run
        parser.error(f"run directories already exist: {', '.join(taken)}; pass another --outdir")
    results = []
    for (name, changes), args, run_dir in zip(rows, configs, run_dirs):
        run_dir.mkdir(parents=True)
        cfg = run_dir / "variant.json"
        cfg.write_text(json.dumps(asdict(args)))
        started = time.time()
        if train.main(["--cfg", str(cfg), "--savedir", str(run_dir)]) != 0:
            sys.exit(f"error: training {name} failed")
        last = json.loads((run_dir / "results.json").read_text().splitlines()[-1])
        results.append((name, changes, time.time() - started, last))

    print(f"\nNtest {reference.Ntest} samples per row; run directories in {outdir}\n")
    print("| variant | changes | steps | wall (s) | " + " | ".join(COLUMNS) + " |")
    print("|---|---|---|---|" + "---|" * len(COLUMNS))
    for (name, changes, wall, last), args in zip(results, configs):
        cells = [f"{last[c]:.4f}" if last.get(c) is not None else "-" for c in COLUMNS]
        changed = " ".join(f"{k}={v}" for k, v in changes.items()) or "-"
        print(f"| {name} | {changed} | {training_steps(args)} | {wall:.0f} | "
              + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
