"""How many intra-op threads a run uses, and how its idle threads wait: decided before torch loads.

PyTorch runs its intra-op parallelism on the CPU with OpenMP (libgomp), by default about one
thread per core; MKL and OpenBLAS take their count from OMP_NUM_THREADS too. OpenMP's idle threads spin before they sleep
(libgomp: ``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``), and libgomp reads these variables and
``OMP_NUM_THREADS`` once, when it loads: with ``import torch``. Set afterwards in ``os.environ``
they change nothing (benchmarks/RESULTS.md, /Threads/, has the experiment). So the entry points
(train.py, train_gano.py, eval.py, eval_gano.py, resume.py, resume_gano.py) call `configure`
first, before anything imports torch.

`choose_threads` is the decision, a pure function of plain values (an environment mapping and a
CPU count): the user's ``OMP_NUM_THREADS`` wins; else the CPUs this process may use (its
affinity; Slurm's ``SLURM_CPUS_PER_TASK`` when smaller), shared among the local ranks of a
torchrun or srun launch; never fewer than 1. The wait policy is ``WAIT_POLICY`` unless the user
set ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``. `configure` alone reads ``os.environ``, sets the
chosen variables there (child processes inherit them) and prints one line saying what and why.
"""

import os
import sys
from dataclasses import dataclass, field
from typing import Mapping

# OpenMP's idle threads sleep at once instead of spinning for a while: on a shared machine a
# spinning thread takes the core the thread it waits for needs (see benchmarks/threads.py).
WAIT_POLICY = "PASSIVE"
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


@dataclass(frozen=True)
class Threads:
    """The intra-op thread count of a run, how idle threads wait, the variables to set before
    torch loads, and why."""

    count: int
    reason: str
    wait: str  # e.g. 'OMP_WAIT_POLICY=PASSIVE'
    environment: dict = field(default_factory=dict)
    warning: str | None = None

    def describe(self) -> str:
        """The line a run prints."""
        return f"{self.count} intra-op thread{'s' if self.count != 1 else ''} ({self.reason}) with {self.wait}"


def positive_int(text: str | None) -> int | None:
    """``text`` as a positive integer, or None if it is not one (missing, '0', 'abc')."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def local_ranks(environ: Mapping[str, str]) -> tuple[int, str | None]:
    """(processes of this run on this node, the variable that says so): torchrun's
    LOCAL_WORLD_SIZE, else in an srun task SLURM_NTASKS_PER_NODE or this node's entry of
    SLURM_STEP_TASKS_PER_NODE ('2(x3),1': 2 on each of the first three nodes, then 1);
    (1, None) for a process started plainly or as a Slurm batch script."""
    if positive_int(environ.get("LOCAL_WORLD_SIZE")):
        return int(environ["LOCAL_WORLD_SIZE"]), "LOCAL_WORLD_SIZE"
    # As src/distributed.py: SLURM_STEP_NUM_TASKS is set in srun's tasks, not in a batch script.
    if "SLURM_STEP_NUM_TASKS" not in environ or "SLURM_PROCID" not in environ:
        return 1, None
    if positive_int(environ.get("SLURM_NTASKS_PER_NODE")):
        return int(environ["SLURM_NTASKS_PER_NODE"]), "SLURM_NTASKS_PER_NODE"
    per_node = []
    for item in environ.get("SLURM_STEP_TASKS_PER_NODE", "").split(","):
        count, _, repeat = item.partition("(x")
        per_node += [positive_int(count)] * (positive_int(repeat.rstrip(")")) or 1)
    node = positive_int(environ.get("SLURM_NODEID", "0")) or 0
    if node < len(per_node) and per_node[node]:
        return per_node[node], "SLURM_STEP_TASKS_PER_NODE"
    return 1, None


def choose_threads(environ: Mapping[str, str], cpus: int) -> Threads:
    """The intra-op threads of a process that may run on ``cpus`` CPUs, in ``environ``.

    Parameters
    ----------
    environ : the process's environment variables (only read)
    cpus : the CPUs this process may use (``len(os.sched_getaffinity(0))``)

    Returns
    -------
    Threads : the count; the variables to set before torch loads (OMP_NUM_THREADS unless the
        user set it, the wait policy unless the user set one); a reason, shown in the run's line;
        a warning when OMP_NUM_THREADS is set but not a positive integer (then ignored).
    """
    users = {key: environ[key] for key in WAIT_VARIABLES if key in environ}
    wait = ", ".join(f"{key}={value}" for key, value in users.items()) or f"OMP_WAIT_POLICY={WAIT_POLICY}"
    environment = {} if users else {"OMP_WAIT_POLICY": WAIT_POLICY}
    ranks, ranks_from = local_ranks(environ)
    given, warning = environ.get("OMP_NUM_THREADS"), None
    if given is not None:
        # OpenMP also takes a list, one count per nesting level: the first is the intra-op one.
        count = positive_int(given.split(",")[0])
        if count:
            # torchrun sets OMP_NUM_THREADS=1 for several processes a node unless it is set.
            torchrun = count == 1 and ranks > 1 and "TORCHELASTIC_RUN_ID" in environ
            launcher = " (torchrun's default for several processes a node)" if torchrun else ""
            return Threads(count, f"OMP_NUM_THREADS={given} in the environment{launcher}", wait, environment)
        warning = f"OMP_NUM_THREADS={given!r} is not a positive integer: ignored"
    slurm = positive_int(environ.get("SLURM_CPUS_PER_TASK"))
    if slurm and slurm <= cpus:
        # Per srun task, so per rank when the ranks are srun's tasks; torchrun's share their task.
        available, reason = slurm, f"SLURM_CPUS_PER_TASK={slurm}"
        shared = ranks if ranks_from == "LOCAL_WORLD_SIZE" else 1
    else:
        available, reason, shared = cpus, f"the {cpus} CPU{'s' if cpus != 1 else ''} this process may use", ranks
    count = max(1, available // shared)
    if shared > 1:
        reason += f", shared by {shared} local ranks ({ranks_from})"
    return Threads(count, f"{reason}; set OMP_NUM_THREADS to choose", wait,
                   {"OMP_NUM_THREADS": str(count), **environment}, warning)


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity where the system has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def configure() -> Threads:
    """Choose the threads of this process and set them up; an entry point calls this before
    torch is imported. Prints the choice (on the run's first rank only) and any warning."""
    threads = choose_threads(os.environ, available_cpus())
    os.environ.update(threads.environment)
    if threads.warning:
        print(f"warning: {threads.warning}", file=sys.stderr)
    if first_rank(os.environ):
        print(threads.describe(), flush=True)
    return threads


def first_rank(environ: Mapping[str, str]) -> bool:
    """Whether this process is rank 0 of its run, as src/distributed.py numbers the ranks."""
    if "WORLD_SIZE" in environ:
        return environ.get("RANK", "0") == "0"
    if "SLURM_STEP_NUM_TASKS" in environ and "SLURM_PROCID" in environ:
        return environ["SLURM_PROCID"] == "0"
    return True
