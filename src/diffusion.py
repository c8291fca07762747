"""The diffusion model's equations: noise levels, perturbation, loss, annealed Langevin dynamics.

Lim et al. 2023 ("Score-based diffusion models in function space", arXiv 2302.07400), in the
original code's conventions, kept so that the paper's configs mean the same:

- ``sigma`` is a *variance*: a function u is perturbed as ``x = u + sqrt(sigma) z`` with z a
  draw of the noise sampler, N(0, C) (C = I for white noise, a GRF covariance otherwise).
- The network F(x, sigma) is trained so that ``sigma F(x, sigma) ~ -sqrt(sigma) z``, i.e.
  ``F ~ C grad log p_sigma(x)``, the score preconditioned by C.
- Functions are ``(batch, res, res, channels)``, channels last.

Nothing here owns a model: the loss and the sampler take the score function as an argument.
"""

import math
from typing import Callable, Optional

import torch

from src.distributed import Shard
from src.progress import progress_bar

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# constrain(x, sigma, alpha, noisy) -> x, after each Langevin step (see `annealed_langevin`).
Constraint = Callable[[torch.Tensor, float, float, bool], torch.Tensor]
SAMPLERS = ("langevin", "heun", "euler")
SCHEDULES = ("geometric", "linear")
LOSS_WEIGHTINGS = ("sigma", "unit")
STEP_RULES = ("sigma_squared", "sigma")
TRAINING_LEVELS = ("discrete", "log_uniform")


def expand_like(per_example: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """View a (batch,) tensor so that it broadcasts against ``x`` of any rank."""
    return per_example.reshape(-1, *([1] * (x.dim() - 1)))


def sigma_schedule(sigma_1: float, sigma_L: float, L: int, schedule: str = "geometric") -> torch.Tensor:
    """The L noise variances from sigma_1 down to sigma_L, shape (L,), float32."""
    if schedule == "geometric":
        sigmas = torch.logspace(math.log10(sigma_1), math.log10(sigma_L), L, dtype=torch.float64)
    elif schedule == "linear":
        sigmas = torch.linspace(sigma_1, sigma_L, L, dtype=torch.float64)
    else:
        raise ValueError(f"unknown schedule {schedule!r}: expected one of {list(SCHEDULES)}")
    return sigmas.float()


def score_matching_loss(score: ScoreFn, u: torch.Tensor, sigmas: torch.Tensor, noise_sampler,
                        generator: Optional[torch.Generator] = None, weighting: str = "sigma",
                        shard: Optional[Shard] = None, levels: str = "discrete") -> torch.Tensor:
    """Denoising score-matching loss, one noise level drawn per example.

    ``levels="discrete"`` (the original's) draws one of the L variances of ``sigmas`` uniformly;
    ``"log_uniform"`` draws the variance log-uniformly between sigmas[-1] and sigmas[0], the
    same spread over the same range but every level in between too, which is where an ODE
    solver (`probability_flow`) evaluates the network.

    ``weighting="sigma"`` (the original's): ``mean |sqrt(sigma) z + sigma F(x, sigma)|^2``. Per
    level this is ``sigma |z + sqrt(sigma) F|^2``: a level weighs in proportion to its variance,
    so the largest levels dominate the gradient. ``weighting="unit"`` divides each example's
    term by its sigma, ``mean |z + sqrt(sigma) F|^2`` (NCSN's lambda(sigma), Song & Ermon 2019):
    every level counts alike, which learns the small levels, where fine structure is made, faster.

    Parameters
    ----------
    u : (batch, res, res, channels) training functions.
    sigmas : (L,) noise variances, on u's device.
    shard : when u is one rank's rows of a larger batch (distributed training), those rows:
        the levels and noise are drawn for the whole batch and cut to them (src/distributed.py).
    """
    if weighting not in LOSS_WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {weighting!r}: expected one of {list(LOSS_WEIGHTINGS)}")
    shard = shard or Shard.whole(len(u))
    sigma = shard.of(draw_levels(sigmas, shard.size, generator, levels))
    noise = expand_like(sigma.sqrt(), u) * shard.of(noise_sampler.sample(shard.size, generator=generator))
    residual = noise + expand_like(sigma, u) * score(u + noise, sigma)
    if weighting == "unit":
        residual = residual / expand_like(sigma.sqrt(), u)
    return residual.square().mean()


def draw_levels(sigmas: torch.Tensor, n: int, generator: Optional[torch.Generator], levels: str) -> torch.Tensor:
    """``n`` noise variances for training, on sigmas' device (see `score_matching_loss`)."""
    if levels == "discrete":
        return sigmas[torch.randint(len(sigmas), (n,), device=sigmas.device, generator=generator)]
    if levels == "log_uniform":
        low, high = sigmas.min().log(), sigmas.max().log()
        return (low + (high - low) * torch.rand(n, device=sigmas.device, generator=generator)).exp()
    raise ValueError(f"unknown training levels {levels!r}: expected one of {list(TRAINING_LEVELS)}")


def step_sizes(sigmas: torch.Tensor, epsilon: float, rule: str = "sigma_squared") -> torch.Tensor:
    """Langevin step size alpha_j of each level; both rules give alpha_L = epsilon.

    ``"sigma_squared"`` (the original's): ``alpha_j = epsilon sigma_j^2 / sigma_L^2``, NCSN's rule
    for standard deviations applied to variances, so ``alpha_j / sigma_j`` falls with the level
    and an epsilon stable at sigma_1 leaves the last levels nearly frozen unless L T is large.
    ``"sigma"``: ``alpha_j = epsilon sigma_j / sigma_L``, the same rule for variances, so every
    level mixes alike. In a direction the data hardly varies in a step multiplies x by
    ``1 - alpha_j / (2 sigma_j)``: ``epsilon / sigma_L`` must stay below 4.
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
                      denoise_last: bool = False, constrain: Optional[Constraint] = None) -> torch.Tensor:
    """Annealed Langevin dynamics (the original's ``sample_trace``; Song & Ermon 2019, Alg. 1).

    For each level j, T steps of ``x <- x + alpha_j / 2 F(x, sigma_j) + sqrt(alpha_j) z`` with
    z from the noise sampler (the C in F ~ C grad log p makes this preconditioned Langevin
    dynamics, whose noise must have covariance C) and alpha_j from `step_sizes`; the very last
    step adds no noise. ``denoise_last`` then takes ``x <- x + sigma_L F(x, sigma_L)``, Tweedie's
    posterior mean E[u | x] at the last level, which removes the noise of variance sigma_L that
    the dynamics leaves in every sample (Jolicoeur-Martineau et al. 2021). ``constrain``, if
    given, is called after every step as ``x = constrain(x, sigma_j, alpha_j, noisy)`` (``noisy``:
    whether the step added noise): the posterior sampler (src/posterior.py) projects there.

    Parameters
    ----------
    x : (batch, res, res, channels) initial state, usually a draw of the noise sampler.
    sigmas : (L,) decreasing noise variances.

    Returns
    -------
    (batch, res, res, channels) samples; rows may hold NaN if the dynamics diverged.
    """
    # Python floats: no device synchronisation inside the loop.
    alphas = step_sizes(sigmas, epsilon, step_rule).tolist()
    batch_sigma = torch.empty(x.shape[0], device=x.device)
    steps = progress_bar(total=len(sigmas) * T, desc="Langevin", leave=False, shown=progress)
    for level, (sigma, alpha) in enumerate(zip(sigmas.tolist(), alphas)):
        batch_sigma.fill_(sigma)
        for t in range(T):
            x = x + 0.5 * alpha * score(x, batch_sigma)
            noisy = not (level == len(alphas) - 1 and t == T - 1)
            if noisy:
                x = x + math.sqrt(alpha) * noise_sampler.sample(x.shape[0], generator=generator)
            if constrain is not None:
                x = constrain(x, sigma, alpha, noisy)
            steps.update(1)
    steps.close()
    if denoise_last:
        x = x + sigmas[-1].item() * score(x, batch_sigma)
    return x


def edm_levels(sigma_1: float, sigma_L: float, steps: int, rho: float = 7.0) -> list[float]:
    """Standard deviations for the ODE: ``steps`` of them from sqrt(sigma_1) down to sqrt(sigma_L),
    evenly spaced in s^(1/rho) (Karras et al. 2022, eq. 5: rho = 7 crowds them at the small
    end), then 0."""
    top, bottom = sigma_1 ** (0.5 / rho), sigma_L ** (0.5 / rho)
    fractions = [i / (steps - 1) for i in range(steps)] if steps > 1 else [0.0]
    return [(top + f * (bottom - top)) ** rho for f in fractions] + [0.0]


def flow_evaluations(levels: list[float], order: int) -> int:
    """Network calls of `probability_flow` on ``levels``: ``order`` a step, one for a step to 0."""
    steps = len(levels) - 1
    return order * steps - (order - 1 if levels[-1] == 0 else 0)


@torch.no_grad()
def probability_flow(score: ScoreFn, noise_sampler, levels: list[float], x: torch.Tensor, churn: float = 0.0,
                     generator: Optional[torch.Generator] = None, order: int = 2) -> torch.Tensor:
    """Euler's (``order`` 1) or Heun's (2) method on the probability-flow ODE (Karras et al. 2022,
    Alg. 1; with churn, Alg. 2).

    With s = sqrt(sigma) the standard deviation of the noise, x_s = u + s xi, xi ~ N(0, C), the
    ODE is dx/ds = -s F(x, s^2) = (x - D(x, s)) / s, D(x, s) = x + s^2 F(x, s^2) the denoiser
    (F ~ C grad log p: no C is needed). It carries the law of x at one level to the next.

    ``levels``: decreasing standard deviations (`edm_levels`); a last level of 0 makes the last
    step Euler's, which is exactly the denoising step x + s^2 F(x, s^2). ``x``: the state at the
    first level, a draw of p_(levels[0]^2): the prior levels[0] z (z a draw of the noise sampler),
    which is p's only when the data are small beside that noise in every direction, or better a
    draw of a Gaussian fit of the data plus levels[0] z (src/gaussian_fit.py); the ODE carries
    whatever law it starts from, so the start's error stays in the samples.
    ``churn`` > 0: before each step the level is raised by gamma = min(churn / steps, sqrt 2 - 1)
    (s -> s (1 + gamma)) with fresh noise of the sampler, as EDM's stochastic sampler does; at
    the maximum the noise added equals the noise already there. `flow_evaluations` gives the
    network calls.
    """
    steps = len(levels) - 1
    gamma = min(churn / steps, math.sqrt(2) - 1) if churn > 0 else 0.0
    batch_sigma = torch.empty(x.shape[0], device=x.device)

    def slope(x: torch.Tensor, s: float) -> torch.Tensor:
        return -s * score(x, batch_sigma.fill_(s * s))

    for s, s_next in zip(levels[:-1], levels[1:]):
        if gamma > 0:
            raised = s * (1 + gamma)
            x = x + math.sqrt(raised ** 2 - s ** 2) * noise_sampler.sample(x.shape[0], generator=generator)
            s = raised
        d = slope(x, s)
        x_euler = x + (s_next - s) * d
        x = x + (s_next - s) * 0.5 * (d + slope(x_euler, s_next)) if order == 2 and s_next > 0 else x_euler
    return x
