"""Tests of the synthetic Volcano data (src/synthetic/): the physics, the files, the command line."""

import math
import runpy
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import src.plotting
import src.synthetic
import src.synthetic.__main__ as command_line
from src.data import read_interferogram_phase
from src.metrics import circular_stats
from src.plotting import plot_phase_grid
from src.synthetic import generate_interferograms, physics, write_dataset


def circular_variance_and_skewness(phase):
    """Per-frame circular variance and skewness of phase (N, H, W) -> (N,), (N,).

    Written independently of src.metrics, as a cross-check.
    """
    z = np.exp(1j * phase.reshape(len(phase), -1).astype(np.float64))
    first = z.mean(axis=1)
    second = (z**2).mean(axis=1)
    r1, t1 = np.abs(first), np.angle(first)
    r2, t2 = np.abs(second), np.angle(second)
    return 1.0 - r1, r2 * np.sin(t2 - 2.0 * t1) / (1.0 - r1) ** 1.5


def phase_of(interferograms):
    return np.arctan2(interferograms[..., 1], interferograms[..., 0])


def count_phase_jumps(phase):
    """Neighbouring pixel pairs (N,) whose phase differs by more than pi: wraps."""
    rows = np.abs(np.diff(phase, axis=-2)) > np.pi
    columns = np.abs(np.diff(phase, axis=-1)) > np.pi
    return rows.sum(axis=(-2, -1)) + columns.sum(axis=(-2, -1))


@pytest.fixture(scope="module")
def many_frames():
    """256 frames of seed 0, shared by the statistical tests."""
    return generate_interferograms(256, seed=0)


# --- the frames -------------------------------------------------------------------------


def test_seed_0_keeps_its_values():
    """Golden values: the data of a seed must not change under a refactor (reordered random
    draws, another rendering). Update them only with a deliberate change of the model."""
    first_two = generate_interferograms(2, seed=0)
    last = generate_interferograms(1, seed=0, start=4095)[0]
    got = [first_two[0, 0, 0], first_two[0, 64, 64], first_two[1, 127, 5], last[10, 100]]
    expected = [(0.73057944, -0.10468405), (0.83495426, 0.77243900), (-1.10985267, -0.15839522),
                (0.51740479, -0.39654088)]
    # Not bitwise: numpy's float32 sin/cos/exp may differ in the last bit between CPUs.
    np.testing.assert_allclose(np.array(got), np.array(expected), rtol=0, atol=1e-5)


def test_frame_depends_only_on_seed_and_index(monkeypatch):
    reference = generate_interferograms(8, seed=1)  # one batch of 8
    monkeypatch.setattr(physics, "_BATCH_SIZE", 3)  # batches of 3, 3 and 2
    assert np.array_equal(generate_interferograms(8, seed=1), reference)
    assert np.array_equal(generate_interferograms(3, seed=1, start=5), reference[5:])
    assert not np.array_equal(generate_interferograms(2, seed=2), reference[:2])


def test_generate_rejects_negative_arguments_naming_them():
    with pytest.raises(ValueError, match="seed=-1"):
        generate_interferograms(2, seed=-1)
    with pytest.raises(ValueError, match="start=-3"):
        generate_interferograms(2, start=-3)


def independent_mogi_phase(pixel_spacing, incidence, heading, sources):
    """LOS phase (rad) of Mogi sources [(x0, y0, depth, dV)] on the 128 x 128 grid, float64.

    The ground-to-satellite direction is derived here from the azimuth of the satellite seen
    from the ground, heading - 90 degrees for a right-looking satellite.
    """
    centred = (np.arange(128) - 63.5) * pixel_spacing
    east, north = centred[None, :], -centred[:, None]
    azimuth = heading - math.pi / 2
    look_east, look_north = math.sin(incidence) * math.sin(azimuth), math.sin(incidence) * math.cos(azimuth)
    look_up = math.cos(incidence)
    displacement_los = np.zeros((128, 128))
    for x0, y0, depth, volume_change in sources:
        # (u_east, u_north, u_up) = (1 - nu) dV / pi * (x - x0, y - y0, depth) / R^3
        strength = (1 - physics.POISSON_RATIO) * volume_change / math.pi
        distance_cubed = ((east - x0) ** 2 + (north - y0) ** 2 + depth**2) ** 1.5
        along_look = look_east * (east - x0) + look_north * (north - y0) + look_up * depth
        displacement_los += strength * along_look / distance_cubed
    return 4 * math.pi / physics.WAVELENGTH_M * displacement_los


def mogi_phase(pixel_spacing, incidence, heading, sources):
    """The module's LOS phase of the same sources (at most physics.MAX_SOURCES)."""
    draw = physics._draw_frame(0, 0)
    draw.pixel_spacing_m, draw.incidence_rad, draw.heading_rad = pixel_spacing, incidence, heading
    draw.volume_change_m3[:] = 0.0
    for index, (x0, y0, depth, volume_change) in enumerate(sources):
        draw.source_east_m[index], draw.source_north_m[index] = x0, y0
        draw.source_depth_m[index], draw.volume_change_m3[index] = depth, volume_change
    east, north = physics._pixel_coordinates_m(physics._per_frame([pixel_spacing]))
    return physics._mogi_los_phase([draw], east, north)[0]


def test_mogi_phase_matches_an_independent_computation_and_its_fringe_count():
    dx, incidence, heading = 80.0, math.radians(30.0), math.radians(40.0)
    # Above the centre of pixel (row 64, column 64): 3 fringes, 2 pi each.
    volume_change = physics._volume_change_for_fringes(3.0, 2000.0, incidence)
    inflating = (0.5 * dx, -0.5 * dx, 2000.0, volume_change)
    assert mogi_phase(dx, incidence, heading, [inflating])[64, 64] == pytest.approx(6 * math.pi, rel=1e-5)

    deflating = (-2000.0, 1500.0, 3000.0, -2.0e6)
    got = mogi_phase(dx, incidence, heading, [inflating, deflating])
    expected = independent_mogi_phase(dx, incidence, heading, [inflating, deflating])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_decorrelation_noise_std_is_the_cramer_rao_bound():
    # sqrt(1 - 1/2) / (sqrt(1/2) * sqrt(2 * 2)) = 1/2
    assert physics._decorrelation_noise_std(1 / math.sqrt(2), 2) == pytest.approx(0.5)
    # The range the physics docstring states for coherence 0.35 - 0.98 and 2 looks.
    low, high = physics.COHERENCE_RANGE
    assert physics._decorrelation_noise_std(high, physics.NUMBER_OF_LOOKS) == pytest.approx(0.10, abs=0.005)
    assert physics._decorrelation_noise_std(low, physics.NUMBER_OF_LOOKS) == pytest.approx(1.34, abs=0.005)


def test_atmosphere_has_its_std_and_a_kolmogorov_spectrum():
    draws = [physics._draw_frame(5, index) for index in range(32)]
    for draw in draws:
        draw.atmosphere_std_rad = 0.7
    field = physics._atmospheric_phase(draws).astype(np.float64)
    np.testing.assert_allclose(field.mean(axis=(1, 2)), 0.0, atol=1e-6)
    np.testing.assert_allclose(field.std(axis=(1, 2)), 0.7, rtol=1e-5)
    # The slope of log power against log wavenumber, from 2 to 16 cycles per frame: -8/3.
    power = (np.abs(np.fft.fft2(field)) ** 2).mean(axis=0)
    wavenumber = np.hypot(*np.meshgrid(np.fft.fftfreq(128), np.fft.fftfreq(128), indexing="ij"))
    band = (wavenumber >= 2 / 128) & (wavenumber <= 16 / 128)
    slope = np.polyfit(np.log(wavenumber[band]), np.log(power[band]), 1)[0]
    assert slope == pytest.approx(-8 / 3, abs=0.2)


def test_faint_atmosphere_without_deformation_or_noise_does_not_wrap():
    draws = [physics._draw_frame(0, index) for index in range(40)]
    quiet = [draw for draw in draws if not draw.volume_change_m3.any() and draw.atmosphere_std_rad < 0.3]
    assert quiet, "expected some atmosphere-only frames with a faint atmosphere"
    for draw in quiet:
        draw.noise_std_rad = 0.0
        draw.phase_offset_rad = 0.0  # keeps the smooth field away from the -pi / pi cut
    jumps = count_phase_jumps(phase_of(physics._render(quiet)))
    assert (jumps == 0).all(), jumps


def test_circular_statistics_are_widely_spread(many_frames):
    """What the physics docstring claims of the first 256 frames of seed 0."""
    variance, skewness = circular_variance_and_skewness(phase_of(many_frames))
    occupied_tenths = np.unique(np.floor(variance * 10).clip(0, 9))
    assert len(occupied_tenths) == 10
    assert (skewness > 0.05).sum() >= 10 and (skewness < -0.05).sum() >= 10


def test_many_generated_frames_wrap(many_frames):
    # Fringes and strong noise make a good share of frames wrap a lot (and the quiet ones,
    # see above, hardly at all).
    jumps = count_phase_jumps(phase_of(many_frames))
    assert (jumps > 2000).mean() > 0.2


def test_project_statistics_match_independent_ones(many_frames):
    """src.metrics (used for gt_stats and every metric) against the numpy cross-check above."""
    phase = phase_of(many_frames[:16]).astype(np.float64)
    expected_variance, expected_skewness = circular_variance_and_skewness(phase)
    stats = circular_stats(torch.from_numpy(np.stack([np.cos(phase), np.sin(phase)], axis=-1)))
    np.testing.assert_allclose(stats["var"], expected_variance, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["skew"], expected_skewness, rtol=1e-4, atol=1e-5)


# --- the files --------------------------------------------------------------------------


def test_written_files_round_trip_and_a_shorter_set_is_a_prefix(tmp_path, monkeypatch):
    frames = generate_interferograms(5, seed=2)
    three = write_dataset(tmp_path / "new" / "folder", 3, seed=2)
    assert [path.name for path in three] == ["synthetic_00000.int", "synthetic_00001.int", "synthetic_00002.int"]
    for path, frame in zip(three, frames):
        assert np.array_equal(read_interferogram_phase(path), phase_of(frame))
    monkeypatch.setattr(src.synthetic, "_FRAMES_PER_CHUNK", 2)  # chunks of 2, 2 and 1
    five = write_dataset(tmp_path / "five", 5, seed=2)
    assert [path.read_bytes() for path in three] == [path.read_bytes() for path in five[:3]]
    assert np.array_equal(read_interferogram_phase(five[4]), phase_of(frames[4]))


def test_write_refuses_to_overwrite_before_writing_anything(tmp_path):
    write_dataset(tmp_path, 2, seed=0)
    before = (tmp_path / "synthetic_00000.int").read_bytes()
    with pytest.raises(FileExistsError, match="synthetic_00000.int"):
        write_dataset(tmp_path, 3, seed=5)
    assert not (tmp_path / "synthetic_00002.int").exists()
    assert (tmp_path / "synthetic_00000.int").read_bytes() == before
    write_dataset(tmp_path, 2, seed=5, overwrite=True)
    assert np.array_equal(read_interferogram_phase(tmp_path / "synthetic_00000.int"),
                          phase_of(generate_interferograms(1, seed=5)[0]))


# --- the command line -------------------------------------------------------------------


def test_python_m_src_synthetic_writes_the_library_files(tmp_path, monkeypatch, capsys):
    """Run as ``python -m src.synthetic`` runs it (runpy, in this process: no start-up cost)."""
    monkeypatch.delitem(sys.modules, "src.synthetic.__main__", raising=False)
    outdir = tmp_path / "cli"
    monkeypatch.setattr(sys, "argv", ["src.synthetic", "--outdir", str(outdir), "--n", "3", "--seed", "4"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("src.synthetic", run_name="__main__", alter_sys=True)
    assert exit_.value.code == 0
    # 3 files of 131072 bytes: 0.4 MB.
    assert capsys.readouterr().out == f"wrote 3 synthetic interferograms (seed 4, 0.4 MB) to {outdir}\n"
    expected = write_dataset(tmp_path / "library", 3, seed=4)
    assert [path.read_bytes() for path in sorted(outdir.iterdir())] == [path.read_bytes() for path in expected]


def test_command_line_refuses_warns_and_overwrites(tmp_path, capsys):
    outdir = tmp_path / "cli"
    write_dataset(outdir, 3, seed=4)
    assert command_line.main(["--outdir", str(outdir), "--n", "3"]) == 2
    assert f"refusing to overwrite {outdir / 'synthetic_00000.int'}" in capsys.readouterr().err

    (outdir / "other.int").write_bytes(b"")
    assert command_line.main(["--outdir", str(outdir), "--n", "3", "--overwrite"]) == 0
    assert f"also holds 1 other .int files (e.g. {outdir / 'other.int'})" in capsys.readouterr().err
    seed_0 = generate_interferograms(1, seed=0)[0]
    assert np.array_equal(read_interferogram_phase(outdir / "synthetic_00000.int"), phase_of(seed_0))


@pytest.mark.parametrize("arguments, message", [
    (["--outdir", "x", "--n", "0"], "--n must be at least 1, got 0"),
    (["--outdir", "x", "--seed", "-1"], "--seed must be non-negative, got -1"),
    ([], "give --outdir"),
])
def test_command_line_rejects_bad_arguments(arguments, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        command_line.main(arguments)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_preview_draws_the_first_frames_of_the_seed_and_writes_nothing_else(tmp_path, monkeypatch, capsys):
    """The figure (4 frames rather than 16, for time) shows the seed's first frames, titled
    with their statistics; without --outdir nothing else is written."""
    drawn = []

    def plot_and_record(u, paths, ncols, titles=None, suptitle=None):
        drawn.append((u, paths, titles))
        plot_phase_grid(u, paths, ncols, titles=titles, suptitle=suptitle)

    monkeypatch.setattr(src.plotting, "plot_phase_grid", plot_and_record)
    monkeypatch.setattr(command_line, "PREVIEW_FRAMES", 4)
    monkeypatch.chdir(tmp_path)
    png = tmp_path / "preview" / "samples.png"
    assert command_line.main(["--preview", str(png), "--seed", "3"]) == 0
    assert capsys.readouterr().out == f"wrote the first 4 frames of seed 3 to {png}\n"
    assert [path.name for path in tmp_path.rglob("*") if path.is_file()] == ["samples.png"]
    with Image.open(png) as image:
        assert image.format == "PNG"

    (u, paths, titles), = drawn
    assert paths == [png]
    phase = phase_of(generate_interferograms(4, seed=3))
    torch.testing.assert_close(torch.atan2(u[..., 1], u[..., 0]), torch.from_numpy(phase), rtol=0, atol=1e-6)
    variance, skewness = circular_variance_and_skewness(phase)
    assert titles == [f"var {v:.2f}  skew {s:+.2f}" for v, s in zip(variance, skewness)]
