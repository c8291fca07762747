"""Tests of src/noise.py: the white-noise, Cholesky, circulant-embedding and GANO (DCT) samplers.

Statistical tests draw tens of thousands of fields with a fixed seed, so they
are deterministic; tolerances are 5 standard errors of the estimate.  For
zero-mean Gaussian data, the covariance estimate ``mean(x_i x_j)`` (known
mean) has standard error ``sqrt((C_ii C_jj + C_ij^2) / n)``.
"""

import math
import warnings

import numpy as np
import pytest
import torch
import scipy.fft
from scipy import stats

from src.noise import (
    KERNELS,
    NOISE_KERNELS,
    CholeskyGRF,
    CirculantEmbeddingFallbackWarning,
    FFTGRF,
    IndependentGaussian,
    IsotropicKernel,
    NeumannGRF,
    build_noise_sampler,
    circulant_embedding_eigenvalues,
    compact_embedding_size,
    embedding_covariance_error,
    minimal_embedding_size,
    neumann_cosine_basis,
)

STANDARD_ERRORS = 5.0

# The kernel formulas, written out again independently of src/noise.py.
REFERENCE_KERNELS = {
    "exponential": lambda r, l: np.exp(-r / (2 * l**2)),
    "squared_exponential": lambda r, l: np.exp(-(r**2) / (2 * l**2)),
    "matern": lambda r, l: (1 + math.sqrt(3) * r / l) * np.exp(-math.sqrt(3) * r / l),
    "matern52": lambda r, l: (1 + math.sqrt(5) * r / l + 5 * r**2 / (3 * l**2)) * np.exp(-math.sqrt(5) * r / l),
}


def reference_covariance(res: int, kernel: str, length_scale: float, rbf_eps: float,
                         indices: np.ndarray | None = None) -> np.ndarray:
    """Dense ``C + eps^2 I`` over the grid points ``(i / res, j / res)``, row-major, float64.

    ``indices`` (row-major flat indices) restricts it to those points' rows and columns.
    """
    rows, cols = np.meshgrid(np.arange(res), np.arange(res), indexing="ij")
    points = np.stack([rows.ravel(), cols.ravel()], axis=-1) / res
    if indices is not None:
        points = points[indices]
    distance = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)
    return REFERENCE_KERNELS[kernel](distance, length_scale) + rbf_eps**2 * np.eye(len(points))


def corner_indices(res: int, width: int = 6) -> np.ndarray:
    """Flat indices of the points whose row and column are among the first or last ``width``.

    All points for ``res <= 2 width``.  Pairs of them have every axis lag up to
    ``width - 1`` and from ``res - width`` to ``res - 1``: the short lags and the
    long ones, which a compact torus wraps.
    """
    ends = np.unique(np.concatenate([np.arange(min(width, res)), np.arange(max(0, res - width), res)]))
    return (ends[:, None] * res + ends[None, :]).ravel()


def channel_samples(draws: torch.Tensor) -> np.ndarray:
    """``(n, res, res, 2)`` draws as ``(2 n, res^2)`` independent row-major flattened fields."""
    n, res = draws.shape[0], draws.shape[1]
    return draws.permute(0, 3, 1, 2).reshape(2 * n, res * res).double().numpy()


def channel_samples_at(sampler, n: int, indices: np.ndarray, seed: int, batch: int = 2_500) -> np.ndarray:
    """Both channels of ``n`` draws at the flat grid ``indices``, ``(2 n, len(indices))``, drawn in batches."""
    generator = torch_generator(seed)
    return np.concatenate([channel_samples(sampler.sample(min(batch, n - start), generator))[:, indices]
                           for start in range(0, n, batch)])


def covariance_standard_error(covariance: np.ndarray, n: int) -> np.ndarray:
    variance = np.diag(covariance)
    return np.sqrt((variance[:, None] * variance[None, :] + covariance**2) / n)


def assert_covariance_is(samples: np.ndarray, expected: np.ndarray) -> None:
    """The empirical covariance of ``samples`` ``(n, points)`` is ``expected`` within 5 standard errors per entry."""
    empirical = samples.T @ samples / samples.shape[0]
    error_in_standard_errors = np.abs(empirical - expected) / covariance_standard_error(expected, samples.shape[0])
    assert error_in_standard_errors.max() < STANDARD_ERRORS


def torch_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def reference_neumann_covariance(res: int, alpha: float, tau: float, rbf_eps: float) -> np.ndarray:
    """GANO's covariance over the cell centres ``((i + 1/2) / res, (j + 1/2) / res)``, row-major, float64.

    ``tau^(2 (alpha - 1)) sum_{k != 0} (pi^2 |k|^2 + tau^2)^(-alpha) phi_k(x_p) phi_k(x_q) + eps^2 I``,
    ``phi_k(x, y) = c_k1 c_k2 cos(pi k1 x) cos(pi k2 y)``, ``c_0 = 1``, ``c_k = sqrt(2)``, mode by mode.
    """
    centres = (np.arange(res) + 0.5) / res
    covariance = rbf_eps**2 * np.eye(res * res)
    for k1 in range(res):
        for k2 in range(res):
            if k1 == k2 == 0:
                continue
            c1, c2 = (1.0 if k1 == 0 else math.sqrt(2)), (1.0 if k2 == 0 else math.sqrt(2))
            mode = np.outer(c1 * np.cos(math.pi * k1 * centres), c2 * np.cos(math.pi * k2 * centres)).ravel()
            variance = tau ** (2 * (alpha - 1)) * (math.pi**2 * (k1**2 + k2**2) + tau**2) ** -alpha
            covariance += variance * np.outer(mode, mode)
    return covariance


def make_sampler(kind: str, res: int, channels: int = 2) -> "IndependentGaussian | CholeskyGRF | FFTGRF | NeumannGRF":
    kernel = IsotropicKernel("exponential", 0.2)
    if kind == "white":
        return IndependentGaussian(res, channels=channels)
    if kind == "gano":
        return NeumannGRF(res, 1.5, 1.0, 0.1, channels=channels)
    if kind == "cholesky":
        return CholeskyGRF(res, kernel, 0.1, channels=channels)
    if kind == "fft":
        return FFTGRF(res, kernel, 0.1, channels=channels)
    if kind == "fft_fallback":
        with pytest.warns(CirculantEmbeddingFallbackWarning):
            return FFTGRF(res, IsotropicKernel("squared_exponential", 2.0), 0.1, channels=channels)
    raise AssertionError(kind)


SAMPLER_KINDS = ["white", "cholesky", "fft", "fft_fallback", "gano"]


# ---------------------------------------------------------------------------
# Kernels and covariance blocks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_formulas(name):
    r = np.linspace(0.0, 1.5, 31)
    for length_scale in (0.05, 0.2, 1.0):
        values = KERNELS[name](torch.from_numpy(r), length_scale).numpy()
        np.testing.assert_allclose(values, REFERENCE_KERNELS[name](r, length_scale), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name", sorted(REFERENCE_KERNELS))
@pytest.mark.parametrize("sampler_class", [CholeskyGRF, FFTGRF])
def test_covariance_block_equals_dense_matrix_block(name, sampler_class):
    res, length_scale, rbf_eps = 7, 0.3, 0.1
    dense = reference_covariance(res, name, length_scale, rbf_eps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CirculantEmbeddingFallbackWarning)
        sampler = sampler_class(res, IsotropicKernel(name, length_scale), rbf_eps)
    for k in (0, 1, 10, res * res):
        block = sampler.covariance_block(k)
        assert block.shape == (k, k) and block.dtype == torch.float64
        np.testing.assert_allclose(block.numpy(), dense[:k, :k], rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="block size"):
        sampler.covariance_block(res * res + 1)


def test_cholesky_factor_reproduces_covariance():
    res = 9
    dense = reference_covariance(res, "exponential", 0.1, 0.01)
    factor = CholeskyGRF(res, IsotropicKernel("exponential", 0.1), 0.01).cholesky_factor.double().numpy()
    np.testing.assert_allclose(factor @ factor.T, dense, atol=1e-6)


def test_cholesky_factor_has_no_float32_subnormals():
    # exp(-r / 0.005) leaves thousands of entries below float32's normal range in the
    # factor; Intel CPUs multiply subnormals in microcode, which makes every draw much slower.
    factor = CholeskyGRF(16, IsotropicKernel("exponential", 0.05), 0.01).cholesky_factor
    nonzero = factor[factor != 0]
    assert nonzero.abs().min() >= torch.finfo(torch.float32).tiny


def test_white_noise_has_no_covariance_block():
    assert IndependentGaussian(4).covariance_block(3) is None


# ---------------------------------------------------------------------------
# Interface: shape, dtype, generators, chunks, independence of the channels
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SAMPLER_KINDS)
@pytest.mark.parametrize("res", [5, 8])
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_sample_shape_and_dtype(kind, res, channels):
    sampler = make_sampler(kind, res, channels)
    draws = sampler.sample(3, torch_generator(0))
    assert draws.shape == (3, res, res, channels) and draws.dtype == torch.float32 and draws.is_contiguous()
    assert sampler.sample(0, torch_generator(0)).shape == (0, res, res, channels)


@pytest.mark.parametrize("kind", SAMPLER_KINDS)
def test_draws_come_from_the_generator_given(kind):
    sampler = make_sampler(kind, 6)
    global_state = torch.get_rng_state()
    first = sampler.sample(4, torch_generator(123))
    # An explicit generator leaves the global one alone (plotting relies on it).
    assert torch.equal(torch.get_rng_state(), global_state)
    assert torch.equal(first, sampler.sample(4, torch_generator(123)))
    # generator=None draws from torch's global generator, the same stream as a CPU generator of the same seed.
    torch.manual_seed(7)
    assert torch.equal(sampler.sample(4), sampler.sample(4, torch_generator(7)))


def test_drawing_in_chunks_changes_no_number():
    # normal_ fills a tensor from the generator in order (in blocks of 16 on the CPU), so with
    # 2 m^2 a multiple of 16 the chunks must reproduce the one-chunk draw exactly.
    kernel = IsotropicKernel("exponential", 0.2)
    whole = FFTGRF(9, kernel, 0.1)
    assert whole.embedding_size == 16
    complex64_field_bytes = 8 * 16 * 16
    chunked = FFTGRF(9, kernel, 0.1, max_chunk_bytes=3 * complex64_field_bytes)  # chunks of 3, 3 and 1 fields
    assert torch.equal(chunked.sample(7, torch_generator(11)), whole.sample(7, torch_generator(11)))


@pytest.mark.parametrize("kind", SAMPLER_KINDS)
def test_channels_are_uncorrelated(kind):
    sampler = make_sampler(kind, 6)
    n = 20_000
    draws = sampler.sample(n, torch_generator(1))
    first = draws[..., 0].reshape(n, -1).double().numpy()
    second = draws[..., 1].reshape(n, -1).double().numpy()
    cross_covariance = first.T @ second / n
    # Independent channels: E[x_i y_j] = 0 with standard error sqrt(C_ii C_jj / n).
    variance = np.diag(first.T @ first / n)
    standard_error = np.sqrt(variance[:, None] * variance[None, :] / n)
    assert np.abs(cross_covariance / standard_error).max() < STANDARD_ERRORS


@pytest.mark.parametrize("kind", SAMPLER_KINDS)
@pytest.mark.parametrize("channels", [1, 3])
def test_any_number_of_channels_are_independent_draws_of_the_field(kind, channels):
    """Every channel has the field's covariance, and two channels are uncorrelated."""
    sampler = make_sampler(kind, 6, channels)
    n = 20_000
    draws = sampler.sample(n, torch_generator(4)).double()
    block = sampler.covariance_block(36)
    expected = np.eye(36) if block is None else block.numpy()
    for c in range(channels):
        assert_covariance_is(draws[..., c].reshape(n, 36).numpy(), expected)
    if channels > 1:
        first, last = draws[..., 0].reshape(n, 36).numpy(), draws[..., -1].reshape(n, 36).numpy()
        variance = np.diag(expected)
        standard_error = np.sqrt(variance[:, None] * variance[None, :] / n)
        assert np.abs(first.T @ last / n / standard_error).max() < STANDARD_ERRORS


def test_white_noise_is_standard_normal():
    draws = IndependentGaussian(8).sample(2_000, torch_generator(2)).double()
    assert abs(draws.mean().item()) < STANDARD_ERRORS / math.sqrt(draws.numel())
    assert abs(draws.var().item() - 1) < STANDARD_ERRORS * math.sqrt(2 / draws.numel())


# ---------------------------------------------------------------------------
# The FFT sampler draws the right distribution
# ---------------------------------------------------------------------------


# (res, length_scale): at 0.05 the torus is compact (m = 10, 15 and 45 instead of 16, 24 and
# 80), at 0.2 it is the full one.  At res 40 only the corner points are compared (corner_indices),
# whose pairs include every wrapped lag.
COVARIANCE_CASES = [(9, 0.05), (12, 0.05), (9, 0.2), (12, 0.2), (40, 0.05)]


@pytest.mark.parametrize("res, length_scale", COVARIANCE_CASES)
def test_fft_empirical_covariance_matches_dense(res, length_scale):
    rbf_eps = 0.3  # large enough that the eps^2 I term is visible above Monte Carlo error
    sampler = FFTGRF(res, IsotropicKernel("exponential", length_scale), rbf_eps)
    assert sampler.fallback_sampler is None
    assert (sampler.embedding_size < minimal_embedding_size(res)) == (length_scale == 0.05)
    indices = corner_indices(res)
    samples = channel_samples_at(sampler, 20_000, indices, seed=3)
    assert_covariance_is(samples, reference_covariance(res, "exponential", length_scale, rbf_eps, indices))


def test_fft_without_white_noise_draws_the_bare_kernel():
    res, length_scale = 9, 0.2
    sampler = FFTGRF(res, IsotropicKernel("exponential", length_scale), 0.0)
    samples = channel_samples(sampler.sample(20_000, torch_generator(10)))
    assert_covariance_is(samples, reference_covariance(res, "exponential", length_scale, 0.0))


# (res, length_scale, longer length scale the test must tell apart, or None): compact tori
# (m = 15 instead of 18, 45 instead of 80); at res 40 on the corner points only.
@pytest.mark.parametrize("res, length_scale, longer", [(10, 0.1, 0.12), (40, 0.05, None)])
def test_fft_and_cholesky_draw_the_same_distribution(res, length_scale, longer):
    rbf_eps = 0.01
    kernel = IsotropicKernel("exponential", length_scale)
    n = 20_000 if res <= 10 else 4_000  # the dense draws cost 2 n res^4 flops
    fft_sampler = FFTGRF(res, kernel, rbf_eps)
    assert fft_sampler.embedding_size < minimal_embedding_size(res)
    indices = corner_indices(res)
    from_fft = channel_samples_at(fft_sampler, n, indices, seed=5)
    from_cholesky = channel_samples_at(CholeskyGRF(res, kernel, rbf_eps), n, indices, seed=6)
    expected = reference_covariance(res, "exponential", length_scale, rbf_eps, indices)
    # The two estimates are independent: their difference has sqrt(2) times the standard error.
    standard_error = math.sqrt(2) * covariance_standard_error(expected, 2 * n)
    difference = from_fft.T @ from_fft / (2 * n) - from_cholesky.T @ from_cholesky / (2 * n)
    assert np.abs(difference / standard_error).max() < STANDARD_ERRORS
    # Kolmogorov-Smirnov on random linear projections, Bonferroni over projections.
    directions = np.random.default_rng(0).standard_normal((len(indices), 8))
    p_values = [stats.ks_2samp(from_fft @ direction, from_cholesky @ direction).pvalue
                for direction in directions.T]
    assert min(p_values) > 1e-3 / len(p_values)

    if longer is None:
        return
    # Power: a 20% longer length scale is detected by the same statistic.
    other = channel_samples_at(CholeskyGRF(res, IsotropicKernel("exponential", longer), rbf_eps), n, indices, seed=6)
    difference = from_fft.T @ from_fft / (2 * n) - other.T @ other / (2 * n)
    assert np.abs(difference / standard_error).max() > STANDARD_ERRORS


# ---------------------------------------------------------------------------
# GANO's noise: the Neumann GRF drawn by a DCT
# ---------------------------------------------------------------------------

# (alpha, tau, rbf_eps): GANO's defaults, and a smoother field with a short length scale.
NEUMANN_CASES = [(1.5, 1.0, 0.0), (2.5, 4.0, 0.2)]


@pytest.mark.parametrize("res", [1, 2, 7, 64])
def test_neumann_basis_is_orthonormal_on_the_cell_centres_and_is_the_orthonormal_idct(res):
    basis = neumann_cosine_basis(res).numpy()
    np.testing.assert_allclose(basis.T @ basis / res, np.eye(res), atol=1e-12)
    # Phi / sqrt(res) is the orthonormal DCT-III (cv2.idct, GANO's transform): its columns
    # are the inverse transforms of the unit vectors.
    np.testing.assert_allclose(basis, math.sqrt(res) * scipy.fft.idct(np.eye(res), norm="ortho", axis=0),
                               atol=1e-12)


@pytest.mark.parametrize("alpha, tau, rbf_eps", NEUMANN_CASES)
def test_neumann_covariance_block_is_the_formula(alpha, tau, rbf_eps):
    res = 6
    dense = reference_neumann_covariance(res, alpha, tau, rbf_eps)
    sampler = NeumannGRF(res, alpha, tau, rbf_eps)
    for k in (0, 1, 5, 6, 7, 20, res * res):  # within the first row, at its end, across rows, all
        block = sampler.covariance_block(k)
        assert block.shape == (k, k) and block.dtype == torch.float64
        np.testing.assert_allclose(block.numpy(), dense[:k, :k], rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="block size"):
        sampler.covariance_block(res * res + 1)


@pytest.mark.parametrize("alpha, tau, rbf_eps", NEUMANN_CASES)
def test_neumann_empirical_covariance_matches_the_formula(alpha, tau, rbf_eps):
    res = 6
    samples = channel_samples(NeumannGRF(res, alpha, tau, rbf_eps).sample(20_000, torch_generator(12)))
    assert_covariance_is(samples, reference_neumann_covariance(res, alpha, tau, rbf_eps))


def test_neumann_empirical_covariance_at_the_corners_of_a_larger_grid():
    # At res 16 the pairs of corner points see the boundary on both sides, where the cosines
    # are largest and a shifted grid (i / res instead of (i + 1/2) / res) would show.
    res = 16
    sampler = NeumannGRF(res, 1.5, 1.0, 0.05)
    indices = corner_indices(res, width=3)
    samples = channel_samples_at(sampler, 20_000, indices, seed=13)
    expected = reference_neumann_covariance(res, 1.5, 1.0, 0.05)[np.ix_(indices, indices)]
    assert_covariance_is(samples, expected)


def test_neumann_draws_are_gano_coefficients_through_the_orthonormal_idct():
    # GANO's recipe, with scipy's idctn for cv2.idct: coefficients
    # tau^(alpha - 1) (pi^2 |k|^2 + tau^2)^(-alpha / 2) res Z, mean mode 0.  The sampler
    # takes channel c of draw i from the normals randn(2 n, res, res)[2 i + c].
    res, alpha, tau, n = 9, 1.5, 2.0, 3
    normals = torch.randn(2 * n, res, res, generator=torch_generator(14)).double().numpy()
    wavenumber = np.arange(res)
    squared_norm = wavenumber[:, None] ** 2 + wavenumber[None, :] ** 2
    amplitude = tau ** (alpha - 1) * (math.pi**2 * squared_norm + tau**2) ** (-alpha / 2) * res
    amplitude[0, 0] = 0.0
    expected = scipy.fft.idctn(amplitude * normals, norm="ortho", axes=(1, 2))
    draws = NeumannGRF(res, alpha, tau, 0.0).sample(n, torch_generator(14))
    np.testing.assert_allclose(channel_samples(draws).reshape(2 * n, res, res), expected, atol=1e-6)


@pytest.mark.parametrize("res", [5, 16, 64])
def test_neumann_draws_have_zero_spatial_mean_without_white_noise(res):
    # Every non-constant cosine sums to 0 over the cell centres: removing the k = 0 mode
    # removes the mean of every draw, not only its expectation.
    draws = NeumannGRF(res, 1.5, 1.0, 0.0).sample(50, torch_generator(15)).double()
    spatial_mean = draws.mean(dim=(1, 2))
    assert spatial_mean.abs().max() < 1e-6 * draws.std()  # float32 rounding
    with_white_noise = NeumannGRF(res, 1.5, 1.0, 0.1).sample(50, torch_generator(15)).double()
    assert with_white_noise.mean(dim=(1, 2)).abs().max() > 1e-3 * 0.1 / res


@pytest.mark.parametrize("arguments, message", [
    (dict(alpha=1.0), r"alpha \(grf_alpha\) must be > 1.*got 1\.0.*finite"),
    (dict(alpha=math.nan), "grf_alpha"),
    (dict(tau=0.0), r"tau \(grf_tau\) must be positive.*got 0\.0"),
    (dict(tau=-1.0), "grf_tau"),
    (dict(rbf_eps=-0.1), "rbf_eps"),
    (dict(res=0), "res"),
])
def test_neumann_rejects_out_of_range_parameters(arguments, message):
    with pytest.raises(ValueError, match=message):
        NeumannGRF(**{"res": 8, **arguments})


# ---------------------------------------------------------------------------
# Circulant embedding: sizes, non-negativity, enlarging, falling back
# ---------------------------------------------------------------------------


def is_five_smooth(number: int) -> bool:
    for prime in (2, 3, 5):
        while number % prime == 0:
            number //= prime
    return number == 1


@pytest.mark.parametrize("res", [1, 2, 8, 9, 12, 64, 120, 1024])
def test_minimal_embedding_size_is_the_smallest_fast_size(res):
    size = minimal_embedding_size(res)
    assert size >= 2 * (res - 1) and is_five_smooth(size)
    assert not any(is_five_smooth(smaller) for smaller in range(max(1, 2 * (res - 1)), size))


def test_default_kernel_embeds_without_enlarging_at_paper_length_scales():
    for length_scale in (0.05, 0.1, 0.2):
        kernel = IsotropicKernel("exponential", length_scale)
        for res in range(8, 131):
            eigenvalues = circulant_embedding_eigenvalues(res, kernel, minimal_embedding_size(res))
            assert eigenvalues.min() >= -1e-10 * eigenvalues.max(), (length_scale, res)


@pytest.mark.parametrize("m", [4, 5, 6])
def test_embedding_eigenvalues_are_those_of_the_circulant_matrix(m):
    # Build the m^2 x m^2 block-circulant matrix explicitly at a tiny size and
    # compare its spectrum and its top-left sub-grid block with the dense C:
    # equal on the full torus (m = 6 = 2 (res - 1)), within the tail bound on
    # the compact ones.
    res = 4
    kernel = IsotropicKernel("matern", 0.3)
    torus = np.arange(m)
    lag = np.abs(torus[:, None] - torus[None, :])
    torus_lag = np.minimum(lag, m - lag)
    distance = np.sqrt(torus_lag[:, None, :, None] ** 2 + torus_lag[None, :, None, :] ** 2) / res
    circulant = REFERENCE_KERNELS["matern"](distance, 0.3).reshape(m * m, m * m)
    eigenvalues = circulant_embedding_eigenvalues(res, kernel, m).numpy()
    np.testing.assert_allclose(np.sort(eigenvalues.ravel()), np.linalg.eigvalsh(circulant), atol=1e-12)
    sub_grid = (torus[:res, None] * m + torus[None, :res]).ravel()
    bound = embedding_covariance_error(res, kernel, m)
    assert (bound == 0) == (m == 6)
    error = np.abs(circulant[np.ix_(sub_grid, sub_grid)] - reference_covariance(res, "matern", 0.3, 0.0)).max()
    assert error <= bound + 1e-14
    if m < 6:
        assert error > 0.5 * bound  # the bound is nearly attained: lag res - 1 wraps to m - res + 1


def test_squared_exponential_enlarges_the_embedding():
    res, length_scale, rbf_eps = 12, 0.5, 0.1
    kernel = IsotropicKernel("squared_exponential", length_scale)
    minimal = minimal_embedding_size(res)
    eigenvalues = circulant_embedding_eigenvalues(res, kernel, minimal)
    assert eigenvalues.min() < -1e-3 * eigenvalues.max()  # the minimal torus is not enough
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning
        sampler = FFTGRF(res, kernel, rbf_eps)
    assert sampler.fallback_sampler is None
    assert sampler.embedding_size in (2 * minimal, 4 * minimal, 8 * minimal)
    samples = channel_samples(sampler.sample(10_000, torch_generator(8)))
    assert_covariance_is(samples, reference_covariance(res, "squared_exponential", length_scale, rbf_eps))


def test_squared_exponential_with_long_length_scale_falls_back_to_cholesky():
    res = 8
    kernel = IsotropicKernel("squared_exponential", 2.0)
    with pytest.warns(CirculantEmbeddingFallbackWarning,
                      match=r"squared_exponential.*res=8.*most negative eigenvalue -\d"):
        sampler = FFTGRF(res, kernel, 0.01)
    assert isinstance(sampler.fallback_sampler, CholeskyGRF)
    samples = channel_samples(sampler.sample(10_000, torch_generator(9)))
    assert_covariance_is(samples, reference_covariance(res, "squared_exponential", 2.0, 0.01))


def test_doubling_stops_at_the_maximum_embedding_size():
    kernel = IsotropicKernel("squared_exponential", 2.0)
    with pytest.warns(CirculantEmbeddingFallbackWarning, match="after 1 doublings"):
        sampler = FFTGRF(8, kernel, 0.01, max_embedding_size=2 * minimal_embedding_size(8))
    assert sampler.embedding_size == 2 * minimal_embedding_size(8)


def test_cholesky_reports_a_singular_covariance():
    with pytest.raises(ValueError, match="increase rbf_eps"):
        CholeskyGRF(8, IsotropicKernel("squared_exponential", 2.0), 0.0)


# ---------------------------------------------------------------------------
# Compact embedding: a smaller torus for kernels that decay
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("res, expected", [(40, 45), (64, 72), (120, 144), (1024, 1200)])
def test_paper_kernel_gets_a_compact_torus(res, expected):
    # exp(-r / 0.005) <= 1e-12 from r = 0.005 ln(1e12) = 0.1382 on: R = ceil(0.1382 res) = 6, 9, 17
    # and 142 lags, and the smallest 5-smooth m >= res - 1 + R is 45, 72, 144 and 1200.
    kernel = IsotropicKernel("exponential", 0.05)
    size = compact_embedding_size(res, kernel)
    assert size == expected
    assert 0 < embedding_covariance_error(res, kernel, size) <= 1e-12


@pytest.mark.parametrize("res", [8, 40, 120, 1024])
def test_slowly_decaying_kernel_keeps_the_full_torus(res):
    # exp(-r / 0.5) is still 0.06 at the far corner sqrt(2) of the unit square.
    kernel = IsotropicKernel("exponential", 0.5)
    assert compact_embedding_size(res, kernel) == minimal_embedding_size(res)


def test_fft_sampler_takes_the_compact_torus_unless_tail_tolerance_is_zero():
    kernel = IsotropicKernel("exponential", 0.05)
    compact = FFTGRF(40, kernel, 0.01)
    assert compact.embedding_size == 45 and 0 < compact.max_covariance_error <= 1e-12
    full = FFTGRF(40, kernel, 0.01, tail_tolerance=0.0)
    assert full.embedding_size == minimal_embedding_size(40) == 80 and full.max_covariance_error == 0.0


def torus_covariance_on_grid(eigenvalues: np.ndarray, res: int) -> np.ndarray:
    """Covariance between the grid points of the torus field of spectrum ``eigenvalues`` (m, m).

    Its first row is the inverse 2-D DFT of the eigenvalues; points (a, b) and
    (c, d) have covariance ``first_row[(a - c) mod m, (b - d) mod m]``.
    Returns ``(res^2, res^2)``, row-major like ``reference_covariance``.
    """
    m = eigenvalues.shape[0]
    first_row = np.fft.ifft2(eigenvalues).real
    positions = np.arange(res)
    lag = (positions[:, None] - positions[None, :]) % m
    return first_row[lag[:, None, :, None], lag[None, :, None, :]].reshape(res * res, res * res)


@pytest.mark.parametrize("tail_tolerance", [1e-12, 1e-3, 1e-1])
@pytest.mark.parametrize("name, length_scale", [
    ("exponential", 0.05), ("exponential", 0.1), ("exponential", 0.3),
    ("squared_exponential", 0.05), ("matern", 0.05), ("matern52", 0.03),
])
@pytest.mark.parametrize("res", [12, 33])
def test_torus_covariance_on_the_grid_is_the_dense_covariance_within_the_bound(res, name, length_scale,
                                                                                tail_tolerance):
    # Deterministic: the covariance the sampler draws (from the eigenvalues, no sampling) against C + eps^2 I.
    rbf_eps = 0.1
    kernel = IsotropicKernel(name, length_scale)
    sampler = FFTGRF(res, kernel, rbf_eps, tail_tolerance=tail_tolerance)
    m = sampler.embedding_size
    assert sampler.fallback_sampler is None
    assert m == compact_embedding_size(res, kernel, tail_tolerance)  # the compact torus was PSD
    assert sampler.max_covariance_error <= tail_tolerance
    eigenvalues = circulant_embedding_eigenvalues(res, kernel, m).numpy() + rbf_eps**2
    error = np.abs(torus_covariance_on_grid(eigenvalues, res)
                   - reference_covariance(res, name, length_scale, rbf_eps)).max()
    assert error <= sampler.max_covariance_error + 1e-9
    if sampler.max_covariance_error > 1e-6:
        assert error > 0.5 * sampler.max_covariance_error  # the long lags are really wrapped


def test_compact_torus_that_is_not_psd_is_replaced_by_the_full_one_before_doubling():
    # At res 8 the squared exponential with l = 0.2 falls to 0.01 within a compact torus of
    # m = 12, whose spectrum is negative; the full torus, m = 15, is not.
    kernel = IsotropicKernel("squared_exponential", 0.2)
    assert compact_embedding_size(8, kernel, 0.01) == 12 and minimal_embedding_size(8) == 15
    eigenvalues = circulant_embedding_eigenvalues(8, kernel, 12) + 0.01**2
    assert eigenvalues.min() < -1e-4 * eigenvalues.max()  # far beyond round-off
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler = FFTGRF(8, kernel, 0.01, tail_tolerance=0.01)
    assert sampler.embedding_size == 15 and sampler.max_covariance_error == 0.0


def test_kernel_that_is_psd_on_no_torus_falls_back_after_doubling_the_full_one():
    # 1 within 1.5 grid steps (the 3 x 3 neighbourhood), 0 beyond: non-negative and
    # non-increasing, so it gets a compact torus (m = 8), but not positive definite.  On every
    # even torus its most negative eigenvalue is (1 + 2 cos pi)(1 + 2 cos 0) = -3;
    # on the 6 x 6 grid, -2.25: with rbf_eps^2 = 2.6 the grid covariance is positive
    # definite (the Cholesky fallback works) and no torus is.  The doublings start from
    # the full torus, m = 10, not from the compact one: 10 -> 20 -> 40 -> 80.
    res = 6

    def box(r: torch.Tensor) -> torch.Tensor:
        return (r * res < 1.5).double()

    assert compact_embedding_size(res, box) == 8 and minimal_embedding_size(res) == 10
    with pytest.warns(CirculantEmbeddingFallbackWarning, match="m=80 after 3 doublings"):
        sampler = FFTGRF(res, box, rbf_eps=math.sqrt(2.6))
    assert isinstance(sampler.fallback_sampler, CholeskyGRF)


def test_kernel_that_is_not_monotone_keeps_the_full_torus():
    def wiggly(r: torch.Tensor) -> torch.Tensor:  # decays to 7e-13 at sqrt(2), but with a bump every other grid step
        return torch.exp(-r / 0.05) * (1 + 0.9 * torch.cos(40 * math.pi * r))

    assert compact_embedding_size(40, wiggly) == minimal_embedding_size(40)
    assert embedding_covariance_error(40, wiggly, 45) == math.inf
    assert embedding_covariance_error(40, wiggly, 80) == 0.0


def test_compact_embedding_arguments_are_checked():
    kernel = IsotropicKernel("exponential", 0.05)
    with pytest.raises(ValueError, match="tail_tolerance"):
        compact_embedding_size(40, kernel, tail_tolerance=-1e-12)
    assert circulant_embedding_eigenvalues(40, kernel, 40).shape == (40, 40)  # m < 2 (res - 1) is allowed
    for function in (circulant_embedding_eigenvalues, embedding_covariance_error):
        with pytest.raises(ValueError, match="< res = 40"):
            function(40, kernel, 39)


# ---------------------------------------------------------------------------
# Factory
# ---------------------------------------------------------------------------


def test_build_noise_sampler_returns_the_requested_sampler():
    assert isinstance(build_noise_sampler(8, True, 0.1, 0.01), IndependentGaussian)
    # The configuration's kernel, rbf_scale and rbf_eps reach the covariance; the default kernel is
    # the original's "rbf", i.e. the exponential.
    for method, sampler_class, kernel in [("fft", FFTGRF, "matern"), ("cholesky", CholeskyGRF, None)]:
        options = {} if kernel is None else {"kernel": kernel}
        sampler = build_noise_sampler(8, False, 0.1, 0.05, method=method, **options)
        assert type(sampler) is sampler_class
        expected = reference_covariance(8, kernel or "exponential", 0.1, 0.05)
        np.testing.assert_allclose(sampler.covariance_block(64).numpy(), expected, rtol=1e-12, atol=1e-14)


def test_build_noise_sampler_builds_gano_noise_from_grf_alpha_and_grf_tau():
    sampler = build_noise_sampler(8, False, 0.1, 0.05, kernel="gano", grf_alpha=2.0, grf_tau=3.0)
    assert type(sampler) is NeumannGRF
    np.testing.assert_allclose(sampler.covariance_block(64).numpy(), reference_neumann_covariance(8, 2.0, 3.0, 0.05),
                               rtol=1e-12, atol=1e-15)
    # grf_alpha and grf_tau are not those of an isotropic kernel, rbf_scale not gano's.
    isotropic = build_noise_sampler(8, False, 0.1, 0.05, kernel="matern", grf_alpha=2.0, grf_tau=3.0)
    np.testing.assert_allclose(isotropic.covariance_block(64).numpy(), reference_covariance(8, "matern", 0.1, 0.05),
                               rtol=1e-12, atol=1e-14)
    other_scale = build_noise_sampler(8, False, 0.7, 0.05, kernel="gano", grf_alpha=2.0, grf_tau=3.0)
    assert torch.equal(other_scale.covariance_block(64), sampler.covariance_block(64))
    assert isinstance(build_noise_sampler(8, True, 0.1, 0.05, kernel="gano"), IndependentGaussian)


def test_every_noise_kernel_builds():
    assert NOISE_KERNELS == tuple(sorted(KERNELS)) + ("gano",)
    for kernel in NOISE_KERNELS:
        sampler = build_noise_sampler(6, False, 0.1, 0.01, kernel=kernel)
        assert sampler.sample(2, torch_generator(0)).shape == (2, 6, 6, 2)


def test_build_noise_sampler_refuses_gano_with_cholesky():
    with pytest.raises(ValueError, match=r"'gano'.*no Cholesky.*'fft'"):
        build_noise_sampler(8, False, 0.1, 0.01, kernel="gano", method="cholesky")


@pytest.mark.parametrize("arguments, culprit", [(dict(grf_alpha=0.9), "grf_alpha"), (dict(grf_tau=0.0), "grf_tau")])
def test_build_noise_sampler_rejects_out_of_range_gano_parameters(arguments, culprit):
    with pytest.raises(ValueError, match=culprit):
        build_noise_sampler(8, False, 0.1, 0.01, kernel="gano", **arguments)


def test_build_noise_sampler_names_an_unknown_kernel():
    with pytest.raises(ValueError, match=r"'rbf'.*'exponential'.*'squared_exponential'.*'gano'"):
        build_noise_sampler(8, False, 0.1, 0.01, kernel="rbf")


def test_build_noise_sampler_names_an_unknown_method():
    with pytest.raises(ValueError, match=r"'svd'.*\['fft', 'cholesky'\]"):
        build_noise_sampler(8, False, 0.1, 0.01, method="svd")


def test_build_noise_sampler_validates_names_even_for_white_noise():
    with pytest.raises(ValueError, match="'rbf'"):
        build_noise_sampler(8, True, 0.1, 0.01, kernel="rbf")


@pytest.mark.parametrize("arguments, culprit", [
    (dict(res=0, white_noise=False, rbf_scale=0.1, rbf_eps=0.01), "res"),
    (dict(res=8, white_noise=False, rbf_scale=0.0, rbf_eps=0.01), "rbf_scale"),
    (dict(res=8, white_noise=False, rbf_scale=0.1, rbf_eps=-1.0), "rbf_eps"),
])
def test_build_noise_sampler_rejects_out_of_range_numbers(arguments, culprit):
    with pytest.raises(ValueError, match=culprit):
        build_noise_sampler(**arguments)
