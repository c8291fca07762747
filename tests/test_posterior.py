"""Posterior sampling (src/posterior.py) against the closed-form Gaussian posterior.

For u ~ N(mu, a C) under the project's GRF noise of covariance C, the C-preconditioned score
of the perturbed law is exact, F(x, sigma) = -(x - mu) / (a + sigma), and the posterior given
y = A u + w, w ~ N(0, v I), is Gaussian: mean mu + K (y - A mu), covariance a C - K A a C, with
K = a C A^T (a A C A^T + v I)^-1. The sampler's draws must match it on the unobserved pixels.
"""

import math

import pytest
import torch

from src.diffusion import sigma_schedule
from src.noise import build_noise_sampler
from src.posterior import BlockAverage, Identity, Mask, ObservationProjection, PosteriorError, posterior_langevin

RES = 8
POINTS = RES * RES
A_SCALE = 0.5  # u ~ N(mu, a C)
SIGMA_L = 0.01
DRAWS = 2000
# The sampler's schedule: alpha_j / sigma_j = epsilon / sigma_L = 2 at every level (stable below 4).
LANGEVIN = dict(epsilon=0.02, T=20, step_rule="sigma")
SIGMAS = sigma_schedule(2.0, SIGMA_L, 15)


def grf_noise():
    return build_noise_sampler(RES, white_noise=False, rbf_scale=0.3, rbf_eps=0.1, method="cholesky")


def prior_mean() -> torch.Tensor:
    mean = torch.zeros(1, RES, RES, 2)
    mean[..., 0], mean[..., 1] = 0.5, -0.3
    return mean


def exact_score(mean):
    return lambda x, sigma: -(x - mean) / (A_SCALE + sigma[:, None, None, None])


def corner_mask() -> torch.Tensor:
    """Three observed columns and an observed corner: unobserved pixels next to and far from them."""
    observed = torch.zeros(RES, RES, dtype=torch.bool)
    observed[:, :3] = True
    observed[5:, 5:] = True
    return observed


def matrix_of(operator) -> torch.Tensor:
    """A as an (m, N) matrix: the operator applied to the grid's unit functions."""
    return operator(torch.eye(POINTS, dtype=torch.float64).reshape(POINTS, RES, RES, 1))[..., 0].T


def gaussian_posterior(c_noise, operator, y, variance, mean):
    """The posterior's mean (N, 2) and covariance (N, N) given y (m, 2)."""
    a_matrix, prior = matrix_of(operator), A_SCALE * c_noise
    gain = prior @ a_matrix.T @ torch.linalg.inv(a_matrix @ prior @ a_matrix.T
                                                  + variance * torch.eye(len(a_matrix), dtype=torch.float64))
    flat_mean = mean.reshape(POINTS, 2).double()
    return flat_mean + gain @ (y - a_matrix @ flat_mean), prior - gain @ a_matrix @ prior


def draw_and_compare(noise, operator, variance, unobserved, projected_as=None, seed=0):
    """(largest |z| of the sample mean, per-pixel variance ratios, largest correlation error) on
    the ``unobserved`` points, and the draws; y is the observation of one prior draw. The
    projection takes C from ``projected_as`` when given, else from ``noise``."""
    generator = torch.Generator().manual_seed(seed)
    mean = prior_mean()
    truth = mean + math.sqrt(A_SCALE) * noise.sample(1, generator)
    y = operator(truth)[0].double()
    y = y + math.sqrt(variance) * torch.randn(y.shape, generator=generator, dtype=torch.float64)
    posterior_mean, posterior_cov = gaussian_posterior(noise.covariance_block(POINTS), operator, y, variance, mean)
    draws = posterior_langevin(exact_score(mean), noise, SIGMAS, noise.sample(DRAWS, generator), y[None].float(),
                               ObservationProjection(projected_as or noise, operator, variance), generator=generator, **LANGEVIN)
    flat = draws.reshape(DRAWS, POINTS, 2).double()
    std = posterior_cov.diagonal().sqrt()
    z = (flat.mean(0) - posterior_mean) / (std[:, None] / math.sqrt(DRAWS))
    centred = flat - flat.mean(0)
    covariance = torch.einsum("nic,njc->ij", centred, centred) / (2 * (DRAWS - 1))  # both channels pooled
    correlation = covariance / torch.outer(covariance.diagonal().sqrt(), covariance.diagonal().sqrt())
    keep = unobserved.reshape(-1)
    correlation_error = (correlation - posterior_cov / torch.outer(std, std))[keep][:, keep].abs().max()
    return z[keep].abs().max(), (covariance.diagonal() / posterior_cov.diagonal())[keep], correlation_error, draws, y


@pytest.mark.parametrize("operator, variance", [
    (Mask(corner_mask()), 0.0),
    (Mask(corner_mask()), 0.05),
    (BlockAverage(RES, 2), 0.0),
    (Identity(RES), 0.05),
], ids=["mask", "mask-noisy", "average", "identity-noisy"])
def test_posterior_draws_match_the_gaussian_posterior(operator, variance):
    """Mean within 4.5 standard errors at every unobserved pixel and channel (2 x 2000 draws: the
    largest |z| of ~100 normal scores exceeds 4 in 1 run in ~300); per-pixel variance within [0.88,
    1.12] of the posterior's and within 1 +- 0.03 on average; correlations within 0.08.

    Measured (seed 0, 2 x 2000 draws, 300 steps): |z| <= 3.44, variance ratios 0.93 to 1.044 with
    means 0.985 (identity, v = 0.05) to 0.998, correlation errors <= 0.062. The Monte Carlo error
    of a ratio is sqrt(2 / 4000) = 2.2 %, of a correlation about 0.02. With 8000 draws: |z| <= 3.5
    for v = 0, but 3.7 (mask) and 4.4 (identity) for v = 0.05, a mean off by up to 0.05 posterior
    standard deviations: with observation noise the target's mean moves with the level and the
    chain lags behind it at the last levels (it falls with more steps: 3.4 at 3 x the steps).
    """
    unobserved = ~operator.observed if isinstance(operator, Mask) and variance == 0 else torch.ones(RES, RES, dtype=bool)
    largest_z, ratios, correlation_error, draws, y = draw_and_compare(grf_noise(), operator, variance, unobserved)
    assert torch.isfinite(draws).all()
    assert largest_z < 4.5
    assert 0.88 < ratios.min() and ratios.max() < 1.12
    assert abs(ratios.mean() - 1) < 0.03
    assert correlation_error < 0.08
    if variance == 0:  # the draws agree with the observation, to float32 round-off
        assert (operator(draws).double() - y).abs().max() < 1e-5


class EuclideanGeometry:
    """A noise of covariance I to the projection: the Euclidean replacement of Song et al. 2021
    and RePaint (observed pixels set to y_sigma, the others left)."""

    res, device = RES, torch.device("cpu")

    def covariance_block(self, k):
        return None


def test_euclidean_replacement_misses_the_posterior_mean():
    """The control that makes the test above able to fail: with a Euclidean projection the
    unobserved pixels' drift -(x_U - mu_U) / (a + sigma) never sees the observation, so their
    mean stays the prior's, tens of standard errors from the posterior's (measured: |z| up to 64,
    variances 1.26 times the posterior's on average), while the C-orthogonal projection's is within 4.5."""
    observed = corner_mask()
    largest_z, *_ = draw_and_compare(grf_noise(), Mask(observed), 0.0, ~observed, EuclideanGeometry())
    assert largest_z > 20


def test_block_average_and_mask_observe_what_they_say():
    u = torch.arange(2 * 16 * 2, dtype=torch.float32).reshape(2, 4, 4, 2)
    coarse = BlockAverage(4, 2)(u)
    assert coarse.shape == (2, 4, 2)
    assert torch.equal(coarse[0, 0], u[0, :2, :2].mean(dim=(0, 1)))
    assert torch.equal(BlockAverage(4, 2).as_function(coarse)[1, 1, 1], u[1, 2:, 2:].mean(dim=(0, 1)))
    observed = torch.zeros(4, 4, dtype=torch.bool)
    observed[1, 2] = observed[3, 0] = True
    mask = Mask(observed)
    assert torch.equal(mask(u)[1], torch.stack([u[1, 1, 2], u[1, 3, 0]]))
    grid = mask.as_function(mask(u))
    assert torch.equal(grid[:, observed], u[:, observed]) and grid[:, ~observed].isnan().all()


def test_bad_observations_are_refused_naming_the_culprit():
    noise = grf_noise()
    with pytest.raises(PosteriorError, match="variance must be >= 0, got -0.1"):
        ObservationProjection(noise, Identity(RES), -0.1)
    with pytest.raises(PosteriorError, match="16 px grid, the noise sampler on 8 px"):
        ObservationProjection(noise, Identity(16), 0.0)
    with pytest.raises(PosteriorError, match=r"square \(res, res\) grid, got shape \(8, 4\)"):
        Mask(torch.ones(8, 4, dtype=torch.bool))
    with pytest.raises(PosteriorError, match="observes no pixel"):
        Mask(torch.zeros(8, 8, dtype=torch.bool))
    with pytest.raises(PosteriorError, match="divisible"):
        BlockAverage(8, 3)
    gano = build_noise_sampler(RES, white_noise=False, rbf_scale=1.0, rbf_eps=0.0, kernel="gano")
    with pytest.raises(PosteriorError, match="singular"):  # GANO's noise has no mean mode to match y's mean with
        ObservationProjection(gano, Identity(RES), 0.0)
    ObservationProjection(gano, Identity(RES), 0.1)  # with observation noise it can


# --- eval.py --mode=posterior (src/conditional.py) ----------------------------------------------

import json  # noqa: E402
import pickle  # noqa: E402

import numpy as np  # noqa: E402

import eval as eval_script  # noqa: E402
from conftest import TINY  # noqa: E402
from src.conditional import (PosteriorRequest, blob_mask, completion_metrics, load_observations,  # noqa: E402
                             local_coherence)
from src.config import config_from_dict  # noqa: E402
from src.evaluation import EvaluationError  # noqa: E402


def tiny_args():
    return config_from_dict(TINY)  # 14 px functions of 2 channels (Volcano)


@pytest.mark.parametrize("keys, observations, mask, message", [
    ({}, (3, 14, 14, 2), (10, 10), r"--mask .*mask.npy: shape \(10, 10\), expected \(14, 14\)"),
    ({}, (3, 14, 14, 1), None, r"--observations .*observations.npy: shape \(3, 14, 14, 1\).* 2 channel"),
    ({}, (3, 12, 12, 2), None, r"12 px grid = 12 px to sample, neither the training grid \(14 px\)"),
    ({"operator": "average"}, (3, 10, 10, 2), None, r"10 px grid x --factor 2 = 20 px"),
    ({"variance": -0.5}, (3, 14, 14, 2), None, r"--noise_variance must be >= 0 \(a variance\), got -0.5"),
    ({"unobserved": 1.5}, (3, 14, 14, 2), None, r"--unobserved must lie in \(0, 1\)"),
    ({}, (3, 14, 14, 2), (14, 14), None),
    ({"operator": "average"}, (3, 7, 7, 2), None, None),
], ids=["mask-shape", "channels", "grid", "coarse-grid", "variance", "fraction", "good-mask", "good-coarse"])
def test_bad_observations_and_masks_are_refused_naming_the_culprit(tmp_path, keys, observations, mask, message):
    np.save(tmp_path / "observations.npy", np.zeros(observations))
    if mask is not None:
        np.save(tmp_path / "mask.npy", np.ones(mask))
        keys = {**keys, "mask": str(tmp_path / "mask.npy")}
    request = PosteriorRequest(observations=str(tmp_path / "observations.npy"), **keys)
    if message is None:
        loaded, _ = load_observations(tiny_args(), request, None, 2, seed=0)
        assert loaded.res == 14
        return
    with pytest.raises(EvaluationError, match=message):
        load_observations(tiny_args(), request, None, 2, seed=0)


def test_the_mask_generators_hide_the_fraction_asked_where_they_say():
    """Blobs hide 30 % in smooth holes; the coherence mask hides the noisy half of a phase map
    whose other half is constant."""
    observed = blob_mask(32, 0.3, torch.Generator().manual_seed(0))
    assert (~observed).float().mean().item() == pytest.approx(0.3, abs=1 / 32**2)
    phase = torch.zeros(1, 32, 32)
    phase[:, :, 16:] = torch.rand(1, 32, 16, generator=torch.Generator().manual_seed(1)) * 2 * math.pi
    u = torch.stack([phase.cos(), phase.sin()], dim=-1)
    coherence = local_coherence(u)[0]
    assert coherence[:, :12].min() > 0.99 and coherence[:, 20:].mean() < 0.5
    request = PosteriorRequest(mask="coherence", unobserved=0.4)
    from src.conditional import make_masks
    hidden = ~make_masks(request, u, "circular", seed=0)[0]
    assert hidden[:, 16:].sum() == hidden.sum()  # all of it in the noisy half


def test_completion_metrics_against_hand_computed_values():
    """Two completions around a truth of 0: their mean's error, each one's, and the share of the
    truth inside their central interval; phases compare by the wrapped difference."""
    truth = torch.zeros(2, 2, 1)
    samples = torch.stack([torch.full((2, 2, 1), 1.0), torch.full((2, 2, 1), -3.0)])
    unobserved = torch.tensor([[True, False], [False, False]])
    metrics = completion_metrics(samples, truth, unobserved, "field")
    assert metrics["error"] == pytest.approx(1.0) and metrics["sample_error"] == pytest.approx(2.0)
    assert metrics["calibration"] == 1.0
    angle = torch.tensor([math.pi - 0.1, -math.pi + 0.1])  # both 0.1 from pi across the wrap
    phases = torch.stack([angle.cos(), angle.sin()], dim=-1)[:, None, None, :].expand(2, 2, 2, 2)
    truth_phase = torch.tensor([-1.0, 0.0]).expand(2, 2, 2)
    metrics = completion_metrics(phases, truth_phase, unobserved, "circular")
    assert metrics["sample_error"] == pytest.approx(0.1, abs=1e-5)


def posterior_eval(run, savedir, data_dir, *flags):
    from conftest import run_command
    return run_command([sys.executable, "eval.py", f"--exp_name={run}", f"--savedir={savedir}", "--mode=posterior",
                        "--n_observations=2", "--K=3", "--sampler", "L=3", "T=2", *flags], data_dir=data_dir)


import sys  # noqa: E402


@pytest.mark.parametrize("flags", [("--operator=mask", "--mask=blobs"), ("--operator=average", "--factor=2"),
                                   ("--operator=identity", "--noise_variance=0.01")], ids=["mask", "average", "identity"])
def test_posterior_mode_completes_held_out_functions(tiny_run, tiny_data, tmp_path, flags):
    """Observed pixels kept (a mask: exactly; block means: to round-off), K samples an observation,
    their mean and std, the truth, and metrics; the figure drawn; nothing else written."""
    result = posterior_eval(tiny_run, tmp_path, tiny_data, *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    (record_path,) = tmp_path.glob("posterior_*.pkl")
    record = pickle.loads(record_path.read_bytes())
    res = 28 if "--operator=average" in flags else 14
    assert record["samples"].shape == (2, 3, res, res, 2)
    assert record["mean"].shape == record["std"].shape == record["truth"].shape == (2, res, res, 2)
    samples = torch.from_numpy(record["samples"])
    if "--operator=mask" in flags:
        mask = torch.from_numpy(record["mask"])
        assert torch.allclose(samples[:, :, mask[0]][0], torch.from_numpy(record["truth"])[0][mask[0]].expand(3, -1, -1),
                              atol=1e-5)
    if "--operator=average" in flags:
        means = BlockAverage(28, 2)(samples.flatten(0, 1)).reshape(2, 3, 14, 14, 2)
        assert torch.allclose(means, torch.from_numpy(record["observation"])[:, None].expand_as(means), atol=1e-4)
    metrics = json.loads(next(tmp_path.glob("metrics_posterior_*.json")).read_text())
    for key in ("error", "calibration", "observation_misfit", "w_total", "w_rough"):
        assert math.isfinite(metrics[key])
    assert {path.suffix for path in tmp_path.iterdir()} == {".pkl", ".json", ".png", ".pdf"}


def test_posterior_mode_refuses_a_bad_mask_and_writes_nothing(tiny_run, tiny_data, tmp_path):
    np.save(tmp_path / "mask.npy", np.ones((10, 10)))
    savedir = tmp_path / "eval"
    result = posterior_eval(tiny_run, savedir, tiny_data, f"--mask={tmp_path / 'mask.npy'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --mask") and "(10, 10)" in result.stderr
    assert not savedir.exists() or not any(savedir.iterdir())
