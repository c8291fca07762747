"""Noise samplers of the diffusion model: white noise and Gaussian random fields (GRFs).

The model (Lim et al. 2023, "Score-based diffusion models in function space") perturbs
functions with Gaussian noise whose covariance is a stationary, isotropic kernel on the
unit square.  A batch of draws has the project's layout for functions, ``(n, res, res,
channels)`` (src/data.py), any number of channels, each an independent draw of the same field
(2 for Volcano's cos and sin); ``n`` draws of ``channels`` channels are ``n * channels``
independent fields, field ``i * channels + c`` being channel ``c`` of draw ``i``.  For the isotropic
kernels grid point ``(i, j)``, ``i, j = 0 .. res-1``, sits at ``(i / res, j / res)``; for
``"gano"`` at the cell centre ``((i + 1/2) / res, (j + 1/2) / res)``.  Covariance
matrices over the grid use the row-major flat index ``i * res + j``.

Isotropic kernels (``KERNELS``; ``r`` is the distance, ``l = rbf_scale``; all have ``k(0) = 1``):

=========================  ===================================================================
``"exponential"``          ``exp(-r / (2 l^2))``, the default (Matern ``nu = 1/2``)
``"squared_exponential"``  ``exp(-r^2 / (2 l^2))``, the true RBF
``"matern"``               ``(1 + s) exp(-s)``, ``s = sqrt(3) r / l`` (Matern ``nu = 3/2``)
``"matern52"``             ``(1 + s + s^2 / 3) exp(-s)``, ``s = sqrt(5) r / l`` (``nu = 5/2``)
=========================  ===================================================================

``exponential`` is what the original code called "rbf" (it takes ``r``, not ``r^2``, so
its correlation length is ``2 l^2``); its formula is kept so that the paper's
``rbf_scale`` values mean the same here.  A GRF draw is ``N(0, C + rbf_eps^2 I)`` with
``C[p, q] = k(|x_p - x_q|)``: ``rbf_eps`` is the standard deviation of added white noise.

``NOISE_KERNELS`` adds ``"gano"``, the noise of GANO (Rahman et al. 2022, "Generative
adversarial neural operators"), not isotropic: covariance ``tau^(2 (alpha - 1))
(-Laplacian + tau^2)^(-alpha)`` with zero Neumann conditions on the unit square, mean
mode removed, plus ``rbf_eps^2 I``.  In the Neumann eigenfunctions ``phi_k(x, y) =
c_k1 c_k2 cos(pi k1 x) cos(pi k2 y)``, ``c_0 = 1``, ``c_k = sqrt(2)``,

    C[p, q] = tau^(2 (alpha - 1)) sum_{k != 0} (pi^2 |k|^2 + tau^2)^(-alpha) phi_k(x_p) phi_k(x_q),

over ``k1, k2 = 0 .. res-1``.  At the cell centres a separable DCT evaluates it exactly
(``NeumannGRF``; ``rbf_scale`` is not used).

``build_noise_sampler`` returns one of four samplers: ``NeumannGRF`` for ``"gano"``;
``IndependentGaussian``, white noise; ``CholeskyGRF``, the original algorithm, kept as
the reference: ``x = L z`` with ``L L^T = C + rbf_eps^2 I``, ``z ~ N(0, I)``; ``FFTGRF``,
exact draws by circulant embedding (Wood & Chan 1994, J. Comput. Graph. Stat. 3(4);
Dietrich & Newsam 1997, SIAM J. Sci. Comput. 18(4)).  On an ``m x m`` torus the covariance is block circulant,
with eigenvalues ``lambda``: the 2-D DFT of the kernel at the torus lags, plus
``rbf_eps^2``.  With ``z1, z2 ~ N(0, I_{m x m})``,

    field = FFT2(sqrt(lambda / m^2) (z1 + i z2))

has real and imaginary parts independent ``N(0, C_torus)``, and their ``[0:res, 0:res]``
corners are two consecutive fields (a draw of 2 channels is one torus).  On the *full*
torus, ``m >= 2 (res - 1)``, every grid lag is its own torus lag and the corners' covariance
is exactly ``C + rbf_eps^2 I``; a kernel that decays may use a smaller *compact* torus that changes no entry by more than
``tail_tolerance`` (``compact_embedding_size``, ``embedding_covariance_error``).
"""

import dataclasses
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable

import torch

from src.errors import KnownError

__all__ = ["KERNELS", "NOISE_KERNELS", "NOISE_METHODS", "CholeskyGRF", "CirculantEmbeddingFallbackWarning",
           "FFTGRF", "IndependentGaussian", "IsotropicKernel", "NeumannGRF", "NoiseError", "NoiseSampler",
           "NoiseTooLargeError", "build_noise_sampler", "circulant_embedding_eigenvalues", "compact_embedding_size",
           "embedding_covariance_error", "minimal_embedding_size", "neumann_cosine_basis"]

Kernel = Callable[[torch.Tensor], torch.Tensor]  # distance (any shape) -> covariance (same shape)


# Kernels k(r, l): the formulas are in the module docstring's table.

def exponential_kernel(r: torch.Tensor, length_scale: float) -> torch.Tensor:
    """Exponential kernel (the original's "rbf")."""
    return torch.exp(-r / (2 * length_scale**2))


def squared_exponential_kernel(r: torch.Tensor, length_scale: float) -> torch.Tensor:
    """Squared exponential kernel (the true RBF)."""
    return torch.exp(-(r**2) / (2 * length_scale**2))


def matern32_kernel(r: torch.Tensor, length_scale: float) -> torch.Tensor:
    """Matern kernel, ``nu = 3/2``."""
    scaled = math.sqrt(3) * r / length_scale
    return (1 + scaled) * torch.exp(-scaled)


def matern52_kernel(r: torch.Tensor, length_scale: float) -> torch.Tensor:
    """Matern kernel, ``nu = 5/2``."""
    scaled = math.sqrt(5) * r / length_scale
    return (1 + scaled + scaled**2 / 3) * torch.exp(-scaled)


KERNELS: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "exponential": exponential_kernel,
    "squared_exponential": squared_exponential_kernel,
    "matern": matern32_kernel,
    "matern52": matern52_kernel,
}

GANO_KERNEL = "gano"  # NeumannGRF, GANO's noise
NOISE_KERNELS = tuple(sorted(KERNELS)) + (GANO_KERNEL,)  # every valid noise_kernel
NOISE_METHODS = ("fft", "cholesky")


@dataclasses.dataclass(frozen=True)
class IsotropicKernel:
    """``KERNELS[name]`` with its length scale ``l = rbf_scale > 0`` bound; ``k(r)`` has ``r``'s shape."""

    name: str
    length_scale: float

    def __post_init__(self) -> None:
        if self.name not in KERNELS:
            raise ValueError(f"unknown kernel {self.name!r}; valid kernels: {sorted(KERNELS)}")
        if not self.length_scale > 0:
            raise ValueError(f"kernel length scale rbf_scale must be positive, got {self.length_scale}")

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        return KERNELS[self.name](r, self.length_scale)


def _lag_kernel_table(res: int, kernel: Kernel, device: torch.device) -> torch.Tensor:
    """``(res, res)`` float64 ``table[p, q] = k(sqrt(p^2 + q^2) / res)``: every entry of ``C``, by lag."""
    lags = torch.arange(res, dtype=torch.float64, device=device)
    distance = torch.sqrt(lags[:, None] ** 2 + lags[None, :] ** 2) / res
    return kernel(distance)


def _covariance_block(res: int, kernel: Kernel, rbf_eps: float, k: int, device: torch.device) -> torch.Tensor:
    """``(C + rbf_eps^2 I)[0:k, 0:k]``, ``(k, k)`` float64."""
    if not 0 <= k <= res * res:
        raise ValueError(f"block size k must be in [0, res^2 = {res * res}], got {k}")
    table = _lag_kernel_table(res, kernel, device)
    flat_index = torch.arange(k, device=device)
    rows, cols = flat_index // res, flat_index % res
    block = table[(rows[:, None] - rows[None, :]).abs(), (cols[:, None] - cols[None, :]).abs()]
    block.diagonal().add_(rbf_eps**2)
    return block


def _dense_covariance(res: int, kernel: Kernel, rbf_eps: float, device: torch.device) -> torch.Tensor:
    """``C + rbf_eps^2 I``, ``(res^2, res^2)`` float64."""
    table = _lag_kernel_table(res, kernel, device)
    positions = torch.arange(res, device=device)
    lag = (positions[:, None] - positions[None, :]).abs()
    # covariance[a, b, c, d] = table[|a - c|, |b - d|]; broadcast lag grids keep the
    # result the only res^4-sized allocation.
    covariance = table[lag[:, None, :, None], lag[None, :, None, :]].reshape(res * res, res * res)
    covariance.diagonal().add_(rbf_eps**2)
    return covariance


def _to_float32_without_subnormals(values: torch.Tensor) -> torch.Tensor:
    """``values`` in float32, with magnitudes below float32's smallest normal number set to 0."""
    # A short-range kernel leaves entries like exp(-100) in a factor; Intel CPUs do arithmetic
    # on float32 subnormals in microcode, many times slower.  Each entry moves < 1.2e-38.
    single = values.to(torch.float32)
    return single.masked_fill_(single.abs() < torch.finfo(torch.float32).tiny, 0)


class NoiseError(KnownError, ValueError):
    """Noise that cannot be drawn as configured (the message says which key to change)."""


class NoiseSampler(ABC):
    """Draws noise functions of ``channels`` channels on a ``res x res`` grid, made and returned on ``device``."""

    res: int
    channels: int
    device: torch.device

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws, ``(n, res, res, channels)`` float32 on ``self.device``, channels independent.

        ``generator`` lives on ``self.device``; ``None`` uses torch's global generator.
        """

    @abstractmethod
    def covariance_block(self, k: int) -> torch.Tensor | None:
        """Per-channel covariance of the first ``k <= res^2`` grid points, ``(k, k)`` float64; None if white."""

    @abstractmethod
    def point_variance(self) -> torch.Tensor:
        """Each grid point's variance, the covariance's diagonal, ``(res, res)`` float64 on ``self.device``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(res={self.res}, channels={self.channels}, device={self.device})"


def _check_at_least(name: str, value: float, minimum: int) -> None:
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _as_draws(fields: torch.Tensor, n: int, channels: int) -> torch.Tensor:
    """The first ``n * channels`` of independent fields ``(F, res, res)`` as ``n`` draws ``(n, res,
    res, channels)``: field ``i * channels + c`` is channel ``c`` of draw ``i``."""
    res = fields.shape[-1]
    return fields[: n * channels].reshape(n, channels, res, res).permute(0, 2, 3, 1).contiguous()


class IndependentGaussian(NoiseSampler):
    """White noise: every value an independent standard normal."""

    def __init__(self, res: int, device: torch.device | str = "cpu", channels: int = 2) -> None:
        _check_at_least("res", res, 1)
        _check_at_least("channels", channels, 1)
        self.res = res
        self.channels = channels
        self.device = torch.device(device)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_at_least("number of draws", n, 0)
        return torch.randn(n, self.res, self.res, self.channels, generator=generator, device=self.device)

    def covariance_block(self, k: int) -> None:
        return None

    def point_variance(self) -> torch.Tensor:
        return torch.ones(self.res, self.res, dtype=torch.float64, device=self.device)


class _GaussianRandomField(NoiseSampler):
    """What the GRF samplers share: the covariance ``C + rbf_eps^2 I`` they draw."""

    def __init__(self, res: int, kernel: Kernel, rbf_eps: float, device: torch.device | str, channels: int) -> None:
        _check_at_least("res", res, 1)
        _check_at_least("rbf_eps", rbf_eps, 0)
        _check_at_least("channels", channels, 1)
        self.res = res
        self.channels = channels
        self.kernel = kernel
        self.rbf_eps = rbf_eps
        self.device = torch.device(device)

    def covariance_block(self, k: int) -> torch.Tensor:
        return _covariance_block(self.res, self.kernel, self.rbf_eps, k, self.device)

    def point_variance(self) -> torch.Tensor:
        # Stationary: the kernel at distance 0 everywhere.
        at_zero = float(self.kernel(torch.zeros(1, dtype=torch.float64))) + self.rbf_eps**2
        return torch.full((self.res, self.res), at_zero, dtype=torch.float64, device=self.device)


class CholeskyGRF(_GaussianRandomField):
    """GRF by dense Cholesky factorization, ``x = L z``: the reference (O(res^4) memory, O(res^6) setup).

    Parameters
    ----------
    res : int
        Points per axis.
    kernel : callable
        Isotropic covariance of the distance, e.g. ``IsotropicKernel``.
    rbf_eps : float
        Standard deviation of the white noise added to the field, ``>= 0``.
    device : torch.device or str
        Where draws are made.
    channels : int
        Channels of a draw, each an independent field.

    Raises ``NoiseError`` if ``C + rbf_eps^2 I`` is not numerically positive definite.
    """

    def __init__(self, res: int, kernel: Kernel, rbf_eps: float, device: torch.device | str = "cpu",
                 channels: int = 2) -> None:
        super().__init__(res, kernel, rbf_eps, device, channels)
        # float64: a smooth kernel's matrix is ill-conditioned, and float32 Cholesky fails
        # or loses its small eigenvalues.
        covariance = _dense_covariance(res, kernel, rbf_eps, self.device)
        factor, info = torch.linalg.cholesky_ex(covariance)
        del covariance  # frees 8 res^4 bytes before the float32 copy is made
        if info.item() != 0:
            raise NoiseError(
                f"covariance of {kernel!r} at res={res} with rbf_eps={rbf_eps} is not numerically "
                f"positive definite (Cholesky failed at column {info.item()}); increase rbf_eps"
            )
        # L is kept in float32: draws are float32 anyway, and it halves the memory and the
        # matmul's cost; its rounding (relative 6e-8) is far below any Monte Carlo error.
        self.cholesky_factor = _to_float32_without_subnormals(factor)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_at_least("number of draws", n, 0)
        points = self.res * self.res
        # All n * channels fields in one matmul: rows of z are independent N(0, I),
        # rows of z L^T are N(0, L L^T).
        white = torch.randn(self.channels * n, points, generator=generator, device=self.device)
        fields = white @ self.cholesky_factor.T
        return _as_draws(fields.reshape(-1, self.res, self.res), n, self.channels)

    def __repr__(self) -> str:
        return (f"CholeskyGRF(res={self.res}, kernel={self.kernel!r}, rbf_eps={self.rbf_eps}, "
                f"channels={self.channels}, device={self.device})")


def _five_smooth_at_least(size: int) -> int:
    """Smallest ``2^a 3^b 5^c >= max(size, 1)``: the sizes at which FFTs are fastest."""
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
    """Full torus size: the smallest 5-smooth ``m >= 2 (res - 1)``, where every grid lag is a torus lag."""
    return _five_smooth_at_least(2 * (res - 1))


def _kernel_tail(res: int, kernel: Kernel) -> torch.Tensor | None:
    """``k(j / res)``, ``j = 0 .. ceil(sqrt(2) res)``, float64, or None unless non-negative, non-increasing.

    For such a kernel (checked, not assumed) entry ``j`` bounds ``k(r)`` for all ``r >= j / res``.
    """
    steps = math.ceil(math.sqrt(2) * res)  # grid distances lie in [0, sqrt(2)]
    values = kernel(torch.arange(steps + 1, dtype=torch.float64) / res)
    if (values < 0).any() or (values[1:] > values[:-1]).any():
        return None
    return values


def compact_embedding_size(res: int, kernel: Kernel, tail_tolerance: float = 1e-12) -> int:
    """Smallest 5-smooth torus size ``m`` whose grid covariance is ``C`` within ``tail_tolerance``.

    With ``R`` the smallest grid lag beyond which ``k <= tail_tolerance``, ``m`` is the
    smallest 5-smooth ``m >= min(2 (res - 1), res - 1 + R)``, so ``res <= m <=
    minimal_embedding_size(res)``; the full size if there is no such ``R`` within distance
    ``sqrt(2)`` or the kernel is not non-negative and non-increasing.
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


def embedding_covariance_error(res: int, kernel: Kernel, embedding_size: int) -> float:
    """Bound on ``|C_torus - C|`` per entry of the grid block of an ``m x m`` torus, ``m >= res``.

    0 for ``m >= 2 (res - 1)``.  Below that a lag ``d`` wraps to ``m - d`` only when
    ``d > m / 2``, and then both are ``>= m - res + 1``; for a non-negative, non-increasing
    kernel the entry moves by at most ``k((m - res + 1) / res)``; else the bound is ``inf``.
    """
    if embedding_size < res:
        raise ValueError(f"embedding size {embedding_size} < res = {res}: grid points would coincide on the torus")
    if embedding_size >= 2 * (res - 1):
        return 0.0
    tail = _kernel_tail(res, kernel)
    if tail is None:
        return math.inf
    return float(tail[embedding_size - res + 1])


def circulant_embedding_eigenvalues(res: int, kernel: Kernel, embedding_size: int,
                                    device: torch.device | str = "cpu") -> torch.Tensor:
    """Eigenvalues of the embedding of ``C`` in an ``m x m`` torus, ``(m, m)`` float64, unclipped.

    The kernel at the torus lags ``min(d, m - d)`` is the first row of the block-circulant
    matrix; its 2-D DFT (real: the row is even) is the spectrum.
    """
    if embedding_size < res:
        raise ValueError(f"embedding size {embedding_size} < res = {res}: grid points would coincide on the torus")
    lags = torch.arange(embedding_size, dtype=torch.float64, device=device)
    torus_lags = torch.minimum(lags, embedding_size - lags)
    distance = torch.sqrt(torus_lags[:, None] ** 2 + torus_lags[None, :] ** 2) / res
    return torch.fft.fft2(kernel(distance)).real


class CirculantEmbeddingFallbackWarning(RuntimeWarning):
    """The circulant embedding is not positive semi-definite; Cholesky is used instead."""


NEGATIVE_TOLERANCE = 1e-10  # eigenvalues above -this x the largest are round-off


def _is_nonnegative(eigenvalues: torch.Tensor, tolerance: float) -> bool:
    """Whether a torus spectrum is a covariance's: no eigenvalue below -tolerance x the largest."""
    return eigenvalues.min().item() >= -tolerance * eigenvalues.max().item()


class NoiseTooLargeError(NoiseError):
    """The GRF has no circulant embedding and its dense fallback would not fit in memory."""


def _embedding_suggestion(res: int, kernel: Kernel, rbf_eps: float) -> str:
    """Which shorter length scale of the same kernel embeds on the full torus (or doubled)."""
    generic = "A shorter length scale, or noise_method: cholesky to accept the dense sampler and its memory"
    if not isinstance(kernel, IsotropicKernel):
        return generic
    full_size = minimal_embedding_size(res)
    scale = kernel.length_scale
    for _ in range(20):
        scale /= 2 ** 0.5
        shorter = IsotropicKernel(kernel.name, scale)
        for size in (full_size, 2 * full_size, 4 * full_size):
            eigenvalues = circulant_embedding_eigenvalues(res, shorter, size) + rbf_eps**2
            if _is_nonnegative(eigenvalues, NEGATIVE_TOLERANCE):
                return (f"rbf_scale={scale:.3g} with the same kernel embeds (the paper's configs use 0.05 to 0.2); "
                        "noise_method: cholesky accepts the dense sampler and its memory")
    return generic


class FFTGRF(_GaussianRandomField):
    """GRF by circulant embedding: exact draws of ``N(0, C + rbf_eps^2 I)``, O(m^2 log m) each.

    Tries the compact torus (if smaller), the full one, then the full one doubled up to
    ``max_doublings`` times within ``max_embedding_size``, and keeps the first whose
    spectrum is non-negative; if none is, warns ``CirculantEmbeddingFallbackWarning`` and
    draws from a ``CholeskyGRF``.

    Parameters
    ----------
    res, kernel, rbf_eps, device, channels
        As for ``CholeskyGRF``.
    max_doublings, max_embedding_size : int
        Limits on enlarging the torus to clear negative eigenvalues.
    negative_tolerance : float
        Eigenvalues above ``-negative_tolerance * max(lambda)`` are round-off, clipped to 0.
    max_chunk_bytes : int
        Bound on the complex tori drawn at once: the working memory of ``sample``.
    tail_tolerance : float
        Covariance error allowed to shrink the torus (``compact_embedding_size``); 0 keeps it full.
    max_fallback_bytes : float
        ``NoiseTooLargeError`` instead of a fallback whose dense covariance (``8 res^4`` bytes)
        exceeds this.

    Attributes
    ----------
    embedding_size : int
        Torus size ``m`` in use (the last one tried if falling back).
    max_covariance_error : float
        ``embedding_covariance_error`` of that torus; 0.0 if full, doubled, or falling back.
    fallback_sampler : CholeskyGRF or None
        The sampler in use if no torus was positive semi-definite.
    """

    def __init__(self, res: int, kernel: Kernel, rbf_eps: float, device: torch.device | str = "cpu",
                 channels: int = 2, *, max_doublings: int = 3, max_embedding_size: int = 8192,
                 negative_tolerance: float = NEGATIVE_TOLERANCE, max_chunk_bytes: int = 256 * 2**20,
                 tail_tolerance: float = 1e-12, max_fallback_bytes: float = math.inf) -> None:
        super().__init__(res, kernel, rbf_eps, device, channels)
        self.max_chunk_bytes = max_chunk_bytes
        self.tail_tolerance = tail_tolerance
        self.fallback_sampler: CholeskyGRF | None = None

        full_size = minimal_embedding_size(res)
        compact_size = compact_embedding_size(res, kernel, tail_tolerance)
        # A compact torus that is not PSD is replaced by the full one before any
        # doubling: the full one is less than twice as large.
        sizes = [compact_size] if compact_size < full_size else []
        sizes.append(full_size)
        for _ in range(max_doublings):
            if 2 * sizes[-1] > max_embedding_size:
                break
            sizes.append(2 * sizes[-1])
        for embedding_size in sizes:
            # rbf_eps^2 I is circulant on the torus with all eigenvalues rbf_eps^2, and its
            # grid block is rbf_eps^2 I: the white noise needs no draw of its own.
            eigenvalues = circulant_embedding_eigenvalues(res, kernel, embedding_size, self.device) + rbf_eps**2
            embedding_is_valid = _is_nonnegative(eigenvalues, negative_tolerance)
            if embedding_is_valid:
                break
        self.embedding_size = embedding_size
        doublings = max(0, sizes.index(embedding_size) - sizes.index(full_size))

        if not embedding_is_valid:
            largest, most_negative = eigenvalues.max().item(), eigenvalues.min().item()
            dense_bytes = 8 * res**4  # the float64 covariance that the Cholesky factor is made from
            if dense_bytes > max_fallback_bytes:
                raise NoiseTooLargeError(
                    f"the noise {kernel!r} with rbf_eps={rbf_eps} has no circulant embedding at {res} x {res} "
                    f"points (most negative eigenvalue {most_negative / largest:.1e} of the largest at torus "
                    f"size {embedding_size}), and its dense Cholesky fallback would need "
                    f"{dense_bytes / 2**30:.1f} GiB for the covariance alone (limit "
                    f"{max_fallback_bytes / 2**30:.1f} GiB). {_embedding_suggestion(res, kernel, rbf_eps)}")
            warnings.warn(
                f"circulant embedding of {kernel!r} at res={res} with rbf_eps={rbf_eps} is not "
                f"positive semi-definite: most negative eigenvalue {most_negative:.3e} "
                f"({most_negative / largest:.1e} of the largest) at embedding size m={embedding_size} "
                f"after {doublings} doublings; "
                f"falling back to the dense Cholesky sampler (O(res^4) memory, O(res^6) setup)",
                CirculantEmbeddingFallbackWarning,
                stacklevel=2,
            )
            self.fallback_sampler = CholeskyGRF(res, kernel, rbf_eps, self.device, channels)
            self.max_covariance_error = 0.0
            return
        self.max_covariance_error = embedding_covariance_error(res, kernel, embedding_size)

        # sqrt(lambda / m^2), once for the real and once for the imaginary part of each
        # torus point, to scale real normals in place; a contiguous (m, m, 2) factor
        # multiplies faster than a broadcast (m, m, 1).
        amplitude = _to_float32_without_subnormals(torch.sqrt(eigenvalues.clamp(min=0)) / embedding_size)
        self._spectral_amplitude = amplitude[..., None].expand(-1, -1, 2).contiguous()

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_at_least("number of draws", n, 0)
        if self.fallback_sampler is not None:
            return self.fallback_sampler.sample(n, generator)
        res, m = self.res, self.embedding_size
        tori = -(-n * self.channels // 2)  # each gives two fields, its real and imaginary parts
        pairs = torch.empty(tori, res, res, 2, device=self.device)
        complex64_bytes = 8
        chunk = max(1, self.max_chunk_bytes // (complex64_bytes * m * m))
        # Chunks bound the memory of a large batch of large tori.  One buffer of normals
        # serves every chunk: a fresh allocation per chunk costs page faults.
        normals = torch.empty(min(chunk, tori), m, m, 2, device=self.device)
        for start in range(0, tori, chunk):
            stop = min(start + chunk, tori)
            # (z1, z2) as the last axis, scaled to the real and imaginary parts of W.
            spectrum = normals[: stop - start].normal_(generator=generator).mul_(self._spectral_amplitude)
            # The FFT runs on the whole torus though only a corner is kept: pruned into two
            # 1-D passes (one of them strided) it saves few operations on the compact torus.
            torus_fields = torch.fft.fft2(torch.view_as_complex(spectrum))
            pairs[start:stop] = torch.view_as_real(torus_fields[:, :res, :res])
        if self.channels == 2:
            return pairs  # fields 2 i and 2 i + 1, the real and imaginary parts of torus i, are draw i
        return _as_draws(pairs.permute(0, 3, 1, 2).reshape(2 * tori, res, res), n, self.channels)

    def __repr__(self) -> str:
        return (f"FFTGRF(res={self.res}, kernel={self.kernel!r}, rbf_eps={self.rbf_eps}, "
                f"channels={self.channels}, device={self.device}, embedding_size={self.embedding_size}, "
                f"max_covariance_error={self.max_covariance_error:.1e}, "
                f"fallback={self.fallback_sampler is not None})")


def neumann_cosine_basis(res: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``Phi[i, k] = c_k cos(pi k (i + 1/2) / res)``, ``c_0 = 1``, ``c_k = sqrt(2)``: ``(res, res)`` float64.

    Column ``k`` is the ``k``-th zero-Neumann eigenfunction of ``-d^2/dx^2`` on ``[0, 1]``,
    normalised in ``L2``, at the cell centres ``(i + 1/2) / res``.  There the midpoint rule
    is exact for products of these modes, ``Phi^T Phi / res = I``, and ``Phi / sqrt(res)``
    is the matrix of the orthonormal DCT-III (``scipy.fft.idct(norm="ortho")``; ``cv2.idct``
    applies it along both axes).
    """
    _check_at_least("res", res, 1)
    index = torch.arange(res, device=device)
    # cos(pi m / (2 res)) with the integer m = (2 i + 1) k reduced mod 4 res: the argument
    # is exact before it is scaled, at any res.
    phase = ((2 * index[:, None] + 1) * index[None, :]) % (4 * res)
    basis = torch.cos(phase.to(torch.float64) * (math.pi / (2 * res)))
    basis[:, 1:] *= math.sqrt(2)
    return basis


class NeumannGRF(NoiseSampler):
    """GANO's noise: a GRF with covariance ``tau^(2 (alpha - 1)) (-Laplacian + tau^2)^(-alpha)``, exact by DCT.

    The Laplacian has zero Neumann conditions on the unit square and the mean (``k = 0``)
    mode is removed, as in GANO (Rahman et al. 2022), whose notebook scales white noise by
    ``tau^(alpha - 1) (pi^2 |k|^2 + tau^2)^(-alpha / 2) res`` and applies ``cv2.idct``.
    The grid points are the cell centres ``((i + 1/2) / res, (j + 1/2) / res)``, where the
    DCT evaluates the eigenfunctions exactly.  Per channel, with ``Phi =
    neumann_cosine_basis(res)``, ``lambda[k1, k2] = (pi^2 (k1^2 + k2^2) + tau^2)^(-alpha)``,
    ``lambda[0, 0] = 0`` and ``Z`` a ``res x res`` standard normal matrix,

        u = tau^(alpha - 1) Phi (sqrt(lambda) * Z) Phi^T + rbf_eps * (white noise):

    two ``res x res`` matrix products, O(res^3) per draw, no ``res^2 x res^2`` matrix.  Its
    covariance is ``C[p, q] = tau^(2 (alpha - 1)) sum_k lambda[k] phi_k(x_p) phi_k(x_q) +
    rbf_eps^2 delta_pq``, ``phi_k(x_p) = Phi[row_p, k1] Phi[col_p, k2]``.  Without white
    noise it is singular and every draw has spatial mean 0.

    Parameters
    ----------
    res : int
        Points per axis.
    alpha : float
        Exponent, ``> 1``: in 2-D the pointwise variance ``tau^(2 (alpha - 1)) sum_k
        lambda[k] phi_k(x)^2`` stays bounded as ``res`` grows only then.  Larger is smoother.
    tau : float
        Inverse length scale, ``> 0``: modes with ``pi |k| < tau`` have about equal variance.
    rbf_eps, device, channels
        As for ``CholeskyGRF``.
    """

    def __init__(self, res: int, alpha: float = 1.5, tau: float = 1.0, rbf_eps: float = 0.0,
                 device: torch.device | str = "cpu", channels: int = 2) -> None:
        _check_at_least("res", res, 1)
        _check_at_least("channels", channels, 1)
        if not 1 < alpha < math.inf:
            raise ValueError(f"GANO noise exponent alpha (grf_alpha) must be > 1 and finite, got {alpha}: "
                             "in 2-D the field's pointwise variance, the sum over modes k of "
                             "(pi^2 |k|^2 + tau^2)^(-alpha), is finite only for alpha > 1")
        if not 0 < tau < math.inf:
            raise ValueError(f"GANO noise inverse length scale tau (grf_tau) must be positive and finite, got {tau}")
        _check_at_least("rbf_eps", rbf_eps, 0)
        self.res = res
        self.channels = channels
        self.alpha = alpha
        self.tau = tau
        self.rbf_eps = rbf_eps
        self.device = torch.device(device)
        self.basis = neumann_cosine_basis(res, self.device)
        self.scale = tau ** (alpha - 1)
        wavenumber = torch.arange(res, dtype=torch.float64, device=self.device)
        squared_norm = wavenumber[:, None] ** 2 + wavenumber[None, :] ** 2
        self.eigenvalues = (math.pi**2 * squared_norm + tau**2) ** -alpha
        self.eigenvalues[0, 0] = 0.0  # the mean mode is removed
        # float32 for the draws: their rounding (relative 6e-8) is far below Monte Carlo error.
        self._amplitude = _to_float32_without_subnormals(self.scale * self.eigenvalues.sqrt())
        self._basis32 = self.basis.to(torch.float32)
        self._basis32_t = self._basis32.T.contiguous()

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_at_least("number of draws", n, 0)
        res, fields = self.res, self.channels * n
        # The fields' coefficients sqrt(lambda) * Z, scaled in place.
        coefficients = torch.randn(fields, res, res, generator=generator, device=self.device).mul_(self._amplitude)
        # Phi W Phi^T: W Phi^T as one (fields res, res) x (res, res) product, then Phi times each field.
        draws = _as_draws(self._basis32 @ (coefficients.reshape(fields * res, res) @ self._basis32_t)
                          .reshape(fields, res, res), n, self.channels)
        if self.rbf_eps > 0:
            draws = draws + self.rbf_eps * torch.randn(n, res, res, self.channels, generator=generator,
                                                       device=self.device)
        return draws

    def covariance_block(self, k: int) -> torch.Tensor:
        """``C[0:k, 0:k]``, ``(k, k)`` float64, in O((k + res)^2) memory.

        The first ``k`` points lie in the first ``R = ceil(k / res)`` rows; between rows ``r``
        and ``s`` the block is ``Phi diag(w[r, s]) Phi^T`` with ``w[r, s, k2] = sum_k1
        Phi[r, k1] Phi[s, k1] lambda[k1, k2]``.
        """
        res = self.res
        if not 0 <= k <= res * res:
            raise ValueError(f"block size k must be in [0, res^2 = {res * res}], got {k}")
        rows = -(-k // res)
        row_modes = self.basis[:rows]
        weights = ((row_modes[:, None, :] * row_modes[None, :, :]).reshape(rows * rows, res) @ self.eigenvalues)
        # blocks[r, s, i, j] = sum_k2 Phi[i, k2] w[r, s, k2] Phi[j, k2]
        blocks = (self.basis * weights.reshape(rows, rows, 1, res)) @ self.basis.T
        covariance = blocks.permute(0, 2, 1, 3).reshape(rows * res, rows * res)[:k, :k].mul(self.scale**2)
        covariance.diagonal().add_(self.rbf_eps**2)
        return covariance

    def point_variance(self) -> torch.Tensor:
        # C[p, p] = scale^2 sum_k lambda[k] Phi[i, k1]^2 Phi[j, k2]^2 + rbf_eps^2, p = (i, j).
        squared = self.basis.square()
        return (squared @ self.eigenvalues @ squared.T).mul(self.scale**2).add(self.rbf_eps**2)

    def __repr__(self) -> str:
        return (f"NeumannGRF(res={self.res}, alpha={self.alpha}, tau={self.tau}, rbf_eps={self.rbf_eps}, "
                f"channels={self.channels}, device={self.device})")


def build_noise_sampler(res: int, white_noise: bool, rbf_scale: float, rbf_eps: float,
                        kernel: str = "exponential", method: str = "fft",
                        device: torch.device | str = "cpu", max_dense_bytes: float = 2**30,
                        grf_alpha: float = 1.5, grf_tau: float = 1.0, channels: int = 2) -> NoiseSampler:
    """The noise sampler of a training or evaluation configuration, of ``channels`` channels.

    ``white_noise`` gives ``IndependentGaussian`` (``kernel`` and ``method`` are still
    validated).  Else kernel ``"gano"`` with ``method`` ``"fft"`` gives ``NeumannGRF(res,
    grf_alpha, grf_tau, rbf_eps)``, whose DCT is exact (``rbf_scale`` is not used); an
    isotropic kernel with ``method`` ``"fft"`` gives ``FFTGRF`` and with ``"cholesky"``
    ``CholeskyGRF``, with kernel ``IsotropicKernel(kernel, rbf_scale)`` (``grf_alpha`` and
    ``grf_tau`` are not used).  Each draws ``channels`` independent fields a function.  Raises
    ``ValueError`` naming an unknown ``kernel`` or ``method`` (and listing the valid ones),
    ``"gano"`` with ``"cholesky"``, or a number out of range, and ``NoiseTooLargeError`` when ``"fft"`` would fall back to a dense
    covariance of more than ``max_dense_bytes`` (the message suggests a length scale that
    embeds).
    """
    if kernel not in NOISE_KERNELS:
        raise ValueError(f"unknown noise kernel {kernel!r}; valid kernels: {list(NOISE_KERNELS)}")
    if method not in NOISE_METHODS:
        raise ValueError(f"unknown noise method {method!r}; valid methods: {list(NOISE_METHODS)}")
    if white_noise:
        return IndependentGaussian(res, device, channels)
    if kernel == GANO_KERNEL:
        if method == "cholesky":
            raise ValueError(f"the {GANO_KERNEL!r} noise kernel is drawn exactly by its DCT and has no Cholesky "
                             "reference (its covariance is singular: the mean mode is removed); "
                             "use noise_method 'fft'")
        return NeumannGRF(res, grf_alpha, grf_tau, rbf_eps, device, channels)
    if method == "fft":
        return FFTGRF(res, IsotropicKernel(kernel, rbf_scale), rbf_eps, device, channels,
                      max_fallback_bytes=max_dense_bytes)
    return CholeskyGRF(res, IsotropicKernel(kernel, rbf_scale), rbf_eps, device, channels)
