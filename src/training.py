"""The training loop both methods run (src/methods/: the diffusion operator and GANO).

A method's `Trainer` is its networks, optimizers, EMA and one training step. Everything else
is here, once: the data and split, the batches, the checkpoints and exact resumption,
validation sampling and its metrics, the best checkpoints, results.json and the figures. `run`
takes plain values: src/cli.py reads the command line, the environment and the signals.

The run directory holds everything: config.json (the resolved config), results.json (one JSON
line per epoch), gt_stats.pkl, model.pt (the checkpoint to resume from), model.<metric>.pt (at
each new best validation metric), and figures under noise/ and samples/.

Resuming is exact: a run stopped anywhere and restarted writes the same results.json lines (but
their times) and ends with the same weights, bit for bit on the CPU, as if never stopped. Every
random draw of training comes from a generator seeded by (seed, epoch, step) alone (the batch
order and flips by (seed, epoch)); validation and figures draw from generators of their own; and
model.pt holds the weights, optimizers, EMA, best metrics, the position (epoch, step) and the
losses of the epoch so far. When a stop is requested (src/cli.py: SIGUSR1 or SIGTERM, Slurm's
warning before a time limit or a preemption) the run finishes its step, writes model.pt at that
step and returns. A finished run started again says so and changes nothing.

The same loop runs on several processes (torchrun, srun; src/distributed.py): each rank trains
on its share of every (global) batch, DDP averages the gradients, validation splits its
samples over the ranks, and rank 0 alone writes. A checkpoint resumes under any world size.
"""

import json
import math
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from src.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from src.config import CommonArguments
from src.data import epoch_batches, flip, keyed_generator, load_data, steps_per_epoch, with_data
from src.distributed import Shard, World
from src.errors import KnownError
from src.experiment import Method, data_fit_of, sample
from src.gaussian_fit import DATA_FIT, GaussianFit
from src.files import append_line, remove_stale_temporaries, write_outputs, write_text
from src.metrics import checkpoint_metrics, function_stats, validation_metrics
from src.plotting import figure_paths, plot_functions, plot_mean_images, plot_run_overview
from src.progress import progress_bar

SAMPLES_SHOWN = 16


class TrainingError(KnownError, RuntimeError):
    """Training cannot go on (a non-finite loss); the last good checkpoint is left as it was."""


class Trainer(ABC):
    """A method's part of training; `run` does the rest, after building it as
    ``trainer(args, valid, world)`` (``valid``: the validation split, on the CPU; ``world``:
    the processes of the run, `src.distributed.World`: its ``device``, and ``wrap``, which a
    trainer applies to each network it trains, for DDP).

    Attributes a method sets
    ------------------------
    model : the network that samples (the score network, GANO's generator)
    ema : `src.checkpoint.EMA` of the model, or None
    networks : {checkpoint key: module}, with the model under 'weights' (the modules, not
        their DDP wraps: checkpoints are the same at any world size)
    optimizers : {checkpoint key: optimizer}, the model's under 'optimizer'
    noise_sampler : the noise of the config at the training resolution
    sigmas : the noise levels drawn in the run overview figure (None: noise only), with the
        sampler's initial states (`initial_states`)
    """

    sigmas = None

    def initial_states(self, noise: torch.Tensor, generator: torch.Generator, data_fit: GaussianFit) -> torch.Tensor:
        """The sampler's states at its first level from a batch of noise draws, for the run
        overview figure (with ``sigmas``)."""
        return noise

    def describe_start(self) -> str:
        """What `initial_states` draws, for the figure's title."""
        return "z"

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


@dataclass
class Progress:
    """Where a run stands: training goes on at step ``step`` (0-based) of epoch ``epoch``, after
    the steps whose losses are ``losses`` ({name: [scalar tensors]}); ``best`` is the best value
    of each checkpoint metric so far."""

    best: dict
    epoch: int = 0
    step: int = 0
    losses: dict = field(default_factory=dict)


def run(method: Method, args: CommonArguments, savedir: Path, data_dir: str, stop, world: World) -> bool:
    """Train ``method`` on config ``args`` to args.epochs in ``savedir``; True if a stop was
    requested first (model.pt then holds where the run stopped), False if it is finished.

    ``data_dir``: the data (a folder of .int files or an array file). ``stop``: its ``signal`` is
    None until a stop is requested, then the signal's name (src/cli.py's StopRequest).
    ``world``: the processes of the run, started.
    """
    torch.manual_seed(args.seed)  # the initial weights, the same on every rank
    train, valid = load_data(args, data_dir)
    # The data's format and channels, recorded in config.json: they shape the networks and the metrics.
    args = with_data(args, data_dir, train)
    trainer = method.trainer(args, valid, world)
    shard = world.shard(min(args.batch_size, len(train)))
    announce(trainer, args, train, valid, shard, world)

    # Resume before writing anything, so that a checkpoint that does not fit this config stops
    # the run with the directory untouched.
    checkpoint_path = savedir / "model.pt"
    progress = resume(checkpoint_path, method.name, trainer, args, world.device)
    if progress.epoch >= args.epochs:
        print(f"{savedir} is finished: {checkpoint_path} is the end of epoch {progress.epoch} of {args.epochs}; "
              f"nothing to do, nothing written (to train further, give a config with more epochs and --override_cfg)")
        return False
    gt_stats = function_stats(train, args.metric_kind)
    data_fit = world.gather(data_fit_of(args, train) if world.is_main else None)[0]
    if world.is_main:
        start_run_directory(savedir, args, train, gt_stats, data_fit, trainer, progress.epoch)

    while progress.epoch < args.epochs:
        started = time.time()
        stopping = train_epoch(trainer, args, train, shard, progress, stop, world)
        mean_losses = epoch_means(progress, checkpoint_path)
        if stopping and progress.step < steps_per_epoch(len(train), args.batch_size):
            save(checkpoint_path, method.name, trainer, progress, world)
            print(f"{stopping}: stopped at epoch {progress.epoch + 1}, step {progress.step}; {checkpoint_path} written")
            return True

        line = {"epoch": progress.epoch + 1, **mean_losses, "lr": trainer.optimizers["optimizer"].param_groups[0]["lr"],
                **trainer.epoch_summary()}
        if (progress.epoch + 1) % args.record_interval == 0 or progress.epoch + 1 == args.epochs:
            line.update(validate(method, trainer, args, train, gt_stats, data_fit, savedir, progress, world))
        line["time"] = time.time() - started
        # The line first, then the checkpoint: a kill between the two leaves a line past the
        # checkpoint, which the restart drops (results_up_to) before it redoes the epoch.
        if world.is_main:
            append_line(savedir / "results.json", json.dumps(line))
        progress = Progress(progress.best, epoch=progress.epoch + 1)
        save(checkpoint_path, method.name, trainer, progress, world)
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in line.items()))
        stopping = world.agreed_signal(stop.signal)
        if stopping:
            print(f"{stopping}: stopped after epoch {progress.epoch}; {checkpoint_path} written")
            return True
    return False


def announce(trainer: Trainer, args: CommonArguments, train, valid, shard: Shard, world: World) -> None:
    """Print the networks, the data and the batches of the run."""
    print(trainer.describe())
    per_process = f" ({shard.stop - shard.start} per process)" if world.size > 1 else ""
    print(f"{len(train)} training and {len(valid)} validation functions of shape {tuple(train.shape[1:])}, "
          f"{steps_per_epoch(len(train), args.batch_size)} steps of batch {shard.size}{per_process} an epoch; "
          f"{world.describe()}")


def resume(checkpoint_path: Path, method: str, trainer: Trainer, args: CommonArguments, device) -> Progress:
    """Where the run stands: at its start, or where model.pt stopped, with the networks, EMA and
    optimizers of model.pt loaded into the trainer and torch's global random states restored."""
    best = {name: float("inf") for name in checkpoint_metrics(args.metric_kind)}
    if not checkpoint_path.exists():
        return Progress(best)
    try:
        state = load_checkpoint(checkpoint_path, device, method)
    except CheckpointError as error:
        others = sorted(path.name for path in checkpoint_path.parent.glob("model.*.pt"))
        fallback = f", or copy one of {', '.join(others)} over it to go on from there" if others else ""
        raise CheckpointError(f"{error}. Move it away to start the run over{fallback}") from None
    try:
        for key, network in trainer.networks.items():
            network.load_state_dict(state[key])
        if trainer.ema is not None and state["ema"] is not None:
            trainer.ema.load_state_dict(state["ema"])
        for key, optimizer in trainer.optimizers.items():
            optimizer.load_state_dict(state[key])
    except (RuntimeError, ValueError, KeyError) as error:
        # load_state_dict lists every key and shape that differs, one a line.
        raise CheckpointError(f"{checkpoint_path} does not fit this config (use another --savedir): {error}") from None
    torch.set_rng_state(state["rng"]["torch"].cpu())
    if state["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
    best.update(state["metrics"])
    losses = {name: list(values.to(device).unbind()) for name, values in state["epoch_losses"].items()}
    progress = Progress(best, state["epoch"], state["step"], losses)
    if progress.epoch < args.epochs:
        print(f"Resuming from {checkpoint_path} at epoch {progress.epoch + 1}"
              + (f", step {progress.step + 1}" if progress.step else ""))
    return progress


def start_run_directory(savedir: Path, args: CommonArguments, train, gt_stats: dict, data_fit: GaussianFit,
                        trainer: Trainer, epoch: int) -> None:
    """Make the run directory, clear what killed writers left behind (temporary files, results
    lines past the checkpoint's ``epoch``), and write config.json, gt_stats.pkl, gaussian_fit.pkl
    and the figures of the data and the noise."""
    savedir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(savedir)
    results_up_to(savedir / "results.json", epoch)
    write_outputs({savedir / "config.json": asdict(args), savedir / "gt_stats.pkl": gt_stats,
                   savedir / DATA_FIT: data_fit.record()})
    fit_here = data_fit.to(trainer.noise_sampler.device)
    plot_run_overview(savedir, train, trainer.noise_sampler, trainer.sigmas, n_mean=args.Ntest, seed=args.seed,
                      kind=args.metric_kind, start=trainer.describe_start(),
                      initial_states=lambda noise, generator: trainer.initial_states(noise, generator, fit_here))


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


def train_epoch(trainer: Trainer, args: CommonArguments, train, shard: Shard, progress: Progress, stop,
                world: World) -> str | None:
    """The steps of epoch ``progress.epoch`` from ``progress.step`` on, each counted in ``progress``
    with its losses; the name of the stop signal that ended the epoch early, or None."""
    for network in trainer.networks.values():
        network.train()
    epoch = progress.epoch
    batches = epoch_batches(len(train), args.batch_size, args.seed, epoch, args.augment)
    for indices, flips in progress_bar(batches[progress.step:], desc=f"Train {epoch + 1}/{args.epochs}", leave=False,
                                       shown=world.is_main):
        run_step = epoch * len(batches) + progress.step
        lr = learning_rate(args, run_step, args.epochs * len(batches))
        for optimizer in trainer.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr
        u = train[shard.of(indices)]
        if args.augment:
            u = flip(u, shard.of(flips))
        # The step's random draws: a function of (seed, epoch, step) only, so a resumed run
        # draws what the uninterrupted one drew, at any world size.
        generator = keyed_generator(args.seed, epoch, progress.step, device=world.device)
        step_losses = trainer.train_step(u.to(world.device), generator, run_step, shard)
        for name, value in world.mean(step_losses).items():
            progress.losses.setdefault(name, []).append(value)  # no device sync per step
        progress.step += 1
        stopping = world.agreed_signal(stop.signal)
        if stopping:
            return stopping
    return None


def learning_rate(args: CommonArguments, step: int, total_steps: int) -> float:
    """The lr of training step ``step`` (from 0) of ``total_steps``: constant, or a cosine from lr to 0."""
    if args.lr_schedule == "cosine":
        return 0.5 * args.lr * (1.0 + math.cos(math.pi * step / total_steps))
    return args.lr


def epoch_means(progress: Progress, checkpoint_path: Path) -> dict:
    """{name: the mean of its losses over the epoch's steps}; `TrainingError` naming the first
    step of a loss that is not finite."""
    means = {name: torch.stack(values).mean().item() for name, values in progress.losses.items()}
    for name, values in progress.losses.items():
        if not math.isfinite(means[name]):
            bad = next(i for i, value in enumerate(values) if not torch.isfinite(value))
            raise TrainingError(f"the {name} is not finite at epoch {progress.epoch + 1}, step {bad + 1}: training "
                                f"stopped, {checkpoint_path} is the last good checkpoint (try a smaller lr)")
    return means


def validate(method: Method, trainer: Trainer, args: CommonArguments, train, gt_stats: dict, data_fit: GaussianFit,
             savedir: Path, progress: Progress, world: World) -> dict:
    """Sample Ntest functions with the EMA weights, split over the ranks, and keep each new best
    metric: its checkpoint model.<metric>.pt, and (rank 0) its samples and figure. Returns the
    entries of the results line: the metrics and the network evaluations a sample, or nothing if
    every sample diverged."""
    epoch = progress.epoch + 1
    model, ema = trainer.model, trainer.ema
    # A random stream of its own, so that when (and whether) a run validates never changes its training.
    with ema.applied_to(model) if ema is not None else torch.no_grad():
        samples = sample(method, model, args, trainer.noise_sampler, args.Ntest, args.val_batch_size,
                         seed=args.seed + epoch, world=world, data_fit=data_fit)
    if len(samples) == 0:
        print(f"epoch {epoch}: every validation sample diverged (NaN); no metrics this time")
        return {}
    metrics, stats = validation_metrics(train, gt_stats, samples)
    if world.is_main:
        plot_functions(samples[:SAMPLES_SHOWN], figure_paths(savedir / "samples", str(epoch)), ncols=4,
                       kind=args.metric_kind, suptitle=f"epoch {epoch}: w_total={metrics['w_total']:.4f}")
        plot_mean_images(train, samples, savedir / "samples" / f"mean_sample_{epoch}.png",
                         title=f"epoch {epoch}: mean_image_l2={metrics['mean_image_l2']:.4f}", kind=args.metric_kind)
    for name in checkpoint_metrics(args.metric_kind):
        if metrics[name] < progress.best[name]:
            progress.best[name] = metrics[name]
            save(savedir / f"model.{name}.pt", method.name, trainer, Progress(progress.best, epoch=epoch), world)
            if world.is_main:
                plot_functions(samples[:SAMPLES_SHOWN], figure_paths(savedir / "samples", f"best_{name}"), ncols=4,
                               kind=args.metric_kind, suptitle=f"best {name} = {metrics[name]:.4f} (epoch {epoch})")
                write_outputs({savedir / "samples" / f"best_{name}.pkl":
                               {"samples": samples.numpy(), **stats, "epoch": epoch, **metrics}})
    return {**metrics, "network_evaluations": method.network_evaluations(args)}


def save(path: Path, method: str, trainer: Trainer, progress: Progress, world: World) -> None:
    """Checkpoint ``path`` of the trainer's state at ``progress`` (rank 0 writes it)."""
    if world.is_main:
        save_checkpoint(path, trainer.networks, trainer.optimizers, trainer.ema, progress.best, epoch=progress.epoch,
                        step=progress.step, epoch_losses=progress.losses, method=method)
