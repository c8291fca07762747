"""Array datasets (src/data.py `load_functions`), the field metrics (src/metrics.py) against
numpy / scipy, the known-law dataset (src/synthetic/grf.py) against its exact law, and a tiny
training run on an array file, end to end, with eval.py in every mode, for both methods."""

import json
import pickle
import re
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.integrate import quad
from scipy.interpolate import RegularGridInterpolator
from scipy.stats import kstest, norm, wasserstein_distance

from conftest import ROOT, TINY, run_command, snapshot
from src.config import config_from_dict
from src.data import load_data, load_functions, native_side
from src.metrics import (field_metrics, field_stats, log_spectrum_distance, radial_average, validation_metrics,
                         power_spectrum)
from src.synthetic.grf import GRFLaw, read_law, write_grf_dataset

RES = TINY["resolution"] - TINY["npad"]


def functions(n=6, channels=3, side=20, seed=0):
    """(n, side, side, channels) float32 values of a smooth-ish field plus noise."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, side, side, channels)) + np.linspace(0, 1, side)[:, None, None]).astype(np.float32)


def expected_load(channels_last_values, resolution, npad, grid="points"):
    """The loader's result by independent means, then the top-left crop. 'cells': torch's image
    resize, bilinear (antialiased when downsampling). 'points': scipy's linear interpolant of the
    points i / side evaluated at j / resolution, clamped to the last point beyond it."""
    side = channels_last_values.shape[1]
    if grid == "cells":
        x = torch.from_numpy(channels_last_values).permute(0, 3, 1, 2)
        if side != resolution:
            x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                              antialias=resolution < side)
        x = x.permute(0, 2, 3, 1)
    else:
        points = np.arange(side) / side
        query = np.minimum(np.arange(resolution) / resolution, points[-1])
        at = np.stack(np.meshgrid(query, query, indexing="ij"), axis=-1)
        x = torch.from_numpy(np.stack([RegularGridInterpolator((points, points), v.astype(np.float64))(at)
                                       for v in channels_last_values]).astype(np.float32))
    return x[:, :resolution - npad, :resolution - npad]


def smooth(x, y):
    """A smooth function of the unit square, not periodic; |f_xx| <= 4 pi^2, |f_yy| <= pi^2."""
    return np.sin(2 * np.pi * x) * np.cos(np.pi * y) + x * y


def point_sampled(side, channels=2):
    """(2, side, side, channels) float32: ``smooth`` and its negative plus 1 at the points (i / side, j / side),
    as a point-sampled dataset's file of that side holds them."""
    t = np.arange(side) / side
    f = smooth(t[:, None], t[None, :])
    return np.stack([np.stack([f * (c + 1) for c in range(channels)], -1),
                     np.stack([1 - f * (c + 1) for c in range(channels)], -1)]).astype(np.float32)


# ---------------------------------------------------------------------------
# The loader

@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("layout", ["first", "last"])
@pytest.mark.parametrize("suffix", [".npy", ".pt"])
def test_array_files_load_in_either_layout_to_the_same_functions(tmp_path, capsys, channels, layout, suffix):
    values = functions(channels=channels)
    stored = values if layout == "last" else values.transpose(0, 3, 1, 2)
    path = tmp_path / f"data{suffix}"
    if suffix == ".npy":
        np.save(path, stored)
    else:
        torch.save({"u": torch.from_numpy(stored.copy())}, path)  # a dict of one tensor: no key needed
    loaded = load_functions(path, ntrain=5, resolution=16, npad=2)
    assert loaded.shape == (5, 14, 14, channels) and loaded.dtype == torch.float32
    torch.testing.assert_close(loaded, expected_load(values[:5], 16, 2))
    assert f"channels-{layout}: {channels} channel(s) on a 20 x 20 grid" in capsys.readouterr().out
    # The layout given explicitly reads the same.
    torch.testing.assert_close(load_functions(path, 5, 16, 2, channels_last=layout == "last"), loaded)


@pytest.mark.parametrize("grid", ["points", "cells"])
def test_a_three_axis_array_is_one_channel_and_upsampling_is_bilinear(tmp_path, grid):
    values = functions(n=3, channels=1, side=8)
    np.save(tmp_path / "a.npy", values[..., 0].astype(np.float64))
    loaded = load_functions(tmp_path / "a.npy", ntrain=3, resolution=16, npad=0, grid=grid)
    torch.testing.assert_close(loaded, expected_load(values, 16, 0, grid))


@pytest.mark.parametrize("grid", ["points", "cells"])
@pytest.mark.parametrize("side, resolution, npad", [(20, 16, 2), (32, 16, 0), (8, 12, 0), (16, 32, 3), (12, 9, 1)])
def test_both_grids_resize_as_independent_references(tmp_path, grid, side, resolution, npad):
    values = functions(n=3, channels=2, side=side)
    np.save(tmp_path / "a.npy", values)
    loaded = load_functions(tmp_path / "a.npy", 3, resolution, npad, grid=grid)
    torch.testing.assert_close(loaded, expected_load(values, resolution, npad, grid), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("grid", ["points", "cells"])
def test_the_native_size_is_the_identity(tmp_path, grid):
    values = functions(n=3, channels=2, side=12)
    np.save(tmp_path / "a.npy", values)
    assert torch.equal(load_functions(tmp_path / "a.npy", 3, 12, 0, grid=grid), torch.from_numpy(values))


def test_point_data_resize_to_their_own_points(tmp_path):
    """The half-pixel test: a smooth function sampled at i / 32 and at i / 16 (the 'coarse file')."""
    fine, coarse = point_sampled(32), point_sampled(16)
    np.save(tmp_path / "32.npy", fine)
    np.save(tmp_path / "16.npy", coarse)
    # Downsampling by a whole ratio is subsampling: the coarse file, bit for bit.
    assert torch.equal(load_functions(tmp_path / "32.npy", 2, 16, 0), torch.from_numpy(coarse))
    # Upsampling keeps the coarse points exactly, and elsewhere is the function to the accuracy of
    # bilinear interpolation, h^2 / 8 (|f_xx| + |f_yy|) with h = 1/16, scaled by the channel's factor 2.
    up = load_functions(tmp_path / "16.npy", 2, 32, 0)
    assert torch.equal(up[:, ::2, ::2], torch.from_numpy(coarse))
    bound = 2 * (1 / 16) ** 2 / 8 * (4 * np.pi ** 2 + np.pi ** 2)
    interior = (up - torch.from_numpy(fine))[:, :31, :31].abs().max()
    assert interior <= bound
    # Past the last point (31 / 32 > 15 / 16): the last point's value.
    assert torch.equal(up[:, 31], up[:, 30]) and torch.equal(up[:, :, 31], up[:, :, 30])
    # Between the points (a ratio of 4 / 3): still the function, to interpolation accuracy at h = 1/32.
    third = load_functions(tmp_path / "32.npy", 2, 24, 0)
    assert (third - torch.from_numpy(point_sampled(24))).abs().max() <= bound / 4
    # The image resize reads the pixels as cells: half a fine pixel off, far beyond that accuracy.
    cells = load_functions(tmp_path / "16.npy", 2, 32, 0, grid="cells")
    assert (cells - torch.from_numpy(fine))[:, :31, :31].abs().max() > 2 * bound
    assert not torch.equal(load_functions(tmp_path / "32.npy", 2, 16, 0, grid="cells"), torch.from_numpy(coarse))


def test_load_data_resizes_on_the_config_grid_and_native_side_reads_the_shape(tmp_path, tiny_data):
    np.save(tmp_path / "16.npy", point_sampled(16).transpose(0, 3, 1, 2))  # channels first
    for grid in ("points", "cells"):
        args = config_from_dict({**TINY, "ntrain": 2, "val_size": 0.0, "resolution": 32, "npad": 0, "data_grid": grid})
        train, _ = load_data(args, str(tmp_path / "16.npy"))
        torch.testing.assert_close(train.sort(dim=0).values,
                                   expected_load(point_sampled(16), 32, 0, grid).sort(dim=0).values)
        assert native_side(args, str(tmp_path / "16.npy")) == 16 and native_side(args, str(tiny_data)) == 128
    assert config_from_dict({}).data_grid == "points"  # the default, also of configs from before the key


def test_a_pt_dict_takes_its_tensor_by_data_key(tmp_path):
    x, y = functions(seed=1), functions(seed=2)
    torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y), "meta": "darcy"}, tmp_path / "d.pt")
    torch.testing.assert_close(load_functions(tmp_path / "d.pt", 6, 20, 0, channels_last=True, key="y"),
                               torch.from_numpy(y))
    with pytest.raises(ValueError, match=r"d\.pt holds a dict of 2 tensors \(x, y\): set the config key data_key"):
        load_functions(tmp_path / "d.pt", 6, 20, 0, channels_last=True)
    with pytest.raises(ValueError, match=r"d\.pt has no tensor under data_key 'z'; its tensors: x, y"):
        load_functions(tmp_path / "d.pt", 6, 20, 0, channels_last=True, key="z")


@pytest.mark.parametrize("values, options, message", [
    (np.zeros((4, 2, 8, 8, 1)), {}, r"bad\.npy has shape \(4, 2, 8, 8, 1\): expected 3 axes"),
    (np.zeros((4, 64)), {}, r"bad\.npy has shape \(4, 64\): expected 3 axes"),
    (np.zeros((4, 8, 6)), {}, r"bad\.npy has shape \(4, 8, 6\): a 8 x 6 grid, not a square one"),
    (np.zeros((4, 2, 8, 6)), {}, r"bad\.npy: shape \(4, 2, 8, 6\) has no square grid"),
    (np.zeros((4, 8, 8, 3)), {"channels_last": False}, r"read channels-first .* is a 8 x 3 grid, not a square one"),
    (np.zeros((4, 5, 5, 5)), {}, r"square both ways: set the config key channels_last"),
    (np.zeros((4, 8, 8), dtype=complex), {}, r"bad\.npy holds complex128 values, not real numbers"),
    (np.zeros((3, 8, 8)), {}, r"ntrain=4 but .*bad\.npy holds only 3 functions"),
])
def test_bad_arrays_are_refused_with_the_culprit_named(tmp_path, values, options, message):
    np.save(tmp_path / "bad.npy", values)
    with pytest.raises(ValueError, match=message):
        load_functions(tmp_path / "bad.npy", ntrain=4, resolution=8, npad=0, **options)


def test_non_finite_values_name_the_first_bad_function(tmp_path):
    values = functions(n=6, channels=1)
    values[4, 3, 2, 0] = np.inf
    values[2, 0, 0, 0] = np.nan
    np.save(tmp_path / "bad.npy", values)
    with pytest.raises(ValueError, match=r"bad\.npy holds non-finite .* first in function 2 \(2 of the first 6"):
        load_functions(tmp_path / "bad.npy", ntrain=6, resolution=20, npad=0)
    assert load_functions(tmp_path / "bad.npy", ntrain=2, resolution=20, npad=0).shape[0] == 2  # before them


def test_unreadable_files_are_refused(tmp_path):
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    with pytest.raises(ValueError, match=r"cannot read the array dataset .*junk\.npy"):
        load_functions(tmp_path / "junk.npy", 1, 8, 0)
    with pytest.raises(ValueError, match=r"missing\.pt is not a file"):
        load_functions(tmp_path / "missing.pt", 1, 8, 0)


# ---------------------------------------------------------------------------
# The field metrics against independent computations

def test_field_stats_against_numpy():
    u = torch.from_numpy(functions(n=5, channels=2, side=12))
    stats = field_stats(u)
    values = u.double().numpy()
    np.testing.assert_allclose(stats["mean"], values.mean(axis=(1, 2)))
    np.testing.assert_allclose(stats["std"], values.std(axis=(1, 2)))
    # The radial spectrum: |numpy's DFT / res^2|^2 averaged by hand over the rings round(|k|) <= 6.
    coefficients = np.fft.fft2(values, axes=(1, 2)) / 144
    k = np.fft.fftfreq(12, 1 / 12)
    rings = np.rint(np.hypot(k[:, None], k[None, :]))
    for ring in (0, 1, 4, 6):
        expected = (np.abs(coefficients) ** 2)[:, rings == ring].mean(axis=1)
        np.testing.assert_allclose(stats["spectrum"][:, :, ring], expected, rtol=1e-10)
    assert stats["spectrum"].shape == (5, 2, 7) and stats["quantiles"].shape == (5, 2, 64)
    # Parseval: the power over every frequency is the mean square.
    np.testing.assert_allclose(power_spectrum(u).sum(axis=(2, 3)).numpy(), (values ** 2).mean(axis=(1, 2)))


def test_a_plane_wave_has_its_power_on_its_ring():
    columns = torch.arange(16, dtype=torch.float64)
    wave = torch.cos(2 * np.pi * 3 * columns / 16).expand(16, 16)[None, :, :, None]
    spectrum = field_stats(wave)["spectrum"][0, 0]
    # Power 1/2 split between k = +-3 of the 12 frequencies of ring 3 (|k| in [2.5, 3.5)).
    k = np.fft.fftfreq(16, 1 / 16)
    ring_size = (np.rint(np.hypot(k[:, None], k[None, :])) == 3).sum()
    assert spectrum[3] == pytest.approx(0.5 / ring_size) and np.delete(spectrum, 3).max() < 1e-20


def test_field_metrics_against_scipy():
    real, generated = torch.from_numpy(functions(n=30, channels=2, seed=1)), \
        torch.from_numpy(1.3 * functions(n=20, channels=2, seed=2) + 0.2)
    metrics, stats = validation_metrics(real, field_stats(real), generated)
    r, g = real.double().numpy(), generated.double().numpy()
    for name, axis_values in (("w_mean", lambda v: v.mean(axis=(1, 2))), ("w_std", lambda v: v.std(axis=(1, 2)))):
        expected = np.mean([wasserstein_distance(axis_values(r)[:, c], axis_values(g)[:, c]) for c in range(2)])
        assert metrics[name] == pytest.approx(expected, rel=1e-9), name
    # The pooled marginal, from 64 quantiles a function, against scipy on every pixel.
    pixels = np.mean([wasserstein_distance(r[..., c].ravel(), g[..., c].ravel()) for c in range(2)])
    assert metrics["w_marginal"] == pytest.approx(pixels, rel=0.02)
    real_spectrum = np.abs(np.fft.fft2(r, axes=(1, 2)) / 400) ** 2
    generated_spectrum = np.abs(np.fft.fft2(g, axes=(1, 2)) / 400) ** 2
    assert metrics["log_spectrum_rms"] == pytest.approx(log_spectrum_distance(
        radial_average(torch.from_numpy(real_spectrum.mean(0).transpose(2, 0, 1))).numpy(),
        radial_average(torch.from_numpy(generated_spectrum.mean(0).transpose(2, 0, 1))).numpy()))
    # The two sets' spectra differ by the factor 1.3^2 at every ring >= 1: log(1.69) exactly.
    assert metrics["log_spectrum_rms"] == pytest.approx(np.log(1.69), rel=0.15)
    assert metrics["w_total"] == pytest.approx(sum(metrics[k] for k in ("w_mean", "w_std", "w_marginal",
                                                                         "log_spectrum_rms")))
    assert set(metrics) == {"w_mean", "w_std", "w_marginal", "log_spectrum_rms", "w_total", "mean_image_l2"}
    same = field_metrics(field_stats(real), field_stats(real))
    assert all(value == pytest.approx(0.0, abs=1e-12) for value in same.values())


# ---------------------------------------------------------------------------
# The known law

LAW = GRFLaw(resolution=32, length_scale=0.08, smoothness=1.5, amplitude_sigma=0.6, channels=2)


@pytest.fixture(scope="module")
def grf_draws():
    return LAW.sample(3000, seed=0)


def test_grf_draws_follow_the_exact_marginal_and_mean_laws(grf_draws):
    assert grf_draws.shape == (3000, 32, 32, 2) and grf_draws.dtype == np.float32
    # One pixel per function (pixels of one function are dependent), each channel.
    for channel in (0, 1):
        assert kstest(grf_draws[:, 5, 7, channel], LAW.marginal_cdf).pvalue > 0.01
        window_means = grf_draws[:, :24, :24, channel].mean(axis=(1, 2))
        assert kstest(window_means, lambda x: LAW.mean_cdf(x, side=24)).pvalue > 0.01
    # Not Gaussian: the marginal is far from the normal of the same variance, and so are the draws.
    x = np.linspace(-4, 4, 81)
    normal = norm(scale=np.sqrt(LAW.amplitude_second_moment())).cdf
    assert np.abs(LAW.marginal_cdf(x) - normal(x)).max() > 0.05
    assert kstest(grf_draws[:, 5, 7, 0], normal).pvalue < 1e-6


def test_grf_mean_spectrum_matches_the_exact_windowed_one(grf_draws):
    for side in (32, 24):  # the whole torus, and a crop (npad = 8), where the window smears it
        stats = field_stats(torch.from_numpy(grf_draws[:, :side, :side]))
        exact = np.broadcast_to(LAW.expected_radial_spectrum(side), (2, side // 2 + 1))
        # 3000 functions: a relative error of about 1/sqrt(3000 x ring size) per ring, and the amplitude's spread.
        assert log_spectrum_distance(stats["spectrum"].mean(0), exact) < 0.1
    # On the whole torus the expected spectrum is E A^2 lambda / R^2, the GRF's own.
    np.testing.assert_allclose(LAW.expected_power_spectrum(), LAW.amplitude_second_moment() * LAW.field_spectrum()
                               / 32 ** 2, rtol=1e-10, atol=1e-18)


def test_exact_statistics_agree_with_each_other():
    # Parseval on the torus: the spectrum sums to the pixel variance E A^2.
    assert LAW.expected_power_spectrum().sum() == pytest.approx(LAW.amplitude_second_moment(), rel=1e-12)
    # The windowed spectrum's zero frequency is the mean's variance, E A^2 Var(mean of g).
    assert LAW.expected_power_spectrum(20)[0, 0] == pytest.approx(
        LAW.amplitude_second_moment() * LAW.mean_variance_of_g(20), rel=1e-12)
    # Var(mean of g) over the window by brute force over the covariance's pairs of points.
    c = LAW.covariance()
    points = [(i, j) for i in range(6) for j in range(6)]
    brute = np.mean([c[(a - p) % 32, (b - q) % 32] for a, b in points for p, q in points])
    assert LAW.mean_variance_of_g(6) == pytest.approx(brute, rel=1e-10)
    # The quadrature over the amplitude against scipy's adaptive one.
    for x in (-3.0, -0.4, 0.0, 1.1, 6.0):
        expected = quad(lambda xi: norm.cdf(x * np.exp(-0.6 * xi)) * norm.pdf(xi), -40, 40, points=[0.0])[0]
        assert LAW.marginal_cdf(x) == pytest.approx(expected, abs=1e-9)


def test_grf_dataset_files_and_prefixes(tmp_path):
    path = write_grf_dataset(tmp_path, n=7, seed=3, law=LAW)
    assert path == tmp_path / "grf.npy"
    np.testing.assert_array_equal(np.load(path), LAW.sample(20, seed=3)[:7])  # the first 7 of any n
    assert read_law(path) == LAW and read_law(tmp_path) == LAW
    with pytest.raises(FileExistsError, match=r"refusing to overwrite .*grf\.npy"):
        write_grf_dataset(tmp_path, n=7, seed=4, law=LAW)
    assert json.loads((tmp_path / "grf.json").read_text())["seed"] == 3


def test_grf_command_line(tmp_path):
    result = run_command([sys.executable, "-m", "src.synthetic", "--kind", "grf", "--outdir", tmp_path, "--n", "5",
                          "--resolution", "16", "--channels", "3", "--seed", "2"])
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "grf.npy"), GRFLaw(resolution=16, channels=3).sample(5, 2))


# ---------------------------------------------------------------------------
# End to end: train.py / train_gano.py and eval.py / eval_gano.py on an array file

FIELD_METRICS = ("w_mean", "w_std", "w_marginal", "log_spectrum_rms", "w_total", "mean_image_l2")
GANO_CONFIG = {key: value for key, value in TINY.items() if key not in ("sigma_1", "sigma_L", "L", "T", "epsilon")}
SCRIPTS = {"sbgm": ("train.py", "eval.py", TINY), "gan": ("train_gano.py", "eval_gano.py", {**GANO_CONFIG, "n_critic": 2})}


@pytest.fixture(scope="module")
def array_file(tmp_path_factory):
    """The tiny config's number of 3-channel functions of the known law, 16 px, stored channels first."""
    folder = tmp_path_factory.mktemp("array")
    values = GRFLaw(resolution=16, channels=3).sample(TINY["ntrain"], seed=0).transpose(0, 3, 1, 2)
    torch.save({"u": torch.from_numpy(values.copy()), "a": torch.zeros(2)}, folder / "fields.pt")
    return folder / "fields.pt"


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sbgm", "gan"])
def test_training_and_evaluation_on_an_array_file(tmp_path, array_file, method):
    train_script, eval_script, config = SCRIPTS[method]
    (tmp_path / "cfg.json").write_text(json.dumps({**config, "epochs": 1, "data_key": "u"}))
    run = tmp_path / "run"
    result = run_command([sys.executable, ROOT / train_script, "--cfg", tmp_path / "cfg.json", "--savedir", run],
                         data_dir=array_file)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "read as channels-first: 3 channel(s) on a 16 x 16 grid" in result.stdout
    saved = json.loads((run / "config.json").read_text())
    assert saved["data_format"] == "array" and saved["channels"] == 3
    line = json.loads((run / "results.json").read_text().splitlines()[-1])
    assert all(np.isfinite(line[name]) for name in FIELD_METRICS) and "w_var" not in line
    for name in FIELD_METRICS:
        assert (run / f"model.{name}.pt").is_file() and (run / "samples" / f"best_{name}.png").is_file()
    with open(run / "gt_stats.pkl", "rb") as f:
        gt = pickle.load(f)
    assert gt["mean"].shape == (len(gt["std"]), 3) and gt["spectrum"].shape[1:] == (3, RES // 2 + 1)

    before = snapshot(run)
    for mode in ("generate", "superres", "plot"):
        result = run_command([sys.executable, ROOT / eval_script, f"--exp_name={run}", f"--savedir={run / 'eval'}",
                              f"--mode={mode}", "--Ntest=6", "--val_batch_size=3"], data_dir=array_file)
        assert result.returncode == 0, f"{mode}: {result.stderr[-3000:]}"
        # The 2x ground truth (32 px) is finer than the file's 16 px grid: said once, by superres alone.
        noted = "ground truth at 32 px is interpolated from the data's 16 px grid"
        assert result.stdout.count(noted) == (mode == "superres"), result.stdout
    assert snapshot(run, skip="eval") == before
    savedir = run / "eval"
    with open(savedir / "samples.model.w_total.pt.pkl", "rb") as f:
        record = pickle.load(f)
    assert record["samples"].shape == (6, RES, RES, 3) and record["data_mean"].shape == (RES, RES, 3)
    # The stats stored are the samples', and the printed metrics those of scipy's distances.
    np.testing.assert_allclose(record["std"], record["samples"].astype(np.float64).std(axis=(1, 2)), rtol=1e-5)
    metrics = json.loads((savedir / "metrics.model.w_total.pt.json").read_text())
    expected = np.mean([wasserstein_distance(gt["std"][:, c], record["std"][:, c]) for c in range(3)])
    assert metrics["w_std"] == pytest.approx(expected, rel=1e-9)
    with open(savedir / "samples_2x.model.w_total.pt.pkl", "rb") as f:
        assert pickle.load(f)["samples"].shape == (6, 2 * RES, 2 * RES, 3)
    for name in ("samples.model.w_total.pt.4x4.0.png", "samples_2x.model.w_total.pt.4x3.3.pdf",
                 "mean_sample.model.w_total.pt.png", "stats.model.w_total.pt.png", "stats_2x.model.w_total.pt.pdf"):
        assert (savedir / name).is_file(), name


@pytest.mark.slow
def test_bad_array_data_stops_training_before_anything_is_written(tmp_path, array_file, tiny_data):
    (tmp_path / "cfg.json").write_text(json.dumps(TINY))
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((TINY["ntrain"], 3, 16, 12)))
    for data, message in ((bad, r"bad\.npy: shape \(40, 3, 16, 12\) has no square grid"),
                          (array_file, r"fields\.pt holds a dict of 2 tensors \(a, u\): set the config key data_key")):
        result = run_command([sys.executable, ROOT / "train.py", "--cfg", tmp_path / "cfg.json", "--savedir",
                              tmp_path / "run"], data_dir=data)
        assert result.returncode == 2 and re.search(message, result.stderr), result.stderr[-2000:]
        assert not (tmp_path / "run").exists()
    # A run trained on Volcano files refuses an array file, naming the key.
    (tmp_path / "volcano.json").write_text(json.dumps({**TINY, "epochs": 1, "data_format": "volcano"}))
    result = run_command([sys.executable, ROOT / "train.py", "--cfg", tmp_path / "volcano.json", "--savedir",
                          tmp_path / "run"], data_dir=array_file)
    assert result.returncode == 2 and "config key 'data_format' = 'volcano', but DATA_DIR=" in result.stderr
