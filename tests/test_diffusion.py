"""Noise schedules, the score-matching loss and annealed Langevin dynamics (src/diffusion.py).

The sampler is checked without any training: for Gaussian data the score of the perturbed
distribution is known in closed form, so annealed Langevin dynamics driven by it must
reproduce the data's mean and covariance.
"""

import math

import pytest
import torch

from src.diffusion import annealed_langevin, generate, score_matching_loss, sigma_schedule, step_sizes
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


def test_loss_of_a_zero_score_is_the_mean_noise_energy():
    """With F = 0 the loss is mean(sigma_level * z^2), replayed from the same generator."""
    sampler = build_noise_sampler(8, white_noise=True, rbf_scale=1.0, rbf_eps=0.0)
    sigmas = torch.tensor([2.0, 0.5, 0.1])
    u = torch.randn(16, 8, 8, 2)
    loss = score_matching_loss(lambda x, s: torch.zeros_like(x), u, sigmas, sampler,
                               generator=torch.Generator().manual_seed(3))
    replay = torch.Generator().manual_seed(3)
    level = torch.randint(3, (16,), generator=replay)
    z = sampler.sample(16, generator=replay)
    expected = (sigmas[level][:, None, None, None] * z.square()).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_unit_weighting_divides_each_term_by_its_sigma():
    """With F = 0 the unit-weighted loss is mean(z^2) whatever the levels drawn."""
    sampler = build_noise_sampler(8, white_noise=True, rbf_scale=1.0, rbf_eps=0.0)
    sigmas = torch.tensor([2.0, 0.5, 0.1])
    u = torch.randn(16, 8, 8, 2)
    loss = score_matching_loss(lambda x, s: torch.zeros_like(x), u, sigmas, sampler,
                               generator=torch.Generator().manual_seed(3), weighting="unit")
    replay = torch.Generator().manual_seed(3)
    torch.randint(3, (16,), generator=replay)
    assert loss.item() == pytest.approx(sampler.sample(16, generator=replay).square().mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match="lambda"):
        score_matching_loss(lambda x, s: x, u, sigmas, sampler, weighting="lambda")


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
def test_annealed_langevin_with_the_exact_score_reproduces_gaussian_data(step_rule, epsilon, denoise_last):
    """Mean within 0.05 and every covariance entry within 0.07 of the data's (unit variances).

    With this schedule the exact expected covariance of the sampler's output, propagated through
    every step, is within 0.03 of the data's (the leftover noise of the last levels); the rest
    of the tolerance is Monte Carlo error of 2 x 6000 fields (standard error ~0.013 per entry).
    """
    torch.manual_seed(0)
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


def test_generate_drops_diverged_samples_with_a_warning():
    sampler = build_noise_sampler(4, white_noise=True, rbf_scale=1.0, rbf_eps=0.0)

    def score_that_blows_up_half(x, sigma):
        out = -x / sigma[:, None, None, None]
        out[::2] = math.nan
        return out

    with pytest.warns(UserWarning, match="3 / 6 generated samples"):
        samples = generate(score_that_blows_up_half, sampler, torch.tensor([1.0, 0.1]), n=6, batch_size=4,
                           epsilon=1e-3, T=2, progress=False)
    assert samples.shape == (3, 4, 4, 2)
    assert torch.isfinite(samples).all()
