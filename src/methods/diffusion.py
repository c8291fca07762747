"""The diffusion operator, method 'sbgm' (Lim et al. 2023, "Score-based diffusion models in
function space", arXiv 2302.07400): everything of it that differs from GANO.

- `Arguments`, its config: the common keys (src/config.py) and the noise levels, the samplers
  and the score network's;
- its network, the UNO score network (src/score_network.py), and its noise levels; and, to
  evaluate directories the original code wrote, the original's network (src/legacy_uno.py);
- `DiffusionTrainer`: denoising score matching (src/diffusion.py) with an EMA of the weights.
  Its results.json lines hold the mean training loss, ``loss_valid`` (the validation split's
  loss with the raw weights, the same weights as ``loss``) and ``loss_valid_ema`` (with the
  EMA, which samples);
- how it draws a batch: annealed Langevin dynamics (the original), or Euler's or Heun's method
  on the probability-flow ODE, with or without churn, from the prior or from a Gaussian fit of
  the training functions (src/gaussian_fit.py); and the network calls that takes.

Launched by train.py, resume.py and eval.py (src/cli.py).
"""

import math
from dataclasses import dataclass, field
from typing import List, Optional

import torch

from src.checkpoint import EMA
from src.config import CommonArguments, ConfigError
from src.diffusion import (LOSS_WEIGHTINGS, SAMPLERS, SCHEDULES, STEP_RULES, TRAINING_LEVELS, annealed_langevin,
                           edm_levels, flow_evaluations, probability_flow, score_matching_loss, sigma_schedule)
from src.experiment import Method, build_noise, count_parameters
from src.gaussian_fit import DATA_FIT, GaussianFit
from src.legacy_uno import LegacyUNO
from src.score_network import UNOScoreNetwork
from src.training import Trainer

FACTORIZATIONS = (None, "tucker", "cp", "tt", "dense")
# The keys of how a diffusion operator samples, which eval.py --sampler may change for one evaluation.
SAMPLER_KEYS = ("sampler", "sampler_steps", "sampler_rho", "sampler_churn", "sampler_start", "L", "T", "epsilon",
                "step_rule", "denoise_last", "schedule")
# Where a sampler starts, at the first level sigma_1: the prior (noise alone), or a draw of the Gaussian
# fit of the training functions plus sqrt(sigma_1) z, p_sigma_1's mean and covariance.
SAMPLER_STARTS = ("prior", "data_fit")
ODE_ORDERS = {"euler": 1, "heun": 2}  # the samplers of the probability-flow ODE, and their order
# How the original code sampled and trained, in the keys its config.json lacks: annealed Langevin
# dynamics with its step rule and no final denoising step.
ORIGINAL_VALUES = {"sampler": "langevin", "step_rule": "sigma_squared", "denoise_last": False,
                   "loss_weighting": "sigma", "training_levels": "discrete", "sampler_start": "prior"}


@dataclass
class Arguments(CommonArguments):
    """A diffusion operator's config (method 'sbgm', train.py): the common keys and these; the
    original README's "Arguments dataclass" of every hyperparameter."""

    schedule: str = "geometric"             # spacing of the noise levels: 'geometric' or 'linear'

    # --- annealed Langevin dynamics; sigmas are *variances*
    epsilon: float = 2e-5                   # Langevin step size at the last level (alpha_L); see step_rule
    step_rule: str = "sigma_squared"        # alpha_j = epsilon * (sigma_j / sigma_L)^2 (the original), or 'sigma': ^1
    sigma_1: float = 1.0                    # variance of the largest noise level
    sigma_L: float = 0.01                   # variance of the smallest noise level
    T: int = 100                            # Langevin steps per noise level
    L: int = 10                             # number of noise levels from sigma_1 to sigma_L
    denoise_last: bool = False              # end sampling with one denoising step x + sigma_L F(x, sigma_L)

    # --- the sampler (eval.py --sampler KEY=VALUE overrides these for one evaluation)
    sampler: str = "langevin"               # 'langevin' (annealed Langevin above, the original), or the ODE: 'euler', 'heun'
    sampler_steps: int = 18                 # euler, heun: levels sqrt(sigma_1)..sqrt(sigma_L); calls: steps, 2 steps - 1
    sampler_rho: float = 7.0                # euler, heun: spacing of the levels (EDM's rho; 1 linear in the std)
    sampler_churn: float = 0.0              # euler, heun: EDM's S_churn, noise added per step (0: deterministic)
    sampler_start: str = "prior"            # the first level's state: 'prior' (Langevin: z, the original; ODE: sqrt(sigma_1) z) or 'data_fit': a draw of the data's Gaussian fit + sqrt(sigma_1) z
    loss_weighting: str = "sigma"           # 'sigma': |noise + sigma F|^2 (the original); 'unit': that / sigma, levels alike
    training_levels: str = "discrete"       # levels trained on: the L of the schedule (the original) or 'log_uniform' in [sigma_L, sigma_1]

    # --- score network
    factorization: Optional[str] = None     # tensor factorization of the spectral weights: tucker, cp, tt, dense or null
    num_freqs_input: int = 0                # sinusoidal frequencies of the noise-level embedding for FiLM conditioning; 0 = off (the paper)
    mult_dims: List[int] = field(default_factory=lambda: [1, 2, 4, 4])  # width multipliers of the 4 levels
    rank: float = 1.0                       # rank of the factorized spectral weights (fraction of full)
    groups: int = 0                         # GroupNorm groups after each block; 0 = no normalisation

    def check(self) -> None:
        super().check()
        require = self.require
        for key in ("T", "L"):
            require(getattr(self, key) > 0, key, "must be positive")
        require(self.num_freqs_input >= 0, "num_freqs_input", "must be >= 0")
        require(self.schedule in SCHEDULES, "schedule", f"must be one of {list(SCHEDULES)}")
        require(self.step_rule in STEP_RULES, "step_rule", f"must be one of {list(STEP_RULES)}")
        require(self.loss_weighting in LOSS_WEIGHTINGS, "loss_weighting", f"must be one of {list(LOSS_WEIGHTINGS)}")
        require(self.training_levels in TRAINING_LEVELS, "training_levels",
                f"must be one of {list(TRAINING_LEVELS)}")
        require(self.sigma_L > 0, "sigma_L", "must be positive (it is a variance)")
        require(self.sigma_1 >= self.sigma_L, "sigma_1",
                f"must be >= sigma_L = {self.sigma_L}: sigmas decrease from sigma_1 to sigma_L "
                "(did you swap them?)")
        require(self.L >= 2 or self.sigma_1 == self.sigma_L, "L", "needs at least 2 levels when sigma_1 != sigma_L")
        require(self.epsilon > 0, "epsilon", "must be positive")
        require(self.sampler in SAMPLERS, "sampler", f"must be one of {list(SAMPLERS)}")
        require(self.sampler_steps >= 1, "sampler_steps", "must be >= 1")
        require(self.sampler_rho > 0, "sampler_rho", "must be positive")
        require(self.sampler_churn >= 0, "sampler_churn", "must be >= 0")
        require(self.sampler_start in SAMPLER_STARTS, "sampler_start", f"must be one of {list(SAMPLER_STARTS)}")
        require(self.rank > 0, "rank", "must be positive")
        require(self.factorization in FACTORIZATIONS, "factorization", f"must be one of {list(FACTORIZATIONS)}")
        # OmegaConf lets nested lists through a List[int] field: check the type too.
        require(len(self.mult_dims) == 4 and all(type(m) is int and m > 0 for m in self.mult_dims), "mult_dims",
                "must be 4 positive integers (one per level of the U)")
        require(self.groups >= 0, "groups", "must be >= 0")
        if self.groups > 0:
            widths = [self.d_co_domain * m for m in self.mult_dims]
            require(all(w % self.groups == 0 for w in widths), "groups", f"must divide every block width {widths}")


def build_score_network(args: Arguments) -> UNOScoreNetwork:
    return UNOScoreNetwork(res=args.data_resolution, npad=args.npad, d_co_domain=args.d_co_domain,
                           mult_dims=list(args.mult_dims), fmult=args.fmult, factorization=args.factorization,
                           rank=args.rank, groups=args.groups, num_freqs_input=args.num_freqs_input,
                           channels=args.function_channels)


def build_legacy_network(args: Arguments) -> LegacyUNO:
    """The original code's network of a config.json it wrote (`src.config.load_original_config`)."""
    # The paper's configs, and so the original's published checkpoints, are all Tucker without norms;
    # the original's other spectral weights and its GroupNorm are not rebuilt here.
    args.require(args.factorization == "tucker", "factorization",
                 "the original's network is rebuilt here with Tucker spectral weights only (the paper's)")
    args.require(args.groups == 0, "groups", "the original's network is rebuilt here without GroupNorm only (the paper's)")
    return LegacyUNO(res=args.data_resolution, npad=args.npad, d_co_domain=args.d_co_domain,
                     mult_dims=list(args.mult_dims), fmult=args.fmult, rank=args.rank,
                     channels=args.function_channels)


def build_sigmas(args: Arguments, device) -> torch.Tensor:
    return sigma_schedule(args.sigma_1, args.sigma_L, args.L, args.schedule).to(device)


def ode_levels(args: Arguments) -> list[float]:
    """The standard deviations the ODE samplers step through (see `edm_levels`)."""
    return edm_levels(args.sigma_1, args.sigma_L, args.sampler_steps, args.sampler_rho)


def initial_states(args: Arguments, noise: torch.Tensor, generator: torch.Generator,
                   data_fit: GaussianFit | None, noise_sampler) -> torch.Tensor:
    """The sampler's state at its first level, from a batch of noise draws z (batch, res, res, C).

    ``sampler_start: prior``: annealed Langevin dynamics starts from z itself (as the original),
    the probability-flow ODE from its first level's prior, sqrt(sigma_1) z. ``data_fit``: either
    starts from a draw of ``data_fit`` (on the grid of ``noise_sampler``, which draws z, from
    ``generator``) plus sqrt(sigma_1) z, a draw of p_sigma_1 when the fit is the data's law.
    """
    if args.sampler_start == "prior":
        return (ode_levels(args)[0] if args.sampler in ODE_ORDERS else 1.0) * noise
    if data_fit is None:
        raise ConfigError("sampler_start 'data_fit' needs the Gaussian fit of the training functions: the run's "
                          f"{DATA_FIT} or DATA_DIR to compute it (or sample with sampler_start=prior)")
    return data_fit.sample(len(noise), noise_sampler, generator) + math.sqrt(args.sigma_1) * noise


def describe_start(args: Arguments) -> str:
    if args.sampler_start == "data_fit":
        return f"a draw of the data's Gaussian fit + {math.sqrt(args.sigma_1):.3g} z"
    return f"{ode_levels(args)[0] if args.sampler in ODE_ORDERS else 1.0:.3g} z"


def network_evaluations(args: Arguments) -> int:
    """Network calls per sample of the config's sampler."""
    if args.sampler in ODE_ORDERS:
        return flow_evaluations(ode_levels(args), ODE_ORDERS[args.sampler])
    return args.L * args.T + (1 if args.denoise_last else 0)


def drawer(model, args: Arguments, noise_sampler, progress: bool, data_fit: GaussianFit | None = None):
    """The config's sampler with the score network ``model`` (see `src.experiment.Method.drawer`),
    from `initial_states`."""
    if args.sampler in ODE_ORDERS:
        levels = ode_levels(args)

        def draw(noise, generator):
            start = initial_states(args, noise, generator, data_fit, noise_sampler)
            return probability_flow(model, noise_sampler, levels, start, args.sampler_churn, generator,
                                    order=ODE_ORDERS[args.sampler])
        return draw
    sigmas = build_sigmas(args, noise_sampler.device)

    def draw(noise, generator):
        start = initial_states(args, noise, generator, data_fit, noise_sampler)
        return annealed_langevin(model, noise_sampler, sigmas, start, args.epsilon, args.T, generator=generator,
                                 progress=progress, step_rule=args.step_rule, denoise_last=args.denoise_last)
    return draw


def describe_sampler(args: Arguments) -> str:
    if args.sampler in ODE_ORDERS:
        churn = f", churn {args.sampler_churn:g}" if args.sampler_churn > 0 else ""
        return (f"{args.sampler.capitalize()} sampler of the probability-flow ODE, {args.sampler_steps} levels "
                f"(rho {args.sampler_rho:g}{churn}) from {describe_start(args)} = "
                f"{network_evaluations(args)} network calls per sample")
    return (f"{args.L} levels x {args.T} Langevin steps{' + 1 denoising step' if args.denoise_last else ''} "
            f"from {describe_start(args)} = {network_evaluations(args)} network calls per sample")


class DiffusionTrainer(Trainer):
    """Denoising score matching of the score network, one Adam, an EMA of the weights."""

    def __init__(self, args: Arguments, valid, world):
        self.args, self.valid, self.device = args, valid, world.device
        self.model = build_score_network(args).to(self.device)
        self.trained_model = world.wrap(self.model)
        self.noise_sampler = build_noise(args, args.data_resolution, self.device)
        self.sigmas = build_sigmas(args, self.device)
        self.ema = EMA(self.model, args.ema_rate) if args.ema_rate is not None else None
        self.networks = {"weights": self.model}
        self.optimizers = {"optimizer": torch.optim.Adam(self.model.parameters(), lr=args.lr)}

    def describe(self) -> str:
        args = self.args
        return (f"UNO score network, {count_parameters(self.model) / 1e6:.2f} M parameters, "
                f"resolution {args.data_resolution} px (+{args.npad} padding), "
                f"{'white' if args.white_noise else args.noise_kernel + ' GRF'} noise, {describe_sampler(args)}, "
                f"{math.ceil(args.Ntest / args.val_batch_size)} batch(es) per validation")

    def initial_states(self, noise, generator, data_fit):
        return initial_states(self.args, noise, generator, data_fit, self.noise_sampler)

    def describe_start(self) -> str:
        return describe_start(self.args)

    def train_step(self, u, generator, step, shard):
        loss = score_matching_loss(self.trained_model, u, self.sigmas, self.noise_sampler, generator=generator,
                                   weighting=self.args.loss_weighting, shard=shard,
                                   levels=self.args.training_levels)
        optimizer = self.optimizers["optimizer"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return {"loss": loss.detach()}

    def epoch_summary(self) -> dict:
        # The same weights as `loss`, so the two compare; the EMA's, which sample, beside them.
        summary = {"loss_valid": self.validation_loss()}
        if self.ema is not None:
            with self.ema.applied_to(self.model):
                summary["loss_valid_ema"] = self.validation_loss()
        return summary

    @torch.no_grad()
    def validation_loss(self) -> float | None:
        """Score-matching loss on the validation split with fixed noise, so epochs compare; None if no split."""
        if len(self.valid) == 0:
            return None
        generator = torch.Generator(device=self.device).manual_seed(self.args.seed)
        self.model.eval()
        total = 0.0
        for batch in self.valid.split(self.args.val_batch_size):
            total += score_matching_loss(self.model, batch.to(self.device), self.sigmas, self.noise_sampler,
                                         generator=generator, weighting=self.args.loss_weighting,
                                         levels=self.args.training_levels).item() * len(batch)
        return total / len(self.valid)


class Diffusion(Method):
    name = "sbgm"
    schema = Arguments
    trainer = DiffusionTrainer
    sampler_keys = SAMPLER_KEYS
    divergence_hint = "; the Langevin step size epsilon may be too large"
    build_model = staticmethod(build_score_network)
    build_original_model = staticmethod(build_legacy_network)
    original_values = ORIGINAL_VALUES
    drawer = staticmethod(drawer)
    network_evaluations = staticmethod(network_evaluations)

    def needs_data_fit(self, args: Arguments) -> bool:
        return args.sampler_start == "data_fit"


METHOD = Diffusion()
