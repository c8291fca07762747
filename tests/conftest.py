"""What the tests share: the tiny config, its data and one trained run, running a command,
hashing a folder, seeding, and which tests are slow (the `slow` marker).

Tests run tiny networks on tiny grids: with several threads per process, OpenMP spends more
time waking threads than computing (20x slower on a loaded 2-core machine), so one thread,
here and in every subprocess `run_command` starts. Here it is set up as the entry points do
(src/threads.py), before torch loads: OMP_NUM_THREADS=1 and their wait policy.
"""

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"
from src.threads import configure  # noqa: E402

configure()

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# The one tiny config of the project (seconds to train), shared by debug_exp.sh and the tests.
TINY = json.loads((ROOT / "exps" / "json" / "debug.json").read_text())


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """The tiny config's data: TINY["ntrain"] synthetic .int files (seed 0), written once a session."""
    from src.synthetic import write_dataset

    folder = tmp_path_factory.mktemp("tiny_data")
    write_dataset(folder, TINY["ntrain"], seed=0)
    return folder


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_data) -> Path:
    """A finished train.py run of the tiny config on `tiny_data`, trained once for the whole
    session: once for all pytest-xdist workers, under a file lock in their shared temporary
    folder. Shared, so read-only: a test that writes into a run works on a copy (`copy_run`)."""
    from filelock import FileLock  # a dependency of torch's

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # basetemp/popen-gw<N> is the worker's own; its parent is the session's
    run_dir = shared / "tiny_run"
    with FileLock(str(shared / "tiny_run.lock")):
        if not (run_dir / "model.w_total.pt").is_file():
            (shared / "tiny_run.json").write_text(json.dumps(TINY))
            result = run_command([sys.executable, ROOT / "train.py", "--cfg", shared / "tiny_run.json",
                                  "--savedir", run_dir], data_dir=tiny_data)
            assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def copy_run(run_dir: Path, destination: Path) -> Path:
    """A copy of the run ``run_dir`` at ``destination`` (made with its parents), for a test to write into."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(run_dir, destination))


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same state of every global random generator."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def command_environment(data_dir=None, **env) -> dict:
    """The environment of a command the tests start: DATA_DIR is ``data_dir`` (unset when
    None); progress bars are hidden; one thread; ``python3`` on the PATH is this interpreter
    (main.sh falls back to it without a .venv). ``env`` adds variables; None removes one."""
    environment = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    environment.pop("DATA_DIR", None)
    if data_dir is not None:
        environment["DATA_DIR"] = str(data_dir)
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"
    for key, value in env.items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = str(value)
    return environment


def run_command(args, cwd=ROOT, data_dir=None, **env) -> subprocess.CompletedProcess:
    """Run ``args`` (paths allowed) in ``cwd`` in `command_environment` and capture its output."""
    return subprocess.run([str(a) for a in args], cwd=cwd, env=command_environment(data_dir, **env),
                          capture_output=True, text=True, timeout=600)


def assert_same_state(a, b):
    """Two checkpoints (or parts of them) equal bit for bit."""
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


def snapshot(directory: Path, skip: str = None) -> dict:
    """{relative path: sha256} of every file under ``directory`` but its subfolder ``skip``."""
    directory = Path(directory)
    files = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if path.is_file() and not (skip and relative.parts[0] == skip):
            files[str(relative)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def launcher_copy(repo: Path) -> Path:
    """exps/launch_eval.{py,sh} copied into ``repo``, a tree like the repository's, so that a
    developer's own exps/env.sh does not leak in; eval.py and src/ are links, .venv/bin/python
    runs this Python."""
    (repo / "exps").mkdir(parents=True)
    for name in ("launch_eval.py", "launch_eval.sh"):
        shutil.copy2(ROOT / "exps" / name, repo / "exps" / name)
    for name in ("eval.py", "eval_gano.py", "src"):
        (repo / name).symlink_to(ROOT / name)
    python = repo / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return repo


# Fixtures that train or start a Slurm: every test that uses one, directly or through another
# fixture, is slow too, whatever its own body costs (the fast subset, -m "not slow", never builds them).
SLOW_FIXTURES = {"tiny_run", "local_run", "slurm", "launched"}


# The files that take longest, longest first (minutes on 2 cores): run first, so that with a
# file a worker (scripts/test.sh's --dist loadfile) no long file starts when the others are done.
LONGEST_FILES = ("test_slurm.py", "test_train.py", "test_resume.py", "test_benchmarks.py", "test_distributed.py",
                 "test_gano.py", "test_array_data.py", "test_eval.py", "test_legacy.py")


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
    rank = {name: index for index, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's own order kept
