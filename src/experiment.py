"""An experiment's pieces built from its config, and the one way to sample a model.

Training (src/training.py) and evaluation (eval.py) of both methods go through these
functions, so that an experiment directory's ``config.json`` rebuilds exactly the model,
noise and noise levels that wrote its checkpoints, and validation during training samples
exactly as evaluation does. The config's type says the method: `Arguments`, the diffusion
operator; `GANOArguments`, the GANO baseline.
"""

import math
import time
import warnings
from dataclasses import replace

import torch

from src.config import Arguments, CommonArguments, ConfigError, GANOArguments
from src.data import (FRAME_SIZE, array_side, is_array_file, keyed_generator, load_functions, load_volcano,
                      split_train_valid)
from src.diffusion import annealed_langevin, edm_levels, flow_evaluations, probability_flow, sigma_schedule
from src.distributed import World
from src.models_gano import Discriminator, Generator
from src.noise import build_noise_sampler
from src.progress import progress_bar
from src.score_network import UNOScoreNetwork


def load_data(args: CommonArguments, data_dir: str, factor: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Training and validation functions (N, res, res, C), res = factor * args.data_resolution.

    ``data_dir`` is a folder of Volcano ``.int`` files, or an array file (``.npy``, ``.pt``) of
    any functions, resized on the config's ``data_grid``. ``factor`` > 1 gives the ground truth
    for super-resolution: the functions resized to factor x resolution and cropped by factor x
    npad, the same region at a finer grid (interpolated above `native_side`).

    Raises
    ------
    ConfigError
        The data are not of the config's ``data_format`` or ``channels`` (a run trained on other data).
    ValueError
        Bad data (see `load_volcano`, `load_functions`).
    """
    data_format = data_format_of(data_dir)
    if args.data_format not in (None, data_format):
        raise ConfigError(f"config key 'data_format' = {args.data_format!r}, but DATA_DIR={data_dir} is "
                          f"{DATA_FORMAT_DESCRIPTIONS[data_format]}")
    resolution, npad = factor * args.resize_to, factor * args.npad
    if data_format == "array":
        x = load_functions(data_dir, args.ntrain, resolution, npad, channels_last=args.channels_last,
                           key=args.data_key, grid=args.data_grid)
    else:
        x = load_volcano(data_dir, ntrain=args.ntrain, resolution=resolution, npad=npad, multilook=args.multilook)
    if args.channels is not None and x.shape[-1] != args.channels:
        raise ConfigError(f"config key 'channels' = {args.channels}, but the functions of DATA_DIR={data_dir} "
                          f"have {x.shape[-1]}")
    return split_train_valid(x, args.val_size, seed=args.seed)


def native_side(args: CommonArguments, data_dir: str) -> int:
    """Side of the grid the data are stored on (Volcano: 128 px; an array file: its grid's side,
    from its shape): above it, resized data are interpolated, with no finer detail."""
    if data_format_of(data_dir) == "volcano":
        return FRAME_SIZE
    return array_side(data_dir, channels_last=args.channels_last, key=args.data_key)


DATA_FORMAT_DESCRIPTIONS = {"volcano": "a folder of .int files", "array": "an array file"}


def data_format_of(data_dir: str) -> str:
    """'array' for a .npy or .pt file, else 'volcano' (a folder of .int files)."""
    return "array" if is_array_file(data_dir) else "volcano"


def with_data(args: CommonArguments, data_dir: str, functions: torch.Tensor) -> CommonArguments:
    """``args`` with ``data_format`` and ``channels`` of the data set, as training records them in
    config.json: evaluation rebuilds the networks and picks the metrics from them alone."""
    return replace(args, data_format=data_format_of(data_dir), channels=functions.shape[-1])


def build_model(args: CommonArguments) -> UNOScoreNetwork | Generator:
    """The network that samples: the score network, or GANO's generator."""
    if isinstance(args, GANOArguments):
        # tanh keeps (cos, sin) in [-1, 1]; array data may take any value.
        return Generator(args.data_resolution, args.npad, args.d_co_domain, args.fmult,
                         channels=args.function_channels, bounded=args.metric_kind == "circular")
    return UNOScoreNetwork(res=args.data_resolution, npad=args.npad, d_co_domain=args.d_co_domain,
                           mult_dims=list(args.mult_dims), fmult=args.fmult, factorization=args.factorization,
                           rank=args.rank, groups=args.groups, num_freqs_input=args.num_freqs_input,
                           channels=args.function_channels)


def build_discriminator(args: GANOArguments) -> Discriminator:
    return Discriminator(args.data_resolution, args.npad, args.d_co_domain, args.fmult, channels=args.function_channels)


def build_noise(args: CommonArguments, res: int, device):
    """The experiment's noise sampler on a res x res grid (res may exceed the training one:
    the same field on a finer grid)."""
    return build_noise_sampler(res, white_noise=args.white_noise, rbf_scale=args.rbf_scale, rbf_eps=args.rbf_eps,
                               kernel=args.noise_kernel, method=args.noise_method, device=device,
                               grf_alpha=args.grf_alpha, grf_tau=args.grf_tau, channels=args.function_channels)


def build_sigmas(args: Arguments, device) -> torch.Tensor:
    return sigma_schedule(args.sigma_1, args.sigma_L, args.L, args.schedule).to(device)


ODE_ORDERS = {"euler": 1, "heun": 2}  # the samplers of the probability-flow ODE, and their order


def ode_levels(args: Arguments) -> list[float]:
    """The standard deviations the ODE samplers step through (see `edm_levels`)."""
    return edm_levels(args.sigma_1, args.sigma_L, args.sampler_steps, args.sampler_rho)


def initial_scale(args: Arguments) -> float:
    """The sampler's initial state as a multiple of a noise draw z: annealed Langevin dynamics
    starts from z itself (as the original), the probability-flow ODE from its first level's
    prior, sqrt(sigma_1) z (`probability_flow`)."""
    return ode_levels(args)[0] if args.sampler in ODE_ORDERS else 1.0


def network_evaluations(args: CommonArguments) -> int:
    """Network calls per sample of the config's sampler (GANO: one, of the generator)."""
    if isinstance(args, GANOArguments):
        return 1
    if args.sampler in ODE_ORDERS:
        return flow_evaluations(ode_levels(args), ODE_ORDERS[args.sampler])
    return args.L * args.T + (1 if args.denoise_last else 0)


@torch.inference_mode()
def sample(model, args: CommonArguments, noise_sampler, n: int, batch_size: int, seed: int,
           progress: bool = True, world: World | None = None, estimate: bool = False) -> torch.Tensor:
    """n functions drawn in batches: by the config's sampler with the score network (annealed
    Langevin dynamics, or Euler's or Heun's method on the probability-flow ODE, with or without
    churn), or by GANO's generator applied to noise; `network_evaluations` counts the network's
    calls per sample.

    The grid is the noise sampler's: the training one, or a finer one for super-resolution
    (the networks adapt their padding). Batch b draws from a generator keyed by (seed, b), so
    the same seed gives the same samples and the global random state is untouched; and with a
    ``world`` of several processes (validation during distributed training) rank r draws the
    batches b = r mod world size and every rank gets them all, in order: the same n samples as
    one process. Samples that diverged (NaN or inf) are dropped with a warning that counts them.
    With ``estimate``, the time of the first batch and what it predicts for all are printed.

    Returns
    -------
    (n_finite, res, res, C) on the CPU, res = noise_sampler.res.
    """
    model.eval()
    if isinstance(args, GANOArguments):
        def draw(noise, generator):
            return model(noise)
    elif args.sampler in ODE_ORDERS:
        levels = ode_levels(args)

        def draw(noise, generator):
            return probability_flow(model, noise_sampler, levels, noise, args.sampler_churn, generator,
                                    order=ODE_ORDERS[args.sampler])
    else:
        sigmas = build_sigmas(args, noise_sampler.device)

        def draw(noise, generator):
            return annealed_langevin(model, noise_sampler, sigmas, noise, args.epsilon, args.T, generator=generator,
                                     progress=progress, step_rule=args.step_rule, denoise_last=args.denoise_last)
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
                      + ("" if isinstance(args, GANOArguments) else "; the Langevin step size epsilon may be too large"))
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


def describe_sampler(args: Arguments) -> str:
    if args.sampler in ODE_ORDERS:
        churn = f", churn {args.sampler_churn:g}" if args.sampler_churn > 0 else ""
        return (f"{args.sampler.capitalize()} sampler of the probability-flow ODE, {args.sampler_steps} levels "
                f"(rho {args.sampler_rho:g}{churn}) = "
                f"{network_evaluations(args)} network calls per sample")
    return (f"{args.L} levels x {args.T} Langevin steps{' + 1 denoising step' if args.denoise_last else ''} = "
            f"{network_evaluations(args)} network calls per sample")


def describe(model, args: Arguments) -> str:
    return (f"UNO score network, {count_parameters(model) / 1e6:.2f} M parameters, "
            f"resolution {args.data_resolution} px (+{args.npad} padding), "
            f"{'white' if args.white_noise else args.noise_kernel + ' GRF'} noise, {describe_sampler(args)}, "
            f"{math.ceil(args.Ntest / args.val_batch_size)} batch(es) per validation")
