"""What the methods share in an experiment: the `Method` interface, the noise of a config, and
the one way to sample.

A method (src/methods/) fills in `Method`: its config dataclass, trainer and network, how it
draws a batch and how many network calls that takes. Training (src/training.py) and evaluation
(src/evaluation.py) of either go through these functions, so that an experiment directory's
``config.json`` rebuilds exactly the model and noise that wrote its checkpoints, and validation
during training samples exactly as evaluation does.
"""

import math
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict

import torch

from src.config import CommonArguments, ConfigError, config_from_dict, from_command_line
from src.data import data_grid_of, keyed_generator
from src.distributed import World
from src.gaussian_fit import GaussianFit, fit_gaussian
from src.noise import NoiseSampler, build_noise_sampler
from src.progress import progress_bar

# draw(noise, generator) -> samples: a batch of functions from a batch of noise draws (see Method.drawer).
Draw = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class Method(ABC):
    """Everything that differs between the methods, found by name with `src.methods.get`.

    Attributes a method sets
    ------------------------
    name : its name in the registry, on the command line and in checkpoints ('sbgm', 'gan')
    schema : its config dataclass, `src.config.CommonArguments` and its own keys
    trainer : its `src.training.Trainer`, built as ``trainer(args, valid, world)``
    sampler_keys : the config keys of how it samples, which eval.py --sampler may change
    divergence_hint : what the warning on diverged samples adds (the key to change)
    original_values : its keys that the original code's config.json lacks, at the values the
        original ran with (its sampler), for the directories the original wrote
    """

    name: str
    schema: type
    trainer: type
    sampler_keys: tuple[str, ...] = ()
    divergence_hint: str = ""
    original_values: dict = {}

    @abstractmethod
    def build_model(self, args: CommonArguments) -> torch.nn.Module:
        """The network that samples (the checkpoints' ``weights``), on the CPU."""

    def build_original_model(self, args: CommonArguments) -> torch.nn.Module:
        """The original code's network for ``args``, with its parameter names, to sample the
        directories the original wrote; a method the original did not have has none."""
        raise ConfigError(f"method '{self.name}' did not exist in the original code, so no directory of the "
                          "original's holds one of its networks")

    @abstractmethod
    def drawer(self, model: torch.nn.Module, args: CommonArguments, noise_sampler: NoiseSampler,
               progress: bool, data_fit: GaussianFit | None = None) -> Draw:
        """How ``model`` draws a batch: ``draw(noise, generator)``, from a batch of draws of
        ``noise_sampler`` (batch, res, res, C) to as many functions, any further randomness
        from ``generator``; ``progress`` shows a bar of a long draw's steps. ``data_fit``: the
        Gaussian fit of the training functions, for a config whose sampler starts from it
        (`needs_data_fit`)."""

    def needs_data_fit(self, args: CommonArguments) -> bool:
        """Whether ``args``' sampler starts from the Gaussian fit of the training functions."""
        return False

    @abstractmethod
    def network_evaluations(self, args: CommonArguments) -> int:
        """Network calls per sample of ``drawer``."""

    def with_sampler(self, args: CommonArguments, changes: dict, source: str = "--sampler") -> CommonArguments:
        """``args`` with the sampler keys in ``changes`` ({key: text or value}) changed and
        type-checked: one trained model sampled another way. Any other key is refused."""
        if not changes:
            return args
        other = [key for key in changes if key not in self.sampler_keys]
        if other:
            these = (f"these are: {', '.join(self.sampler_keys)}" if self.sampler_keys
                     else f"method '{self.name}' samples one way only")
            raise ConfigError(f"{source}: {', '.join(other)} is not a sampler key; {these}")
        return config_from_dict(asdict(args) | from_command_line(changes, self.name), source=source,
                                method=self.name)


def build_noise(args: CommonArguments, res: int, device) -> NoiseSampler:
    """The experiment's noise sampler on a res x res grid (res may exceed the training one:
    the same field on a finer grid)."""
    return build_noise_sampler(res, white_noise=args.white_noise, rbf_scale=args.rbf_scale, rbf_eps=args.rbf_eps,
                               kernel=args.noise_kernel, method=args.noise_method, device=device,
                               grf_alpha=args.grf_alpha, grf_tau=args.grf_tau, channels=args.function_channels)


def data_fit_of(args: CommonArguments, train: torch.Tensor) -> GaussianFit:
    """The Gaussian fit of a config's training split (src/gaussian_fit.py), with training's flips
    and the data's grid: where the samplers start with ``sampler_start: data_fit``."""
    noise_variance = build_noise(args, args.data_resolution, train.device).point_variance()
    return fit_gaussian(train, noise_variance, flips=args.augment, grid=data_grid_of(args))


@torch.inference_mode()
def sample(method: Method, model, args: CommonArguments, noise_sampler: NoiseSampler, n: int, batch_size: int,
           seed: int, progress: bool = True, world: World | None = None, estimate: bool = False,
           data_fit: GaussianFit | None = None) -> torch.Tensor:
    """n functions drawn in batches by ``method``'s drawer with ``model`` (see `Method.drawer`).

    The grid is the noise sampler's: the training one, or a finer one for super-resolution
    (the networks adapt their padding). Batch b draws from a generator keyed by (seed, b), so
    the same seed gives the same samples and the global random state is untouched; and with a
    ``world`` of several processes (validation during distributed training) rank r draws the
    batches b = r mod world size and every rank gets them all, in order: the same n samples as
    one process. Samples that diverged (NaN or inf) are dropped with a warning that counts them.
    With ``estimate``, the time of the first batch and what it predicts for all are printed.
    ``data_fit``: the Gaussian fit of the training functions (`Method.drawer`), at the training
    grid; it is carried to the noise sampler's.

    Returns
    -------
    (n_finite, res, res, C) on the CPU, res = noise_sampler.res.
    """
    model.eval()
    draw = method.drawer(model, args, noise_sampler, progress,
                         None if data_fit is None else data_fit.to(noise_sampler.device).on_grid(noise_sampler.res))
    world = world or World(device=noise_sampler.device)
    n_batches = math.ceil(n / batch_size)
    drawn = {}
    mine = range(world.rank, n_batches, world.size)
    for b in progress_bar(mine, desc="Generate", shown=progress and len(mine) > 1):
        started = time.perf_counter()
        generator = keyed_generator(seed, b, device=noise_sampler.device)
        size = min(batch_size, n - b * batch_size)
        drawn[b] = draw(noise_sampler.sample(size, generator=generator), generator).cpu()
        if estimate and b == mine[0] and len(mine) > 1:
            seconds = time.perf_counter() - started
            print(f"The first batch took {format_duration(seconds)}: about {format_duration(seconds * len(mine))} "
                  f"for all {len(mine)}", flush=True)
    for part in world.gather(drawn):
        drawn.update(part)
    x = torch.cat([drawn[b] for b in range(n_batches)])
    finite = torch.isfinite(x).flatten(1).all(dim=1)
    dropped = int((~finite).sum())
    if dropped:
        warnings.warn(f"{dropped} / {n} generated samples contained NaN or inf and were dropped"
                      + method.divergence_hint)
    return x[finite]


def format_duration(seconds: float) -> str:
    """``seconds`` as a person reads it: 4.2 s, 3.5 min, 2.1 h."""
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
