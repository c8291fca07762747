"""The Gaussian fit of the training functions (src/gaussian_fit.py), and the probability-flow ODE
started from it on the exact score of a Gaussian law, at the training grid and at 2x."""

import math
import pickle

import pytest
import torch

from src.diffusion import edm_levels, flow_evaluations, probability_flow
from src.gaussian_fit import GaussianFit, GaussianFitError, fit_gaussian
from src.noise import build_noise_sampler

RES = 12


def noise_at(res: int, channels: int = 2):
    """The quickstart's kind of noise (an exponential kernel, length 0.1) on a res x res grid."""
    return build_noise_sampler(res, white_noise=False, rbf_scale=0.1, rbf_eps=0.01, channels=channels)


def mean_at(res: int) -> torch.Tensor:
    """A smooth mean function at the cell centres of a res x res grid, (res, res, 2)."""
    t = (torch.arange(res) + 0.5) / res
    m = 0.5 * torch.sin(2 * math.pi * t)[:, None] * torch.cos(2 * math.pi * t)[None, :]
    return torch.stack([m, -m], dim=-1)


def flat_covariance(x: torch.Tensor) -> torch.Tensor:
    """Empirical covariance (res^2 C, res^2 C) of x (N, res, res, C), float64."""
    flat = x.reshape(len(x), -1).double()
    flat = flat - flat.mean(0)
    return flat.T @ flat / (len(flat) - 1)


def test_with_every_component_the_fit_is_the_sample_mean_and_covariance():
    x = noise_at(4, channels=1).sample(500, torch.Generator().manual_seed(0)) * 2 + 1
    fit = fit_gaussian(x, torch.ones(4, 4), components=16)
    assert torch.allclose(fit.mean, x.mean(0), atol=1e-5)
    components = fit.components.reshape(len(fit.components), -1).double()
    assert torch.allclose(components.T @ components, flat_covariance(x), atol=1e-4)
    # Nothing is left outside 16 components of 16 dimensions but float32 round-off (the std is 2).
    assert fit.residual_scale.max() < 5e-3


@pytest.mark.parametrize("n", [30, 500])  # the Gram matrix (n < dimensions) and the covariance
def test_fewer_components_keep_the_top_directions_and_every_variance(n):
    x = noise_at(6).sample(n, torch.Generator().manual_seed(1))
    noise_variance = torch.full((6, 6), 1.0001, dtype=torch.float64)
    fit = fit_gaussian(x, noise_variance, components=5)
    covariance = flat_covariance(x)
    top = torch.linalg.eigvalsh(covariance).flip(0)[:5]
    components = fit.components.reshape(5, -1).double()
    assert torch.allclose(torch.linalg.eigvalsh(components @ components.T).flip(0), top, rtol=1e-4)
    variance = components.square().sum(0) + (fit.residual_scale.double().square() * 1.0001).flatten()
    assert torch.allclose(variance, covariance.diagonal(), rtol=1e-4)


def test_a_fit_draws_its_own_law_and_flips_as_training_does():
    x = mean_at(RES) + noise_at(RES).sample(2000, torch.Generator().manual_seed(2))
    noise = noise_at(RES)
    fit = fit_gaussian(x, noise.point_variance(), components=20)
    draws = fit.sample(4000, noise, torch.Generator().manual_seed(3))
    assert (draws.mean(0) - mean_at(RES)).abs().max() < 0.1
    assert torch.allclose(draws.var(0).mean(), x.var(0).mean(), rtol=0.03)
    flipped = GaussianFit(fit.mean, fit.components, fit.residual_scale, fit.n_functions, True, fit.grid)
    # With flips the mean is the four flips' average: this mean is odd in both axes, so about 0.
    assert flipped.sample(4000, noise, torch.Generator().manual_seed(3)).mean(0).abs().max() < 0.1


def test_the_record_reads_back_and_a_bad_one_is_named(tmp_path):
    fit = fit_gaussian(noise_at(4).sample(50, torch.Generator().manual_seed(0)), torch.ones(4, 4), components=3)
    back = GaussianFit.from_record(pickle.loads(pickle.dumps(fit.record())), "fit.pkl")
    assert torch.equal(back.components, fit.components) and (back.flips, back.grid) == (fit.flips, fit.grid)
    with pytest.raises(GaussianFitError, match="bad.pkl .* lacks residual_scale"):
        GaussianFit.from_record({k: v for k, v in fit.record().items() if k != "residual_scale"}, "bad.pkl")
    with pytest.raises(GaussianFitError, match="fit.pkl is a fit of 4 x 4 px functions with 2 channel"):
        back.check_fits(8, 2, "fit.pkl")


# --- the ODE from the fit, on the exact score of u ~ N(mu, a C) -----------------------------------

SIGMA_1, SIGMA_L, A = 20.0, 0.02, 4.0  # the quickstart's levels; the law's spread a C beside sigma_1 C


def ode_draws(factor: int, start: str, n: int = 6000):
    """Heun's method (10 levels and the step to 0: 19 network calls) on the exact score of
    N(mu, A C) on a grid ``factor`` times the fit's, from the prior sqrt(sigma_1) z or from the
    Gaussian fit (32 components) of 4000 draws of the law on the coarse grid, plus sqrt(sigma_1) z."""
    coarse = noise_at(RES)
    fit = fit_gaussian(mean_at(RES) + math.sqrt(A) * coarse.sample(4000, torch.Generator().manual_seed(0)),
                       coarse.point_variance(), components=32)
    noise, mu = noise_at(factor * RES), mean_at(factor * RES)
    levels = edm_levels(SIGMA_1, SIGMA_L, 10)
    generator = torch.Generator().manual_seed(1)
    x0 = levels[0] * noise.sample(n, generator)
    if start == "data_fit":
        x0 = x0 + fit.on_grid(noise.res).sample(n, noise, generator)

    def exact_score(x, sigma):  # C grad log N(mu, (A + sigma) C) = -(x - mu) / (A + sigma)
        return -(x - mu) / (A + sigma[:, None, None, None])

    assert flow_evaluations(levels, 2) == 19
    return probability_flow(exact_score, noise, levels, x0, order=2), mu, noise


@pytest.mark.parametrize("factor", [1, 2])
def test_heun_from_the_data_fit_draws_the_law_in_19_evaluations(factor):
    """Mean within Monte Carlo error, the marginal variance within 2 % on average over the grid
    (each point's within 8 %), and the spatial correlations within 0.06 of C's; at the training
    grid and at 2x, where the fit's mean, components and residual scale are interpolated and the
    residual is the fine grid's noise.

    Measured (6000 draws): marginal variance 1.016 (1x) and 1.001 (2x) times a C's, the points
    0.94-1.08, correlations within 0.037 (1x) and 0.048 (2x). The 1.6 % excess at 1x is Heun's
    at 10 levels: the prior start shows it too (0.846 against the exact flow's 0.833). With 256
    components (all but 32 of the 288 dimensions, rough ones among them, which interpolation
    smooths) the 2x variance falls to 0.93: the fit carries to finer grids its smooth components
    best, which is what real data's largest ones are."""
    x, mu, noise = ode_draws(factor, "data_fit")
    point_variance = A * noise.point_variance()[..., None]
    ratio = x.var(0) / point_variance
    # Standard error sqrt(A / 6000) = 0.026: 0.15 is 6 of them, the largest of 288 (measured 0.08-0.10;
    # from the prior, 0.24-0.28).
    assert (x.mean(0) - mu).abs().max() < 0.15
    assert abs(ratio.mean().item() - 1) < 0.02
    assert 0.92 < ratio.min() and ratio.max() < 1.08
    covariance = flat_covariance(x)
    correlation = covariance / torch.outer(covariance.diagonal().sqrt(), covariance.diagonal().sqrt())
    c = noise.covariance_block(noise.res ** 2)
    c_correlation = c / torch.outer(c.diagonal().sqrt(), c.diagonal().sqrt())
    per_channel = correlation.reshape(noise.res ** 2, 2, noise.res ** 2, 2)
    for channel in range(2):
        assert (per_channel[:, channel, :, channel] - c_correlation).abs().max() < 0.06


def test_heun_from_the_prior_misses_the_law_by_the_data_spread():
    """The same sampler from sqrt(sigma_1) z: the ODE carries the start's variance sigma_1 C, not
    a C + sigma_1 C, so the samples' variance is sigma_1 / (a + sigma_1) = 0.83 of the law's, and
    their mean is off by mu's share: the test above can fail."""
    x, mu, noise = ode_draws(1, "prior")
    ratio = x.var(0) / (A * noise.point_variance()[..., None])
    assert 0.80 < ratio.mean() < 0.87
