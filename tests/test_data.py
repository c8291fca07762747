"""Tests of the Volcano data (src/data.py): the .int format, loading, splitting, batching, flipping."""

import re
import struct

import numpy as np
import pytest
import torch

from src.data import (
    DataError,
    epoch_batches,
    flip,
    load_volcano,
    read_interferogram_phase,
    split_train_valid,
    steps_per_epoch,
    write_interferogram,
)
from src.synthetic import generate_interferograms, write_dataset

N_FILES = 6


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    """A folder of N_FILES synthetic .int files (seed 0)."""
    root = tmp_path_factory.mktemp("volcano")
    write_dataset(root, N_FILES, seed=0)
    return root


@pytest.fixture(scope="module")
def expected_phase():
    """The phase of the files in `synthetic_root`, (N_FILES, 128, 128)."""
    frames = generate_interferograms(N_FILES, seed=0)
    return np.arctan2(frames[..., 1], frames[..., 0])


def write_raw(path, values):
    """Bytes of little-endian float32 values, whatever their shape: also files that
    `write_interferogram` refuses to write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.asarray(values, dtype="<f4").tofile(path)
    return path


def test_write_interferogram_lays_out_row_column_real_imaginary_little_endian(tmp_path):
    rows, columns = np.meshgrid(np.arange(128), np.arange(128), indexing="ij")
    frame = np.stack([rows + columns / 1000, -(rows + 1) * (columns + 1)], axis=-1).astype(np.float64)
    path = tmp_path / "frame.int"
    write_interferogram(path, frame)
    raw = path.read_bytes()
    assert len(raw) == 128 * 128 * 2 * 4
    for row, column, part in [(0, 0, 0), (0, 1, 1), (5, 127, 0), (127, 3, 1)]:
        offset = ((row * 128 + column) * 2 + part) * 4
        assert struct.unpack("<f", raw[offset:offset + 4])[0] == pytest.approx(frame[row, column, part], rel=1e-7)


def test_written_interferogram_reads_back_as_its_phase(tmp_path):
    frame = np.random.default_rng(0).normal(size=(128, 128, 2)).astype(np.float32)
    write_interferogram(tmp_path / "a.int", frame)
    assert np.array_equal(read_interferogram_phase(tmp_path / "a.int"), np.arctan2(frame[..., 1], frame[..., 0]))


@pytest.mark.parametrize("shape, value, message", [
    ((128, 128), 1.0, r"bad\.int: expected a frame of shape \(128, 128, 2\).*got \(128, 128\)"),
    ((2, 128, 128), 1.0, r"got \(2, 128, 128\)"),
    ((128, 128, 2), np.nan, r"bad\.int: the frame holds non-finite"),
])
def test_write_interferogram_refuses_what_the_reader_would_reject(tmp_path, shape, value, message):
    frame = np.ones(shape)
    frame.flat[7] = value
    with pytest.raises(ValueError, match=message):
        write_interferogram(tmp_path / "bad.int", frame)
    assert not (tmp_path / "bad.int").exists()


def test_read_interferogram_phase_of_a_synthetic_file(synthetic_root, expected_phase):
    np.testing.assert_array_equal(read_interferogram_phase(synthetic_root / "synthetic_00001.int"), expected_phase[1])


def test_read_interferogram_phase_is_the_angle_of_real_plus_i_imaginary(tmp_path):
    values = np.zeros((128, 128, 2), dtype=np.float32)
    values[..., 0] = -1.0  # angle(-1 + 0i) = pi
    values[0, 0] = (0.0, 2.0)  # angle(2i) = pi / 2
    values[0, 1] = (3.0, -3.0)  # angle(3 - 3i) = -pi / 4
    phase = read_interferogram_phase(write_raw(tmp_path / "a.int", values))
    assert phase[0, 0] == pytest.approx(np.pi / 2)
    assert phase[0, 1] == pytest.approx(-np.pi / 4)
    assert phase[5, 5] == pytest.approx(np.pi)


def test_read_rejects_bad_size_naming_file_and_size(tmp_path):
    path = write_raw(tmp_path / "short.int", np.ones(100))
    with pytest.raises(ValueError, match=r"short\.int has 400 bytes"):
        read_interferogram_phase(path)


def test_read_rejects_non_finite_values_naming_file(tmp_path):
    values = np.ones((128, 128, 2))
    values[3, 4, 1] = np.nan
    path = write_raw(tmp_path / "nan.int", values)
    with pytest.raises(ValueError, match=r"nan\.int.*non-finite"):
        read_interferogram_phase(path)


def test_load_native_resolution_is_unit_vectors_of_the_phase(synthetic_root, expected_phase):
    x = load_volcano(synthetic_root, ntrain=N_FILES, resolution=128, npad=8)
    # No resize at 128: the top-left 120 x 120 block of (cos, sin), channels last.
    expected = np.stack([np.cos(expected_phase), np.sin(expected_phase)], axis=-1)[:, :120, :120]
    torch.testing.assert_close(x, torch.from_numpy(expected.astype(np.float32)))


def test_load_halved_is_the_mean_of_2_x_2_blocks_then_the_top_left_crop(synthetic_root, expected_phase):
    # Bilinear halving (align_corners=False) samples each output pixel midway between 2 x 2
    # input pixels, i.e. it averages them (unlike the 128 px case, no unit vectors after).
    x = load_volcano(synthetic_root, ntrain=4, resolution=64, npad=4)
    unit_vectors = np.stack([np.cos(expected_phase[:4]), np.sin(expected_phase[:4])], axis=-1)
    block_means = unit_vectors.reshape(4, 64, 2, 64, 2, 2).mean(axis=(2, 4))
    torch.testing.assert_close(x, torch.from_numpy(block_means[:, :60, :60].astype(np.float32)))


def phase_error_to_ramp(x: torch.Tensor) -> float:
    """Mean 1 - cos(phase of x (1, 32, 32, 2) - the phase ramp 2 pi column / 64 of the 128 px
    frame at each output pixel's centre, input column 4 j + 1.5), over pixels."""
    ramp_phase = 2 * np.pi * (4 * np.arange(32) + 1.5) / 64
    phase = torch.atan2(x[0, ..., 1], x[0, ..., 0]).double().numpy()
    return float((1 - np.cos(phase - ramp_phase[None, :])).mean())


def test_multilook_averages_decorrelation_noise_away_and_keeps_unit_vectors(tmp_path):
    # A phase ramp of one cycle per 64 px plus 1 rad of independent phase noise (decorrelation).
    noisy = 2 * np.pi * np.arange(128)[None, :] / 64 + np.random.default_rng(0).normal(0.0, 1.0, size=(128, 128))
    write_interferogram(tmp_path / "noisy.int", np.stack([np.cos(noisy), np.sin(noisy)], axis=-1))
    plain = load_volcano(tmp_path, ntrain=1, resolution=32, npad=0)
    multilooked = load_volcano(tmp_path, ntrain=1, resolution=32, npad=0, multilook=True)
    torch.testing.assert_close(multilooked.square().sum(-1), torch.ones(1, 32, 32))
    # Plain bilinear sampling averages 2 x 2 pixels, multilooking the whole 4 x 4 footprint
    # and its neighbours, so its phase lies much closer to the ramp.
    plain_error = phase_error_to_ramp(plain)
    assert plain_error > 0.1
    assert phase_error_to_ramp(multilooked) < plain_error / 3


def test_multilook_changes_nothing_at_the_native_resolution(synthetic_root):
    plain = load_volcano(synthetic_root, ntrain=2, resolution=128, npad=8)
    multilooked = load_volcano(synthetic_root, ntrain=2, resolution=128, npad=8, multilook=True)
    assert torch.equal(plain, multilooked)


def test_load_data_passes_the_multilook_option(synthetic_root):
    from src.data import load_data
    from src.methods.diffusion import Arguments

    def frames_of(arguments):
        return list(torch.cat(load_data(arguments, synthetic_root)))

    def same_frames(some, others):
        return len(some) == len(others) and all(any(torch.equal(a, b) for b in others) for a in some)

    expected = list(load_volcano(synthetic_root, ntrain=N_FILES, resolution=32, npad=4, multilook=True))
    multilooked = frames_of(Arguments(ntrain=N_FILES, resolution=32, npad=4, val_size=0.5, multilook=True))
    plain = frames_of(Arguments(ntrain=N_FILES, resolution=32, npad=4, val_size=0.5))
    assert same_frames(multilooked, expected)
    assert not any(torch.equal(a, b) for a in plain for b in expected)


def test_load_takes_the_first_files_in_path_order_recursively(tmp_path, expected_phase):
    frames = generate_interferograms(3, seed=0)
    # Written out of order, in nested folders: b/x.int sorts before c.int.
    for name, frame in [("c.int", frames[2]), ("a/z.int", frames[0]), ("b/x.int", frames[1])]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write_interferogram(tmp_path / name, frame)
    (tmp_path / "ignored.txt").write_text("not an interferogram")
    x = load_volcano(tmp_path, ntrain=2, resolution=128, npad=0)
    assert x.shape == (2, 128, 128, 2)
    expected_angle = torch.from_numpy(expected_phase[:2])
    torch.testing.assert_close(torch.atan2(x[..., 1], x[..., 0]), expected_angle, atol=1e-5, rtol=0)


def test_load_rejects_a_root_that_is_not_a_directory(tmp_path):
    with pytest.raises(DataError, match=r"missing.*is not a directory"):
        load_volcano(tmp_path / "missing")
    a_file = tmp_path / "file.int"
    a_file.write_bytes(b"")
    with pytest.raises(DataError, match=r"file\.int is not a directory"):
        load_volcano(a_file)


def test_load_rejects_a_root_without_int_files(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(DataError, match=re.escape(f"no .int files under {tmp_path}")):
        load_volcano(tmp_path)


def test_load_rejects_too_few_files(synthetic_root):
    message = f"ntrain={N_FILES + 1} but only {N_FILES} .int files under {synthetic_root}"
    with pytest.raises(ValueError, match=re.escape(message)):
        load_volcano(synthetic_root, ntrain=N_FILES + 1)


def test_load_rejects_bad_files_naming_them(tmp_path):
    write_dataset(tmp_path, 2, seed=0)
    write_raw(tmp_path / "truncated.int", np.ones(10))
    with pytest.raises(ValueError, match=r"truncated\.int has 40 bytes"):
        load_volcano(tmp_path, ntrain=3)
    (tmp_path / "truncated.int").unlink()
    infinite = np.ones((128, 128, 2))
    infinite[0, 0, 0] = np.inf
    write_raw(tmp_path / "infinite.int", infinite)
    with pytest.raises(ValueError, match=r"infinite\.int.*non-finite"):
        load_volcano(tmp_path, ntrain=3)


@pytest.mark.parametrize("resolution, npad", [(8, 8), (4, 8), (128, -1)])
def test_load_rejects_resolution_not_above_npad(synthetic_root, resolution, npad):
    with pytest.raises(ValueError, match=f"resolution={resolution}, npad={npad}"):
        load_volcano(synthetic_root, ntrain=1, resolution=resolution, npad=npad)


def test_load_rejects_ntrain_below_one(synthetic_root):
    with pytest.raises(ValueError, match="ntrain must be at least 1, got 0"):
        load_volcano(synthetic_root, ntrain=0)


def test_split_is_deterministic_disjoint_and_complete():
    x = torch.arange(50).float()[:, None, None, None].expand(50, 3, 3, 2)
    train, valid = split_train_valid(x, 0.2, seed=3)
    assert train.shape == (40, 3, 3, 2) and valid.shape == (10, 3, 3, 2)
    train_ids, valid_ids = set(train[:, 0, 0, 0].tolist()), set(valid[:, 0, 0, 0].tolist())
    assert not train_ids & valid_ids
    assert train_ids | valid_ids == set(range(50))

    again_train, again_valid = split_train_valid(x, 0.2, seed=3)
    assert torch.equal(train, again_train) and torch.equal(valid, again_valid)
    _, other_valid = split_train_valid(x, 0.2, seed=4)
    assert not torch.equal(valid, other_valid)


def test_split_does_not_touch_the_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    split_train_valid(torch.zeros(10, 2, 2, 2), 0.5, seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_split_rounds_and_allows_an_empty_validation_set():
    x = torch.zeros(7, 2, 2, 2)
    train, valid = split_train_valid(x, 0.0)
    assert train.shape[0] == 7 and valid.shape == (0, 2, 2, 2)
    train, valid = split_train_valid(x, 0.3)  # round(2.1) = 2
    assert train.shape[0] == 5 and valid.shape[0] == 2
    with pytest.raises(ValueError, match="val_size"):
        split_train_valid(x, 1.5)


@pytest.mark.parametrize("n_train, batch_size, steps", [(32, 8, 4), (35, 8, 4), (5, 8, 1), (8, 8, 1)])
def test_an_epoch_visits_each_function_at_most_once_in_full_batches(n_train, batch_size, steps):
    batches = epoch_batches(n_train, batch_size, seed=0, epoch=3, augment=False)
    assert len(batches) == steps_per_epoch(n_train, batch_size) == steps
    indices = torch.cat([indices for indices, _ in batches])
    assert len(set(indices.tolist())) == len(indices) == steps * min(batch_size, n_train)
    assert all(len(indices) == min(batch_size, n_train) for indices, _ in batches)  # the remainder is dropped


def test_epoch_batches_depend_on_seed_and_epoch_only():
    """What exact resumption rests on: the same (seed, epoch) gives the same batches in any process."""
    def order(seed, epoch):
        return torch.cat([torch.cat([i, f.flatten()]) for i, f in epoch_batches(40, 8, seed, epoch, augment=True)])

    torch.rand(5)  # the global random state plays no part
    assert torch.equal(order(0, 1), order(0, 1))
    assert not torch.equal(order(0, 1), order(0, 2)) and not torch.equal(order(0, 1), order(1, 1))


def test_flips_reverse_columns_or_rows_and_only_with_augment():
    u = torch.randn(4, 6, 6, 2, generator=torch.Generator().manual_seed(0))
    flips = torch.tensor([[False, False], [True, False], [False, True], [True, True]])
    flipped = flip(u, flips)
    assert torch.equal(flipped[0], u[0])
    assert torch.equal(flipped[1], torch.flip(u[1], dims=(1,)))
    assert torch.equal(flipped[2], torch.flip(u[2], dims=(0,)))
    assert torch.equal(flipped[3], torch.flip(u[3], dims=(0, 1)))
    drawn = torch.cat([f for _, f in epoch_batches(4000, 4000, seed=0, epoch=0, augment=True)])
    assert drawn.float().mean(0).tolist() == pytest.approx([0.5, 0.5], abs=0.03)  # each flip half the time
    assert not any(f.any() for _, f in epoch_batches(40, 8, seed=0, epoch=0, augment=False))
