"""Tests of the starting config for an array file (src/array_config.py): its keys follow the data,
its sigma_1 rule against an independent computation, and its refusals."""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from src.array_config import REFERENCE_EPOCHS, REFERENCE_FUNCTIONS, largest_whitened_variance, main
from src.config import load_config
from src.data import steps_per_epoch, validation_count
from src.noise import build_noise_sampler
from src.synthetic.darcy import DarcyProblem, write_darcy_dataset
from src.synthetic.grf import GRFLaw

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fields():
    """64 functions of the known law on a 16 px grid, (N, R, R) as a user's .npy would hold them."""
    return GRFLaw(resolution=16).sample(64, seed=0)[..., 0]


def write_config(tmp_path, array, name="data", *extra):
    data, out = tmp_path / f"{name}.npy", tmp_path / f"{name}.json"
    np.save(data, array)
    assert main([str(data), "--out", str(out), *extra]) == 0
    return load_config(out), json.loads(out.read_text())


def test_the_written_config_loads_and_its_keys_follow_the_data(tmp_path, fields, capsys):
    args, written = write_config(tmp_path, fields)
    out = capsys.readouterr().out
    assert (args.ntrain, args.resolution, args.npad, args.augment) == (64, 16, 1, False)
    assert (args.sampler, args.sampler_steps, args.sampler_churn, args.sampler_start) == ("heun", 5, 0.0, "data_fit")
    assert args.sigma_L == pytest.approx(args.sigma_1 / 1000, rel=1e-2)
    assert 2 * args.rbf_scale ** 2 * args.data_resolution == pytest.approx(4, rel=1e-2)  # 4 pixels
    # One line a key: what it chose and why.
    for key, value in written.items():
        assert sum(line.startswith(f"{key} ") for line in out.splitlines()) == 1, key
    assert "sigma_1" in out and "largest variance" in out

    # Ten times the amplitude: a hundred times the noise levels, the same everything else.
    louder, _ = write_config(tmp_path, 10 * fields, "louder")
    assert louder.sigma_1 == pytest.approx(100 * args.sigma_1, rel=1e-2)
    assert louder.sigma_L == pytest.approx(100 * args.sigma_L, rel=1e-2)
    assert louder.epsilon == pytest.approx(100 * args.epsilon, rel=1e-2)
    assert (louder.rbf_scale, louder.epochs, louder.resolution) == (args.rbf_scale, args.epochs, args.resolution)


def test_the_epochs_take_the_steps_of_30_epochs_of_256_functions(tmp_path, fields):
    small, _ = write_config(tmp_path, np.concatenate([fields] * 4), "n256")  # 256 functions
    assert small.epochs == REFERENCE_EPOCHS
    large, _ = write_config(tmp_path, np.concatenate([fields] * 16), "n1024")
    reference = REFERENCE_EPOCHS * steps_per_epoch(REFERENCE_FUNCTIONS - validation_count(REFERENCE_FUNCTIONS, 0.1),
                                                   small.batch_size)
    n_train = 1024 - validation_count(1024, large.val_size)
    assert abs(large.epochs * steps_per_epoch(n_train, large.batch_size) - reference) <= steps_per_epoch(n_train, 16) / 2


def test_a_dict_of_a_pt_file_is_read_with_its_key_and_its_layout(tmp_path, fields):
    channels_first = torch.from_numpy(np.stack([fields, -fields], axis=1).copy())  # (64, 2, 16, 16)
    torch.save({"u": channels_first, "a": torch.zeros(3)}, tmp_path / "pair.pt")
    assert main([str(tmp_path / "pair.pt"), "--out", str(tmp_path / "pair.json"), "--data_key", "u",
                 "--channels_last", "false"]) == 0
    args = load_config(tmp_path / "pair.json")
    assert (args.data_key, args.channels_last, args.resolution, args.ntrain) == ("u", False, 16, 64)


def test_the_sigma_1_rule_is_the_largest_generalised_eigenvalue_of_the_second_moment():
    """Against scipy's generalised eigensolver on M = mean u u^T and the noise's covariance C,
    and for white noise the top eigenvalue of M; the mean counts (about 0, not the covariance)."""
    u = torch.from_numpy(GRFLaw(resolution=8, channels=2).sample(40, seed=1)) + 0.3
    covariance = build_noise_sampler(8, False, 0.3, 0.01).covariance_block(64)
    expected, expected_white = [], []
    for channel in range(2):
        values = u[..., channel].reshape(40, 64).double().numpy()
        second_moment = values.T @ values / 40
        expected.append(scipy.linalg.eigh(second_moment, covariance.numpy(), eigvals_only=True)[-1])
        expected_white.append(np.linalg.eigvalsh(second_moment)[-1])
    assert largest_whitened_variance(u, covariance) == pytest.approx(max(expected), rel=1e-8)
    assert largest_whitened_variance(u, None) == pytest.approx(max(expected_white), rel=1e-8)


def test_an_existing_output_is_never_replaced(tmp_path, fields, capsys):
    np.save(tmp_path / "data.npy", fields)
    (tmp_path / "taken.json").write_text("{}\n")
    assert main([str(tmp_path / "data.npy"), "--out", str(tmp_path / "taken.json")]) == 2
    assert f"refusing to overwrite {tmp_path / 'taken.json'}" in capsys.readouterr().err
    assert (tmp_path / "taken.json").read_text() == "{}\n"


@pytest.mark.parametrize("content, culprit", [
    (np.zeros((4, 8, 9), dtype=np.float32), "not a square one"),
    (np.full((4, 8, 8), np.nan, dtype=np.float32), "non-finite"),
    (None, "cannot read"),
])
def test_a_bad_file_is_named_with_its_fault_and_nothing_is_written(tmp_path, content, culprit, capsys):
    data = tmp_path / "bad.npy"
    if content is None:
        data.write_text("not an array")
    else:
        np.save(data, content)
    assert main([str(data), "--out", str(tmp_path / "bad.json")]) == 2
    error = capsys.readouterr().err
    assert str(data) in error and culprit in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "bad.json").exists()


def test_an_amplitude_far_from_1_is_warned_about_with_the_factor_that_brings_it_there(tmp_path, fields, capsys):
    write_config(tmp_path, fields, "unit")
    assert "warning" not in capsys.readouterr().err
    rms = float(np.sqrt(np.mean(np.square(0.005 * fields[:, :15, :15], dtype=np.float64))))  # as trained: cropped
    write_config(tmp_path, 0.005 * fields, "faint")
    warning = capsys.readouterr().err
    assert "warning: the functions' root mean square is" in warning
    assert f"times {float(f'{1 / rms:.3g}'):g}" in warning


def test_the_shipped_array_config_is_what_the_command_writes_for_its_darcy_file(tmp_path):
    """exps/json/array.json: the command's config for 512 Darcy-flow solutions at 32 px, source 150
    (a unit root mean square), as README.org and benchmarks/array_data.py use them."""
    data = write_darcy_dataset(tmp_path, 512, seed=0, problem=DarcyProblem(resolution=32, forcing=150.0))
    assert main([str(data), "--out", str(tmp_path / "array.json")]) == 0
    assert (tmp_path / "array.json").read_text() == (ROOT / "exps" / "json" / "array.json").read_text()
