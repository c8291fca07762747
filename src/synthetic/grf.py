"""A dataset of function data with a known law: a Gaussian random field with a random amplitude.

Each function is u = A g, channel by channel, with

- g a stationary Gaussian random field on the periodic R x R grid of the unit torus, of
  covariance c whose 2-D DFT is the spectrum lambda(k) = (1 + (2 pi l |k|)^2)^(-alpha)
  (Matern-like; k the integer wavenumbers, l = ``length_scale``, alpha = ``smoothness``),
  scaled so that the pointwise variance c(0) = mean(lambda) is 1. It is drawn exactly:
  g = IDFT(sqrt(lambda) DFT(z)) with z white noise, so that E|DFT(g)(k)|^2 = R^2 lambda(k).
  The channels are independent draws.
- A = exp(s xi), xi ~ N(0, 1), one log-normal amplitude per function (s = ``amplitude_sigma``),
  shared by its channels and independent of g.

u is not Gaussian (its pixels follow a log-normal scale mixture of normals, heavier-tailed
than any normal), but its law is exactly known, so a model's samples can be scored against
the truth rather than against a finite sample:

- `GRFLaw.expected_power_spectrum`: E |DFT(u)(k) / M^2|^2 on the top-left M x M window
  (the grid that training keeps after cropping ``npad``: M = R - npad at ``resolution`` R);
  the window is not periodic, so this is the spectrum smeared by the window (Fejer's
  kernel), computed exactly from c. `GRFLaw.expected_radial_spectrum` averages it over rings
  as `src.metrics.field_stats` does.
- `GRFLaw.marginal_cdf`: the law of one pixel, P(u <= x) = E Phi(x / A).
- `GRFLaw.mean_cdf`: the law of a function's spatial mean over the window, A times a normal
  of variance the window's E|mean(g)|^2.

These hold for the data as written, on its own R x R grid: train with ``resolution`` R (no
resizing, which would change the law) and any ``npad``. The per-function standard deviation
has no closed-form law (a weighted sum of chi-squares times A^2).

Written by ``python -m src.synthetic --kind grf --outdir DIR`` as ``DIR/grf.npy`` (N, R, R, C)
float32, with the law's parameters in ``DIR/grf.json`` (`read_law` rebuilds it).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.special import ndtr

from src.synthetic import array_dataset_paths, write_array_dataset

DATASET_NAME = "grf"
# Functions drawn at a time: memory stays bounded for any n.
_FUNCTIONS_PER_CHUNK = 512
# Gauss-Hermite nodes for expectations over the amplitude: ample for these smooth integrands
# (the pixel law agrees with scipy's adaptive quadrature to 1e-9, tests/test_array_data.py).
_HERMITE_NODES = 80


@dataclass(frozen=True)
class GRFLaw:
    """The law of the dataset (see the module docstring); every quantity is per channel."""

    resolution: int = 64            # R: side of the grid
    length_scale: float = 0.1       # l: correlation length of g, in units of the side
    smoothness: float = 2.0         # alpha: the spectrum decays as |k|^(-2 alpha)
    amplitude_sigma: float = 0.5    # s: log A ~ N(0, s^2)
    channels: int = 1               # independent draws of g per function, one A for all

    def __post_init__(self):
        if self.resolution < 2 or self.channels < 1:
            raise ValueError(f"need resolution >= 2 and channels >= 1, got {self.resolution} and {self.channels}")
        if self.length_scale <= 0 or self.smoothness <= 0 or self.amplitude_sigma < 0:
            raise ValueError("need length_scale > 0, smoothness > 0 and amplitude_sigma >= 0, got "
                             f"{self.length_scale}, {self.smoothness}, {self.amplitude_sigma}")

    def field_spectrum(self) -> np.ndarray:
        """lambda (R, R) in DFT order: the DFT of g's covariance, mean 1 (unit pointwise variance)."""
        k = np.fft.fftfreq(self.resolution, d=1.0 / self.resolution)
        squared = k[:, None] ** 2 + k[None, :] ** 2
        spectrum = (1.0 + (2 * np.pi * self.length_scale) ** 2 * squared) ** -self.smoothness
        return spectrum / spectrum.mean()

    def covariance(self) -> np.ndarray:
        """c (R, R): Cov(g(x), g(x + h)) at the periodic lag h (rows, columns); c[0, 0] = 1."""
        return np.fft.ifft2(self.field_spectrum()).real

    def amplitude_second_moment(self) -> float:
        """E A^2 = exp(2 s^2)."""
        return float(np.exp(2 * self.amplitude_sigma ** 2))

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """n functions (n, R, R, C) float32. The first n of a larger n are the same: the amplitudes
        and the white noise come from two streams of ``seed``, each drawn in function order."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        amplitude_stream, noise_stream = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
        amplitudes = np.exp(self.amplitude_sigma * amplitude_stream.standard_normal(n))
        filter_ = np.sqrt(self.field_spectrum())
        out = np.empty((n, self.resolution, self.resolution, self.channels), dtype=np.float32)
        for start in range(0, n, _FUNCTIONS_PER_CHUNK):
            stop = min(start + _FUNCTIONS_PER_CHUNK, n)
            white = noise_stream.standard_normal((stop - start, self.resolution, self.resolution, self.channels))
            # g = IDFT(sqrt(lambda) DFT(z)), real since lambda(k) = lambda(-k).
            fields = np.fft.ifft2(filter_[:, :, None] * np.fft.fft2(white, axes=(1, 2)), axes=(1, 2)).real
            out[start:stop] = amplitudes[start:stop, None, None, None] * fields
        return out

    def _window_spectrum_of_g(self, side: int | None) -> np.ndarray:
        """E |DFT(g)(k) / M^2|^2 on the top-left M x M window, (M, M) in DFT order.

        Sum over the lags h in (-(M-1) .. M-1)^2 of c(h) (M - |h1|) (M - |h2|) e^{-2 pi i k.h / M}
        (the pairs of window points at lag h), folded modulo M, then one DFT.
        """
        side = self.resolution if side is None else side
        if not 1 <= side <= self.resolution:
            raise ValueError(f"the window's side must be in [1, {self.resolution}], got {side}")
        lags = np.arange(-(side - 1), side)
        pairs = side - np.abs(lags)
        c = self.covariance()[np.ix_(lags % self.resolution, lags % self.resolution)]
        weighted = c * pairs[:, None] * pairs[None, :]
        folded = np.zeros((side, side))
        np.add.at(folded, np.ix_(lags % side, lags % side), weighted)
        return np.fft.fft2(folded).real / side ** 4

    def expected_power_spectrum(self, side: int | None = None) -> np.ndarray:
        """E |DFT(u)(k) / M^2|^2 on the top-left M x M window (M = ``side``, default R), (M, M)
        in DFT order: the expectation of `src.metrics.power_spectrum` of one channel."""
        return self.amplitude_second_moment() * self._window_spectrum_of_g(side)

    def expected_radial_spectrum(self, side: int | None = None) -> np.ndarray:
        """`expected_power_spectrum` averaged over rings as `src.metrics.field_stats` does,
        (M // 2 + 1,): what a set's mean ``spectrum`` tends to, per channel."""
        from src.metrics import radial_average  # torch and scipy are not needed to write the data

        return radial_average(torch.from_numpy(self.expected_power_spectrum(side))).numpy()

    def _expect_over_amplitude(self, function) -> np.ndarray:
        """E f(A), f vectorised over a last axis of amplitudes, by Gauss-Hermite quadrature in xi."""
        nodes, weights = np.polynomial.hermite_e.hermegauss(_HERMITE_NODES)
        return function(np.exp(self.amplitude_sigma * nodes)) @ (weights / np.sqrt(2 * np.pi))

    def marginal_cdf(self, x) -> np.ndarray:
        """P(u(p) <= x) for one pixel p and channel: E Phi(x / A), at the points ``x`` (any shape)."""
        x = np.asarray(x, dtype=np.float64)
        return self._expect_over_amplitude(lambda a: ndtr(x[..., None] / a))

    def mean_variance_of_g(self, side: int | None = None) -> float:
        """Var of g's spatial mean over the top-left M x M window."""
        return float(self._window_spectrum_of_g(side)[0, 0])

    def mean_cdf(self, x, side: int | None = None) -> np.ndarray:
        """P(mean of u over the M x M window <= x), one channel: E Phi(x / (A sqrt(v))), v =
        `mean_variance_of_g`."""
        x = np.asarray(x, dtype=np.float64)
        scale = np.sqrt(self.mean_variance_of_g(side))
        return self._expect_over_amplitude(lambda a: ndtr(x[..., None] / (a * scale)))


def dataset_paths(outdir: str | Path) -> tuple[Path, Path]:
    """(DIR/grf.npy, DIR/grf.json): the functions and the law's parameters."""
    return array_dataset_paths(outdir, DATASET_NAME)


def write_grf_dataset(outdir: str | Path, n: int, seed: int = 0, law: GRFLaw = GRFLaw(),
                      overwrite: bool = False) -> Path:
    """Write ``law.sample(n, seed)`` to DIR/grf.npy and the law, n and seed to DIR/grf.json.

    Returns the .npy path, which is what DATA_DIR points at. Raises `FileExistsError` naming
    the file if either exists and ``overwrite`` is False (nothing is written).
    """
    return write_array_dataset(outdir, DATASET_NAME, lambda: law.sample(n, seed),
                               {**asdict(law), "n": n, "seed": seed}, overwrite)


def read_law(path: str | Path) -> GRFLaw:
    """The law of a dataset from its grf.json (or from the directory or .npy beside it)."""
    path = Path(path)
    if path.is_dir() or path.suffix == ".npy":
        path = dataset_paths(path if path.is_dir() else path.parent)[1]
    values = json.loads(path.read_text())
    return GRFLaw(**{key: values[key] for key in GRFLaw.__dataclass_fields__})
