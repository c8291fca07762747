"""Train a diffusion operator (score-based model in function space) on Volcano InSAR data.

    DATA_DIR=/path/to/volcano python train.py --cfg exps/json/quickstart.json --savedir results/quick

From ``exps/`` (as the original README): ``RUN_LOCAL=1 bash main.sh sbgm <name> json/<file>.json``
or ``sbatch launch_exp.sh sbgm <name> json/<file>.json`` on a Slurm cluster.

The run directory holds everything: config.json (the resolved config; on restart it wins
over --cfg unless --override_cfg), results.json (one JSON line per epoch), gt_stats.pkl,
model.pt (every epoch, for resuming), model.<metric>.pt (at each new best validation metric),
and figures under noise/ and samples/. A job that is restarted (Slurm requeue) resumes from
model.pt. Runs on CUDA when present, else on the CPU.
"""

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from src.checkpoint import EMA, load_checkpoint, save_checkpoint
from src.config import Arguments, ConfigError, load_config
from src.data import VolcanoDataset
from src.diffusion import score_matching_loss
from src.experiment import build_model, build_noise, build_sigmas, default_device, describe, load_data, sample
from src.files import write_outputs
from src.metrics import circular_stats, validation_metrics
from src.plotting import figure_paths, plot_mean_images, plot_phase_grid, plot_run_overview

METRICS = ("w_skew", "w_var", "w_total", "mean_image_l2", "mean_image_phase_l2")
SAMPLES_SHOWN = 16


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, help="JSON file of config keys (see Arguments in src/config.py)")
    parser.add_argument("--savedir", required=True, help="run directory (created if missing)")
    parser.add_argument("--override_cfg", action="store_true",
                        help="use --cfg even if savedir already has a config.json; without it the saved "
                             "config wins, so that a restarted Slurm job keeps its config")
    return parser.parse_args(argv)


def resolve_config(cfg: str, savedir: Path, override: bool) -> Arguments:
    saved = savedir / "config.json"
    if saved.exists() and not override:
        print(f"Using the config saved in {saved} (pass --override_cfg to use {cfg} instead)")
        return load_config(saved)
    return load_config(cfg)


def training_loader(train: torch.Tensor, args: Arguments) -> DataLoader:
    """Shuffled batches of the training functions; an incomplete last batch is dropped unless it is the only one."""
    return DataLoader(VolcanoDataset(train, augment=args.augment), batch_size=args.batch_size, shuffle=True,
                      drop_last=len(train) >= args.batch_size, num_workers=args.num_workers,
                      persistent_workers=args.num_workers > 0)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """len(training_loader(...)) for n_train functions, without the data."""
    return n_train // batch_size if n_train >= batch_size else 1


def learning_rate(args: Arguments, step: int, total_steps: int) -> float:
    """The lr of training step ``step`` (from 0) of ``total_steps``: constant, or a cosine from lr to 0."""
    if args.lr_schedule == "cosine":
        return 0.5 * args.lr * (1.0 + math.cos(math.pi * step / total_steps))
    return args.lr


def validate(model, ema, args, train, gt_stats, noise_sampler, savedir: Path, epoch: int):
    """Sample Ntest functions with the EMA weights; return (metrics, samples, their stats)."""
    # A random stream of its own, so that when (and whether) a run validates never changes its training.
    with ema.applied_to(model) if ema is not None else torch.no_grad():
        samples = sample(model, args, noise_sampler, args.Ntest, args.val_batch_size, seed=args.seed + epoch)
    if len(samples) == 0:
        print(f"epoch {epoch}: every validation sample diverged (NaN); no metrics this time")
        return None, samples, None
    metrics, stats = validation_metrics(train, gt_stats, samples)
    plot_phase_grid(samples[:SAMPLES_SHOWN], figure_paths(savedir / "samples", str(epoch)),
                    ncols=4, suptitle=f"epoch {epoch}: w_total={metrics['w_total']:.4f}")
    plot_mean_images(train, samples, savedir / "samples" / f"mean_sample_{epoch}.png",
                     title=f"epoch {epoch}: mean_image_l2={metrics['mean_image_l2']:.4f}")
    return metrics, samples, stats


@torch.no_grad()
def validation_loss(model, ema, valid, sigmas, noise_sampler, args, generator, device):
    """Score-matching loss on the validation split with fixed noise, so epochs compare; None if no split."""
    if len(valid) == 0:
        return None
    generator.manual_seed(args.seed)
    model.eval()
    total = 0.0
    with ema.applied_to(model) if ema is not None else torch.no_grad():
        for batch in valid.split(args.val_batch_size):
            total += score_matching_loss(model, batch.to(device), sigmas, noise_sampler, generator=generator,
                                         weighting=args.loss_weighting).item() * len(batch)
    return total / len(valid)


def run(args: Arguments, savedir: Path, data_dir: str) -> None:
    device = default_device()
    torch.manual_seed(args.seed)
    train, valid = load_data(args, data_dir)
    model = build_model(args).to(device)
    noise_sampler = build_noise(args, args.data_resolution, device)
    sigmas = build_sigmas(args, device)
    ema = EMA(model, args.ema_rate) if args.ema_rate is not None else None
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    print(describe(model, args))
    print(f"{len(train)} training and {len(valid)} validation functions of shape {tuple(train.shape[1:])}, "
          f"device {device}")

    # Resume (a requeued job) before writing anything, so a checkpoint that does not fit
    # this config stops the run with the directory untouched.
    best, start_epoch = {name: float("inf") for name in METRICS}, 0
    checkpoint_path = savedir / "model.pt"
    if checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, device)
        try:
            model.load_state_dict(state["weights"])
            if ema is not None and state.get("ema") is not None:
                ema.load_state_dict(state["ema"])
            if "optimizer" in state:
                optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise ConfigError(f"{checkpoint_path} does not fit this config (use another --savedir): "
                              f"{str(error).splitlines()[0]}") from None
        best.update(state["metrics"])
        start_epoch = state["last_epoch"] + 1
        torch.manual_seed(args.seed + start_epoch)
        print(f"Resuming from {checkpoint_path} at epoch {start_epoch + 1}")

    savedir.mkdir(parents=True, exist_ok=True)
    gt_stats = circular_stats(train)
    write_outputs({savedir / "config.json": asdict(args), savedir / "gt_stats.pkl": gt_stats})
    plot_run_overview(savedir, train, noise_sampler, sigmas, n_mean=args.Ntest, seed=args.seed)

    loader = training_loader(train, args)
    valid_generator = torch.Generator(device=device)
    with open(savedir / "results.json", "a") as results:
        for epoch in range(start_epoch, args.epochs):
            started = time.time()
            model.train()
            losses = []
            for step_in_epoch, u in enumerate(tqdm(loader, desc=f"Train {epoch + 1}/{args.epochs}", leave=False)):
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(args, epoch * len(loader) + step_in_epoch, args.epochs * len(loader))
                loss = score_matching_loss(model, u.to(device), sigmas, noise_sampler, weighting=args.loss_weighting)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if ema is not None:
                    ema.update(model)
                losses.append(loss.detach())  # no device sync per step
            line = {"epoch": epoch + 1, "loss": torch.stack(losses).mean().item(),
                    "loss_valid": validation_loss(model, ema, valid, sigmas, noise_sampler, args,
                                                  valid_generator, device),
                    "lr": optimizer.param_groups[0]["lr"]}

            if (epoch + 1) % args.record_interval == 0 or epoch + 1 == args.epochs:
                metrics, samples, stats = validate(model, ema, args, train, gt_stats, noise_sampler, savedir,
                                                   epoch + 1)
                if metrics is not None:
                    line.update(metrics)
                    for name in METRICS:
                        if metrics[name] < best[name]:
                            best[name] = metrics[name]
                            save_checkpoint(savedir / f"model.{name}.pt", model, ema, optimizer, best, epoch)
                            plot_phase_grid(samples[:SAMPLES_SHOWN], figure_paths(savedir / "samples", f"best_{name}"),
                                            ncols=4, suptitle=f"best {name} = {metrics[name]:.4f} (epoch {epoch + 1})")
                            write_outputs({savedir / "samples" / f"best_{name}.pkl":
                                           {"samples": samples.numpy(), **stats, "epoch": epoch + 1, **metrics}})
            save_checkpoint(checkpoint_path, model, ema, optimizer, best, epoch)
            line["time"] = time.time() - started
            results.write(json.dumps(line) + "\n")
            results.flush()
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in line.items()))


def main(argv=None) -> int:
    cli = parse_args(argv)
    savedir = Path(cli.savedir)
    try:
        args = resolve_config(cli.cfg, savedir, cli.override_cfg)
        data_dir = os.environ.get("DATA_DIR")
        if not data_dir:
            raise ConfigError("environment variable DATA_DIR is not set: point it at the folder of *.int "
                              "files (python -m src.synthetic --outdir DIR makes a synthetic one)")
        run(args, savedir, data_dir)
    except (ConfigError, ValueError, FileNotFoundError, NotADirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
