"""Tests of src/noise.py: the white-noise, Cholesky and circulant-embedding samplers.

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
from scipy import stats

from src.noise import (
    KERNELS,
    NOISE_METHODS,
    CholeskyGRF,
    CirculantEmbeddingFallbackWarning,
    FFTGRF,
    IndependentGaussian,
    IsotropicKernel,
    build_noise_sampler,
    circulant_embedding_eigenvalues,
    minimal_embedding_size,
)

STANDARD_ERRORS = 5.0

# The kernel formulas, written out again independently of src/noise.py.
REFERENCE_KERNELS = {
    "exponential": lambda r, l: np.exp(-r / (2 * l**2)),
    "squared_exponential": lambda r, l: np.exp(-(r**2) / (2 * l**2)),
    "matern": lambda r, l: (1 + math.sqrt(3) * r / l) * np.exp(-math.sqrt(3) * r / l),
    "matern52": lambda r, l: (1 + math.sqrt(5) * r / l + 5 * r**2 / (3 * l**2)) * np.exp(-math.sqrt(5) * r / l),
}


def reference_covariance(res: int, kernel: str, length_scale: float, rbf_eps: float) -> np.ndarray:
    """Dense ``C + eps^2 I`` over the grid points ``(i / res, j / res)``, row-major, float64."""
    rows, cols = np.meshgrid(np.arange(res), np.arange(res), indexing="ij")
    points = np.stack([rows.ravel(), cols.ravel()], axis=-1) / res
    distance = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)
    return REFERENCE_KERNELS[kernel](distance, length_scale) + rbf_eps**2 * np.eye(res * res)


def channel_samples(draws: torch.Tensor) -> np.ndarray:
    """``(n, res, res, 2)`` draws as ``(2 n, res^2)`` independent row-major flattened fields."""
    n, res = draws.shape[0], draws.shape[1]
    return draws.permute(0, 3, 1, 2).reshape(2 * n, res * res).double().numpy()


def covariance_standard_error(covariance: np.ndarray, n: int) -> np.ndarray:
    variance = np.diag(covariance)
    return np.sqrt((variance[:, None] * variance[None, :] + covariance**2) / n)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make_sampler(kind: str, res: int) -> "IndependentGaussian | CholeskyGRF | FFTGRF":
    kernel = IsotropicKernel("exponential", 0.2)
    if kind == "white":
        return IndependentGaussian(res)
    if kind == "cholesky":
        return CholeskyGRF(res, kernel, 0.1)
    if kind == "fft":
        return FFTGRF(res, kernel, 0.1)
    if kind == "fft_fallback":
        with pytest.warns(CirculantEmbeddingFallbackWarning):
            return FFTGRF(res, IsotropicKernel("squared_exponential", 2.0), 0.1)
    raise AssertionError(kind)


SAMPLER_KINDS = ["white", "cholesky", "fft", "fft_fallback"]


# ---------------------------------------------------------------------------
# Kernels and covariance blocks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REFERENCE_KERNELS))
def test_kernel_formulas(name):
    r = np.linspace(0.0, 1.5, 31)
    for length_scale in (0.05, 0.2, 1.0):
        values = KERNELS[name](torch.from_numpy(r), length_scale).numpy()
        np.testing.assert_allclose(values, REFERENCE_KERNELS[name](r, length_scale), rtol=1e-12, atol=1e-300)
    assert set(KERNELS) == set(REFERENCE_KERNELS)
    assert NOISE_METHODS == ("fft", "cholesky")


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
    # exp(-r / 0.005) underflows float32's normal range inside the factor;
    # subnormals would make every draw an order of magnitude slower.
    factor = CholeskyGRF(16, IsotropicKernel("exponential", 0.05), 0.01).cholesky_factor
    nonzero = factor[factor != 0]
    assert nonzero.abs().min() >= torch.finfo(torch.float32).tiny


def test_white_noise_has_no_covariance_block():
    assert IndependentGaussian(4).covariance_block(3) is None


# ---------------------------------------------------------------------------
# Interface: shape, dtype, device, determinism, independence of the channels
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SAMPLER_KINDS)
@pytest.mark.parametrize("res", [5, 8])
def test_sample_shape_dtype_device(kind, res):
    sampler = make_sampler(kind, res)
    assert sampler.res == res and sampler.device == torch.device("cpu")
    draws = sampler.sample(3, seeded(0))
    assert draws.shape == (3, res, res, 2)
    assert draws.dtype == torch.float32
    assert draws.device == torch.device("cpu")
    assert draws.is_contiguous()
    assert torch.isfinite(draws).all()
    assert sampler.sample(0).shape == (0, res, res, 2)


@pytest.mark.parametrize("kind", SAMPLER_KINDS)
def test_same_seed_same_draw(kind):
    sampler = make_sampler(kind, 6)
    first = sampler.sample(4, seeded(123))
    assert torch.equal(first, sampler.sample(4, seeded(123)))
    assert not torch.equal(first, sampler.sample(4, seeded(124)))
    # generator=None draws from torch's global generator.
    torch.manual_seed(7)
    from_global = sampler.sample(4)
    torch.manual_seed(7)
    assert torch.equal(from_global, sampler.sample(4))


@pytest.mark.parametrize("kind", SAMPLER_KINDS)
def test_channels_are_uncorrelated(kind):
    sampler = make_sampler(kind, 6)
    n = 20_000
    draws = sampler.sample(n, seeded(1))
    first = draws[..., 0].reshape(n, -1).double().numpy()
    second = draws[..., 1].reshape(n, -1).double().numpy()
    cross_covariance = first.T @ second / n
    # Independent channels: E[x_i y_j] = 0 with standard error sqrt(C_ii C_jj / n).
    variance = np.diag(first.T @ first / n)
    standard_error = np.sqrt(variance[:, None] * variance[None, :] / n)
    assert np.abs(cross_covariance / standard_error).max() < STANDARD_ERRORS


def test_white_noise_is_standard_normal():
    draws = IndependentGaussian(8).sample(2_000, seeded(2)).double()
    assert abs(draws.mean().item()) < STANDARD_ERRORS / math.sqrt(draws.numel())
    assert abs(draws.var().item() - 1) < STANDARD_ERRORS * math.sqrt(2 / draws.numel())


# ---------------------------------------------------------------------------
# The FFT sampler draws the right distribution
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("res", [9, 12])
@pytest.mark.parametrize("length_scale", [0.05, 0.2])
def test_fft_empirical_covariance_matches_dense(res, length_scale):
    rbf_eps = 0.3  # large enough that the eps^2 I term is visible above Monte Carlo error
    sampler = FFTGRF(res, IsotropicKernel("exponential", length_scale), rbf_eps)
    assert sampler.fallback_sampler is None
    samples = channel_samples(sampler.sample(20_000, seeded(3)))
    empirical = samples.T @ samples / samples.shape[0]
    expected = reference_covariance(res, "exponential", length_scale, rbf_eps)
    error_in_standard_errors = np.abs(empirical - expected) / covariance_standard_error(expected, samples.shape[0])
    assert error_in_standard_errors.max() < STANDARD_ERRORS


def test_fft_without_white_noise_draws_the_bare_kernel():
    res, length_scale = 9, 0.2
    sampler = FFTGRF(res, IsotropicKernel("exponential", length_scale), 0.0)
    samples = channel_samples(sampler.sample(20_000, seeded(10)))
    empirical = samples.T @ samples / samples.shape[0]
    expected = reference_covariance(res, "exponential", length_scale, 0.0)
    error_in_standard_errors = np.abs(empirical - expected) / covariance_standard_error(expected, samples.shape[0])
    assert error_in_standard_errors.max() < STANDARD_ERRORS


@pytest.mark.parametrize("res", [9, 12])
def test_fft_marginal_variance_and_lag_correlations(res):
    length_scale, rbf_eps = 0.2, 0.5
    kernel = IsotropicKernel("exponential", length_scale)
    draws = FFTGRF(res, kernel, rbf_eps).sample(20_000, seeded(4)).double()
    fields = draws.permute(0, 3, 1, 2).reshape(-1, res, res)  # both channels as samples
    n = fields.shape[0]
    variance = 1 + rbf_eps**2
    # Averages over pixels are at least as precise as one pixel, so one
    # pixel's standard error is a conservative tolerance.
    assert abs(fields.pow(2).mean().item() - variance) < STANDARD_ERRORS * math.sqrt(2 * variance**2 / n)
    for lag in (1, 2):
        expected_covariance = REFERENCE_KERNELS["exponential"](lag / res, length_scale)
        tolerance = STANDARD_ERRORS * math.sqrt((variance**2 + expected_covariance**2) / n)
        along_rows = (fields[:, lag:, :] * fields[:, :-lag, :]).mean().item()
        along_cols = (fields[:, :, lag:] * fields[:, :, :-lag]).mean().item()
        # Correlation k(lag / res) / (1 + eps^2) times the known variance.
        assert abs(along_rows - expected_covariance) < tolerance
        assert abs(along_cols - expected_covariance) < tolerance


def test_fft_and_cholesky_draw_the_same_distribution():
    res, rbf_eps = 10, 0.01
    kernel = IsotropicKernel("exponential", 0.1)
    n = 20_000
    from_fft = channel_samples(FFTGRF(res, kernel, rbf_eps).sample(n, seeded(5)))
    from_cholesky = channel_samples(CholeskyGRF(res, kernel, rbf_eps).sample(n, seeded(6)))
    expected = reference_covariance(res, "exponential", 0.1, rbf_eps)
    # The two estimates are independent: their difference has sqrt(2) times the standard error.
    standard_error = math.sqrt(2) * covariance_standard_error(expected, 2 * n)
    difference = from_fft.T @ from_fft / (2 * n) - from_cholesky.T @ from_cholesky / (2 * n)
    assert np.abs(difference / standard_error).max() < STANDARD_ERRORS
    # Kolmogorov-Smirnov on random linear projections, Bonferroni over projections.
    directions = np.random.default_rng(0).standard_normal((res * res, 8))
    p_values = [stats.ks_2samp(from_fft @ direction, from_cholesky @ direction).pvalue
                for direction in directions.T]
    assert min(p_values) > 1e-3 / len(p_values)

    # Power: a 20% longer length scale is detected by the same statistic.
    other = channel_samples(CholeskyGRF(res, IsotropicKernel("exponential", 0.12), rbf_eps).sample(n, seeded(6)))
    difference = from_fft.T @ from_fft / (2 * n) - other.T @ other / (2 * n)
    assert np.abs(difference / standard_error).max() > STANDARD_ERRORS


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


def test_embedding_eigenvalues_are_those_of_the_circulant_matrix():
    # Build the m^2 x m^2 block-circulant matrix explicitly at a tiny size and
    # compare its spectrum and its top-left sub-grid block with the dense C.
    res, m = 4, 6
    kernel = IsotropicKernel("matern", 0.3)
    torus = np.arange(m)
    lag = np.abs(torus[:, None] - torus[None, :])
    torus_lag = np.minimum(lag, m - lag)
    distance = np.sqrt(torus_lag[:, None, :, None] ** 2 + torus_lag[None, :, None, :] ** 2) / res
    circulant = REFERENCE_KERNELS["matern"](distance, 0.3).reshape(m * m, m * m)
    eigenvalues = circulant_embedding_eigenvalues(res, kernel, m).numpy()
    np.testing.assert_allclose(np.sort(eigenvalues.ravel()), np.linalg.eigvalsh(circulant), atol=1e-12)
    sub_grid = (torus[:res, None] * m + torus[None, :res]).ravel()
    np.testing.assert_allclose(circulant[np.ix_(sub_grid, sub_grid)],
                               reference_covariance(res, "matern", 0.3, 0.0), atol=1e-14)


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
    samples = channel_samples(sampler.sample(10_000, seeded(8)))
    empirical = samples.T @ samples / samples.shape[0]
    expected = reference_covariance(res, "squared_exponential", length_scale, rbf_eps)
    assert (np.abs(empirical - expected) / covariance_standard_error(expected, samples.shape[0])).max() < STANDARD_ERRORS


def test_squared_exponential_with_long_length_scale_falls_back_to_cholesky():
    res = 8
    kernel = IsotropicKernel("squared_exponential", 2.0)
    with pytest.warns(CirculantEmbeddingFallbackWarning,
                      match=r"squared_exponential.*res=8.*most negative eigenvalue -\d"):
        sampler = FFTGRF(res, kernel, 0.01)
    assert isinstance(sampler.fallback_sampler, CholeskyGRF)
    assert sampler.embedding_size == 8 * minimal_embedding_size(res)  # three doublings were tried
    assert torch.equal(sampler.sample(5, seeded(9)), sampler.fallback_sampler.sample(5, seeded(9)))


def test_doubling_stops_at_the_maximum_embedding_size():
    kernel = IsotropicKernel("squared_exponential", 2.0)
    with pytest.warns(CirculantEmbeddingFallbackWarning, match="after 1 doublings"):
        sampler = FFTGRF(8, kernel, 0.01, max_embedding_size=2 * minimal_embedding_size(8))
    assert sampler.embedding_size == 2 * minimal_embedding_size(8)


def test_cholesky_reports_a_singular_covariance():
    with pytest.raises(ValueError, match="increase rbf_eps"):
        CholeskyGRF(8, IsotropicKernel("squared_exponential", 2.0), 0.0)


# ---------------------------------------------------------------------------
# Factory
# ---------------------------------------------------------------------------


def test_build_noise_sampler_returns_the_requested_sampler():
    assert isinstance(build_noise_sampler(8, True, 0.1, 0.01), IndependentGaussian)
    fft = build_noise_sampler(8, False, 0.1, 0.01, kernel="matern", method="fft")
    assert isinstance(fft, FFTGRF) and fft.kernel == IsotropicKernel("matern", 0.1)
    cholesky = build_noise_sampler(8, False, 0.1, 0.01, method="cholesky", device=torch.device("cpu"))
    assert isinstance(cholesky, CholeskyGRF) and cholesky.kernel.name == "exponential"


def test_build_noise_sampler_names_an_unknown_kernel():
    with pytest.raises(ValueError, match=r"'rbf'.*'exponential'.*'squared_exponential'"):
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
