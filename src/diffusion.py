"""Noise levels, the denoising score-matching loss and annealed Langevin dynamics.

Conventions of the original code, kept so that the paper's configs mean the same:

- ``sigma`` is a *variance*: the perturbed function is ``u + sqrt(sigma) * z`` with ``z``
  a draw of the noise sampler (white noise, or a Gaussian random field of covariance C).
- The score model ``F(x, sigma)`` is trained so that ``sigma * F(u + noise, sigma) ~ -noise``,
  i.e. ``F ~ C grad log p_sigma`` (the preconditioned score; ``C = I`` for white noise).
- The sampler never owns the model: it is a function of (score, noise sampler, sigmas).
"""

import math
import warnings
from typing import Callable, Optional

import torch

from src.progress import progress_bar
from src.score_network import expand_like

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SCHEDULES = ("geometric", "linear")


def sigma_schedule(sigma_1: float, sigma_L: float, L: int, schedule: str = "geometric") -> torch.Tensor:
    """The L noise variances from sigma_1 down to sigma_L, shape (L,), float32."""
    if schedule == "geometric":
        sigmas = torch.logspace(math.log10(sigma_1), math.log10(sigma_L), L, dtype=torch.float64)
    elif schedule == "linear":
        sigmas = torch.linspace(sigma_1, sigma_L, L, dtype=torch.float64)
    else:
        raise ValueError(f"unknown schedule {schedule!r}: expected one of {list(SCHEDULES)}")
    return sigmas.float()


LOSS_WEIGHTINGS = ("sigma", "unit")


def score_matching_loss(score: ScoreFn, u: torch.Tensor, sigmas: torch.Tensor, noise_sampler,
                        generator: Optional[torch.Generator] = None, weighting: str = "sigma") -> torch.Tensor:
    """Denoising score-matching loss, one noise level drawn uniformly per example.

    ``weighting="sigma"`` (the original's): ``mean | noise + sigma * F(u + noise, sigma) |^2``
    with ``noise = sqrt(sigma) * z``. Per level this is ``sigma * |z + sqrt(sigma) F|^2``, so
    a level weighs in proportion to its variance: the largest levels dominate the gradient.
    ``weighting="unit"`` divides each example's term by its sigma, ``mean | z + sqrt(sigma) F |^2``
    (NCSN's lambda(sigma) = sigma^2 in terms of standard deviations): every level counts alike,
    which teaches the small levels, where the fine structure is made, much faster.

    Parameters
    ----------
    u : (batch, res, res, 2) training functions.
    sigmas : (L,) noise variances, on u's device.
    """
    level = torch.randint(len(sigmas), (u.shape[0],), device=sigmas.device, generator=generator)
    sigma = sigmas[level]
    noise = expand_like(sigma.sqrt(), u) * noise_sampler.sample(u.shape[0], generator=generator)
    residual = noise + expand_like(sigma, u) * score(u + noise, sigma)
    if weighting == "unit":
        residual = residual / expand_like(sigma.sqrt(), u)
    elif weighting != "sigma":
        raise ValueError(f"unknown loss weighting {weighting!r}: expected one of {list(LOSS_WEIGHTINGS)}")
    return residual.square().mean()


STEP_RULES = ("sigma_squared", "sigma")


def step_sizes(sigmas: torch.Tensor, epsilon: float, rule: str = "sigma_squared") -> torch.Tensor:
    """Langevin step size per level; both rules give alpha_L = epsilon at the last level.

    ``"sigma_squared"`` (the original's): ``alpha_j = epsilon * sigma_j^2 / sigma_L^2``. This is
    NCSN's rule written for standard deviations, applied to variances, so ``alpha_j / sigma_j``
    falls with the level: a step large enough to mix at sigma_1 is far too small near sigma_L,
    and a stable epsilon leaves the last levels frozen unless L * T is large (the paper: 1500).
    ``"sigma"``: ``alpha_j = epsilon * sigma_j / sigma_L``, NCSN's rule for variances. The ratio
    ``alpha_j / sigma_j = epsilon / sigma_L`` is the same at every level, so every level mixes
    alike. In a direction the data hardly varies in, a step multiplies x by 1 - alpha_j / (2 sigma_j),
    so ``epsilon / sigma_L`` must stay below 4; the quickstart uses 0.5.
    """
    if rule == "sigma_squared":
        return epsilon * sigmas.square() / sigmas[-1].square()
    if rule == "sigma":
        return epsilon * sigmas / sigmas[-1]
    raise ValueError(f"unknown Langevin step rule {rule!r}: expected one of {list(STEP_RULES)}")


@torch.no_grad()
def annealed_langevin(score: ScoreFn, noise_sampler, sigmas: torch.Tensor, x: torch.Tensor,
                      epsilon: float, T: int, generator: Optional[torch.Generator] = None,
                      progress: bool = False, step_rule: str = "sigma_squared",
                      denoise_last: bool = False) -> torch.Tensor:
    """Annealed Langevin dynamics (the original ``sample_trace``).

    For each level j, T steps of ``x <- x + alpha_j / 2 * F(x, sigma_j) + sqrt(alpha_j) * z``
    with z from the noise sampler and alpha_j from `step_sizes`; the very last step adds no noise.
    ``denoise_last`` then takes one more step, ``x <- x + sigma_L * F(x, sigma_L)``: Tweedie's
    posterior mean E[u | x] at the last level, which removes the noise of variance sigma_L that
    Langevin dynamics at that level leaves in every sample (Jolicoeur-Martineau et al. 2021).

    Parameters
    ----------
    x : (batch, res, res, 2) initial state, usually a draw of the noise sampler.
    sigmas : (L,) decreasing noise variances.

    Returns
    -------
    (batch, res, res, 2) samples; rows may hold NaN if the dynamics diverged.
    """
    # Python floats: no device synchronisation inside the loop.
    alphas = step_sizes(sigmas, epsilon, step_rule).tolist()
    batch_sigma = torch.empty(x.shape[0], device=x.device)
    steps = progress_bar(total=len(sigmas) * T, desc="Langevin", leave=False, shown=progress)
    for level, (sigma, alpha) in enumerate(zip(sigmas.tolist(), alphas)):
        batch_sigma.fill_(sigma)
        for t in range(T):
            x = x + 0.5 * alpha * score(x, batch_sigma)
            if not (level == len(alphas) - 1 and t == T - 1):
                x = x + math.sqrt(alpha) * noise_sampler.sample(x.shape[0], generator=generator)
            steps.update(1)
    steps.close()
    if denoise_last:
        x = x + sigmas[-1].item() * score(x, batch_sigma)
    return x


@torch.no_grad()
def generate(score: ScoreFn, noise_sampler, sigmas: torch.Tensor, n: int, batch_size: int,
             epsilon: float, T: int, generator: Optional[torch.Generator] = None,
             progress: bool = True, step_rule: str = "sigma_squared", denoise_last: bool = False) -> torch.Tensor:
    """Draw ``n`` functions by annealed Langevin dynamics (`annealed_langevin`), in batches, on the CPU.

    Samples that came out with NaN are dropped and counted in a warning, so fewer than n
    may be returned.

    Returns
    -------
    (n_valid, res, res, 2) tensor on the CPU.
    """
    kept, dropped = [], 0
    n_batches = math.ceil(n / batch_size)
    for b in progress_bar(range(n_batches), desc="Generate", shown=progress and n_batches > 1):
        size = min(batch_size, n - b * batch_size)
        x = noise_sampler.sample(size, generator=generator)
        x = annealed_langevin(score, noise_sampler, sigmas, x, epsilon, T, generator=generator,
                              progress=progress, step_rule=step_rule, denoise_last=denoise_last).cpu()
        finite = torch.isfinite(x).flatten(1).all(dim=1)
        dropped += int((~finite).sum())
        kept.append(x[finite])
    if dropped:
        warnings.warn(f"{dropped} / {n} generated samples contained NaN or inf and were dropped; "
                      "the Langevin step size epsilon may be too large")
    return torch.cat(kept)
