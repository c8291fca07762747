"""The training loop both methods run: train.py (the diffusion operator) and train_gano.py (GANO).

A method is a `Trainer`: its networks, optimizers, EMA and one training step. Everything
else is here, once: the command line, the config and run directory, the data and split, the
batches, the checkpoints and exact resumption, validation sampling and its metrics, the best
checkpoints, results.json and the figures, and the stop signals of Slurm.

The run directory holds everything: config.json (the resolved config; on restart it wins over
--cfg unless --override_cfg), results.json (one JSON line per epoch), gt_stats.pkl, model.pt
(the checkpoint to resume from), model.<metric>.pt (at each new best validation metric), and
figures under noise/ and samples/.

Resuming is exact: a run stopped anywhere and restarted writes the same results.json lines (but
their times) and ends with the same weights, bit for bit on the CPU, as if never stopped. Every
random draw of training comes from a generator seeded by (seed, epoch, step) alone (the batch
order and flips by (seed, epoch)); validation and figures draw from generators of their own; and
model.pt holds the weights, optimizers, EMA, best metrics, the position (epoch, step) and the
losses of the epoch so far. On SIGUSR1 or SIGTERM (Slurm's warning before a time limit or a
preemption) the run finishes its step and writes model.pt at that step. Inside a Slurm job it
then asks Slurm to requeue the job and exits 0; anywhere else it prints how to resume
(``python resume.py <run dir>``) and exits with `STOPPED_EXIT`, so that a script that trains
and then evaluates does not evaluate an unfinished run. A finished run started again says so and
changes nothing.

The same loop runs on several processes (torchrun, srun; src/distributed.py): each rank trains
on its share of every (global) batch, DDP averages the gradients, validation splits its
samples over the ranks, and rank 0 alone writes. A checkpoint resumes under any world size.
"""

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import asdict
from pathlib import Path

import torch

from src.checkpoint import load_checkpoint, save_checkpoint
from src.config import CommonArguments, ConfigError, load_config
from src.data import epoch_batches, flip, keyed_generator, steps_per_epoch
from src.distributed import DistributedError, Shard, World, world_from_environment
from src.experiment import load_data, network_evaluations, sample, with_data
from src.files import append_line, remove_stale_temporaries, write_outputs, write_text
from src.metrics import checkpoint_metrics, function_stats, validation_metrics
from src.plotting import figure_paths, plot_functions, plot_mean_images, plot_run_overview
from src.progress import progress_bar

SAMPLES_SHOWN = 16
STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)
# The exit status of a run stopped by a signal outside Slurm: sysexits' EX_TEMPFAIL, "try again
# later", since the run resumes where it stopped. Refusals exit 2, crashes 1.
STOPPED_EXIT = 75


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss); the last good checkpoint is left as it was."""


class Trainer(ABC):
    """A method's part of training; `run` does the rest, after building it as
    ``trainer_class(args, valid, world)`` (``valid``: the validation split, on the CPU; ``world``:
    the processes of the run, `src.distributed.World`: its ``device``, and ``wrap``, which a
    trainer applies to each network it trains, for DDP).

    Attributes a method sets
    ------------------------
    method : 'sbgm' or 'gan' (the name in config.json's loading and in checkpoints)
    resume_script : the script that resumes a stopped run of the method (resume.py, resume_gano.py)
    model : the network that samples (the score network, GANO's generator)
    ema : `src.checkpoint.EMA` of the model, or None
    networks : {checkpoint key: module}, with the model under 'weights' (the modules, not
        their DDP wraps: checkpoints are the same at any world size)
    optimizers : {checkpoint key: optimizer}, the model's under 'optimizer'
    noise_sampler : the noise of the config at the training resolution
    sigmas : the noise levels drawn in the run overview figure (None: noise only)
    initial_scale : the sampler's initial state as a multiple of a noise draw (drawn with sigmas)
    """

    method: str
    resume_script: str
    sigmas = None
    initial_scale = 1.0

    @abstractmethod
    def train_step(self, u: torch.Tensor, generator: torch.Generator, step: int, shard: Shard) -> dict:
        """One step on ``u`` (on the device), the ``shard`` rows of the step's batch, drawing only
        from ``generator``, each draw for the whole batch cut to those rows (``shard.of``);
        ``step`` counts the steps of the run from 0. Returns {name: detached loss, a mean over u}."""

    def epoch_summary(self) -> dict:
        """Entries of the epoch's results.json line beside the mean losses (e.g. validation losses)."""
        return {}

    @abstractmethod
    def describe(self) -> str:
        """One line on the networks and the method's settings, printed when a run starts."""


def parse_args(argv=None, description=None):
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, help="JSON file of config keys (see src/config.py)")
    parser.add_argument("--savedir", required=True, help="run directory (created if missing)")
    parser.add_argument("--override_cfg", action="store_true",
                        help="use --cfg even if savedir already has a config.json; without it the saved "
                             "config wins, so that a restarted Slurm job keeps its config")
    parser.add_argument("--check", action="store_true",
                        help="only check the config, DATA_DIR and its data, and that savedir can be made; "
                             "write nothing (exit status 0, or 2 with the culprit named)")
    return parser.parse_args(argv)


def resolve_config(cfg: str, savedir: Path, override: bool, method: str) -> CommonArguments:
    saved = savedir / "config.json"
    if saved.exists() and not override:
        if saved.resolve() == Path(cfg).resolve():
            print(f"Using the config saved in {saved}")
        else:
            print(f"Using the config saved in {saved}, not --cfg {cfg} (pass --override_cfg to use {cfg} instead)")
        return load_config(saved, method)
    return load_config(cfg, method)


def learning_rate(args: CommonArguments, step: int, total_steps: int) -> float:
    """The lr of training step ``step`` (from 0) of ``total_steps``: constant, or a cosine from lr to 0."""
    if args.lr_schedule == "cosine":
        return 0.5 * args.lr * (1.0 + math.cos(math.pi * step / total_steps))
    return args.lr


class StopRequest:
    """While in use, remembers a stop signal (SIGUSR1, SIGTERM) so that the step in progress can
    finish first; the previous handlers come back afterwards."""

    def __init__(self):
        self.signal = None

    def __enter__(self):
        self.previous = {signum: signal.signal(signum, self.request) for signum in STOP_SIGNALS}
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def request(self, signum, frame) -> None:
        self.signal = signal.Signals(signum).name


def slurm_job_of(environ) -> str | None:
    """The id of the Slurm job this process runs in, or None outside one.

    A Slurm job (sbatch, salloc, srun) sets SLURM_JOB_NODELIST beside SLURM_JOB_ID; SLURM_JOB_ID
    alone is a user's name for a local run (the original README's recipe without Slurm), which
    has no job to requeue. exps/run_env.sh tells a job from a local run the same way.
    """
    job = environ.get("SLURM_JOB_ID")
    return job if job and environ.get("SLURM_JOB_NODELIST") else None


def requeue_slurm_job(job: str) -> None:
    """Put Slurm job ``job`` back in the queue: it restarts in the same savedir and resumes."""
    try:
        result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
        print(f"scontrol requeue {job}: {'done' if result.returncode == 0 else result.stderr.strip()}")
    except (OSError, subprocess.TimeoutExpired) as error:
        print(f"could not requeue Slurm job {job}: {error}")


def validate(trainer: Trainer, args, train, gt_stats, savedir: Path, epoch: int, world: World):
    """Sample Ntest functions with the EMA weights, split over the ranks; return (metrics,
    samples, their stats), the same on every rank. Rank 0 draws the figures."""
    model, ema = trainer.model, trainer.ema
    # A random stream of its own, so that when (and whether) a run validates never changes its training.
    with ema.applied_to(model) if ema is not None else torch.no_grad():
        samples = sample(model, args, trainer.noise_sampler, args.Ntest, args.val_batch_size, seed=args.seed + epoch,
                         world=world)
    if len(samples) == 0:
        print(f"epoch {epoch}: every validation sample diverged (NaN); no metrics this time")
        return None, samples, None
    metrics, stats = validation_metrics(train, gt_stats, samples)
    if not world.is_main:
        return metrics, samples, stats
    plot_functions(samples[:SAMPLES_SHOWN], figure_paths(savedir / "samples", str(epoch)), ncols=4,
                   kind=args.metric_kind, suptitle=f"epoch {epoch}: w_total={metrics['w_total']:.4f}")
    plot_mean_images(train, samples, savedir / "samples" / f"mean_sample_{epoch}.png",
                     title=f"epoch {epoch}: mean_image_l2={metrics['mean_image_l2']:.4f}", kind=args.metric_kind)
    return metrics, samples, stats


def results_up_to(path: Path, epochs_done: int) -> None:
    """Drop the lines of results.json past the checkpoint (written before a kill stopped the
    checkpoint that would have followed them), so that no epoch is counted twice."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if line.endswith("\n") and json.loads(line)["epoch"] <= epochs_done]
    if len(kept) != len(lines):
        print(f"{path.name}: dropping {len(lines) - len(kept)} line(s) past the checkpoint's epoch {epochs_done}")
        write_text(path, "".join(kept))


def resume(checkpoint_path: Path, trainer: Trainer, device) -> dict:
    """Load model.pt into the trainer's networks, EMA, optimizers and torch's global random
    states; return the rest of its state."""
    try:
        state = load_checkpoint(checkpoint_path, device, method=trainer.method)
    except ValueError as error:
        others = sorted(path.name for path in checkpoint_path.parent.glob("model.*.pt"))
        fallback = f", or copy one of {', '.join(others)} over it to go on from there" if others else ""
        raise ConfigError(f"{error}. Move it away to start the run over{fallback}") from None
    try:
        for key, network in trainer.networks.items():
            network.load_state_dict(state[key])
        if trainer.ema is not None and state.get("ema") is not None:
            trainer.ema.load_state_dict(state["ema"])
        for key, optimizer in trainer.optimizers.items():
            optimizer.load_state_dict(state[key])
    except (RuntimeError, ValueError, KeyError) as error:
        # load_state_dict lists every key and shape that differs, one a line.
        raise ConfigError(f"{checkpoint_path} does not fit this config (use another --savedir): {error}") from None
    if "rng" in state:
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
    return state


def epoch_losses_of(state: dict, device) -> dict:
    """{name: [per-step losses]} of the epoch in progress in a checkpoint."""
    saved = state.get("epoch_losses", {})
    if isinstance(saved, torch.Tensor):  # checkpoints of earlier versions: the diffusion loss alone
        saved = {"loss": saved}
    return {name: list(values.to(device).unbind()) for name, values in saved.items()}


def run(trainer_class, args: CommonArguments, savedir: Path, data_dir: str, stop: StopRequest,
        world: World) -> bool:
    """Train to args.epochs, or until a stop signal (then True: the run is not finished)."""
    device = world.device
    torch.manual_seed(args.seed)  # the initial weights, the same on every rank
    train, valid = load_data(args, data_dir)
    # The data's format and channels, recorded in config.json: they shape the networks and the metrics.
    args = with_data(args, data_dir, train)
    trainer = trainer_class(args, valid, world)
    batches_per_epoch = steps_per_epoch(len(train), args.batch_size)
    batch_size = min(args.batch_size, len(train))
    shard = world.shard(batch_size)
    print(trainer.describe())
    per_process = f" ({shard.stop - shard.start} per process)" if world.size > 1 else ""
    print(f"{len(train)} training and {len(valid)} validation functions of shape {tuple(train.shape[1:])}, "
          f"{batches_per_epoch} steps of batch {batch_size}{per_process} an epoch; {world.describe()}")

    # Resume before writing anything, so a checkpoint that does not fit this config stops the
    # run with the directory untouched.
    metric_names = checkpoint_metrics(args.metric_kind)
    best, epoch, step, losses = {name: float("inf") for name in metric_names}, 0, 0, {}
    checkpoint_path = savedir / "model.pt"
    if checkpoint_path.exists():
        state = resume(checkpoint_path, trainer, device)
        best.update(state["metrics"])
        # Checkpoints of earlier versions hold the last finished epoch only.
        epoch, step = state.get("epoch", state["last_epoch"] + 1), state.get("step", 0)
        losses = epoch_losses_of(state, device)
        if epoch >= args.epochs:
            print(f"{savedir} is finished: {checkpoint_path} is the end of epoch {epoch} of {args.epochs}; nothing "
                  f"to do, nothing written (to train further, give a config with more epochs and --override_cfg)")
            return False
        print(f"Resuming from {checkpoint_path} at epoch {epoch + 1}" + (f", step {step + 1}" if step else ""))
    gt_stats = function_stats(train, args.metric_kind)
    if world.is_main:
        savedir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(savedir)
        results_up_to(savedir / "results.json", epoch)
        write_outputs({savedir / "config.json": asdict(args), savedir / "gt_stats.pkl": gt_stats})
        plot_run_overview(savedir, train, trainer.noise_sampler, trainer.sigmas, n_mean=args.Ntest, seed=args.seed,
                          kind=args.metric_kind, initial_scale=trainer.initial_scale)

    def checkpoint(path: Path, epoch: int, step: int, losses: dict) -> None:
        if world.is_main:
            save_checkpoint(path, trainer.networks, trainer.optimizers, trainer.ema, best, epoch=epoch, step=step,
                            epoch_losses=losses, method=trainer.method)

    total_steps = args.epochs * batches_per_epoch
    while epoch < args.epochs:
        started, stopping = time.time(), None
        for network in trainer.networks.values():
            network.train()
        batches = epoch_batches(len(train), args.batch_size, args.seed, epoch, args.augment)
        for indices, flips in progress_bar(batches[step:], desc=f"Train {epoch + 1}/{args.epochs}", leave=False,
                                           shown=world.is_main):
            run_step = epoch * batches_per_epoch + step
            lr = learning_rate(args, run_step, total_steps)
            for optimizer in trainer.optimizers.values():
                for group in optimizer.param_groups:
                    group["lr"] = lr
            u = train[shard.of(indices)]
            if args.augment:
                u = flip(u, shard.of(flips))
            # The step's random draws: a function of (seed, epoch, step) only, so a resumed run
            # draws what the uninterrupted one drew, at any world size.
            step_losses = trainer.train_step(u.to(device), keyed_generator(args.seed, epoch, step, device=device),
                                             run_step, shard)
            for name, value in world.mean(step_losses).items():
                losses.setdefault(name, []).append(value)  # no device sync per step
            step += 1
            stopping = world.agreed_signal(stop.signal)
            if stopping:
                break
        mean_losses = {name: torch.stack(values).mean().item() for name, values in losses.items()}
        for name, values in losses.items():
            if not math.isfinite(mean_losses[name]):
                bad = next(i for i, value in enumerate(values) if not torch.isfinite(value))
                raise TrainingError(f"the {name} is not finite at epoch {epoch + 1}, step {bad + 1}: training "
                                    f"stopped, {checkpoint_path} is the last good checkpoint (try a smaller lr)")
        if stopping and step < batches_per_epoch:
            checkpoint(checkpoint_path, epoch, step, losses)
            print(f"{stopping}: stopped at epoch {epoch + 1}, step {step}; {checkpoint_path} written")
            return True

        line = {"epoch": epoch + 1, **mean_losses, "lr": trainer.optimizers["optimizer"].param_groups[0]["lr"],
                **trainer.epoch_summary()}
        if (epoch + 1) % args.record_interval == 0 or epoch + 1 == args.epochs:
            metrics, samples, stats = validate(trainer, args, train, gt_stats, savedir, epoch + 1, world)
            if metrics is not None:
                line.update(metrics, network_evaluations=network_evaluations(args))
                for name in metric_names:
                    if metrics[name] < best[name]:
                        best[name] = metrics[name]
                        checkpoint(savedir / f"model.{name}.pt", epoch + 1, 0, {})
                        if world.is_main:
                            plot_functions(samples[:SAMPLES_SHOWN], figure_paths(savedir / "samples", f"best_{name}"),
                                           ncols=4, kind=args.metric_kind,
                                           suptitle=f"best {name} = {metrics[name]:.4f} (epoch {epoch + 1})")
                            write_outputs({savedir / "samples" / f"best_{name}.pkl":
                                           {"samples": samples.numpy(), **stats, "epoch": epoch + 1, **metrics}})
        line["time"] = time.time() - started
        # The line first, then the checkpoint: a kill between the two leaves a line past the
        # checkpoint, which the restart drops (results_up_to) before it redoes the epoch.
        if world.is_main:
            append_line(savedir / "results.json", json.dumps(line))
        epoch, step, losses = epoch + 1, 0, {}
        checkpoint(checkpoint_path, epoch, step, losses)
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in line.items()))
        stopping = world.agreed_signal(stop.signal)
        if stopping:
            print(f"{stopping}: stopped after epoch {epoch}; {checkpoint_path} written")
            return True
    return False


def check_writable(savedir: Path) -> None:
    """Stop before any work if savedir cannot be written (a read-only or foreign folder)."""
    folder = savedir
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"cannot make --savedir {savedir}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write to {folder} (for --savedir {savedir}): permission denied")


def main(trainer_class, argv=None, description=None) -> int:
    """The command line of a method's training script (train.py, train_gano.py), as one
    process or as one rank of several (torchrun, srun: src/distributed.py)."""
    cli = parse_args(argv, description)
    savedir = Path(cli.savedir)
    world = world_from_environment()
    slurm_job = slurm_job_of(os.environ)
    if not world.is_main:
        quiet_rank(world)
    stopped = False
    try:
        args = resolve_config(cli.cfg, savedir, cli.override_cfg, trainer_class.method)
        check_writable(savedir)
        data_dir = os.environ.get("DATA_DIR")
        if not data_dir:
            raise ConfigError("environment variable DATA_DIR is not set: point it at the folder of *.int "
                              "files (python -m src.synthetic --outdir DIR makes a synthetic one) or at an "
                              "array file of functions (.npy, .pt)")
        if cli.check:
            train = load_data(args, data_dir)[0]
            print(f"{cli.cfg}: a {trainer_class.method} config; DATA_DIR={data_dir}: {len(train)} training "
                  f"functions of shape {tuple(train.shape[1:])}; {savedir} can be written")
            return 0
        with StopRequest() as stop:
            world.start()
            stopped = run(trainer_class, args, savedir, data_dir, stop, world)
        if stopped and slurm_job:
            # Slurm's requeue (below) sends SIGTERM to the job at once: it must not turn the
            # clean exit of a finished process into a kill.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # Every rank is past its last write (and ignores SIGTERM) before rank 0 requeues.
        world.barrier()
    except (ConfigError, TrainingError, DistributedError, ValueError, OSError) as error:
        print(f"error{f' (rank {world.rank})' if world.size > 1 else ''}: {error}", file=sys.stderr)
        return 2
    finally:
        world.close()
    if not stopped:
        return 0
    if slurm_job:
        if world.is_main:
            requeue_slurm_job(slurm_job)
        return 0
    if world.is_main:
        print(f"The run is not finished; resume it with: python {trainer_class.resume_script} {savedir}")
    return STOPPED_EXIT


def quiet_rank(world: World) -> None:
    """Ranks other than 0 print one line, then only warnings and errors (stderr): the run's
    progress is rank 0's, and N copies of it would bury it."""
    print(f"rank {world.rank} of {world.size} (local rank {world.local_rank}) on {world.device}: progress is "
          f"rank 0's; this rank prints only warnings and errors", flush=True)
    sys.stdout = open(os.devnull, "w")


def resume_main(train_main, script: str, argv=None, description=None) -> int:
    """The command line of resume.py and resume_gano.py: ``<run dir>``, handed to ``train_main``
    (the ``main`` of ``script``, the method's training script) with the run's own config."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp_dir", type=Path, help="the run directory, which holds config.json and model.pt")
    exp_dir = parser.parse_args(argv).exp_dir
    for name, why in (("config.json", "not a run directory"),
                      ("model.pt", f"nothing to resume: {script} starts a run")):
        if not (exp_dir / name).is_file():
            print(f"error: {exp_dir} has no {name} ({why})", file=sys.stderr)
            return 2
    return train_main(["--cfg", str(exp_dir / "config.json"), "--savedir", str(exp_dir)])
