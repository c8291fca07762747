"""Phase roughness (src/metrics.py): the spatial statistic that circular variance and skewness lack."""

import math

import pytest
import torch
from scipy.stats import wasserstein_distance

from src.metrics import circular_skewness, circular_stats, circular_variance, phase_roughness, validation_metrics


def from_phase(phase: torch.Tensor) -> torch.Tensor:
    return torch.stack([phase.cos(), phase.sin()], dim=-1)


def plane_wave(wavelength: float, res: int = 24) -> torch.Tensor:
    columns = torch.arange(res, dtype=torch.float64)
    return from_phase((2 * math.pi * columns / wavelength).expand(res, res))[None].float()


def test_roughness_of_constant_noise_and_plane_waves():
    assert phase_roughness(from_phase(torch.full((1, 16, 16), 0.7))).item() == pytest.approx(0.0, abs=1e-6)
    noise = from_phase(torch.rand(64, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 * math.pi)
    assert phase_roughness(noise).mean().item() == pytest.approx(1.0, abs=0.02)
    for wavelength in (3.0, 8.0):  # only horizontal pairs differ: half of the pairs
        expected = (1 - math.cos(2 * math.pi / wavelength)) / 2
        assert phase_roughness(plane_wave(wavelength)).item() == pytest.approx(expected, abs=1e-5)


def test_shuffling_pixels_keeps_circular_statistics_but_not_roughness():
    """Why w_rough exists: fringes and their pixels in random order score the same w_var and w_skew."""
    fringes = torch.cat([plane_wave(6.0), plane_wave(10.0)])
    order = torch.randperm(24 * 24, generator=torch.Generator().manual_seed(0))
    shuffled = fringes.reshape(2, -1, 2)[:, order].reshape(fringes.shape)
    assert torch.allclose(circular_variance(shuffled), circular_variance(fringes), atol=1e-5)
    assert torch.allclose(circular_skewness(shuffled), circular_skewness(fringes), atol=1e-4)
    assert (phase_roughness(shuffled) > 0.8).all() and (phase_roughness(fringes) < 0.3).all()

    metrics, _ = validation_metrics(fringes, circular_stats(fringes), shuffled)
    assert metrics["w_total"] == pytest.approx(0.0, abs=1e-4)
    expected = wasserstein_distance(phase_roughness(fringes).numpy(), phase_roughness(shuffled).numpy())
    assert metrics["w_rough"] == pytest.approx(expected) and metrics["w_rough"] > 0.5
    assert validation_metrics(fringes, circular_stats(fringes), fringes)[0]["w_rough"] == pytest.approx(0.0, abs=1e-7)
