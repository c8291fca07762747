"""Posterior sampling with the unconditional score, no retraining: inpainting, conditional
super-resolution, denoising.

The observation is ``y = A u + w``, ``w ~ N(0, v I)`` white in the observation's space with a
known variance ``v >= 0``, and ``A`` linear: `Mask` (the observed pixels: inpainting),
`BlockAverage` (the means of factor x factor blocks, a coarser function: conditional
super-resolution) or `Identity` (denoising). The prior is the model's law of u, known through
its C-preconditioned score ``F(x, sigma) ~ C grad log p_sigma(x)`` (src/diffusion.py: ``sigma``
a variance, ``x = u + sqrt(sigma) z``, ``z ~ N(0, C)`` the noise sampler's draw).

The sampler, `posterior_langevin`: annealed Langevin dynamics on the function and the
observation's noise together, kept on the affine set of what they must satisfy.

(P1) Target at level sigma:  pi_sigma(x) ~ p_sigma(x) N(y_sigma - A x; 0, v I),
     y_sigma = y + sqrt(sigma) A z0, with one noise draw z0 a sample carried through the levels:
     the observation of x_sigma = u + sqrt(sigma) z0 (Song et al. 2021's and RePaint's noisy
     observation). As sigma -> 0, pi_sigma -> p(u | y) ~ p(u) N(y - A u; 0, v I). For u ~ N(mu,
     a C), pi_sigma is exactly the law of x_sigma given y at every level.
(P2) pi_sigma is the law of x when (x, w) ~ p_sigma(x) N(w; 0, v I) is conditioned on the linear
     constraint A x + w = y_sigma. Langevin on (x, w), preconditioned by D = diag(C, v I): the
     step of `annealed_langevin` for x, x' = x + alpha / 2 F(x, sigma) + sqrt(alpha) z, and the
     exact Ornstein-Uhlenbeck step of N(0, v I) for w, w' = e^(-alpha / 2) w + sqrt(v (1 -
     e^(-alpha))) xi (exact, hence stable at any alpha); then the D^-1-orthogonal projection
     back onto the constraint:
         r = A x' + w' - y_sigma,   x = x' - C A^T S^-1 r,   w = w' - v S^-1 r,   S = A C A^T + v I.
     This applies Pi = I - D Ã^T S^-1 Ã (Ã = [A, I]) to the step's drift and noise; Pi D Pi^T =
     Pi D, so the projected noise has the covariance of the projected preconditioner Pi D and
     the projected drift is Pi D grad log p: Langevin on the constraint set, whose stationary law
     is (P1) as alpha -> 0 with enough steps per level (the error any discretised Langevin has).
(P3) At the end, (x, w) is projected onto A x + w = y (sigma = 0), after the final denoising
     step x + sigma_L F(x, sigma_L) when ``denoise_last``. The law of x is then pi_{sigma_L},
     moved onto the observation: the posterior as sigma_L -> 0 (for u ~ N(mu, a C) and v = 0, its
     covariance is (1 + sigma_L / a) the posterior's, (1 + sigma_L / a)^-1 after the denoising).

Why the projection is C's and not the Euclidean one: the replacement of Song et al. 2021 and
RePaint sets the observed pixels to y_sigma and leaves the others. With a preconditioned drift
and GRF noise that is biased however long the chain runs: the unobserved pixels' drift
(C grad log p)_U = C_UU grad_U log p + C_UO grad_O log p holds the gradient at the observed ones,
and their noise has covariance C_UU, so the stationary law is not the conditional. For u ~ N(mu,
a C) the drift -(x_U - mu_U) / (a + sigma) does not see the observation at all: replacement
draws the prior's unobserved pixels (tests/test_posterior.py measures it). The projection here
also moves the unobserved pixels, by the kriging C_UO C_OO^-1 of the observed residual.

Cost: the projection is dense. `ObservationProjection` builds C (N x N float64, N = res^2: 134 MB
at 64 px, 2.1 GB at 128 px) once, and keeps the gain C A^T S^-1 (N x m float32, m the observed
values); a step adds a (batch channels, m) x (m, N) product, small beside the network.

Denoising under noise of covariance tau^2 C rather than white: y is then exactly a draw of x at
level tau^2, and `annealed_langevin` from x = y over the levels below tau^2 samples the
posterior; this module's observation noise is white.
"""

import math
from typing import Optional

import torch

from src.diffusion import ScoreFn, annealed_langevin
from src.errors import KnownError


class PosteriorError(KnownError, ValueError):
    """An observation that cannot condition the sampler (its operator, grid or variance)."""


class Mask:
    """Inpainting: ``A u`` is u at the observed pixels, ``observed`` (res, res) bool; an
    observation is (batch, m, channels), the observed pixels in row-major order."""

    name = "mask"

    def __init__(self, observed: torch.Tensor):
        observed = torch.as_tensor(observed, dtype=torch.bool)
        if observed.dim() != 2 or observed.shape[0] != observed.shape[1]:
            raise PosteriorError(f"a mask must be a square (res, res) grid, got shape {tuple(observed.shape)}")
        if not observed.any():
            raise PosteriorError("the mask observes no pixel: nothing to condition on")
        self.observed, self.res, self.size = observed, observed.shape[0], int(observed.sum())

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        return u[:, self.observed.to(u.device)]

    def as_observation(self, function: torch.Tensor) -> torch.Tensor:
        """The observation (batch, m, channels) of a function (batch, res, res, channels) that holds it."""
        return self(function)

    def as_function(self, y: torch.Tensor) -> torch.Tensor:
        """An observation (batch, m, channels) on the grid (batch, res, res, channels), NaN where unobserved."""
        grid = torch.full((y.shape[0], self.res, self.res, y.shape[-1]), math.nan, dtype=y.dtype, device=y.device)
        grid[:, self.observed.to(y.device)] = y
        return grid


class Identity(Mask):
    """Denoising: every pixel observed."""

    name = "identity"

    def __init__(self, res: int):
        super().__init__(torch.ones(res, res, dtype=torch.bool))


class BlockAverage:
    """Conditional super-resolution: ``A u`` is the mean of u over each ``factor`` x ``factor``
    block, a function on the grid res / factor; an observation is (batch, m, channels), m =
    (res / factor)^2, the coarse pixels in row-major order."""

    name = "average"

    def __init__(self, res: int, factor: int):
        if factor < 1 or res % factor:
            raise PosteriorError(f"block averaging by {factor} needs a grid side divisible by it, got {res}")
        self.res, self.factor, self.coarse = res, factor, res // factor
        self.size = self.coarse**2

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        batch, channels, c, f = u.shape[0], u.shape[-1], self.coarse, self.factor
        return u.reshape(batch, c, f, c, f, channels).mean(dim=(2, 4)).reshape(batch, c * c, channels)

    def as_observation(self, function: torch.Tensor) -> torch.Tensor:
        """The observation (batch, m, channels) of a coarse function (batch, res / factor, res / factor, channels)."""
        return function.reshape(function.shape[0], -1, function.shape[-1])

    def as_function(self, y: torch.Tensor) -> torch.Tensor:
        return y.reshape(y.shape[0], self.coarse, self.coarse, y.shape[-1])


Operator = Mask | BlockAverage


class ObservationProjection:
    """The D^-1-orthogonal projection (P2) onto {A x + w = target}, for the noise of
    ``noise_sampler`` (C; white noise: C = I), the operator A and the observation variance v.

    Built once per operator (O(N^2 m) on the noise sampler's device) and reused by every batch.
    Raises `PosteriorError` if v < 0, the operator is on another grid, or S = A C A^T + v I is
    singular (v = 0 with a noise that cannot move what A sees, e.g. GANO's noise, which has no
    mean mode, under `Identity`).
    """

    def __init__(self, noise_sampler, operator: Operator, variance: float):
        if not variance >= 0:
            raise PosteriorError(f"the observation noise variance must be >= 0, got {variance}")
        if operator.res != noise_sampler.res:
            raise PosteriorError(f"the operator is on a {operator.res} px grid, the noise sampler on "
                                 f"{noise_sampler.res} px")
        self.operator, self.variance = operator, float(variance)
        res, device = noise_sampler.res, noise_sampler.device
        points = res * res
        covariance = noise_sampler.covariance_block(points)
        if covariance is None:  # white noise
            covariance = torch.eye(points, dtype=torch.float64, device=device)
        # C is symmetric: its rows, as functions, are its columns, and A applied to them is (A C)^T = C A^T.
        c_at = operator(covariance.reshape(points, res, res, 1))[..., 0]  # (N, m)
        s = operator(c_at.T.reshape(-1, res, res, 1))[..., 0]  # (m, m): A C A^T
        s.diagonal().add_(self.variance)
        factor, info = torch.linalg.cholesky_ex(s)
        # A pivot that round-off alone keeps above 0 is a singular S too.
        if info.item() != 0 or factor.diagonal().square().min() < 1e-10 * s.diagonal().max():
            raise PosteriorError(f"A C A^T + v I of the {operator.name} operator is singular (v = {variance}): "
                                 "the noise cannot reach what the observation sees; give a variance > 0")
        self.gain = torch.cholesky_solve(c_at.T, factor).T.float()  # C A^T S^-1, (N, m)
        self.noise_gain = (self.variance * torch.cholesky_inverse(factor)).float()  # v S^-1, (m, m)

    def __call__(self, x: torch.Tensor, w: Optional[torch.Tensor], target: torch.Tensor):
        """(x, w) projected onto A x + w = target; w is None when v = 0 (then w = 0 throughout)."""
        residual = self.operator(x) - target
        if w is not None:
            residual = residual + w
            w = w - torch.einsum("km,bmc->bkc", self.noise_gain, residual)
        x = x - torch.einsum("nm,bmc->bnc", self.gain, residual).reshape(x.shape)
        return x, w


class _ConstrainedChain:
    """The state `posterior_langevin` adds to Langevin's x: the noise draw z0 of (P1) as A z0,
    and the observation noise w of (P2)."""

    def __init__(self, projection: ObservationProjection, y: torch.Tensor, z0: torch.Tensor,
                 generator: Optional[torch.Generator]):
        self.projection, self.y, self.generator = projection, y, generator
        self.observed_noise = projection.operator(z0)
        variance = projection.variance
        self.w = (math.sqrt(variance) * self._white(self.observed_noise)) if variance > 0 else None

    def _white(self, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape, generator=self.generator, device=like.device)

    def target(self, sigma: float) -> torch.Tensor:
        return self.y + math.sqrt(sigma) * self.observed_noise  # y_sigma of (P1)

    def start(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        x, self.w = self.projection(x, self.w, self.target(sigma))
        return x

    def step(self, x: torch.Tensor, sigma: float, alpha: float, noisy: bool) -> torch.Tensor:
        if self.w is not None:  # the exact Ornstein-Uhlenbeck step of N(0, v I) (P2)
            self.w = math.exp(-alpha / 2) * self.w
            if noisy:
                self.w = self.w + math.sqrt(self.projection.variance * -math.expm1(-alpha)) * self._white(self.w)
        x, self.w = self.projection(x, self.w, self.target(sigma))
        return x

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(x, self.w, self.y)[0]  # (P3)


@torch.no_grad()
def posterior_langevin(score: ScoreFn, noise_sampler, sigmas: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                       projection: ObservationProjection, epsilon: float, T: int,
                       generator: Optional[torch.Generator] = None, progress: bool = False,
                       step_rule: str = "sigma_squared", denoise_last: bool = False) -> torch.Tensor:
    """Draws of u given y = A u + w (the module docstring's (P1)-(P3)), one per row of ``x``.

    Parameters
    ----------
    score : the C-preconditioned score F(x, sigma), any (a network, an exact one).
    noise_sampler : the noise of the score, on the grid of the draws.
    sigmas, epsilon, T, step_rule, denoise_last, generator, progress : as for `annealed_langevin`.
    x : (batch, res, res, channels) initial state, usually a draw of the noise sampler.
    y : (batch or 1, m, channels) the observation, in the operator's layout (``as_observation``).
    projection : `ObservationProjection` of the noise sampler, the operator A and the variance v.

    Returns
    -------
    (batch, res, res, channels): with v = 0, A x = y to round-off.
    """
    chain = _ConstrainedChain(projection, y.to(x.device), noise_sampler.sample(len(x), generator), generator)
    x = chain.start(x, sigmas[0].item())
    x = annealed_langevin(score, noise_sampler, sigmas, x, epsilon, T, generator=generator, progress=progress,
                          step_rule=step_rule, denoise_last=denoise_last, constrain=chain.step)
    return chain.finish(x)
