"""Exact resumption: a run killed anywhere and restarted ends as if never stopped.

One tiny 3-epoch run goes uninterrupted; another is stopped again and again, by SIGKILL inside
an epoch, inside validation sampling, between a results.json line and its checkpoint, inside
the write of model.pt, and by SIGUSR1 (Slurm's warning) inside an epoch, each time restarted
with the same command. Both must write the same results.json (every field but time) and the
same weights, EMA and optimizer state, bit for bit.
"""

import errno
import json
import math
import os
import re
import shutil
import signal
import sys
from pathlib import Path

import pytest
import torch

import src.checkpoint
import src.methods.diffusion
import train as train_script
from conftest import ROOT, TINY, assert_same_state, run_command
from src.cli import STOPPED_EXIT
from src.noise import build_noise_sampler

THREE_EPOCHS = {**TINY, "epochs": 3}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_data):
    base = tmp_path_factory.mktemp("resume")
    (base / "data").symlink_to(tiny_data)
    (base / "cfg.json").write_text(json.dumps(THREE_EPOCHS))
    return base


def train(setup, run_dir, *fault, **env):
    """train.py on the 3-epoch config, through tests/interrupted_train.py when a fault is given."""
    command = ([sys.executable, ROOT / "tests" / "interrupted_train.py", *fault] if fault
               else [sys.executable, ROOT / "train.py"])
    return run_command([*command, "--cfg", setup / "cfg.json", "--savedir", run_dir], data_dir=setup / "data", **env)


def results(run_dir):
    return [{k: v for k, v in json.loads(line).items() if k != "time"}
            for line in (run_dir / "results.json").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(setup):
    run_dir = setup / "straight"
    result = train(setup, run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.mark.slow
def test_a_run_killed_anywhere_and_restarted_ends_as_if_never_stopped(setup, uninterrupted, tmp_path):
    run_dir = setup / "interrupted"
    scontrol = tmp_path / "bin" / "scontrol"  # Slurm's, as far as train.py can tell: it records its call
    scontrol.parent.mkdir()
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "scontrol.log"}\n')
    scontrol.chmod(0o755)
    faults = [
        ("step", 3, "KILL"),         # inside epoch 1: nothing saved yet
        ("validation", 1, "KILL"),   # inside epoch 1's validation sampling
        ("line", 1, "KILL"),         # after epoch 1's results line, before its checkpoint
        ("checkpoint", 1, "KILL"),   # inside the write of epoch 1's model.pt
        ("step", 6, "USR1"),         # Slurm's warning at epoch 2, step 2 of 4
        ("checkpoint", 1, "KILL"),   # inside the write of epoch 2's model.pt
    ]
    for point, n, name in faults:
        result = train(setup, run_dir, point, str(n), name, SLURM_JOB_ID=42, SLURM_JOB_NODELIST="node1",
                       PATH=f"{scontrol.parent}{os.pathsep}{os.environ['PATH']}")
        if name == "KILL":
            assert result.returncode == -signal.SIGKILL, (point, n, result.stderr[-2000:])
        else:  # a clean exit, a checkpoint at the step, and the job back in Slurm's queue
            assert result.returncode == 0, result.stderr[-2000:]
            assert "SIGUSR1: stopped at epoch 2, step 2" in result.stdout
            state = torch.load(run_dir / "model.pt", weights_only=True)
            assert (state["epoch"], state["step"], len(state["epoch_losses"]["loss"])) == (1, 2, 2)
            assert (tmp_path / "scontrol.log").read_text() == "requeue 42\n"
    assert (run_dir / "model.pt").exists()
    result = train(setup, run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming from" in result.stdout

    assert results(run_dir) == results(uninterrupted)
    for name in ("model.pt", "model.w_total.pt"):
        assert_same_state(torch.load(run_dir / name, weights_only=True),
                          torch.load(uninterrupted / name, weights_only=True))
    assert not list(run_dir.rglob(".*.tmp*")), "temporary files left behind"


@pytest.mark.slow
def test_a_corrupt_checkpoint_is_named_with_the_way_out(setup, uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("config.json", "results.json", "model.w_total.pt"):
        (run_dir / name).write_bytes((uninterrupted / name).read_bytes())
    (run_dir / "model.pt").write_bytes((uninterrupted / "model.pt").read_bytes()[:1000])  # a truncated copy
    before = {path.name: path.read_bytes() for path in run_dir.iterdir()}
    result = train(setup, run_dir)
    assert result.returncode == 2
    assert "model.pt is not a readable checkpoint" in result.stderr and "model.w_total.pt" in result.stderr
    assert {path.name: path.read_bytes() for path in run_dir.iterdir()} == before


@pytest.mark.slow
def test_a_checkpoint_of_another_architecture_names_the_shapes(setup, uninterrupted, tmp_path):
    wider = tmp_path / "wider.json"
    wider.write_text(json.dumps({**THREE_EPOCHS, "d_co_domain": 8}))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.pt").write_bytes((uninterrupted / "model.pt").read_bytes())
    result = run_command([sys.executable, ROOT / "train.py", "--cfg", wider, "--savedir", run_dir],
                         data_dir=setup / "data")
    assert result.returncode == 2
    assert "does not fit" in result.stderr and "size mismatch for lift.weight" in result.stderr
    assert "torch.Size([4, 4, 1, 1])" in result.stderr and "torch.Size([8, 4, 1, 1])" in result.stderr
    assert sorted(path.name for path in run_dir.iterdir()) == ["model.pt"]


@pytest.fixture(scope="module")
def stopped(setup):
    """A run stopped by SIGUSR1 at epoch 2, step 2, as Slurm's time-limit warning would."""
    run_dir = setup / "stopped"
    result = train(setup, run_dir, "step", "6", "USR1")
    assert result.returncode == STOPPED_EXIT and "stopped at epoch 2, step 2" in result.stdout, result.stderr[-2000:]
    return run_dir


@pytest.mark.slow
def test_resume_py_finishes_a_stopped_run(setup, uninterrupted, stopped, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(stopped, run_dir)
    result = run_command([sys.executable, ROOT / "resume.py", run_dir], data_dir=setup / "data")
    assert result.returncode == 0, result.stderr[-3000:]
    assert results(run_dir) == results(uninterrupted)
    assert_same_state(torch.load(run_dir / "model.pt", weights_only=True),
                      torch.load(uninterrupted / "model.pt", weights_only=True))

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    result = run_command([sys.executable, ROOT / "resume.py", empty], data_dir=setup / "data")
    assert result.returncode == 2 and "no model.pt (nothing to resume" in result.stderr
    assert sorted(path.name for path in empty.iterdir()) == ["config.json"]


@pytest.mark.slow
def test_resume_sh_finishes_a_stopped_run_of_savedir(setup, uninterrupted, stopped, tmp_path):
    """`bash resume.sh sbgm <name> <id>` from exps/, in a copy of the repository (no env.sh of a developer)."""
    repo = tmp_path / "repo"
    (repo / "exps").mkdir(parents=True)
    for name in ("resume.sh", "run_env.sh"):
        shutil.copy2(ROOT / "exps" / name, repo / "exps" / name)
    for name in ("train.py", "resume.py", "train_gano.py", "resume_gano.py", "src"):
        (repo / name).symlink_to(ROOT / name)
    savedir = tmp_path / "saved"
    shutil.copytree(stopped, savedir / "tiny" / "7")
    result = run_command(["bash", "resume.sh", "sbgm", "tiny", "7"], cwd=repo / "exps", data_dir=setup / "data",
                         SAVEDIR=savedir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert results(savedir / "tiny" / "7") == results(uninterrupted)

    for args, message in ((["gan", "tiny", "7"], "belongs to method 'sbgm'"), (["sbgm", "tiny", "8"], "no run"),
                          (["sbgm", "tiny"], "usage")):
        result = run_command(["bash", "resume.sh", *args], cwd=repo / "exps", data_dir=setup / "data",
                             SAVEDIR=savedir)
        assert result.returncode == 2 and message in result.stderr, args


# ---------------------------------------------------------------------------
# Faults inside one process: a non-finite loss, a full disk, a folder that cannot be made

@pytest.fixture
def one_epoch_run(setup, tmp_path):
    """(run dir, config path): a finished 1-epoch run to go on from, in-process."""
    cfg = tmp_path / "one.json"
    cfg.write_text(json.dumps({**THREE_EPOCHS, "epochs": 1, "record_interval": 5}))
    run_dir = tmp_path / "run"
    assert train_script.main(["--cfg", str(cfg), "--savedir", str(run_dir)]) == 0
    two = tmp_path / "two.json"
    two.write_text(json.dumps({**THREE_EPOCHS, "epochs": 2, "record_interval": 5}))
    return run_dir, two


@pytest.fixture(autouse=True)
def data_dir(setup, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(setup / "data"))
    monkeypatch.setenv("TQDM_DISABLE", "1")


@pytest.mark.slow
def test_a_non_finite_loss_stops_with_epoch_and_step_and_keeps_the_checkpoint(one_epoch_run, monkeypatch, capsys):
    run_dir, two = one_epoch_run
    before = (run_dir / "model.pt").read_bytes()
    calls, loss_function = [], src.methods.diffusion.score_matching_loss

    def nan_at_third_step(*args, **kwargs):
        calls.append(1)
        loss = loss_function(*args, **kwargs)
        return loss * math.nan if len(calls) == 3 else loss

    monkeypatch.setattr(src.methods.diffusion, "score_matching_loss", nan_at_third_step)
    assert train_script.main(["--cfg", str(two), "--savedir", str(run_dir), "--override_cfg"]) == 2
    error = capsys.readouterr().err
    assert "not finite at epoch 2, step 3" in error and "model.pt is the last good checkpoint" in error
    assert (run_dir / "model.pt").read_bytes() == before


@pytest.mark.slow
def test_a_bug_keeps_its_traceback_and_is_not_called_a_config_error(one_epoch_run, monkeypatch, capsys):
    """Only our own errors are refusals (exit 2, one line); a ValueError of numpy, scipy or our own
    code propagates, with its traceback."""
    run_dir, two = one_epoch_run

    def buggy_loss(*args, **kwargs):
        raise ValueError("a bug in the loss")

    monkeypatch.setattr(src.methods.diffusion, "score_matching_loss", buggy_loss)
    with pytest.raises(ValueError, match="a bug in the loss"):
        train_script.main(["--cfg", str(two), "--savedir", str(run_dir), "--override_cfg"])
    assert "error:" not in capsys.readouterr().err


@pytest.mark.slow
def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(one_epoch_run, monkeypatch, capsys):
    run_dir, two = one_epoch_run
    before = (run_dir / "model.pt").read_bytes()

    def save_half_then_fill_the_disk(state, path):
        Path(path).write_bytes(before[: len(before) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(src.checkpoint.torch, "save", save_half_then_fill_the_disk)
    assert train_script.main(["--cfg", str(two), "--savedir", str(run_dir), "--override_cfg"]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert (run_dir / "model.pt").read_bytes() == before
    assert not list(run_dir.rglob(".*.tmp*"))


def test_a_savedir_under_a_file_is_refused_before_anything(setup, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert train_script.main(["--cfg", str(setup / "cfg.json"), "--savedir", str(tmp_path / "file" / "run")]) == 2
    assert f"{tmp_path / 'file'} is a file" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file"]


def test_noise_whose_dense_fallback_would_not_fit_is_refused_before_training(setup, tmp_path, capsys):
    """The default rbf_scale 1.0 has no circulant embedding; at 128 px its dense covariance is 2 GiB."""
    cfg = tmp_path / "smooth.json"
    cfg.write_text(json.dumps({**THREE_EPOCHS, "resolution": 128, "npad": 8, "rbf_scale": 1.0}))
    assert train_script.main(["--cfg", str(cfg), "--savedir", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "length_scale=1.0" in error and "120 x 120" in error and "1.5 GiB" in error
    suggested = float(re.search(r"rbf_scale=([0-9.]+) with the same kernel embeds", error).group(1))
    assert build_noise_sampler(120, False, suggested, 0.01).fallback_sampler is None
    assert not (tmp_path / "run").exists()
