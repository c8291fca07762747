"""Tests of the synthetic Volcano InSAR generator (src/synthetic.py)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]

from src import synthetic
from src.metrics import circular_stats
from src.synthetic import generate_interferograms, write_dataset
FILE_BYTES = 128 * 128 * 2 * 4


def circular_variance_and_skewness(phase):
    """Per-frame circular variance and skewness of phase (N, H, W) -> (N,), (N,).

    Written independently of the module's own helper, as a cross-check.
    """
    z = np.exp(1j * phase.reshape(len(phase), -1).astype(np.float64))
    first = z.mean(axis=1)
    second = (z**2).mean(axis=1)
    r1, t1 = np.abs(first), np.angle(first)
    r2, t2 = np.abs(second), np.angle(second)
    return 1.0 - r1, r2 * np.sin(t2 - 2.0 * t1) / (1.0 - r1) ** 1.5


def phase_of(interferograms):
    return np.arctan2(interferograms[..., 1], interferograms[..., 0])


@pytest.fixture(scope="module")
def many_frames():
    """256 frames of seed 0, shared by the statistical tests."""
    return generate_interferograms(256, seed=0)


def test_generate_shape_dtype_and_finite():
    frames = generate_interferograms(3, seed=0)
    assert frames.shape == (3, 128, 128, 2)
    assert frames.dtype == np.float32
    assert np.isfinite(frames).all()
    # A strictly positive amplitude: the angle is always defined.
    assert (np.hypot(frames[..., 0], frames[..., 1]) > 0).all()


def test_generate_is_deterministic_and_seed_dependent():
    assert np.array_equal(generate_interferograms(4, seed=7), generate_interferograms(4, seed=7))
    assert not np.array_equal(generate_interferograms(4, seed=7), generate_interferograms(4, seed=8))


def test_frame_depends_only_on_seed_and_index():
    # More than one internal batch, so that batch boundaries are crossed too.
    n = synthetic._BATCH_SIZE + 3
    all_frames = generate_interferograms(n, seed=1)
    assert np.array_equal(generate_interferograms(5, seed=1, start=n - 5), all_frames[n - 5 :])
    assert np.array_equal(generate_interferograms(2, seed=1), all_frames[:2])


def test_generate_rejects_negative_arguments():
    with pytest.raises(ValueError, match="non-negative"):
        generate_interferograms(2, seed=-1)


def test_written_files_have_the_real_format(tmp_path):
    frames = generate_interferograms(3, seed=2)
    paths = write_dataset(tmp_path / "new" / "folder", 3, seed=2)
    assert [path.name for path in paths] == ["synthetic_00000.int", "synthetic_00001.int", "synthetic_00002.int"]
    for path, frame in zip(paths, frames):
        assert path.stat().st_size == FILE_BYTES
        raw = np.fromfile(path, dtype="<f4")
        assert raw.size == 128 * 128 * 2
        assert np.array_equal(raw.reshape(128, 128, 2), frame)


def test_write_n10_is_a_prefix_of_n20_byte_for_byte(tmp_path):
    ten = write_dataset(tmp_path / "ten", 10, seed=3)
    twenty = write_dataset(tmp_path / "twenty", 20, seed=3)
    assert len(twenty) == 20
    for short, long in zip(ten, twenty):
        assert short.name == long.name
        assert short.read_bytes() == long.read_bytes()
    other_seed = write_dataset(tmp_path / "other", 1, seed=4)
    assert other_seed[0].read_bytes() != ten[0].read_bytes()


def test_write_refuses_to_overwrite(tmp_path):
    write_dataset(tmp_path, 2, seed=0)
    before = (tmp_path / "synthetic_00000.int").read_bytes()
    with pytest.raises(FileExistsError, match="synthetic_00000.int"):
        write_dataset(tmp_path, 3, seed=5)
    # Nothing was written: the check comes first.
    assert not (tmp_path / "synthetic_00002.int").exists()
    assert (tmp_path / "synthetic_00000.int").read_bytes() == before
    write_dataset(tmp_path, 2, seed=5, overwrite=True)
    assert (tmp_path / "synthetic_00000.int").read_bytes() != before


def run_cli(*arguments):
    return subprocess.run(
        [sys.executable, "-m", "src.synthetic", *arguments],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_writes_refuses_and_overwrites(tmp_path):
    outdir = tmp_path / "cli"
    result = run_cli("--outdir", str(outdir), "--n", "8")
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in outdir.iterdir()) == [f"synthetic_{i:05d}.int" for i in range(8)]
    assert len(result.stdout.strip().splitlines()) == 1
    assert "8" in result.stdout and str(outdir) in result.stdout
    # The CLI writes exactly what the library generates for seed 0.
    expected = generate_interferograms(8, seed=0)
    assert np.fromfile(outdir / "synthetic_00007.int", dtype="<f4").tobytes() == expected[7].tobytes()

    refused = run_cli("--outdir", str(outdir), "--n", "8")
    assert refused.returncode != 0
    assert "synthetic_00000.int" in refused.stderr

    replaced = run_cli("--outdir", str(outdir), "--n", "8", "--seed", "1", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert (outdir / "synthetic_00000.int").read_bytes() != expected[0].tobytes()


def test_cli_rejects_bad_arguments(tmp_path):
    assert run_cli("--outdir", str(tmp_path), "--n", "0").returncode != 0
    assert run_cli("--n", "3").returncode != 0  # --outdir is required


def test_circular_statistics_are_widely_spread(many_frames):
    variance, skewness = circular_variance_and_skewness(phase_of(many_frames))
    assert variance.min() < 0.3 and variance.max() > 0.8
    # Most of (0, 1) is covered, not just the two ends.
    occupied_deciles = np.unique(np.floor(variance * 10).clip(0, 9))
    assert len(occupied_deciles) == 10
    assert (skewness > 0.05).sum() >= 10 and (skewness < -0.05).sum() >= 10


def test_project_statistics_match_independent_ones(many_frames):
    """src.metrics (used for gt_stats and every metric) against the numpy cross-check above."""
    phase = phase_of(many_frames[:16]).astype(np.float64)
    expected_variance, expected_skewness = circular_variance_and_skewness(phase)
    stats = circular_stats(torch.from_numpy(np.stack([np.cos(phase), np.sin(phase)], axis=-1)))
    np.testing.assert_allclose(stats["var"], expected_variance, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["skew"], expected_skewness, rtol=1e-4, atol=1e-5)


def count_phase_jumps(phase):
    """Neighbouring pixel pairs (N,) whose phase differs by more than pi: wraps."""
    rows = np.abs(np.diff(phase, axis=-2)) > np.pi
    columns = np.abs(np.diff(phase, axis=-1)) > np.pi
    return rows.sum(axis=(-2, -1)) + columns.sum(axis=(-2, -1))


def test_strong_sources_produce_fringes():
    # Frames drawn with many fringes above a central source, without noise or
    # atmosphere, wrap along whole fringe rings.
    seeds_indices = [(seed, index) for seed in range(3) for index in range(40)]
    strong = []
    for seed, index in seeds_indices:
        draw = synthetic._draw_frame(seed, index)
        fringes = np.abs(draw.volume_change_m3[0]) / synthetic._volume_change_for_fringes(
            1.0, draw.source_depth_m[0], draw.incidence_rad
        )
        central = max(abs(draw.source_east_m[0]), abs(draw.source_north_m[0])) < 0.25 * 128 * draw.pixel_spacing_m
        if fringes > 5 and central:
            strong.append(draw)
    assert len(strong) >= 3
    for draw in strong:
        draw.atmosphere_std_rad = 1e-6
        draw.noise_std_rad = 0.0
    jumps = count_phase_jumps(phase_of(synthetic._render(strong)))
    # At least 4 rings, each some 2 pi r / dx >= 2 * 20 pixel pairs long.
    assert (jumps > 4 * 40).all(), jumps


def test_frames_without_deformation_or_noise_do_not_wrap_much():
    draws = [synthetic._draw_frame(0, index) for index in range(40)]
    quiet = [draw for draw in draws if not draw.volume_change_m3.any() and draw.atmosphere_std_rad < 0.3]
    assert quiet, "expected some atmosphere-only frames with a faint atmosphere"
    for draw in quiet:
        draw.noise_std_rad = 0.0
        draw.phase_offset_rad = 0.0  # keeps the smooth field away from the -pi / pi cut
    jumps = count_phase_jumps(phase_of(synthetic._render(quiet)))
    assert (jumps == 0).all(), jumps


def test_many_generated_frames_wrap(many_frames):
    # In the dataset itself, fringes and strong noise make a good share of
    # frames wrap a lot (and the quiet ones, see above, hardly at all).
    jumps = count_phase_jumps(phase_of(many_frames))
    assert (jumps > 2000).mean() > 0.2


def test_mogi_fringe_count_matches_its_calibration():
    # One source straight under the centre, vertical look: phase at the centre
    # is 2 pi per fringe.
    draw = synthetic._draw_frame(0, 0)
    draw.incidence_rad = 0.0
    draw.source_east_m[:] = 0.0
    draw.source_north_m[:] = 0.0
    draw.volume_change_m3[:] = 0.0
    draw.volume_change_m3[0] = synthetic._volume_change_for_fringes(3.0, draw.source_depth_m[0], 0.0)
    east, north = synthetic._pixel_coordinates_m(synthetic._per_frame([draw.pixel_spacing_m]))
    phase = synthetic._mogi_los_phase([draw], east, north)[0]
    # The centre lies between pixels 63 and 64; the half-pixel offset costs < 1 %.
    assert phase.max() == pytest.approx(3.0 * 2.0 * np.pi, rel=0.01)
    assert phase.min() > 0  # inflation lifts the surface everywhere


def test_plot_synthetic_samples(tmp_path):
    path = tmp_path / "samples.png"
    synthetic.plot_synthetic_samples(path, n=4, seed=0)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size < 300_000
