"""A Gaussian fit of the training functions: where the probability-flow ODE starts.

The ODE samplers (src/diffusion.py, `probability_flow`) carry the law of x at the first level,
p_sigma_1 = law of u + sqrt(sigma_1) z (z ~ N(0, C)), to the data's law; they cannot correct a
wrong start, as Langevin dynamics and churn do with their fresh noise. Starting from the prior
N(0, sigma_1 C) is right only when the data's spread is small beside sigma_1 C in every
direction, and at the quickstart's sigma_1 it is not (docs/samplers.org). A Gaussian fit
N(m, S) of the training functions, plus sqrt(sigma_1) z, has p_sigma_1's mean and covariance
exactly when S is the data's covariance.

S must scale to the paper's grid (120 px x 2 channels: D = 28,800, a D x D covariance would be
3.3 GB), so it is kept as the top k principal components and a residual shaped like the noise:

    S ~ V diag(lambda) V^T + G C G,   G = diag(g),  g^2 = (diag(S) - diag(V diag(lambda) V^T)) / diag(C)

which keeps every coordinate's variance and the k directions of largest spread; the residual is
the noise's field C (its correlations, its roughness) scaled point by point. Both parts are
functions, so the fit is a law on functions that any grid can draw: the components and g
interpolated, C the grid's own (a per-pixel white residual would be too smooth once interpolated
to a finer grid, and lose variance there). The components
come from the eigendecomposition of the smaller of the Gram matrix X X^T (N x N) and X^T X
(D x D) of the centred functions X (N x D), in float64: exact, and deterministic (no random
projections, so no random stream of training is touched).

A draw is ``m + V diag(sqrt(lambda)) e + g * z`` (e standard normal, z a draw of the noise).
When training flips its examples (``augment``), each draw is flipped at random the same way, so
that the start has the flipped data's law as training saw it. On a finer grid (super-resolution)
m, the components and g are interpolated to it as the data are (`refine`): bilinearly for
Volcano's and a 'cells' grid, `src.data.resample_points` for a 'points' grid, and z is the fine
grid's noise.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from src.data import DATA_GRIDS, flip, resample_points
from src.errors import KnownError

DATA_FIT = "gaussian_fit.pkl"  # the fit of a run's training functions, in its directory beside gt_stats.pkl
COMPONENTS = 64  # principal components kept: the data's largest-spread directions (docs/samplers.org)
RECORD_KEYS = ("mean", "components", "residual_scale", "n_functions", "flips", "grid")


class GaussianFitError(KnownError, ValueError):
    """A gaussian_fit.pkl that cannot be read as a fit, or one that does not fit the run."""


@dataclass
class GaussianFit:
    """N(mean, components^T components + G C G) over functions (res, res, C), G = diag(residual_scale).

    Attributes
    ----------
    mean : (res, res, C)
    components : (k, res, res, C), the principal directions scaled by their standard deviation
    residual_scale : (res, res, C), each coordinate's standard deviation outside the components in
        units of the noise's there (g above)
    n_functions : how many functions were fitted
    flips : whether a draw is flipped at random as training flips its examples
    grid : 'cells' or 'points': how a draw is carried to a finer grid (`refine`)
    """

    mean: torch.Tensor
    components: torch.Tensor
    residual_scale: torch.Tensor
    n_functions: int
    flips: bool
    grid: str

    @property
    def res(self) -> int:
        return self.mean.shape[0]

    @property
    def channels(self) -> int:
        return self.mean.shape[-1]

    def to(self, device) -> "GaussianFit":
        return GaussianFit(self.mean.to(device), self.components.to(device), self.residual_scale.to(device),
                           self.n_functions, self.flips, self.grid)

    def on_grid(self, res: int) -> "GaussianFit":
        """The same fit on a res x res grid of the same region (`refine`), e.g. a finer one."""
        if res == self.res:
            return self
        mean, scale = refine(torch.stack([self.mean, self.residual_scale]), res, self.grid)
        return GaussianFit(mean, refine(self.components, res, self.grid), scale, self.n_functions, self.flips,
                           self.grid)

    def sample(self, n: int, noise_sampler, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws (n, res, res, C) on the grid and device of ``noise_sampler`` (the experiment's
        noise there; the fit must be on its device), from ``generator`` only."""
        fit = self.on_grid(noise_sampler.res)
        weights = torch.randn(n, len(fit.components), device=fit.mean.device, generator=generator)
        x = (fit.mean + torch.einsum("nk,k...->n...", weights, fit.components)
             + fit.residual_scale * noise_sampler.sample(n, generator))
        if self.flips:
            x = flip(x, torch.rand(n, 2, device=x.device, generator=generator) < 0.5)
        return x

    def record(self) -> dict:
        """What gaussian_fit.pkl holds: float32 arrays and the fit's facts (see `from_record`)."""
        return {"mean": self.mean.float().cpu().numpy(), "components": self.components.float().cpu().numpy(),
                "residual_scale": self.residual_scale.float().cpu().numpy(), "n_functions": self.n_functions,
                "flips": self.flips, "grid": self.grid}

    @classmethod
    def from_record(cls, record, where: str) -> "GaussianFit":
        """The fit of a `record` read from ``where`` (named in the error of a bad one)."""
        missing = [key for key in RECORD_KEYS if not isinstance(record, dict) or key not in record]
        if missing:
            raise GaussianFitError(f"{where} is not a Gaussian fit of this project: it lacks {', '.join(missing)}")
        mean, components, residual_scale = (torch.from_numpy(np.asarray(record[key], dtype=np.float32))
                                            for key in ("mean", "components", "residual_scale"))
        if (mean.dim() != 3 or mean.shape[0] != mean.shape[1] or residual_scale.shape != mean.shape
                or components.dim() != 4 or components.shape[1:] != mean.shape or record["grid"] not in DATA_GRIDS):
            raise GaussianFitError(f"{where}: mean {tuple(mean.shape)}, components {tuple(components.shape)}, "
                                   f"residual_scale {tuple(residual_scale.shape)}, grid {record['grid']!r}: expected "
                                   f"(res, res, C), (k, res, res, C), (res, res, C) and one of {list(DATA_GRIDS)}")
        return cls(mean, components, residual_scale, int(record["n_functions"]), bool(record["flips"]), record["grid"])

    def check_fits(self, res: int, channels: int, where: str) -> None:
        """Refuse a fit of another grid or channel count than a run's (``res`` px, ``channels``)."""
        if (self.res, self.channels) != (res, channels):
            raise GaussianFitError(f"{where} is a fit of {self.res} x {self.res} px functions with {self.channels} "
                                   f"channel(s), but the run's functions are {res} x {res} px with {channels}")


def fit_gaussian(functions: torch.Tensor, noise_variance: torch.Tensor, components: int = COMPONENTS,
                 flips: bool = False, grid: str = "cells") -> GaussianFit:
    """The Gaussian fit of ``functions`` (N, res, res, C), N >= 2: their mean, their top
    ``components`` principal components (fewer if their covariance has a lower rank) and each
    coordinate's residual variance over ``noise_variance`` (res, res), the noise's at each point
    (`src.noise.NoiseSampler.point_variance`), computed in float64 on ``functions``' device."""
    n = len(functions)
    if n < 2:
        raise GaussianFitError(f"a Gaussian fit needs at least 2 functions, got {n}")
    shape = functions.shape[1:]
    mean = functions.double().mean(0)
    centred = (functions - mean.to(functions.dtype)).reshape(n, -1)
    scale = 1.0 / (n - 1)
    # The smaller Gram matrix has the same nonzero eigenvalues as the covariance.
    if n <= centred.shape[1]:
        values, vectors = torch.linalg.eigh((centred @ centred.T).double() * scale)
        k = min(components, n - 1)
        values, vectors = values.flip(0)[:k].clamp(min=0), vectors.flip(1)[:, :k]
        # Covariance eigenvector w = X^T v / sqrt((n - 1) lambda); scaled by sqrt(lambda): X^T v / sqrt(n - 1).
        scaled = (centred.T @ vectors.to(centred.dtype)).T.double() * scale ** 0.5
    else:
        values, vectors = torch.linalg.eigh((centred.T @ centred).double() * scale)
        k = min(components, centred.shape[1])
        values, vectors = values.flip(0)[:k].clamp(min=0), vectors.flip(1)[:, :k]
        scaled = vectors.T * values.sqrt()[:, None]
    variance = centred.square().sum(0).double() * scale
    residual = (variance - scaled.square().sum(0)).clamp(min=0)
    residual_scale = (residual.reshape(shape) / noise_variance.to(residual)[..., None]).sqrt()
    return GaussianFit(mean.float(), scaled.float().reshape(k, *shape), residual_scale.float(), n, flips, grid)


def refine(x: torch.Tensor, res: int, grid: str) -> torch.Tensor:
    """Functions x (N, r, r, C) on the finer res x res grid of the same region, as the data are
    resized there (src/data.py's `resize_and_crop`): bilinear for 'cells', `resample_points` for 'points'."""
    channels_first = x.permute(0, 3, 1, 2)
    if grid == "points":
        fine = resample_points(channels_first, res)
    else:
        fine = F.interpolate(channels_first, size=(res, res), mode="bilinear", align_corners=False)
    return fine.permute(0, 2, 3, 1).contiguous()
