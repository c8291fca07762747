"""Exact resumption: a run killed anywhere and restarted ends as if never stopped.

One tiny 3-epoch run goes uninterrupted; another is stopped again and again, by SIGKILL inside
an epoch, inside validation sampling, between a results.json line and its checkpoint, inside
the write of model.pt, and by SIGUSR1 (Slurm's warning) inside an epoch, each time restarted
with the same command. Both must write the same results.json (every field but time) and the
same weights, EMA and optimizer state, bit for bit.
"""

import json
import os
import shutil
import signal
import sys

import pytest
import torch

from conftest import ROOT, TINY, run_command
from src.synthetic import write_dataset

THREE_EPOCHS = {**TINY, "epochs": 3}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("resume")
    write_dataset(base / "data", TINY["ntrain"], seed=0)
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


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        elif isinstance(a[key], dict):
            assert_same_state(a[key], b[key])
        elif isinstance(a[key], list):
            assert len(a[key]) == len(b[key])
            for x, y in zip(a[key], b[key]):
                assert_same_state({"_": x}, {"_": y})
        else:
            assert a[key] == b[key], key


@pytest.fixture(scope="module")
def uninterrupted(setup):
    run_dir = setup / "straight"
    result = train(setup, run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


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
        result = train(setup, run_dir, point, str(n), name, SLURM_JOB_ID=42,
                       PATH=f"{scontrol.parent}{os.pathsep}{os.environ['PATH']}")
        if name == "KILL":
            assert result.returncode == -signal.SIGKILL, (point, n, result.stderr[-2000:])
        else:  # a clean exit, a checkpoint at the step, and the job back in Slurm's queue
            assert result.returncode == 0, result.stderr[-2000:]
            assert "SIGUSR1: stopped at epoch 2, step 2" in result.stdout
            state = torch.load(run_dir / "model.pt", weights_only=True)
            assert (state["epoch"], state["step"], len(state["epoch_losses"])) == (1, 2, 2)
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
    assert result.returncode == 0 and "stopped at epoch 2, step 2" in result.stdout, result.stderr[-2000:]
    return run_dir


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


def test_resume_sh_finishes_a_stopped_run_of_savedir(setup, uninterrupted, stopped, tmp_path):
    """`bash resume.sh sbgm <name> <id>` from exps/, in a copy of the repository (no env.sh of a developer)."""
    repo = tmp_path / "repo"
    (repo / "exps").mkdir(parents=True)
    shutil.copy2(ROOT / "exps" / "resume.sh", repo / "exps" / "resume.sh")
    for name in ("train.py", "resume.py", "src"):
        (repo / name).symlink_to(ROOT / name)
    savedir = tmp_path / "saved"
    shutil.copytree(stopped, savedir / "tiny" / "7")
    result = run_command(["bash", "resume.sh", "sbgm", "tiny", "7"], cwd=repo / "exps", data_dir=setup / "data",
                         SAVEDIR=savedir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert results(savedir / "tiny" / "7") == results(uninterrupted)

    for args, message in ((["gan", "tiny", "7"], "not implemented"), (["sbgm", "tiny", "8"], "no run"),
                          (["sbgm", "tiny"], "usage")):
        result = run_command(["bash", "resume.sh", *args], cwd=repo / "exps", data_dir=setup / "data",
                             SAVEDIR=savedir)
        assert result.returncode == 2 and message in result.stderr, args
