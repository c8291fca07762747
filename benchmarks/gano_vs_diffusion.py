"""GANO against the diffusion operator for the same training wall time, side by side in one run.

    DATA_DIR=data/synthetic_volcano python -m benchmarks.gano_vs_diffusion [--minutes 4] [--seeds 0 1 2]
        [--n_samples 256] [--sbgm_cfg exps/json/quickstart.json] [--gan_cfg exps/json/gano-quickstart.json]

For each seed and method: train.py / train_gano.py on its config with that seed (epochs
unbounded, no validation during training), stopped by SIGUSR1 (the Slurm warning the runs
already handle) ``--minutes`` after the run has loaded its data; then ``--n_samples`` samples of
the EMA weights of its model.pt, scored against the training split by the project's metrics,
and timed per 64 samples. The held-out row is the validation split itself, the same number of
functions: the metrics' floor (a perfect generator scores about this). Means and standard
deviations are over the seeds (each seed: its own split, initialisation, training noise and
sampling noise). Prints markdown tables: per seed, then the summary.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TQDM_DISABLE", "1")  # the tables are the output

from src import methods  # noqa: E402
from src.cli import STOPPED_EXIT  # noqa: E402
from src.config import config_from_dict, load_config  # noqa: E402
from src.data import load_data, steps_per_epoch, validation_count  # noqa: E402
from src.evaluation import held_out_floor, load_model, score_samples  # noqa: E402
from src.distributed import default_device  # noqa: E402
from src.experiment import build_noise, sample  # noqa: E402
from benchmarks.seed_spread import mean_spread, table_header  # noqa: E402

COLUMNS = ("w_var", "w_skew", "w_total", "w_rough")
NAMES = {"sbgm": "diffusion operator", "gan": "GANO"}


def train_for(method: str, cfg: Path, seed: int, seconds: float, run_dir: Path) -> tuple[object, int]:
    """Train ``method`` on ``cfg`` with ``seed`` for ``seconds`` of training; (config, optimiser steps)."""
    values = json.loads(cfg.read_text()) | {"seed": seed, "epochs": 100_000, "record_interval": 10**9}
    args = config_from_dict(values, source=str(cfg), method=method)
    run_dir.mkdir(parents=True)
    (run_dir / "cfg.json").write_text(json.dumps(asdict(args)))
    environment = {**os.environ, "TQDM_DISABLE": "1"}
    environment.pop("SLURM_JOB_ID", None)  # a local run: the stop signal requeues nothing
    process = subprocess.Popen([sys.executable, str(ROOT / methods.entry(method).train), "--cfg", str(run_dir / "cfg.json"),
                                "--savedir", str(run_dir)], env=environment, stdout=subprocess.DEVNULL)
    # The clock starts when the run has its data and stop handler (config.json is written then).
    while not (run_dir / "config.json").exists() and process.poll() is None:
        time.sleep(0.2)
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)
        process.wait()
    if process.returncode not in (0, STOPPED_EXIT):  # finished, or stopped by the signal above
        raise SystemExit(f"{methods.entry(method).train} failed on {cfg} (seed {seed}), exit {process.returncode}")
    state = torch.load(run_dir / "model.pt", weights_only=True)
    # Training steps done (discriminator steps for GANO).
    n_train = args.ntrain - validation_count(args.ntrain, args.val_size)
    return args, state["epoch"] * steps_per_epoch(n_train, args.batch_size) + state["step"]


def score(method: str, args, run_dir: Path, n_samples: int, seed: int, data_dir: str) -> dict:
    device = default_device()
    train, valid = load_data(args, data_dir)
    model, _ = load_model(methods.get(method), args, run_dir / "model.pt", device)
    noise_sampler = build_noise(args, args.data_resolution, device)
    started = time.perf_counter()
    samples = sample(methods.get(method), model, args, noise_sampler, n_samples, 64, seed=1000 + seed, progress=False)
    seconds_per_64 = (time.perf_counter() - started) * 64 / n_samples
    metrics = score_samples(samples, train, args.metric_kind)
    floor = held_out_floor(valid, train, args.metric_kind, n_samples)
    return {"metrics": metrics, "floor": floor, "seconds_per_64": seconds_per_64, "n": len(samples),
            "n_floor": min(n_samples, len(valid))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=4.0, help="training wall time of each run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n_samples", type=int, default=256)
    parser.add_argument("--sbgm_cfg", type=Path, default=ROOT / "exps" / "json" / "quickstart.json")
    parser.add_argument("--gan_cfg", type=Path, default=ROOT / "exps" / "json" / "gano-quickstart.json")
    parser.add_argument("--outdir", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    cli = parser.parse_args()
    data_dir = os.environ.get("DATA_DIR")
    if not data_dir:
        raise SystemExit("set DATA_DIR (python -m src.synthetic --outdir DIR makes synthetic data)")
    configs = {"sbgm": cli.sbgm_cfg, "gan": cli.gan_cfg}
    for method, cfg in configs.items():
        load_config(cfg, method)  # a bad config stops here, before any training

    with tempfile.TemporaryDirectory() as temporary:
        outdir = cli.outdir or Path(temporary)
        results = {method: [] for method in configs}
        print(f"{cli.minutes:g} min of training per run on {torch.get_num_threads()} threads, {cli.n_samples} samples, "
              f"seeds {cli.seeds}\n")
        print(table_header(["method", "seed", "steps", *COLUMNS, "s / 64 samples", "held-out w_total"]))
        for seed in cli.seeds:
            for method, cfg in configs.items():
                run_dir = outdir / f"{method}-seed{seed}"
                args, steps = train_for(method, cfg, seed, 60 * cli.minutes, run_dir)
                result = score(method, args, run_dir, cli.n_samples, seed, data_dir) | {"steps": steps}
                results[method].append(result)
                print(f"| {NAMES[method]} | {seed} | {steps} | "
                      + " | ".join(f"{result['metrics'][c]:.4f}" for c in COLUMNS)
                      + f" | {result['seconds_per_64']:.2f} | {result['floor']['w_total']:.4f} |", flush=True)

        print(f"\nMean +- standard deviation over {len(cli.seeds)} seeds; held-out: the validation split, "
              f"{results['sbgm'][0]['n_floor']} functions (the floor)\n")
        print(table_header(["samples", "steps", *COLUMNS, "s / 64 samples"]))
        for method, rows in results.items():
            print(f"| {NAMES[method]} ({configs[method].name}) | {mean_spread([r['steps'] for r in rows], 0)} | "
                  + " | ".join(mean_spread([r["metrics"][c] for r in rows]) for c in COLUMNS)
                  + f" | {mean_spread([r['seconds_per_64'] for r in rows], 2)} |")
        floors = results["sbgm"]
        print("| held-out data | | " + " | ".join(mean_spread([r["floor"][c] for r in floors]) for c in COLUMNS) + " | |")


if __name__ == "__main__":
    main()
