"""The metrics of src/metrics.py: phase roughness, the spatial statistic that circular variance and
skewness lack; and the circular statistics and their Wasserstein distances, each checked against a
closed form or an independent computation (scipy's circvar, sorted samples)."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance as scipy_wasserstein

from src.metrics import (circular_metrics, circular_skewness, circular_stats, circular_variance, phase_roughness,
                         validation_metrics, wasserstein_distance)


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
    expected = scipy_wasserstein(phase_roughness(fringes).numpy(), phase_roughness(shuffled).numpy())
    assert metrics["w_rough"] == pytest.approx(expected) and metrics["w_rough"] > 0.5
    assert validation_metrics(fringes, circular_stats(fringes), fringes)[0]["w_rough"] == pytest.approx(0.0, abs=1e-7)


# ---------------------------------------------------------------------------
# Circular variance and skewness, checked independently of src/metrics.py's formulas

def two_phase_function(p: float, a: float, b: float, res: int = 20) -> torch.Tensor:
    """A function whose first round(p res^2) pixels have phase a and the others phase b."""
    phase = torch.full((res * res,), b, dtype=torch.float64)
    phase[: round(p * res * res)] = a
    return from_phase(phase.reshape(1, res, res))


def test_circular_statistics_of_a_two_valued_phase_are_the_closed_form():
    """Phases 0 (3/4 of the pixels) and pi/2: the first moment is 3/4 + i/4, the second 3/4 - 1/4 = 1/2,
    so R1 = sqrt(5/8), T1 = atan(1/3), R2 = 1/2, T2 = 0, and sin(-2 atan(1/3)) = -3/5:
    variance 1 - sqrt(5/8), skewness -(1/2)(3/5) / (1 - sqrt(5/8))^(3/2)."""
    u = two_phase_function(0.75, 0.0, math.pi / 2)
    variance = 1 - math.sqrt(5 / 8)
    assert circular_variance(u).item() == pytest.approx(variance, rel=1e-6)
    assert circular_skewness(u).item() == pytest.approx(-0.3 / variance**1.5, rel=1e-5)


def test_circular_variance_is_scipys_and_skewness_follows_rotation_and_reflection():
    """scipy's circvar (1 - R1 since scipy 1.8) on arbitrary phases; a constant phase shift leaves
    both statistics unchanged, and reflecting the phase (theta -> -theta) negates the skewness."""
    from scipy.stats import circvar

    generator = torch.Generator().manual_seed(1)
    # Von Mises-like lumps: skewed, not uniform, so neither statistic is trivially 0 or 1.
    phase = (torch.randn(5, 16, 16, generator=generator, dtype=torch.float64) * 0.8
             + torch.rand(5, 16, 16, generator=generator, dtype=torch.float64).pow(3) * 2.0)
    u = from_phase(phase)
    expected = np.array([circvar(function.numpy().ravel()) for function in phase])  # angles in radians
    np.testing.assert_allclose(circular_variance(u).numpy(), expected, rtol=1e-5)

    skew = circular_skewness(u)
    assert (skew.abs() > 0.05).all()
    torch.testing.assert_close(circular_skewness(from_phase(phase + 1.234)), skew, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(circular_variance(from_phase(phase + 1.234)), circular_variance(u), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(circular_skewness(from_phase(-phase)), -skew, rtol=1e-4, atol=1e-5)


def test_w_metrics_are_the_mean_gap_of_sorted_statistics():
    """For two sets of equal size, the 1-Wasserstein distance of their empirical laws is the mean
    absolute difference of their sorted values: w_var and w_skew computed that way, by hand."""
    generator = torch.Generator().manual_seed(2)
    real = from_phase(torch.randn(12, 16, 16, generator=generator, dtype=torch.float64) * 0.7)
    generated = from_phase(torch.randn(12, 16, 16, generator=generator, dtype=torch.float64) * 1.1 + 0.3)
    real_stats, generated_stats = circular_stats(real), circular_stats(generated)
    by_hand = {key: float(np.mean(np.abs(np.sort(real_stats[key]) - np.sort(generated_stats[key]))))
               for key in ("var", "skew")}
    metrics = circular_metrics(real_stats, generated_stats)
    assert metrics["w_var"] == pytest.approx(by_hand["var"], rel=1e-6) and metrics["w_var"] > 0.05
    assert metrics["w_skew"] == pytest.approx(by_hand["skew"], rel=1e-6)
    assert metrics["w_total"] == pytest.approx(by_hand["var"] + by_hand["skew"], rel=1e-6)


@pytest.mark.parametrize("sizes", [(7, 7), (5, 13), (1, 40)])
def test_wasserstein_distance_is_scipys_for_unequal_sizes_and_ties(sizes):
    generator = np.random.default_rng(sum(sizes))
    u = generator.normal(size=sizes[0]).round(1)  # rounded: ties within and between the samples
    v = generator.normal(1.0, 2.0, size=sizes[1]).round(1)
    assert wasserstein_distance(u, v) == pytest.approx(scipy_wasserstein(u, v), rel=1e-12, abs=1e-15)
    assert wasserstein_distance(u, u) == 0.0
