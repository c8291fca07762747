"""Noise samplers of the diffusion model: white noise and Gaussian random fields.

The diffusion model of Lim et al. (2023, "Score-based diffusion models in
function space") perturbs functions with Gaussian noise whose covariance is a
stationary, isotropic kernel on the unit square.  A function is a tensor of
layout ``(N, res, res, 2)``, channels last; the two channels (cos and sin of an
InSAR phase) get independent draws of the same distribution.

Grid
----
Point ``(i, j)``, ``i, j = 0 .. res-1``, sits at ``(i / res, j / res)`` in
``[0, 1)^2``, so neighbours are ``1 / res`` apart.  A covariance matrix over the
grid is indexed by the row-major flat index ``i * res + j``.

Kernels
-------
Each kernel is a function of the Euclidean distance ``r = |x - x'|`` and the
length scale ``l = rbf_scale``; all have ``k(0) = 1``.

``"exponential"`` (the default)
    ``k(r) = exp(-r / (2 l^2))``.  The original code called this kernel "rbf",
    but it takes the distance, not its square: it is the exponential kernel,
    i.e. Matern with ``nu = 1/2`` and effective length ``2 l^2``.  The formula
    is kept so that the paper's ``rbf_scale`` values (0.05, 0.1, 0.2) mean the
    same thing here (``l = 0.05`` gives a correlation length of 0.005).
``"squared_exponential"`` (the true RBF)
    ``k(r) = exp(-r^2 / (2 l^2))``.
``"matern"`` (Matern, ``nu = 3/2``)
    ``k(r) = (1 + sqrt(3) r / l) exp(-sqrt(3) r / l)``.
``"matern52"`` (Matern, ``nu = 5/2``)
    ``k(r) = (1 + sqrt(5) r / l + 5 r^2 / (3 l^2)) exp(-sqrt(5) r / l)``.

The sampled covariance is ``C + rbf_eps^2 I`` with ``C[p, q] = k(|x_p - x_q|)``:
``rbf_eps`` is the standard deviation of independent white noise added to the
field (in the original code, the jitter that made the Cholesky factorization
succeed).

Samplers
--------
``IndependentGaussian``
    White noise, ``N(0, I)``.
``CholeskyGRF``
    The original algorithm, kept as the reference: factor the dense
    ``res^2 x res^2`` covariance ``C + rbf_eps^2 I = L L^T`` once, draw
    ``L z``.  Setup costs O(res^6) time and O(res^4) memory.  Unlike the
    original code (float32 throughout, one ``L z`` per sample; timed as
    ``original`` in ``benchmarks/noise.py``) it factorizes in float64 and
    draws a whole batch in one matmul.
``FFTGRF``
    Exact draws by circulant embedding (Wood & Chan 1994, J. Comput. Graph.
    Stat. 3(4); Dietrich & Newsam 1997, SIAM J. Sci. Comput. 18(4)): the grid
    is embedded in an ``m x m`` torus on which the covariance is block
    circulant and diagonalized by the 2-D DFT.  Setup costs one FFT of size
    ``m x m``; a draw costs O(m^2 log m).

Torus size
----------
On a torus of ``m`` points per axis the grid lag ``d`` is seen as the torus
lag ``min(d, m - d)``.  With ``m >= 2 (res - 1)`` (the *full* embedding) every
lag ``0 .. res-1`` is its own torus lag and the grid block of the torus
covariance is exactly ``C``.  A kernel that decays can use a smaller, *compact*
torus: a grid lag is wrapped only when ``d > m / 2``, and then both ``d`` and
``m - d`` are at least ``m - res + 1``, so for a non-negative kernel that
decreases in ``r`` every entry of the grid block differs from ``C`` by at most
``max(k(r) for r >= (m - res + 1) / res)``.  ``compact_embedding_size`` takes
the smallest ``m`` for which this is at most ``tail_tolerance`` (1e-12 by
default, far below float32's resolution of 6e-8 of a draw); for the paper's
exponential kernel with ``rbf_scale = 0.05`` this is ``m = 1200`` instead of
2048 at res 1024, and 144 instead of 240 at res 120.

``build_noise_sampler`` builds one of them from the training configuration.
"""

import dataclasses
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable

import torch

__all__ = [
    "KERNELS",
    "NOISE_METHODS",
    "CholeskyGRF",
    "CirculantEmbeddingFallbackWarning",
    "FFTGRF",
    "IndependentGaussian",
    "IsotropicKernel",
    "NoiseSampler",
    "build_noise_sampler",
    "circulant_embedding_eigenvalues",
    "compact_embedding_size",
    "embedding_covariance_error",
    "minimal_embedding_size",
]


# ---------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------


def exponential_kernel(r: torch.Tensor, length_scale: float) -> torch.Tensor:
    """Exponential (Matern-1/2) kernel, the original code's "rbf".

    ``k(r) = exp(-r / (2 l^2))``.  Despite its historical name this is not the
    squared exponential: it takes the distance, not its square, so its
    effective length scale is ``2 l^2``.

    Parameters
    ----------
    r : torch.Tensor
        Distances, any shape.
    length_scale : float
        ``l = rbf_scale``.

    Returns
    -------
    torch.Tensor
        Kernel values, same shape and dtype as ``r``.
    """
    return torch.exp(-r / (2 * length_scale**2))


def squared_exponential_kernel(r: torch.Tensor, length_scale: float) -> torch.Tensor:
    """Squared exponential (true RBF) kernel, ``k(r) = exp(-r^2 / (2 l^2))``.

    Parameters
    ----------
    r : torch.Tensor
        Distances, any shape.
    length_scale : float
        ``l = rbf_scale``.

    Returns
    -------
    torch.Tensor
        Kernel values, same shape and dtype as ``r``.
    """
    return torch.exp(-(r**2) / (2 * length_scale**2))


def matern32_kernel(r: torch.Tensor, length_scale: float) -> torch.Tensor:
    """Matern kernel with ``nu = 3/2``, ``k(r) = (1 + s) exp(-s)``, ``s = sqrt(3) r / l``.

    Parameters
    ----------
    r : torch.Tensor
        Distances, any shape.
    length_scale : float
        ``l = rbf_scale``.

    Returns
    -------
    torch.Tensor
        Kernel values, same shape and dtype as ``r``.
    """
    scaled = math.sqrt(3) * r / length_scale
    return (1 + scaled) * torch.exp(-scaled)


def matern52_kernel(r: torch.Tensor, length_scale: float) -> torch.Tensor:
    """Matern kernel with ``nu = 5/2``, ``k(r) = (1 + s + s^2 / 3) exp(-s)``, ``s = sqrt(5) r / l``.

    Parameters
    ----------
    r : torch.Tensor
        Distances, any shape.
    length_scale : float
        ``l = rbf_scale``.

    Returns
    -------
    torch.Tensor
        Kernel values, same shape and dtype as ``r``.
    """
    scaled = math.sqrt(5) * r / length_scale
    return (1 + scaled + scaled**2 / 3) * torch.exp(-scaled)


KERNELS: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "exponential": exponential_kernel,
    "squared_exponential": squared_exponential_kernel,
    "matern": matern32_kernel,
    "matern52": matern52_kernel,
}

NOISE_METHODS = ("fft", "cholesky")


@dataclasses.dataclass(frozen=True)
class IsotropicKernel:
    """A kernel of ``KERNELS`` with its length scale bound: ``k(r)``.

    Parameters
    ----------
    name : str
        Key of ``KERNELS``.
    length_scale : float
        ``rbf_scale``, positive.
    """

    name: str
    length_scale: float

    def __post_init__(self) -> None:
        if self.name not in KERNELS:
            raise ValueError(f"unknown kernel {self.name!r}; valid kernels: {sorted(KERNELS)}")
        if not self.length_scale > 0:
            raise ValueError(f"kernel length scale rbf_scale must be positive, got {self.length_scale}")

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        """Kernel values at distances ``r`` (any shape; same shape out)."""
        return KERNELS[self.name](r, self.length_scale)


# ---------------------------------------------------------------------------
# Covariance matrices over the grid
# ---------------------------------------------------------------------------


def _lag_kernel_table(res: int, kernel: Callable[[torch.Tensor], torch.Tensor],
                      device: torch.device) -> torch.Tensor:
    """Kernel at every grid lag: ``table[p, q] = k(sqrt(p^2 + q^2) / res)``.

    The covariance of a stationary isotropic field on the grid depends only on
    the absolute row and column lags, so this ``(res, res)`` float64 table
    holds every entry of the ``res^2 x res^2`` covariance matrix.
    """
    lags = torch.arange(res, dtype=torch.float64, device=device)
    distance = torch.sqrt(lags[:, None] ** 2 + lags[None, :] ** 2) / res
    return kernel(distance)


def _covariance_block(res: int, kernel: Callable[[torch.Tensor], torch.Tensor], rbf_eps: float,
                      k: int, device: torch.device) -> torch.Tensor:
    """``(C + rbf_eps^2 I)[0:k, 0:k]`` over the row-major flattened grid, float64, ``(k, k)``."""
    if not 0 <= k <= res * res:
        raise ValueError(f"block size k must be in [0, res^2 = {res * res}], got {k}")
    table = _lag_kernel_table(res, kernel, device)
    flat_index = torch.arange(k, device=device)
    rows, cols = flat_index // res, flat_index % res
    block = table[(rows[:, None] - rows[None, :]).abs(), (cols[:, None] - cols[None, :]).abs()]
    block.diagonal().add_(rbf_eps**2)
    return block


def _dense_covariance(res: int, kernel: Callable[[torch.Tensor], torch.Tensor], rbf_eps: float,
                      device: torch.device) -> torch.Tensor:
    """The whole ``C + rbf_eps^2 I``, float64, ``(res^2, res^2)``.

    Indexes the lag table with broadcast ``(res, 1, res, 1)`` and
    ``(1, res, 1, res)`` lag grids, so that the only ``res^4``-sized
    allocation is the result (1.7 GB at res 120).
    """
    table = _lag_kernel_table(res, kernel, device)
    positions = torch.arange(res, device=device)
    lag = (positions[:, None] - positions[None, :]).abs()
    # covariance[a, b, c, d] = table[|a - c|, |b - d|] for points (a, b), (c, d).
    covariance = table[lag[:, None, :, None], lag[None, :, None, :]].reshape(res * res, res * res)
    covariance.diagonal().add_(rbf_eps**2)
    return covariance


# ---------------------------------------------------------------------------
# Samplers
# ---------------------------------------------------------------------------


def _to_float32_without_subnormals(values: torch.Tensor) -> torch.Tensor:
    """``values`` in float32, with magnitudes below float32's smallest normal number set to 0.

    A short-range kernel leaves entries like ``exp(-100)`` in the Cholesky
    factor, subnormal in float32; x86 arithmetic on subnormals is microcoded,
    and made the draw matmul 12x slower (1.4 s instead of 0.12 s at res 64).
    Setting them to 0 changes each entry by less than 1.2e-38.
    """
    single = values.to(torch.float32)
    return single.masked_fill_(single.abs() < torch.finfo(torch.float32).tiny, 0)


class NoiseSampler(ABC):
    """Draws noise functions of layout ``(n, res, res, 2)``.

    Attributes
    ----------
    res : int
        The grid is ``res x res``, points ``(i / res, j / res)``.
    device : torch.device
        Where draws are made and returned.
    """

    res: int
    device: torch.device

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` noise functions.

        Parameters
        ----------
        n : int
            Number of draws.
        generator : torch.Generator, optional
            Source of randomness, on ``self.device``; ``None`` uses torch's
            global generator.

        Returns
        -------
        torch.Tensor
            ``(n, res, res, 2)``, float32, on ``self.device``; the two channels
            are independent draws.
        """

    @abstractmethod
    def covariance_block(self, k: int) -> torch.Tensor | None:
        """``C[0:k, 0:k]`` of the per-channel covariance, without forming all of ``C``.

        Parameters
        ----------
        k : int
            Block size, ``0 <= k <= res^2``; rows and columns are the first
            ``k`` grid points in row-major order (flat index ``row * res + col``).

        Returns
        -------
        torch.Tensor or None
            ``(k, k)`` float64 on ``self.device``, or ``None`` for white noise.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(res={self.res}, device={self.device})"


def _check_sample_count(n: int) -> None:
    if n < 0:
        raise ValueError(f"number of draws must be >= 0, got {n}")


def _check_res(res: int) -> None:
    if res < 1:
        raise ValueError(f"res must be >= 1, got {res}")


def _check_rbf_eps(rbf_eps: float) -> None:
    if rbf_eps < 0:
        raise ValueError(f"rbf_eps must be >= 0, got {rbf_eps}")


class IndependentGaussian(NoiseSampler):
    """White noise: every value an independent standard normal.

    Parameters
    ----------
    res : int
        Grid size.
    device : torch.device or str
        Where draws are made.
    """

    def __init__(self, res: int, device: torch.device | str = "cpu") -> None:
        _check_res(res)
        self.res = res
        self.device = torch.device(device)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_sample_count(n)
        return torch.randn(n, self.res, self.res, 2, generator=generator, device=self.device)

    def covariance_block(self, k: int) -> None:
        return None


class CholeskyGRF(NoiseSampler):
    """Gaussian random field by dense Cholesky factorization (the reference).

    Factors ``C + rbf_eps^2 I = L L^T`` once, in float64 (the kernel matrix of
    a smooth kernel is ill-conditioned; float32 Cholesky fails or loses the
    small eigenvalues).  ``L`` is then stored in float32: draws are returned
    in float32 anyway, the rounding of ``L`` (relative 6e-8) is far below any
    Monte Carlo error, and it halves the memory (0.8 GB instead of 1.7 GB at
    res 120) and doubles the matmul throughput of a draw.

    Parameters
    ----------
    res : int
        Grid size; memory grows as ``res^4`` and setup time as ``res^6``.
    kernel : callable
        Isotropic covariance function of the distance, e.g. ``IsotropicKernel``.
    rbf_eps : float
        Standard deviation of the white noise added to the field.
    device : torch.device or str
        Where the factor lives and draws are made.

    Raises
    ------
    ValueError
        If ``C + rbf_eps^2 I`` is not numerically positive definite (a smooth
        kernel with ``rbf_eps = 0``).
    """

    def __init__(self, res: int, kernel: Callable[[torch.Tensor], torch.Tensor], rbf_eps: float,
                 device: torch.device | str = "cpu") -> None:
        _check_res(res)
        _check_rbf_eps(rbf_eps)
        self.res = res
        self.kernel = kernel
        self.rbf_eps = rbf_eps
        self.device = torch.device(device)
        covariance = _dense_covariance(res, kernel, rbf_eps, self.device)
        factor, info = torch.linalg.cholesky_ex(covariance)
        del covariance  # frees 8 res^4 bytes before the float32 copy is made
        if info.item() != 0:
            raise ValueError(
                f"covariance of {kernel!r} at res={res} with rbf_eps={rbf_eps} is not numerically "
                f"positive definite (Cholesky failed at column {info.item()}); increase rbf_eps"
            )
        self.cholesky_factor = _to_float32_without_subnormals(factor)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_sample_count(n)
        points = self.res * self.res
        # All n * 2 channels in one matmul: rows of z are independent N(0, I),
        # rows of z L^T are N(0, L L^T).
        white = torch.randn(2 * n, points, generator=generator, device=self.device)
        fields = white @ self.cholesky_factor.T
        return fields.reshape(n, 2, self.res, self.res).permute(0, 2, 3, 1).contiguous()

    def covariance_block(self, k: int) -> torch.Tensor:
        return _covariance_block(self.res, self.kernel, self.rbf_eps, k, self.device)

    def __repr__(self) -> str:
        return f"CholeskyGRF(res={self.res}, kernel={self.kernel!r}, rbf_eps={self.rbf_eps}, device={self.device})"


def _five_smooth_at_least(size: int) -> int:
    """Smallest ``2^a 3^b 5^c >= size`` (and ``>= 1``): the sizes at which FFTs are fastest."""
    size = max(1, size)
    while True:
        remainder = size
        for prime in (2, 3, 5):
            while remainder % prime == 0:
                remainder //= prime
        if remainder == 1:
            return size
        size += 1


def minimal_embedding_size(res: int) -> int:
    """Smallest FFT-friendly torus size ``m >= 2 (res - 1)`` for a ``res``-point axis (the full embedding).

    On a torus of ``m`` points the lag ``d`` and ``m - d`` coincide, so every
    lag ``0 .. res-1`` of the grid is represented exactly iff
    ``m >= 2 (res - 1)``.  Rounded up to the next 5-smooth number
    (``2^a 3^b 5^c``), for which FFTs are fastest.

    Parameters
    ----------
    res : int
        Points per axis.

    Returns
    -------
    int
        The embedding size ``m``.
    """
    return _five_smooth_at_least(2 * (res - 1))


def _kernel_tail(res: int, kernel: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor | None:
    """``k(j / res)`` for ``j = 0 .. ceil(sqrt(2) res)``, float64, or ``None`` if not monotone.

    Grid distances lie in ``[0, sqrt(2)]``.  The kernel is sampled there at the
    grid spacing and checked to be non-negative and non-increasing (true of
    every kernel in ``KERNELS``, but checked, not assumed); then entry ``j`` is
    also ``max(k(r) for r >= j / res)``, the tail bound of the compact
    embedding.  ``None`` if the check fails: no compact embedding then.
    """
    steps = math.ceil(math.sqrt(2) * res)
    values = kernel(torch.arange(steps + 1, dtype=torch.float64) / res)
    if (values < 0).any() or (values[1:] > values[:-1]).any():
        return None
    return values


def compact_embedding_size(res: int, kernel: Callable[[torch.Tensor], torch.Tensor],
                           tail_tolerance: float = 1e-12) -> int:
    """Smallest FFT-friendly torus size whose grid covariance is ``C`` to within ``tail_tolerance``.

    ``R`` is the smallest grid lag beyond which the kernel stays at or below
    ``tail_tolerance``: ``k(r) <= tail_tolerance`` for all ``r >= R / res``.
    On a torus of size ``m >= res - 1 + R`` a grid lag is wrapped only when
    both it and its torus lag are at least ``R``, so no entry of the grid
    block changes by more than ``tail_tolerance`` (see
    ``embedding_covariance_error``).  The size is the smallest 5-smooth
    ``m >= min(2 (res - 1), res - 1 + R)``; it is the full
    ``minimal_embedding_size(res)`` when the kernel does not fall to
    ``tail_tolerance`` within distance ``sqrt(2)``, or is not non-negative and
    non-increasing at the grid spacing.

    Parameters
    ----------
    res : int
        Grid size.
    kernel : callable
        Isotropic covariance function of the distance.
    tail_tolerance : float
        Largest allowed change of a covariance entry, ``>= 0``; 0 gives the
        full embedding unless the kernel underflows to exactly 0.

    Returns
    -------
    int
        The torus size ``m``, ``res <= m <= minimal_embedding_size(res)``.
    """
    if not tail_tolerance >= 0:
        raise ValueError(f"tail_tolerance must be >= 0, got {tail_tolerance}")
    full_size = minimal_embedding_size(res)
    tail = _kernel_tail(res, kernel)
    if tail is None:
        return full_size
    below = torch.nonzero(tail <= tail_tolerance)
    if below.numel() == 0:
        return full_size
    tail_lag = max(1, int(below[0, 0]))  # R >= 1 keeps m >= res: the grid points stay distinct
    return min(full_size, _five_smooth_at_least(res - 1 + tail_lag))


def embedding_covariance_error(res: int, kernel: Callable[[torch.Tensor], torch.Tensor],
                               embedding_size: int) -> float:
    """Bound on the largest entry error of the grid block of the torus covariance.

    On a torus of ``m`` points per axis the grid lag ``d`` becomes the torus
    lag ``min(d, m - d)``.  For ``m >= 2 (res - 1)`` no lag ``d <= res - 1``
    is wrapped and the grid block is exactly ``C``: the bound is 0.  For
    ``res <= m < 2 (res - 1)`` a lag is wrapped only when ``d > m / 2``, and
    then ``d`` and ``m - d`` are both ``>= m - res + 1``; the true and the torus
    distance of such an entry are both ``>= (m - res + 1) / res``, so for a
    non-negative, non-increasing kernel the entry changes by at most
    ``k((m - res + 1) / res)``.  The white-noise term ``rbf_eps^2 I`` is exact
    on any torus.

    Parameters
    ----------
    res : int
        Grid size.
    kernel : callable
        Isotropic covariance function of the distance.
    embedding_size : int
        Torus size ``m >= res``.

    Returns
    -------
    float
        The bound; ``math.inf`` for ``m < 2 (res - 1)`` if the kernel is not
        non-negative and non-increasing at the grid spacing.
    """
    if embedding_size < res:
        raise ValueError(f"embedding size {embedding_size} < res = {res}: grid points would coincide on the torus")
    if embedding_size >= 2 * (res - 1):
        return 0.0
    tail = _kernel_tail(res, kernel)
    if tail is None:
        return math.inf
    return float(tail[embedding_size - res + 1])


def circulant_embedding_eigenvalues(res: int, kernel: Callable[[torch.Tensor], torch.Tensor],
                                    embedding_size: int,
                                    device: torch.device | str = "cpu") -> torch.Tensor:
    """Eigenvalues of the block-circulant embedding of the grid covariance.

    The kernel is evaluated at the torus lags ``min(d, m - d)`` of each axis
    (distance in grid units divided by ``res``); this ``(m, m)`` array is the
    first row of an ``m^2 x m^2`` block-circulant matrix, and its eigenvalues
    are its 2-D DFT.  The array is even in both axes, so the DFT is real.  The
    top-left ``res x res`` sub-grid block of the matrix is ``C`` exactly for
    ``m >= 2 (res - 1)``, and within ``embedding_covariance_error(res, kernel,
    m)`` per entry for smaller ``m``.

    Parameters
    ----------
    res : int
        Grid size.
    kernel : callable
        Isotropic covariance function of the distance.
    embedding_size : int
        Torus size ``m``, at least ``res``.
    device : torch.device or str
        Where to compute.

    Returns
    -------
    torch.Tensor
        ``(m, m)`` float64 eigenvalues, unclipped (may hold negatives).
    """
    if embedding_size < res:
        raise ValueError(f"embedding size {embedding_size} < res = {res}: grid points would coincide on the torus")
    lags = torch.arange(embedding_size, dtype=torch.float64, device=device)
    torus_lags = torch.minimum(lags, embedding_size - lags)
    distance = torch.sqrt(torus_lags[:, None] ** 2 + torus_lags[None, :] ** 2) / res
    return torch.fft.fft2(kernel(distance)).real


class CirculantEmbeddingFallbackWarning(RuntimeWarning):
    """The circulant embedding is not positive semi-definite; Cholesky is used instead."""


class FFTGRF(NoiseSampler):
    """Gaussian random field by circulant embedding: exact draws of ``N(0, C + rbf_eps^2 I)``.

    Setup: compute the eigenvalues of the block-circulant embedding of
    ``C + rbf_eps^2 I`` on a torus of size ``m``:
    ``lambda = circulant_embedding_eigenvalues(...) + rbf_eps^2`` (the identity
    on the torus is circulant with all eigenvalues 1, and its sub-grid block is
    the identity, so the white noise is part of the torus field and needs no
    draw of its own).  Negatives down to ``-negative_tolerance * max(lambda)``
    are round-off and clipped to 0.  The sizes tried, in order, are
    ``compact_embedding_size(res, kernel, tail_tolerance)`` (if smaller than
    the full size), the full ``minimal_embedding_size(res)``, then the full
    size doubled, at most ``max_doublings`` times and while
    ``m <= max_embedding_size``; the first whose eigenvalues are non-negative
    is used.  A larger negative means the truncated kernel is not a covariance
    on this torus (typical of smooth kernels with long length scales).  If
    negatives remain, a ``CirculantEmbeddingFallbackWarning`` is issued and
    draws come from a ``CholeskyGRF`` (``fallback_sampler``).  Each doubling
    multiplies the cost of a draw by 4.  At res 64-120 the full torus suffices
    for the exponential kernel up to ``rbf_scale`` 0.3; 0.4-0.7 take 1-3
    doublings, and from about 0.8 (0.8 at res 120, 1.0 at res 64) it falls
    back, as do the squared exponential from about 1.5 and both Materns from
    about 1.0.

    The compact torus changes each covariance entry by at most
    ``max_covariance_error <= tail_tolerance`` (1e-12 by default); the full
    and doubled ones are exact.  For the paper's exponential kernel with
    ``rbf_scale = 0.05`` it is 144 instead of 240 at res 120 and 1200 instead
    of 2048 at res 1024: 2.8-2.9 times fewer torus points per draw.

    Draw: with ``z1, z2`` independent ``N(0, I)`` on the torus,
    ``W = sqrt(lambda / m^2) (z1 + i z2)`` and ``field = FFT2(W)``, the real
    and imaginary parts of ``field`` are independent ``N(0, C_torus)``
    (``E[field field^H] = 2 C_torus``, ``E[field field^T] = 0``), so one complex
    FFT gives both channels.  The ``[0:res, 0:res]`` sub-grid has covariance
    ``C + rbf_eps^2 I`` (within ``max_covariance_error``).  On a CPU the time
    splits about evenly between drawing the ``2 m^2`` normals per draw and the
    FFT.  Only the ``res x res`` corner of the FFT is kept, yet the FFT runs on
    the whole torus: pruning it (a 1-D FFT along one axis, keep ``res`` rows,
    then along the other) saves 25% of the operations on the full torus and
    7-8% on the compact one, but with torch 2.13's MKL FFTs the two strided
    1-D passes were slower than one 2-D FFT (8 tori of 2048 x 2048: 0.73 s
    against 0.64 s).

    Parameters
    ----------
    res : int
        Grid size.
    kernel : callable
        Isotropic covariance function of the distance, e.g. ``IsotropicKernel``.
    rbf_eps : float
        Standard deviation of the white noise added to the field.
    device : torch.device or str
        Where the spectrum lives and draws are made.
    max_doublings : int
        How many times the full ``m`` may be doubled to clear negative
        eigenvalues.
    max_embedding_size : int
        ``m`` is never doubled beyond this (memory: ``16 m^2`` bytes per
        eigenvalue computation).
    negative_tolerance : float
        Eigenvalues above ``-negative_tolerance * max(lambda)`` count as zero.
    max_chunk_bytes : int
        Draws are made in chunks of complex fields of at most this many bytes,
        bounding the working memory (a chunk of normals and its FFT).
    tail_tolerance : float
        Largest change of a covariance entry allowed to shrink the torus below
        the full size (see ``compact_embedding_size``); 0 keeps the full size.

    Attributes
    ----------
    embedding_size : int
        The torus size ``m`` in use (the last one tried if falling back).
    max_covariance_error : float
        Bound on ``|C_torus - (C + rbf_eps^2 I)|`` per entry of the grid block
        for the torus in use (``embedding_covariance_error``): at most
        ``tail_tolerance`` for a compact torus, 0.0 for the full or a doubled
        one and for the Cholesky fallback.
    fallback_sampler : CholeskyGRF or None
        The sampler used when the embedding failed, else ``None``.
    """

    def __init__(self, res: int, kernel: Callable[[torch.Tensor], torch.Tensor], rbf_eps: float,
                 device: torch.device | str = "cpu", *, max_doublings: int = 3,
                 max_embedding_size: int = 8192, negative_tolerance: float = 1e-10,
                 max_chunk_bytes: int = 256 * 2**20, tail_tolerance: float = 1e-12) -> None:
        _check_res(res)
        _check_rbf_eps(rbf_eps)
        self.res = res
        self.kernel = kernel
        self.rbf_eps = rbf_eps
        self.device = torch.device(device)
        self.max_chunk_bytes = max_chunk_bytes
        self.tail_tolerance = tail_tolerance
        self.fallback_sampler: CholeskyGRF | None = None

        full_size = minimal_embedding_size(res)
        compact_size = compact_embedding_size(res, kernel, tail_tolerance)
        # A compact torus that is not positive semi-definite is replaced by the
        # full one before any doubling: the full one is less than twice as large.
        sizes = [compact_size] if compact_size < full_size else []
        sizes.append(full_size)
        for _ in range(max_doublings):
            if 2 * sizes[-1] > max_embedding_size:
                break
            sizes.append(2 * sizes[-1])
        for embedding_size in sizes:
            eigenvalues = circulant_embedding_eigenvalues(res, kernel, embedding_size, self.device) + rbf_eps**2
            largest = eigenvalues.max().item()
            most_negative = eigenvalues.min().item()
            embedding_is_valid = most_negative >= -negative_tolerance * largest
            if embedding_is_valid:
                break
        self.embedding_size = embedding_size
        doublings = max(0, sizes.index(embedding_size) - sizes.index(full_size))

        if not embedding_is_valid:
            warnings.warn(
                f"circulant embedding of {kernel!r} at res={res} with rbf_eps={rbf_eps} is not "
                f"positive semi-definite: most negative eigenvalue {most_negative:.3e} "
                f"({most_negative / largest:.1e} of the largest) at embedding size m={embedding_size} "
                f"after {doublings} doublings; "
                f"falling back to the dense Cholesky sampler (O(res^4) memory, O(res^6) setup)",
                CirculantEmbeddingFallbackWarning,
                stacklevel=2,
            )
            self.fallback_sampler = CholeskyGRF(res, kernel, rbf_eps, self.device)
            self.max_covariance_error = 0.0
            return
        self.max_covariance_error = embedding_covariance_error(res, kernel, embedding_size)

        # sqrt(lambda / m^2), once for the real and once for the imaginary part
        # of each torus point, to scale real normals in place; a contiguous
        # (m, m, 2) factor multiplies twice as fast as a broadcast (m, m, 1).
        amplitude = _to_float32_without_subnormals(torch.sqrt(eigenvalues.clamp(min=0)) / embedding_size)
        self._spectral_amplitude = amplitude[..., None].expand(-1, -1, 2).contiguous()

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_sample_count(n)
        if self.fallback_sampler is not None:
            return self.fallback_sampler.sample(n, generator)
        res, m = self.res, self.embedding_size
        draws = torch.empty(n, res, res, 2, device=self.device)
        complex64_bytes = 8
        chunk = max(1, self.max_chunk_bytes // (complex64_bytes * m * m))
        # A loop over memory-bounded chunks of fields, not over samples: at
        # res 1024 all 64 tori of a batch would take 0.7 GB (m = 1200) or 2 GB
        # (m = 2048) at once.  One buffer of normals serves every chunk: a fresh
        # allocation per chunk costs page faults.
        normals = torch.empty(min(chunk, n), m, m, 2, device=self.device)
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            # (z1, z2) as the last axis, scaled to the real and imaginary parts of W.
            spectrum = normals[: stop - start].normal_(generator=generator).mul_(self._spectral_amplitude)
            torus_fields = torch.fft.fft2(torch.view_as_complex(spectrum))
            # (real, imag) of the sub-grid are the two channels.
            draws[start:stop] = torch.view_as_real(torus_fields[:, :res, :res])
        return draws

    def covariance_block(self, k: int) -> torch.Tensor:
        return _covariance_block(self.res, self.kernel, self.rbf_eps, k, self.device)

    def __repr__(self) -> str:
        return (f"FFTGRF(res={self.res}, kernel={self.kernel!r}, rbf_eps={self.rbf_eps}, "
                f"device={self.device}, embedding_size={self.embedding_size}, "
                f"max_covariance_error={self.max_covariance_error:.1e}, "
                f"fallback={self.fallback_sampler is not None})")


# ---------------------------------------------------------------------------
# Factory
# ---------------------------------------------------------------------------


def build_noise_sampler(res: int, white_noise: bool, rbf_scale: float, rbf_eps: float,
                        kernel: str = "exponential", method: str = "fft",
                        device: torch.device | str = "cpu") -> NoiseSampler:
    """The noise sampler of a training or evaluation configuration.

    Parameters
    ----------
    res : int
        Grid size.
    white_noise : bool
        White noise instead of a Gaussian random field (the other parameters
        are then only validated).
    rbf_scale : float
        Kernel length scale ``l``, positive.
    rbf_eps : float
        Standard deviation of the white noise added to the field, ``>= 0``.
    kernel : str
        Key of ``KERNELS``.
    method : str
        ``"fft"`` (circulant embedding) or ``"cholesky"`` (dense reference).
    device : torch.device or str
        Where draws are made.

    Returns
    -------
    NoiseSampler
        ``IndependentGaussian``, ``FFTGRF`` or ``CholeskyGRF``.

    Raises
    ------
    ValueError
        If ``kernel`` or ``method`` is unknown (the message names it and lists
        the valid values), or a number is out of range.
    """
    if kernel not in KERNELS:
        raise ValueError(f"unknown noise kernel {kernel!r}; valid kernels: {sorted(KERNELS)}")
    if method not in NOISE_METHODS:
        raise ValueError(f"unknown noise method {method!r}; valid methods: {list(NOISE_METHODS)}")
    if white_noise:
        return IndependentGaussian(res, device)
    covariance_function = IsotropicKernel(kernel, rbf_scale)
    if method == "fft":
        return FFTGRF(res, covariance_function, rbf_eps, device)
    return CholeskyGRF(res, covariance_function, rbf_eps, device)
