"""Tests of the Volcano data loading (src/data.py)."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parents[1]

from src.data import (
    VolcanoDataset,
    load_volcano,
    read_interferogram_phase,
    split_train_valid,
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
    path.parent.mkdir(parents=True, exist_ok=True)
    np.asarray(values, dtype="<f4").tofile(path)
    return path


def test_read_interferogram_phase(synthetic_root, expected_phase):
    phase = read_interferogram_phase(synthetic_root / "synthetic_00001.int")
    assert phase.shape == (128, 128)
    np.testing.assert_array_equal(phase, expected_phase[1])
    assert phase.min() >= -np.pi and phase.max() <= np.pi


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
    assert x.shape == (N_FILES, 120, 120, 2)
    assert x.dtype == torch.float32
    torch.testing.assert_close(x.square().sum(-1), torch.ones(N_FILES, 120, 120))
    # No resize at 128: the top-left 120 x 120 block of (cos, sin), channels last.
    expected = np.stack([np.cos(expected_phase), np.sin(expected_phase)], axis=-1)[:, :120, :120]
    torch.testing.assert_close(x, torch.from_numpy(expected.astype(np.float32)))


def test_load_resized_equals_bilinear_interpolation_then_top_left_crop(synthetic_root, expected_phase):
    x = load_volcano(synthetic_root, ntrain=4, resolution=64, npad=4)
    assert x.shape == (4, 60, 60, 2)
    phase = torch.from_numpy(expected_phase[:4])
    channels_first = torch.stack([torch.cos(phase), torch.sin(phase)], dim=1)
    resized = F.interpolate(channels_first, size=(64, 64), mode="bilinear", align_corners=False)
    torch.testing.assert_close(x, resized[:, :, :60, :60].permute(0, 2, 3, 1))


def noisy_ramp_phase(seed: int, noise_std_rad: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A phase ramp of one cycle per 64 px across a 128 px frame, and that ramp plus
    independent Gaussian phase noise (decorrelation), both (128, 128)."""
    columns = np.arange(128)[None, :].repeat(128, axis=0)
    ramp = 2 * np.pi * columns / 64.0
    noise = np.random.default_rng(seed).normal(0.0, noise_std_rad, size=(128, 128))
    return ramp, ramp + noise


def phase_error_to_ramp(x: torch.Tensor, ramp: np.ndarray, size: int) -> float:
    """Mean 1 - cos(phase of x - the noise-free ramp resized the same way), over pixels."""
    ramp_vectors = torch.from_numpy(np.stack([np.cos(ramp), np.sin(ramp)])[None].astype(np.float32))
    cos, sin = F.interpolate(ramp_vectors, size=(size, size), mode="bilinear", align_corners=False,
                             antialias=True)[0]
    ramp_phase = torch.atan2(sin, cos)
    return float((1 - torch.cos(torch.atan2(x[0, ..., 1], x[0, ..., 0]) - ramp_phase)).mean())


def test_multilook_averages_decorrelation_noise_away_and_keeps_unit_vectors(tmp_path):
    ramp, noisy = noisy_ramp_phase(seed=0)
    write_raw(tmp_path / "noisy.int", np.stack([np.cos(noisy), np.sin(noisy)], axis=-1))
    plain = load_volcano(tmp_path, ntrain=1, resolution=32, npad=0)
    multilooked = load_volcano(tmp_path, ntrain=1, resolution=32, npad=0, multilook=True)
    assert multilooked.shape == plain.shape == (1, 32, 32, 2)
    torch.testing.assert_close(multilooked.square().sum(-1), torch.ones(1, 32, 32))
    # Phase noise of 1 rad: plain bilinear sampling averages 2 x 2 pixels, multilooking
    # the whole 4 x 4 footprint and its neighbours, so its phase lies much closer to the ramp.
    plain_error = phase_error_to_ramp(plain, ramp, 32)
    multilook_error = phase_error_to_ramp(multilooked, ramp, 32)
    assert plain_error > 0.1
    assert multilook_error < plain_error / 3


def test_multilook_changes_nothing_at_the_native_resolution(synthetic_root):
    plain = load_volcano(synthetic_root, ntrain=2, resolution=128, npad=8)
    multilooked = load_volcano(synthetic_root, ntrain=2, resolution=128, npad=8, multilook=True)
    assert torch.equal(plain, multilooked)


def test_load_data_passes_the_multilook_option(synthetic_root):
    from src.config import Arguments
    from src.experiment import load_data

    plain = Arguments(ntrain=N_FILES, resolution=32, npad=4, val_size=0.5)
    multilooked = Arguments(ntrain=N_FILES, resolution=32, npad=4, val_size=0.5, multilook=True)
    expected = load_volcano(synthetic_root, ntrain=N_FILES, resolution=32, npad=4, multilook=True)
    expected_train, expected_valid = split_train_valid(expected, 0.5, seed=multilooked.seed)
    train, valid = load_data(multilooked, synthetic_root)
    assert torch.equal(train, expected_train) and torch.equal(valid, expected_valid)
    assert not torch.equal(load_data(plain, synthetic_root)[0], train)


def test_load_takes_the_first_files_in_path_order_recursively(tmp_path, expected_phase):
    frames = generate_interferograms(3, seed=0)
    # Written out of order, in nested folders: b/x.int sorts before c.int.
    write_raw(tmp_path / "c.int", frames[2])
    write_raw(tmp_path / "a" / "z.int", frames[0])
    write_raw(tmp_path / "b" / "x.int", frames[1])
    (tmp_path / "ignored.txt").write_text("not an interferogram")
    x = load_volcano(tmp_path, ntrain=2, resolution=128, npad=0)
    assert x.shape == (2, 128, 128, 2)
    expected_angle = torch.from_numpy(expected_phase[:2])
    torch.testing.assert_close(torch.atan2(x[..., 1], x[..., 0]), expected_angle, atol=1e-5, rtol=0)


def test_load_rejects_a_root_that_is_not_a_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing.*is not a directory"):
        load_volcano(tmp_path / "missing")
    a_file = tmp_path / "file.int"
    a_file.write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"file\.int is not a directory"):
        load_volcano(a_file)


def test_load_rejects_a_root_without_int_files(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(FileNotFoundError, match=re.escape(f"no .int files under {tmp_path}")):
        load_volcano(tmp_path)


def test_load_rejects_too_few_files(synthetic_root):
    with pytest.raises(ValueError, match=re.escape(f"ntrain=4096 but only {N_FILES} .int files under {synthetic_root}")):
        load_volcano(synthetic_root)


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


def test_dataset_without_augmentation_returns_frames_unchanged():
    x = torch.randn(5, 8, 8, 2)
    dataset = VolcanoDataset(x)
    assert len(dataset) == 5 and dataset.res == 8 and dataset.X is x
    assert all(torch.equal(dataset[i], x[i]) for i in range(5))


def test_dataset_augmentation_flips_both_ways_at_random():
    frame = torch.randn(1, 8, 8, 2)
    dataset = VolcanoDataset(frame, augment=True)
    variants = {
        "none": frame[0],
        "horizontal": torch.flip(frame[0], dims=(1,)),
        "vertical": torch.flip(frame[0], dims=(0,)),
        "both": torch.flip(frame[0], dims=(0, 1)),
    }
    torch.manual_seed(0)
    counts = dict.fromkeys(variants, 0)
    for _ in range(400):
        sample = dataset[0]
        assert sample.shape == (8, 8, 2)
        matches = [name for name, variant in variants.items() if torch.equal(sample, variant)]
        assert len(matches) == 1
        counts[matches[0]] += 1
    # Each of the 4 outcomes has probability 1/4: 100 expected, std ~ 9.
    assert all(60 < count < 140 for count in counts.values()), counts

    torch.manual_seed(123)
    first = [dataset[0] for _ in range(10)]
    torch.manual_seed(123)
    second = [dataset[0] for _ in range(10)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_dataset_rejects_channels_first_tensors():
    with pytest.raises(ValueError, match=r"\(N, res, res, 2\)"):
        VolcanoDataset(torch.zeros(3, 2, 8, 8))
