"""The physics of the synthetic Volcano interferograms: `generate_interferograms`.

This docstring is the one description of the model and its parameters. Each frame is a
wrapped interferogram of 128 x 128 pixels with pixel spacing ``dx``. Coordinates are east
``x`` (columns, left to right) and north ``y`` (rows, top to bottom is north to south), in
metres, with the origin at the frame centre. The wrapped phase is::

    phase = wrap(phi_deformation + phi_atmosphere + phi_ramp + phi_0 + noise)

* ``phi_deformation = 4 pi / lambda * u_los``: line-of-sight (LOS) surface displacement of
  zero, one or two Mogi point sources in an elastic half-space (Mogi 1958). A source of
  volume change ``dV`` at depth ``d`` under ``(x0, y0)`` displaces the surface by::

      C   = (1 - nu) * dV / pi
      R   = sqrt(r^2 + d^2),   r = horizontal distance to (x0, y0)
      u_z = C * d / R^3        (up)
      u_r = C * r / R^3        (radially outwards)

  The displacement is projected on the unit vector pointing from the ground to a
  right-looking satellite flying along heading ``h`` (clockwise from north) with incidence
  angle ``theta``::

      e = (-sin(theta) cos(h), sin(theta) sin(h), cos(theta))   # (east, north, up)

  so motion towards the satellite (range shortening) gives positive phase. Rather than
  drawing ``dV`` directly, we draw the number of fringes ``n`` above the source,
  ``n = |u_los(x0, y0)| / (lambda / 2)``, and solve for
  ``dV = sign * n * (lambda / 2) * pi * d^2 / ((1 - nu) cos(theta))``, which controls the
  fringe count (the visible quantity) independently of depth. Inflation and deflation are
  equally likely.
* ``phi_atmosphere``: turbulent tropospheric delay, a Gaussian random field with the power
  spectrum ``P(k) ~ k^(-8/3)`` of Kolmogorov turbulence (Hanssen 2001, ch. 4), synthesised by
  FFT on a 256 x 256 grid and cropped to 128 x 128 (the crop hides the FFT's periodicity),
  then scaled to a standard deviation ``sigma_atm`` drawn log-uniformly.
* ``phi_ramp = g * (x cos(a) + y sin(a)) / L``: residual orbital ramp, a plane with total
  change ``g`` across the frame width ``L = 128 dx``.
* ``phi_0``: an arbitrary constant offset (interferometric phase is only known up to a
  constant).
* ``noise``: decorrelation phase noise, Gaussian with the standard deviation of the
  Cramer-Rao bound for a coherence ``gamma`` and ``L_looks`` looks (Rodriguez and Martin
  1992), ``sigma = sqrt(1 - gamma^2) / (gamma * sqrt(2 L_looks))``.
* ``amplitude = exp(0.25 * N(0, 1))`` per pixel: a mild, strictly positive random amplitude
  (strictly positive so that it never changes the angle).

Parameter ranges (all uniform unless stated; every frame draws its own):

================================  ==========================================
pixel spacing ``dx``              60 - 100 m (frame width 7.7 - 12.8 km)
wavelength ``lambda``             0.0555 m (C band, Sentinel-1)
Poisson ratio ``nu``              0.25
incidence angle ``theta``         20 - 45 deg
heading ``h``                     0 - 360 deg
frames with deformation           75 % (the other 25 %: no deformation)
frames with a second source       15 % of the frames with deformation
source depth ``d``                1 - 5 km
fringes above a source ``n``      0 - 10, drawn as 10 * U^2 (favours few)
resulting ``|dV|``                0 - 4.1e7 m^3 (inflation or deflation)
source position ``(x0, y0)``      70 %: within +-0.25 L of the centre;
                                  30 %: within +-0.75 L (may lie outside)
atmosphere std ``sigma_atm``      0.03 - 1.5 rad, log-uniform
orbital ramp ``g``                0 - 2 rad across the frame, any direction
constant offset ``phi_0``         -pi - pi
coherence ``gamma``               0.35 - 0.98, so noise std 0.10 - 1.34 rad
number of looks ``L_looks``       2
================================  ==========================================

The ranges aim, like real interferograms, at frames from clean and nearly constant to fully
decorrelated or densely fringed: over the first 256 frames of seed 0 the circular variance
falls in every tenth of [0, 1] and the circular skewness takes both signs
(tests/test_synthetic.py checks both).

Determinism: frame ``i`` is drawn from its own random generator seeded with ``(seed, i)``,
so it depends on nothing else (not on how many frames are drawn, nor in which batches).

References
----------
Mogi, K. (1958). Relations between the eruptions of various volcanoes and the deformations
of the ground surfaces around them. Bulletin of the Earthquake Research Institute,
University of Tokyo, 36, 99-134.

Rodriguez, E. and Martin, J. M. (1992). Theory and design of interferometric synthetic
aperture radars. IEE Proceedings F (Radar and Signal Processing), 139(2), 147-159.

Hanssen, R. F. (2001). Radar Interferometry: Data Interpretation and Error Analysis.
Kluwer Academic Publishers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft

from src.data import FRAME_SIZE

WAVELENGTH_M = 0.0555
POISSON_RATIO = 0.25

PIXEL_SPACING_RANGE_M = (60.0, 100.0)
INCIDENCE_RANGE_DEG = (20.0, 45.0)
DEFORMATION_PROBABILITY = 0.75
SECOND_SOURCE_PROBABILITY = 0.15
SOURCE_DEPTH_RANGE_M = (1000.0, 5000.0)
MAX_FRINGES = 10.0
FRINGE_EXPONENT = 2.0
CENTRAL_SOURCE_PROBABILITY = 0.7
CENTRAL_OFFSET_FRACTION = 0.25
OFF_CENTRE_OFFSET_FRACTION = 0.75
ATMOSPHERE_STD_RANGE_RAD = (0.03, 1.5)
ATMOSPHERE_SPECTRAL_EXPONENT = 8.0 / 3.0
RAMP_RANGE_RAD = (0.0, 2.0)
COHERENCE_RANGE = (0.35, 0.98)
NUMBER_OF_LOOKS = 2
AMPLITUDE_LOG_STD = 0.25

MAX_SOURCES = 2
# Twice the frame: the cropped field does not see the FFT's periodic wrap.
_ATMOSPHERE_GRID = 2 * FRAME_SIZE
# Frames rendered together: large enough for efficient numpy operations, small enough to
# bound memory whatever the number of frames.
_BATCH_SIZE = 256


@dataclass
class _FrameDraw:
    """All random numbers of one frame, drawn from that frame's generator.

    Sources that are absent have ``volume_change_m3 == 0``.
    """

    pixel_spacing_m: float
    incidence_rad: float
    heading_rad: float
    source_east_m: np.ndarray  # (MAX_SOURCES,)
    source_north_m: np.ndarray  # (MAX_SOURCES,)
    source_depth_m: np.ndarray  # (MAX_SOURCES,)
    volume_change_m3: np.ndarray  # (MAX_SOURCES,)
    atmosphere_std_rad: float
    ramp_rad: float
    ramp_direction_rad: float
    phase_offset_rad: float
    noise_std_rad: float
    atmosphere_white_noise: np.ndarray  # (_ATMOSPHERE_GRID, _ATMOSPHERE_GRID)
    phase_noise: np.ndarray  # (FRAME_SIZE, FRAME_SIZE), unit normal
    amplitude_noise: np.ndarray  # (FRAME_SIZE, FRAME_SIZE), unit normal


def _frame_generator(seed: int, index: int) -> np.random.Generator:
    """Random generator of frame ``index``: a function of (seed, index) only."""
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def _draw_frame(seed: int, index: int) -> _FrameDraw:
    """Draw the parameters and noise fields of frame ``index``."""
    rng = _frame_generator(seed, index)
    pixel_spacing_m = rng.uniform(*PIXEL_SPACING_RANGE_M)
    frame_width_m = FRAME_SIZE * pixel_spacing_m
    incidence_rad = math.radians(rng.uniform(*INCIDENCE_RANGE_DEG))
    heading_rad = rng.uniform(0.0, 2.0 * math.pi)

    has_deformation = rng.uniform() < DEFORMATION_PROBABILITY
    n_sources = 0
    if has_deformation:
        n_sources = 2 if rng.uniform() < SECOND_SOURCE_PROBABILITY else 1
    source_east_m = np.zeros(MAX_SOURCES)
    source_north_m = np.zeros(MAX_SOURCES)
    # Absent sources keep a harmless non-zero depth and zero volume change.
    source_depth_m = np.full(MAX_SOURCES, SOURCE_DEPTH_RANGE_M[0])
    volume_change_m3 = np.zeros(MAX_SOURCES)
    for source in range(n_sources):
        central = rng.uniform() < CENTRAL_SOURCE_PROBABILITY
        offset_fraction = CENTRAL_OFFSET_FRACTION if central else OFF_CENTRE_OFFSET_FRACTION
        source_east_m[source], source_north_m[source] = (
            rng.uniform(-offset_fraction, offset_fraction, size=2) * frame_width_m
        )
        depth_m = rng.uniform(*SOURCE_DEPTH_RANGE_M)
        fringes = MAX_FRINGES * rng.uniform() ** FRINGE_EXPONENT
        sign = 1.0 if rng.uniform() < 0.5 else -1.0
        source_depth_m[source] = depth_m
        volume_change_m3[source] = sign * _volume_change_for_fringes(fringes, depth_m, incidence_rad)

    log_low, log_high = np.log(ATMOSPHERE_STD_RANGE_RAD)
    atmosphere_std_rad = math.exp(rng.uniform(log_low, log_high))
    ramp_rad = rng.uniform(*RAMP_RANGE_RAD)
    ramp_direction_rad = rng.uniform(0.0, 2.0 * math.pi)
    phase_offset_rad = rng.uniform(-math.pi, math.pi)
    coherence = rng.uniform(*COHERENCE_RANGE)
    noise_std_rad = _decorrelation_noise_std(coherence, NUMBER_OF_LOOKS)

    grid = (_ATMOSPHERE_GRID, _ATMOSPHERE_GRID)
    frame = (FRAME_SIZE, FRAME_SIZE)
    return _FrameDraw(
        pixel_spacing_m=pixel_spacing_m,
        incidence_rad=incidence_rad,
        heading_rad=heading_rad,
        source_east_m=source_east_m,
        source_north_m=source_north_m,
        source_depth_m=source_depth_m,
        volume_change_m3=volume_change_m3,
        atmosphere_std_rad=atmosphere_std_rad,
        ramp_rad=ramp_rad,
        ramp_direction_rad=ramp_direction_rad,
        phase_offset_rad=phase_offset_rad,
        noise_std_rad=noise_std_rad,
        atmosphere_white_noise=rng.standard_normal(grid, dtype=np.float32),
        phase_noise=rng.standard_normal(frame, dtype=np.float32),
        amplitude_noise=rng.standard_normal(frame, dtype=np.float32),
    )


def _volume_change_for_fringes(fringes: float, depth_m: float, incidence_rad: float) -> float:
    """Mogi volume change (m^3, positive) giving ``fringes`` fringes above the source.

    Directly above the source the displacement is vertical,
    ``u_z = (1 - nu) dV / (pi d^2)``, and its LOS component is
    ``u_z cos(theta)``; one fringe is ``lambda / 2`` of LOS displacement.
    """
    los_displacement_m = fringes * WAVELENGTH_M / 2.0
    vertical_displacement_m = los_displacement_m / math.cos(incidence_rad)
    return vertical_displacement_m * math.pi * depth_m**2 / (1.0 - POISSON_RATIO)


def _decorrelation_noise_std(coherence: float, looks: int) -> float:
    """Phase noise standard deviation (rad) from the Cramer-Rao bound."""
    return math.sqrt(1.0 - coherence**2) / (coherence * math.sqrt(2.0 * looks))


def _stack(draws: list[_FrameDraw], name: str) -> np.ndarray:
    """Stack a noise field of all draws along a new leading batch axis, shape (B, ...)."""
    return np.stack([getattr(draw, name) for draw in draws])


def _per_frame(values) -> np.ndarray:
    """Per-frame scalars as float32 of shape (B, 1, 1), to broadcast over pixels."""
    return np.asarray(values, dtype=np.float32)[:, None, None]


def _pixel_coordinates_m(pixel_spacing_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """East and north coordinates of the pixel centres, origin at the frame centre.

    Parameters
    ----------
    pixel_spacing_m : np.ndarray, shape (B, 1, 1)

    Returns
    -------
    east_m, north_m : np.ndarray, shapes (B, 1, FRAME_SIZE) and (B, FRAME_SIZE, 1)
        Broadcast together they give (B, FRAME_SIZE, FRAME_SIZE); row 0 is north.
    """
    centred = np.arange(FRAME_SIZE, dtype=np.float32) - (FRAME_SIZE - 1) / 2.0
    east_m = centred[None, None, :] * pixel_spacing_m
    north_m = -centred[None, :, None] * pixel_spacing_m
    return east_m, north_m


def _mogi_los_phase(draws: list[_FrameDraw], east_m: np.ndarray, north_m: np.ndarray) -> np.ndarray:
    """Unwrapped LOS phase (rad) of the Mogi sources, shape (B, FRAME_SIZE, FRAME_SIZE)."""
    incidence = _per_frame([draw.incidence_rad for draw in draws])
    heading = _per_frame([draw.heading_rad for draw in draws])
    # Ground-to-satellite unit vector of a right-looking satellite.
    los_east = -np.sin(incidence) * np.cos(heading)
    los_north = np.sin(incidence) * np.sin(heading)
    los_up = np.cos(incidence)

    los_displacement_m = np.zeros((len(draws), FRAME_SIZE, FRAME_SIZE), dtype=np.float32)
    for source in range(MAX_SOURCES):
        # Most frames have fewer than MAX_SOURCES sources: compute only those that exist.
        present = [i for i, draw in enumerate(draws) if draw.volume_change_m3[source] != 0.0]
        if not present:
            continue
        x0 = _per_frame([draws[i].source_east_m[source] for i in present])
        y0 = _per_frame([draws[i].source_north_m[source] for i in present])
        depth = _per_frame([draws[i].source_depth_m[source] for i in present])
        volume_change = _per_frame([draws[i].volume_change_m3[source] for i in present])
        strength = (1.0 - POISSON_RATIO) * volume_change / math.pi
        dx = east_m[present] - x0
        dy = north_m[present] - y0
        squared_distance = dx**2 + dy**2 + depth**2
        strength_over_r3 = strength / (squared_distance * np.sqrt(squared_distance))
        # (u_east, u_north, u_up) = C (dx, dy, d) / R^3: the radial displacement
        # u_r = C r / R^3 split along dx / r and dy / r needs no division by r.
        los_displacement_m[present] += strength_over_r3 * (
            los_east[present] * dx + los_north[present] * dy + los_up[present] * depth
        )
    return np.float32(4.0 * math.pi / WAVELENGTH_M) * los_displacement_m


def _atmospheric_phase(draws: list[_FrameDraw]) -> np.ndarray:
    """Power-law Gaussian random fields (rad), shape (B, FRAME_SIZE, FRAME_SIZE).

    White noise is coloured in the Fourier domain by ``sqrt(P(k)) =
    k^(-beta / 2)``; each cropped field is then normalised to zero mean and
    the frame's standard deviation.
    """
    white = _stack(draws, "atmosphere_white_noise")
    wavenumber_rows = np.fft.fftfreq(_ATMOSPHERE_GRID)[:, None]
    wavenumber_columns = np.fft.rfftfreq(_ATMOSPHERE_GRID)[None, :]
    wavenumber = np.hypot(wavenumber_rows, wavenumber_columns)
    wavenumber[0, 0] = np.inf  # the mean is removed below; avoids 0 ** negative
    amplitude_filter = (wavenumber ** (-ATMOSPHERE_SPECTRAL_EXPONENT / 2.0)).astype(np.float32)

    spectrum = scipy.fft.rfft2(white, workers=-1)
    spectrum *= amplitude_filter
    field = scipy.fft.irfft2(spectrum, s=white.shape[-2:], workers=-1)[:, :FRAME_SIZE, :FRAME_SIZE]
    field = field - field.mean(axis=(1, 2), keepdims=True)
    field /= field.std(axis=(1, 2), keepdims=True)
    return field * _per_frame([draw.atmosphere_std_rad for draw in draws])


def _render(draws: list[_FrameDraw]) -> np.ndarray:
    """Render interferograms from their draws, shape (B, FRAME_SIZE, FRAME_SIZE, 2) float32."""
    pixel_spacing_m = _per_frame([draw.pixel_spacing_m for draw in draws])
    east_m, north_m = _pixel_coordinates_m(pixel_spacing_m)

    ramp = _per_frame([draw.ramp_rad for draw in draws])
    ramp_direction = _per_frame([draw.ramp_direction_rad for draw in draws])
    frame_width_m = FRAME_SIZE * pixel_spacing_m
    ramp_phase = ramp * (east_m * np.cos(ramp_direction) + north_m * np.sin(ramp_direction)) / frame_width_m

    offset = _per_frame([draw.phase_offset_rad for draw in draws])
    noise = _per_frame([draw.noise_std_rad for draw in draws]) * _stack(draws, "phase_noise")

    phase = _mogi_los_phase(draws, east_m, north_m) + _atmospheric_phase(draws) + ramp_phase + offset + noise
    amplitude = np.exp(np.float32(AMPLITUDE_LOG_STD) * _stack(draws, "amplitude_noise"))

    interferograms = np.empty((len(draws), FRAME_SIZE, FRAME_SIZE, 2), dtype=np.float32)
    # cos/sin wrap the phase implicitly: only the angle is stored.
    interferograms[..., 0] = amplitude * np.cos(phase)
    interferograms[..., 1] = amplitude * np.sin(phase)
    return interferograms


def generate_interferograms(n: int, seed: int = 0, start: int = 0) -> np.ndarray:
    """Generate synthetic interferograms ``start, ..., start + n - 1``.

    Parameters
    ----------
    n : int
        Number of frames, >= 0.
    seed : int
        Non-negative seed; frame ``i`` depends only on ``(seed, i)``.
    start : int
        Index of the first frame, >= 0, so that frames can be produced in
        chunks: ``generate_interferograms(n, seed, start)`` equals rows
        ``start:start + n`` of ``generate_interferograms(start + n, seed)``.

    Returns
    -------
    np.ndarray, shape (n, 128, 128, 2), float32
        (frame, row, column, [real, imaginary]) of ``amplitude * exp(1j * phase)``.
    """
    if n < 0 or seed < 0 or start < 0:
        raise ValueError(f"n, seed and start must be non-negative, got n={n}, seed={seed}, start={start}")
    interferograms = np.empty((n, FRAME_SIZE, FRAME_SIZE, 2), dtype=np.float32)
    for batch_start in range(0, n, _BATCH_SIZE):
        batch_stop = min(batch_start + _BATCH_SIZE, n)
        draws = [_draw_frame(seed, start + index) for index in range(batch_start, batch_stop)]
        interferograms[batch_start:batch_stop] = _render(draws)
    return interferograms
