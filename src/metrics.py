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

Array data (any real-valued fields, src/data.py `load_functions`) get the metric kind
'field' instead of 'circular': each function is summarised, per channel, by its spatial mean,
its standard deviation, its radially averaged power spectrum and the quantiles of its pixel
values (`field_stats`); `field_metrics` compares two sets by the 1-D Wasserstein distance of
the means (``w_mean``) and of the standard deviations (``w_std``), by that of the pooled pixel
values (``w_marginal``), each averaged over the channels, and by the RMS difference of the
sets' log mean spectra (``log_spectrum_rms``); ``w_total`` is their sum, as it is w_var + w_skew
for the circular kind, so that the best checkpoint is chosen the same way for both.

The choice is made in one place: a stats dict says its kind by its keys (`kind_of`), and
`function_stats`, `wasserstein_metrics`, `validation_metrics` and `checkpoint_metrics` follow it.
"""

import numpy as np
import torch


def wasserstein_distance(u: np.ndarray, v: np.ndarray) -> float:
    """The 1-Wasserstein distance between the empirical laws of the 1-D samples u and v: the
    integral of |F_u - F_v| over the line, F the empirical distribution functions.

    Computed here, not by scipy.stats (whose import costs every process 1.3 s, a third of
    a command's start); tests/test_metrics.py checks it against scipy.stats.wasserstein_distance.
    """
    u, v = np.sort(np.asarray(u, dtype=np.float64).ravel()), np.sort(np.asarray(v, dtype=np.float64).ravel())
    points = np.sort(np.concatenate([u, v]))
    # Between consecutive points both distribution functions are constant.
    cdf_u = np.searchsorted(u, points[:-1], side="right") / len(u)
    cdf_v = np.searchsorted(v, points[:-1], side="right") / len(v)
    return float(np.sum(np.abs(cdf_u - cdf_v) * np.diff(points)))


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


def circular_metrics(real_stats: dict, generated_stats: dict) -> dict:
    """w_var, w_skew and their sum w_total between two sets of circular statistics."""
    w_var = float(wasserstein_distance(real_stats["var"], generated_stats["var"]))
    w_skew = float(wasserstein_distance(real_stats["skew"], generated_stats["skew"]))
    return {"w_skew": w_skew, "w_var": w_var, "w_total": w_skew + w_var}


# ---------------------------------------------------------------------------
# Real-valued fields

# Pixel quantiles kept per function and channel, at levels (i + 1/2) / FIELD_QUANTILES: a
# stratified sample of its pixel values that stands for them in the pooled marginal.
FIELD_QUANTILES = 64


def radial_wavenumbers(res: int) -> torch.Tensor:
    """(res, res) integer ring of each frequency of a res x res DFT: |k| rounded, k the signed
    wavenumbers (cycles over the side)."""
    k = torch.fft.fftfreq(res, d=1.0 / res, dtype=torch.float64)
    return torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2).round().long()


def radial_average(power: torch.Tensor) -> torch.Tensor:
    """Mean of a 2-D spectrum (..., res, res), in DFT order, over each ring |k| = 0 .. res // 2:
    shape (..., res // 2 + 1). The corners beyond res // 2 (no full ring) are left out."""
    res = power.shape[-1]
    rings = radial_wavenumbers(res).flatten()
    kept = rings <= res // 2
    flat = power.flatten(-2)[..., kept].double()
    sums = torch.zeros(*flat.shape[:-1], res // 2 + 1, dtype=torch.float64).index_add_(-1, rings[kept], flat)
    counts = torch.bincount(rings[kept], minlength=res // 2 + 1).double()
    return sums / counts


def power_spectrum(u: torch.Tensor) -> torch.Tensor:
    """|DFT(u) / res^2|^2 of functions u (N, res, res, C): the squared Fourier coefficients,
    shape (N, C, res, res) in DFT order; the [0, 0] entry is the squared spatial mean."""
    coefficients = torch.fft.fft2(u.double().permute(0, 3, 1, 2)) / u.shape[1] ** 2
    return coefficients.abs().square()


def field_stats(u: torch.Tensor) -> dict:
    """Per-function statistics of real fields u (N, res, res, C), numpy float64 arrays:
    ``mean`` and ``std`` (N, C) over the pixels (the population standard deviation),
    ``spectrum`` (N, C, res // 2 + 1) the radially averaged power spectrum (`power_spectrum`,
    `radial_average`), ``quantiles`` (N, C, FIELD_QUANTILES) of the pixel values."""
    pixels = u.double().flatten(1, 2)  # (N, res^2, C)
    levels = (np.arange(FIELD_QUANTILES) + 0.5) / FIELD_QUANTILES
    quantiles = np.quantile(pixels.numpy(), levels, axis=1)  # (Q, N, C)
    return {"mean": pixels.mean(1).numpy(), "std": pixels.std(1, unbiased=False).numpy(),
            "spectrum": radial_average(power_spectrum(u)).numpy(), "quantiles": np.moveaxis(quantiles, 0, -1)}


def log_spectrum_distance(spectrum_a: np.ndarray, spectrum_b: np.ndarray) -> float:
    """RMS over channels and rings |k| >= 1 of log(a) - log(b), for two mean radial spectra
    (C, K) (a set's: the mean of its functions' spectra; or an exact one). Ring 0, the squared
    mean, is left out: w_mean compares the means, and a field of mean 0 has no log there.
    Powers below 1e-12 of the largest count as that floor, so that a ring of no power is far
    from others, not infinitely far."""
    a, b = np.asarray(spectrum_a, dtype=np.float64), np.asarray(spectrum_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"spectra of shapes {a.shape} and {b.shape} do not compare (another resolution?)")
    floor = 1e-12 * max(a.max(), b.max(), np.finfo(np.float64).tiny)
    gap = np.log(np.maximum(a[..., 1:], floor)) - np.log(np.maximum(b[..., 1:], floor))
    return float(np.sqrt(np.mean(np.square(gap))))


def field_metrics(real_stats: dict, generated_stats: dict) -> dict:
    """w_mean, w_std, w_marginal (1-D Wasserstein distances, averaged over the channels),
    log_spectrum_rms (`log_spectrum_distance` of the sets' mean spectra) and their sum w_total,
    between two sets of `field_stats`."""
    channels = real_stats["mean"].shape[1]
    if generated_stats["mean"].shape[1] != channels:
        raise ValueError(f"{channels} channels against {generated_stats['mean'].shape[1]}: the sets do not compare")

    def channel_mean_distance(key: str) -> float:
        return float(np.mean([wasserstein_distance(real_stats[key][:, c].ravel(), generated_stats[key][:, c].ravel())
                              for c in range(channels)]))

    metrics = {"w_mean": channel_mean_distance("mean"), "w_std": channel_mean_distance("std"),
               "w_marginal": channel_mean_distance("quantiles"),
               "log_spectrum_rms": log_spectrum_distance(real_stats["spectrum"].mean(0),
                                                         generated_stats["spectrum"].mean(0))}
    metrics["w_total"] = sum(metrics.values())
    return metrics


# ---------------------------------------------------------------------------
# The metric kinds

STATS_KEYS = {"circular": ("var", "skew"), "field": ("mean", "std", "spectrum", "quantiles")}
STATS_OF_KIND = {"circular": circular_stats, "field": field_stats}
METRICS_OF_KIND = {"circular": circular_metrics, "field": field_metrics}
# The metrics of which training keeps the best checkpoint, model.<metric>.pt (the original's five for circular).
CHECKPOINT_METRICS = {"circular": ("w_skew", "w_var", "w_total", "mean_image_l2", "mean_image_phase_l2"),
                      "field": ("w_mean", "w_std", "w_marginal", "log_spectrum_rms", "w_total", "mean_image_l2")}


def kind_of(stats: dict) -> str:
    """'circular' or 'field': the kind of a stats dict (`circular_stats`, `field_stats`), by its keys."""
    for kind, keys in STATS_KEYS.items():
        if isinstance(stats, dict) and all(key in stats for key in keys):
            return kind
    raise ValueError(f"statistics with keys {sorted(stats) if isinstance(stats, dict) else type(stats).__name__} "
                     f"are of no metric kind: expected {' or '.join(map(str, STATS_KEYS.values()))}")


def function_stats(u: torch.Tensor, kind: str) -> dict:
    """The per-function statistics of functions u (N, res, res, C) for the metric ``kind``."""
    return STATS_OF_KIND[kind](u)


def checkpoint_metrics(kind: str) -> tuple:
    return CHECKPOINT_METRICS[kind]


def wasserstein_metrics(real_stats: dict, generated_stats: dict) -> dict:
    """The metrics of two sets of statistics of one kind, with w_total (`circular_metrics`, `field_metrics`)."""
    kind = kind_of(real_stats)
    if kind_of(generated_stats) != kind:
        raise ValueError(f"{kind} statistics against {kind_of(generated_stats)} ones: the sets do not compare")
    return METRICS_OF_KIND[kind](real_stats, generated_stats)


def mean_image_metrics(real: torch.Tensor, generated: torch.Tensor, kind: str = "circular") -> dict:
    """Root-mean-square differences between the mean real and mean generated functions.

    ``mean_image_l2`` compares the mean fields (for Volcano the (cos, sin) ones); for the
    circular kind ``mean_image_phase_l2`` also compares the phases of those means (difference
    wrapped to [-pi, pi)). Means over pixels, so the figures do not grow with the resolution.
    """
    mean_real, mean_generated = real.double().mean(0), generated.double().mean(0)
    metrics = {"mean_image_l2": float((mean_real - mean_generated).square().mean().sqrt())}
    if kind == "circular":
        phase_gap = to_phase(mean_real) - to_phase(mean_generated)
        phase_gap = torch.remainder(phase_gap + np.pi, 2 * np.pi) - np.pi
        metrics["mean_image_phase_l2"] = float(phase_gap.square().mean().sqrt())
    return metrics


def validation_metrics(real: torch.Tensor, real_stats: dict, generated: torch.Tensor) -> tuple[dict, dict]:
    """All validation metrics of generated functions against the real ones, of the kind of ``real_stats``.

    Returns
    -------
    (metrics, generated_stats): `wasserstein_metrics` and `mean_image_metrics`, for the circular
    kind also ``w_rough`` (the Wasserstein distance between the sets' phase roughness); and the
    generated set's statistics.
    """
    kind = kind_of(real_stats)
    generated_stats = function_stats(generated, kind)
    metrics = wasserstein_metrics(real_stats, generated_stats)
    metrics.update(mean_image_metrics(real, generated, kind))
    if kind == "circular":
        metrics["w_rough"] = float(wasserstein_distance(phase_roughness(real).numpy(),
                                                        phase_roughness(generated).numpy()))
    return metrics, generated_stats
