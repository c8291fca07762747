"""Noise schedules, the score-matching loss and annealed Langevin dynamics (src/diffusion.py).

The sampler is checked without any training: for Gaussian data the score of the perturbed
distribution is known in closed form, so annealed Langevin dynamics driven by it must
reproduce the data's mean and covariance.
"""

import math

import pytest
import scipy.stats
import torch

from src.config import config_from_dict
from src.diffusion import (annealed_langevin, draw_levels, edm_levels, flow_evaluations, probability_flow, score_matching_loss,
                           sigma_schedule, step_sizes)
from src.experiment import sample
from src.methods.diffusion import METHOD as DIFFUSION, network_evaluations
from src.noise import build_noise_sampler


def test_geometric_schedule_runs_from_sigma_1_to_sigma_L_at_a_constant_ratio():
    sigmas = sigma_schedule(30.0, 0.01, 500, "geometric")
    assert sigmas.shape == (500,)
    assert sigmas[0].item() == pytest.approx(30.0, rel=1e-5)
    assert sigmas[-1].item() == pytest.approx(0.01, rel=1e-5)
    ratios = sigmas[1:] / sigmas[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-4)


def test_linear_schedule_has_constant_steps():
    sigmas = sigma_schedule(1.0, 0.1, 10, "linear")
    assert torch.allclose(sigmas, torch.linspace(1.0, 0.1, 10))


def test_unknown_schedule_is_named():
    with pytest.raises(ValueError, match="cosine"):
        sigma_schedule(1.0, 0.1, 10, "cosine")


def test_step_sizes_follow_the_original_rule():
    sigmas = torch.tensor([4.0, 1.0, 0.5])
    assert torch.allclose(step_sizes(sigmas, 1e-3), 1e-3 * torch.tensor([64.0, 4.0, 1.0]))


def test_sigma_step_rule_is_proportional_to_the_variance():
    sigmas = torch.tensor([4.0, 2.0, 0.5])
    assert torch.allclose(step_sizes(sigmas, 1e-3, "sigma"), 1e-3 * torch.tensor([8.0, 4.0, 1.0]))
    with pytest.raises(ValueError, match="'cubic'"):
        step_sizes(sigmas, 1e-3, "cubic")


def test_denoise_last_returns_the_posterior_mean_of_a_single_function():
    """For data that is one function u0, F(x, sigma) = -(x - u0) / sigma, so E[u | x] = u0 exactly."""
    u0 = torch.randn(1, 4, 4, 2)
    sampler = build_noise_sampler(4, white_noise=True, rbf_scale=1.0, rbf_eps=0.0)

    def score(x, sigma):
        return -(x - u0) / sigma[:, None, None, None]

    sigmas = torch.tensor([1.0, 0.1])
    x = sampler.sample(3)
    denoised = annealed_langevin(score, sampler, sigmas, x, epsilon=1e-3, T=2, denoise_last=True)
    assert torch.allclose(denoised, u0.expand(3, -1, -1, -1), atol=1e-5)
    # Without the denoising step, tiny steps leave the samples far from u0: the test can fail.
    plain = annealed_langevin(score, sampler, sigmas, x, epsilon=1e-3, T=2)
    assert (plain - u0).abs().max() > 0.5


@pytest.mark.parametrize("weighting", ["sigma", "unit"])
def test_loss_vanishes_at_the_exact_score_of_a_single_function(weighting):
    """Data that is one function u0 has the exact score F(x, sigma) = -(x - u0) / sigma: zero loss."""
    sampler = build_noise_sampler(8, white_noise=False, rbf_scale=0.2, rbf_eps=0.01)
    u0 = torch.randn(1, 8, 8, 2)
    loss = score_matching_loss(lambda x, sigma: -(x - u0) / sigma[:, None, None, None], u0.expand(16, -1, -1, -1),
                               torch.tensor([2.0, 0.5, 0.1]), sampler, weighting=weighting)
    assert loss.item() == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("weighting, expected", [("sigma", (2.0 + 0.5 + 0.1) / 3), ("unit", 1.0)])
def test_loss_of_a_zero_score_is_the_weighted_noise_energy(weighting, expected):
    """With F = 0 the residual is the noise sqrt(sigma) z: its mean square is E[sigma] E[z^2] for the
    original weighting and E[z^2] = 1 for white noise once each term is divided by its sigma."""
    sampler = build_noise_sampler(8, white_noise=True, rbf_scale=1.0, rbf_eps=0.0)
    u = torch.randn(4000, 8, 8, 2)
    loss = score_matching_loss(lambda x, sigma: torch.zeros_like(x), u, torch.tensor([2.0, 0.5, 0.1]), sampler,
                               generator=torch.Generator().manual_seed(3), weighting=weighting)
    # Levels are drawn per example: E[sigma] over 4000 draws has a standard error of 0.013.
    assert loss.item() == pytest.approx(expected, abs=0.05)


def test_log_uniform_levels_cover_the_range_evenly_in_log():
    """Training levels drawn log-uniformly lie in [sigma_L, sigma_1] and their logs are uniform
    (Kolmogorov-Smirnov against the uniform law); discrete ones are exactly the schedule's."""
    sigmas = torch.tensor([20.0, 1.0, 0.02])
    drawn = draw_levels(sigmas, 20000, torch.Generator().manual_seed(0), "log_uniform")
    assert 0.02 <= drawn.min() and drawn.max() <= 20.0
    fractions = (drawn.log() - math.log(0.02)) / (math.log(20.0) - math.log(0.02))
    assert scipy.stats.kstest(fractions.numpy(), "uniform").pvalue > 1e-3
    assert len(set(drawn.tolist())) > 19000  # not the three levels
    discrete = draw_levels(sigmas, 3000, torch.Generator().manual_seed(0), "discrete")
    assert set(discrete.tolist()) == set(sigmas.tolist())
    with pytest.raises(ValueError, match="uniform_in_sigma"):
        draw_levels(sigmas, 3, None, "uniform_in_sigma")


def test_log_uniform_loss_of_a_zero_score_is_the_mean_level():
    """With F = 0 the original weighting's loss is E[sigma] E[z^2]: for log-uniform variances in
    [a, b], E[sigma] = (b - a) / log(b / a)."""
    sampler = build_noise_sampler(8, white_noise=True, rbf_scale=1.0, rbf_eps=0.0)
    u = torch.randn(4000, 8, 8, 2)
    loss = score_matching_loss(lambda x, sigma: torch.zeros_like(x), u, torch.tensor([2.0, 0.5, 0.1]), sampler,
                               generator=torch.Generator().manual_seed(3), levels="log_uniform")
    # The per-example level's standard deviation is 0.51: the mean of 4000 has a standard error of 0.008.
    assert loss.item() == pytest.approx((2.0 - 0.1) / math.log(20.0), abs=0.04)


def test_unknown_loss_weighting_is_named():
    sampler = build_noise_sampler(4, white_noise=True, rbf_scale=1.0, rbf_eps=0.0)
    with pytest.raises(ValueError, match="lambda"):
        score_matching_loss(lambda x, s: x, torch.zeros(2, 4, 4, 2), torch.tensor([1.0]), sampler, weighting="lambda")


# --- Gaussian data with a known score --------------------------------------------------------

RES = 5
DIM = RES * RES


def gaussian_problem():
    """Data covariance Sigma (a smooth GRF) and the GRF noise sampler with covariance C."""
    data_field = build_noise_sampler(RES, white_noise=False, rbf_scale=0.5, rbf_eps=0.1,
                                     kernel="squared_exponential", method="cholesky")
    noise = build_noise_sampler(RES, white_noise=False, rbf_scale=0.3, rbf_eps=0.1, method="cholesky")
    sigma_data = data_field.covariance_block(DIM).float()
    c_noise = noise.covariance_block(DIM).float()
    return data_field, sigma_data, noise, c_noise


def exact_score(sigma_data, c_noise, mean):
    """F(x, sigma) = -C (Sigma + sigma C)^{-1} (x - mean), the C-preconditioned score of N(mean, Sigma + sigma C)."""
    cache = {}

    def matrix(s):
        if s not in cache:
            cache[s] = -c_noise @ torch.linalg.inv(sigma_data + s * c_noise)
        return cache[s]

    def score(x, sigma):
        flat = (x - mean).reshape(x.shape[0], DIM, 2)  # channels last: (batch, grid point, channel)
        levels = sigma.unique().tolist()
        if len(levels) == 1:  # the Langevin case: one level for the whole batch
            return torch.matmul(matrix(levels[0]), flat).reshape(x.shape)
        out = torch.empty_like(flat)
        for s in levels:
            rows = sigma == s
            out[rows] = torch.matmul(matrix(s), flat[rows])
        return out.reshape(x.shape)

    return score


def channel_covariance(x):
    """Empirical covariance (DIM, DIM) of x (N, RES, RES, 2), pooling the two channels' estimates."""
    flat = x.permute(0, 3, 1, 2).reshape(x.shape[0], 2, DIM).double()
    flat = flat - flat.mean(0)
    return (torch.einsum("nci,ncj->ij", flat, flat) / (2 * (len(flat) - 1))).float()


def test_loss_is_smallest_at_the_exact_score():
    data_field, sigma_data, noise, c_noise = gaussian_problem()
    score = exact_score(sigma_data, c_noise, 0.0)
    sigmas = sigma_schedule(2.0, 0.05, 6)
    u = data_field.sample(4000, generator=torch.Generator().manual_seed(0))

    def loss_of(scale):
        return score_matching_loss(lambda x, s: scale * score(x, s), u, sigmas, noise,
                                   generator=torch.Generator().manual_seed(1)).item()

    assert loss_of(1.0) < loss_of(0.9)
    assert loss_of(1.0) < loss_of(1.1)


@pytest.mark.parametrize("step_rule, epsilon, denoise_last", [
    # alpha_j = epsilon sigma_j^2 / sigma_L^2: alpha_1 / sigma_1 = 2 (stable), alpha_L / sigma_L = 0.04.
    ("sigma_squared", 4e-4, False),
    # alpha_j / sigma_j = 0.5 at every level; the last step's posterior mean shrinks the covariance
    # by about sigma_L = 0.01, well inside the tolerance.
    ("sigma", 5e-3, True),
])
@pytest.mark.slow
def test_annealed_langevin_with_the_exact_score_reproduces_gaussian_data(step_rule, epsilon, denoise_last):
    """Mean within 0.05 and every covariance entry within 0.07 of the data's (unit variances).

    With this schedule the exact expected covariance of the sampler's output, propagated through
    every step, is within 0.03 of the data's (the leftover noise of the last levels); the rest
    of the tolerance is Monte Carlo error of 2 x 6000 fields (standard error ~0.013 per entry).
    """
    data_field, sigma_data, noise, c_noise = gaussian_problem()
    mean = torch.zeros(1, RES, RES, 2)
    mean[..., 0] = 0.5
    mean[..., 1] = -0.3
    sigmas = sigma_schedule(0.5, 0.01, 30)
    x = noise.sample(6000)
    samples = annealed_langevin(exact_score(sigma_data, c_noise, mean), noise, sigmas, x, epsilon=epsilon, T=60,
                                step_rule=step_rule, denoise_last=denoise_last)
    assert torch.isfinite(samples).all()
    assert (samples.mean(0) - mean[0]).abs().max() < 0.05
    assert (channel_covariance(samples) - sigma_data).abs().max() < 0.07
    # The noise distribution itself is far from the data: the test can fail.
    assert (channel_covariance(noise.sample(6000)) - sigma_data).abs().max() > 0.3


def test_sample_drops_diverged_samples_with_a_warning():
    """The sampling entry point of train.py and eval.py keeps the finite samples and counts the others."""
    args = config_from_dict({"white_noise": True, "sigma_1": 1.0, "sigma_L": 0.1, "L": 2, "T": 2, "epsilon": 1e-3})
    noise = build_noise_sampler(4, white_noise=True, rbf_scale=1.0, rbf_eps=0.0)

    class BlowsUpHalf(torch.nn.Module):
        def forward(self, x, sigma):
            out = -x / sigma[:, None, None, None]
            out[::2] = math.nan
            return out

    with pytest.warns(UserWarning, match="3 / 6 generated samples"):
        samples = sample(DIFFUSION, BlowsUpHalf(), args, noise, n=6, batch_size=4, seed=0, progress=False)
    assert samples.shape == (3, 4, 4, 2)
    assert torch.isfinite(samples).all()


def test_sample_depends_only_on_its_seed():
    args = config_from_dict({"white_noise": True, "sigma_1": 1.0, "sigma_L": 0.1, "L": 2, "T": 2, "epsilon": 1e-3})
    noise = build_noise_sampler(4, white_noise=True, rbf_scale=1.0, rbf_eps=0.0)
    shrink = torch.nn.Module()
    shrink.forward = lambda x, sigma: -x / sigma[:, None, None, None]
    first = sample(DIFFUSION, shrink, args, noise, n=5, batch_size=2, seed=7, progress=False)
    torch.rand(10)  # the global generator moves on: the samples must not
    assert torch.equal(sample(DIFFUSION, shrink, args, noise, n=5, batch_size=2, seed=7, progress=False), first)
    assert not torch.equal(sample(DIFFUSION, shrink, args, noise, n=5, batch_size=2, seed=8, progress=False), first)


# --- the probability-flow ODE sampler -----------------------------------------------------------


def counting(score):
    """``score`` that counts its calls (one call: one network evaluation for the whole batch)."""
    def counted(x, sigma):
        counted.calls += 1
        return score(x, sigma)
    counted.calls = 0
    return counted


@pytest.mark.parametrize("order, steps, churn, calls", [(2, 18, 0.0, 35), (2, 36, 10.0, 71), (1, 140, 0.0, 140)])
def test_the_ode_with_the_exact_score_reproduces_gaussian_data_with_the_calls_it_reports(order, steps, churn, calls):
    """The same data, score and tolerances as the Langevin test above, by Heun's method (order
    2) and Euler's (order 1, which needs more steps: at 35 its covariance is 0.07 low on average).

    The ODE starts at the prior of its first level, 50 x a draw of the noise; the data's law
    there is N(mean, Sigma + 2500 C), whose difference is carried to the end shrunk by about
    |mean| / 50 in the mean and 1 / 2500 in the covariance, well inside the tolerances. Churn
    raises each level by sqrt 2 before its step, which lengthens the steps: at 18 levels its
    covariance is 0.05 high on average (measured), at 36 within Monte Carlo error.
    """
    data_field, sigma_data, noise, c_noise = gaussian_problem()
    mean = torch.zeros(1, RES, RES, 2)
    mean[..., 0] = 0.5
    mean[..., 1] = -0.3
    levels = edm_levels(2500.0, 0.01, steps)
    score = counting(exact_score(sigma_data, c_noise, mean))
    samples = probability_flow(score, noise, levels, levels[0] * noise.sample(6000, torch.Generator().manual_seed(3)),
                               churn=churn, generator=torch.Generator().manual_seed(4), order=order)
    assert score.calls == flow_evaluations(levels, order) == calls
    assert torch.isfinite(samples).all()
    assert (samples.mean(0) - mean[0]).abs().max() < 0.05
    assert (channel_covariance(samples) - sigma_data).abs().max() < 0.07


def test_euler_with_maximum_churn_keeps_the_mean_but_shrinks_the_covariance():
    """Euler's method with the largest churn (noise equal to the noise present, every step) is
    the quickstart's sampler because it scores best on the trained network (benchmarks/RESULTS.md),
    but with the exact score it is not exact: its raised level s (1 + sqrt 2 - 1) does not
    approach the next level as the steps grow, and the covariance comes out 10-18 % low
    (measured: -0.18 on average at 35 levels, -0.10 at 140), while the mean stays right."""
    data_field, sigma_data, noise, c_noise = gaussian_problem()
    mean = torch.zeros(1, RES, RES, 2)
    mean[..., 0] = 0.5
    levels = edm_levels(2500.0, 0.01, 35, rho=2.0)
    samples = probability_flow(exact_score(sigma_data, c_noise, mean), noise, levels,
                               levels[0] * noise.sample(6000, torch.Generator().manual_seed(3)), churn=1000.0,
                               generator=torch.Generator().manual_seed(4), order=1)
    assert (samples.mean(0) - mean[0]).abs().max() < 0.05
    assert -0.25 < (channel_covariance(samples) - sigma_data).mean() < -0.1


@pytest.mark.parametrize("order, ratio", [(2, 4.0), (1, 2.0)])
def test_the_ode_error_falls_at_the_order_of_the_method_as_the_steps_double(order, ratio):
    """Data N(mu, a C) under noise C: F(x, sigma) = -(x - mu) / (a + sigma), whose ODE carries x
    exactly to mu + (x0 - mu) sqrt((a + s^2) / (a + s0^2)). Without the step to 0 every step is
    the method's, and the error must fall 2^order-fold as the steps double (measured: Heun 4.41,
    4.19, 4.09; Euler 2.03, 2.01, 2.01)."""
    a, mu = 0.5, 0.3
    noise = build_noise_sampler(8, white_noise=False, rbf_scale=0.2, rbf_eps=0.01)
    x0 = noise.sample(64, torch.Generator().manual_seed(0))

    def error(steps):
        levels = edm_levels(100.0, 0.01, steps)[:-1]  # from 10 to 0.1, no step to 0
        x = probability_flow(lambda x, sigma: -(x - mu) / (a + sigma[:, None, None, None]), noise, levels,
                             levels[0] * x0, order=order)
        exact = mu + (levels[0] * x0 - mu) * math.sqrt((a + levels[-1] ** 2) / (a + levels[0] ** 2))
        return (x.double() - exact.double()).abs().max().item()

    errors = [error(steps) for steps in (16, 32, 64, 128)]
    ratios = [coarse / fine for coarse, fine in zip(errors, errors[1:])]
    assert all(0.9 * ratio < measured < 1.15 * ratio for measured in ratios), (errors, ratios)


@pytest.mark.parametrize("keys, calls", [
    ({"sampler": "langevin", "L": 3, "T": 2, "denoise_last": True}, 7),
    ({"sampler": "heun", "sampler_steps": 5}, 9),
    ({"sampler": "heun", "sampler_steps": 5, "sampler_churn": 5.0}, 9),
    ({"sampler": "euler", "sampler_steps": 5, "sampler_churn": 50.0}, 5),
])
def test_sample_calls_the_network_as_often_as_it_reports(keys, calls):
    args = config_from_dict({"white_noise": True, "sigma_1": 1.0, "sigma_L": 0.1, "epsilon": 1e-3, **keys})
    noise = build_noise_sampler(4, white_noise=True, rbf_scale=1.0, rbf_eps=0.0)
    shrink = torch.nn.Module()
    shrink.forward = counting(lambda x, sigma: -x / (1 + sigma[:, None, None, None]))
    samples = sample(DIFFUSION, shrink, args, noise, n=3, batch_size=3, seed=0, progress=False)
    assert samples.shape == (3, 4, 4, 2)
    assert shrink.forward.calls == network_evaluations(args) == calls
