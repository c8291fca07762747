"""Directional statistics of interferograms and the validation metrics built on them.

An interferogram stores a phase as (cos, sin) in its last axis; its pixels are angles, so
ordinary moments mean little. Each function (image) is summarised by its circular variance
1 - R_1 and circular skewness R_2 sin(T_2 - 2 T_1) / (1 - R_1)^(3/2), with R_k e^(i T_k) the
k-th trigonometric moment of its pixels' phases (Mardia & Jupp 2000, "Directional
statistics", sec. 2.3), as in the GANO paper (Rahman et al. 2022, arXiv 2205.03017) and the
original code; a generator is judged by the 1-D Wasserstein distance between the
distributions of these summaries over the real and the generated sets.

Circular variance and skewness are moments of an image's histogram of phases: shuffling
its pixels changes neither, so they cannot tell fringes from noise of the same phase
distribution. ``phase_roughness`` adds the spatial view: how much the phase changes between
neighbouring pixels, compared between the sets in the same way (``w_rough``).
"""

import numpy as np
import torch
from scipy.stats import wasserstein_distance


def to_phase(u: torch.Tensor) -> torch.Tensor:
    """Phase in [-pi, pi) of functions (..., 2) stored as (cos, sin); shape (...)."""
    return torch.atan2(u[..., 1], u[..., 0])


def _trigonometric_moment(phase: torch.Tensor, order: int):
    """Mean resultant length R_k and angle T_k of the k-th moment over the spatial axes."""
    angle = order * phase
    c, s = torch.cos(angle).mean(dim=(1, 2)), torch.sin(angle).mean(dim=(1, 2))
    return torch.hypot(c, s), torch.atan2(s, c)


def circular_variance(u: torch.Tensor) -> torch.Tensor:
    """1 - R1 for each function of u (N, res, res, 2); shape (N,)."""
    r1, _ = _trigonometric_moment(to_phase(u.double()), 1)
    return (1.0 - r1).float()


def circular_skewness(u: torch.Tensor) -> torch.Tensor:
    """R2 sin(T2 - 2 T1) / (1 - R1)^1.5 for each function of u (N, res, res, 2); shape (N,)."""
    phase = to_phase(u.double())
    r1, t1 = _trigonometric_moment(phase, 1)
    r2, t2 = _trigonometric_moment(phase, 2)
    return (r2 * torch.sin(t2 - 2.0 * t1) / (1.0 - r1).pow(1.5)).float()


def circular_stats(u: torch.Tensor) -> dict:
    """{'var': (N,), 'skew': (N,)} numpy arrays, the format of gt_stats.pkl and stats.*.pkl."""
    return {"var": circular_variance(u).numpy(), "skew": circular_skewness(u).numpy()}


def phase_roughness(u: torch.Tensor) -> torch.Tensor:
    """Mean of 1 - cos(phase difference) over the horizontally and vertically adjacent pixel
    pairs of each function of u (N, res, res, 2); shape (N,), in [0, 2].

    0 for a constant phase, about 1 for independent phases (noise); a plane wave of a
    wavelength of w pixels along one axis gives (1 - cos(2 pi / w)) / 2, so smooth fringes
    stay well below noise.
    """
    phase = to_phase(u.double())
    across = 1.0 - torch.cos(phase[:, :, 1:] - phase[:, :, :-1])
    down = 1.0 - torch.cos(phase[:, 1:, :] - phase[:, :-1, :])
    return (0.5 * (across.mean(dim=(1, 2)) + down.mean(dim=(1, 2)))).float()


def wasserstein_metrics(real_stats: dict, generated_stats: dict) -> dict:
    """w_var, w_skew and their sum w_total between two sets of circular statistics."""
    w_var = float(wasserstein_distance(real_stats["var"], generated_stats["var"]))
    w_skew = float(wasserstein_distance(real_stats["skew"], generated_stats["skew"]))
    return {"w_skew": w_skew, "w_var": w_var, "w_total": w_skew + w_var}


def mean_image_metrics(real: torch.Tensor, generated: torch.Tensor) -> dict:
    """Root-mean-square differences between the mean real and mean generated functions.

    ``mean_image_l2`` compares the mean (cos, sin) fields, ``mean_image_phase_l2`` the phases
    of those means (difference wrapped to [-pi, pi)). Means over pixels, so the figures do not
    grow with the resolution.
    """
    mean_real, mean_generated = real.double().mean(0), generated.double().mean(0)
    l2 = (mean_real - mean_generated).square().mean().sqrt()
    phase_gap = to_phase(mean_real) - to_phase(mean_generated)
    phase_gap = torch.remainder(phase_gap + np.pi, 2 * np.pi) - np.pi
    return {"mean_image_l2": float(l2), "mean_image_phase_l2": float(phase_gap.square().mean().sqrt())}


def validation_metrics(real: torch.Tensor, real_stats: dict, generated: torch.Tensor) -> tuple[dict, dict]:
    """All validation metrics of generated functions against the real ones.

    Returns
    -------
    (metrics, generated_stats): the original's five metrics and ``w_rough`` (the Wasserstein
    distance between the sets' phase roughness), and the generated set's circular statistics.
    """
    generated_stats = circular_stats(generated)
    metrics = wasserstein_metrics(real_stats, generated_stats)
    metrics.update(mean_image_metrics(real, generated))
    metrics["w_rough"] = float(wasserstein_distance(phase_roughness(real).numpy(),
                                                    phase_roughness(generated).numpy()))
    return metrics, generated_stats
