"""train.py (train_gano.py with TRAIN_SCRIPT=train_gano) with a fault injected at a chosen
point, for tests/test_resume.py and tests/test_gano.py.

    python tests/interrupted_train.py <point> <n> <KILL|USR1> <train.py arguments...>

At the n-th time the run reaches ``point`` it sends itself the signal: SIGKILL (a node or OOM
kill: nothing runs after it) or SIGUSR1 (Slurm's warning before a time limit or preemption).

    step        the n-th training step, before its loss
    validation  the n-th validation sampling, before it starts
    line        the n-th results.json line, just after it is written
    checkpoint  the n-th write of model.pt, after its temporary file is complete, before the rename

Under torchrun every rank runs this file; FAULT_RANK=r injects the fault in rank r alone.
"""

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import src.files  # noqa: E402
import src.training  # noqa: E402

train = __import__(os.environ.get("TRAIN_SCRIPT", "train"))

point, n, signal_name, train_args = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
calls = 0
faulty = os.environ.get("FAULT_RANK", os.environ.get("RANK", "0")) == os.environ.get("RANK", "0")


def reached() -> None:
    global calls
    if not faulty:
        return
    calls += 1
    if calls == n:
        os.kill(os.getpid(), getattr(signal, f"SIG{signal_name}"))


def before(function):
    def wrapped(*args, **kwargs):
        reached()
        return function(*args, **kwargs)
    return wrapped


def after(function):
    def wrapped(*args, **kwargs):
        result = function(*args, **kwargs)
        reached()
        return result
    return wrapped


if point == "step":
    src.training.flip = before(src.training.flip)
elif point == "validation":
    src.training.sample = before(src.training.sample)
elif point == "line":
    src.training.append_line = after(src.training.append_line)
elif point == "checkpoint":
    replace = src.files.os.replace

    def replace_checkpoint(source, target):
        if Path(target).name == "model.pt":
            reached()
        return replace(source, target)

    src.files.os.replace = replace_checkpoint
else:
    sys.exit(f"unknown point {point!r}")
sys.exit(train.main(train_args))
