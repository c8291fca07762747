"""The threads of a run (src/threads.py): the decision, and that an entry point runs torch with it."""

import ast
import re
import sys

import pytest

from conftest import ROOT, run_command
from src.threads import WAIT_POLICY, choose_threads, first_rank, local_ranks

TORCHRUN = {"LOCAL_WORLD_SIZE": "4", "WORLD_SIZE": "8", "RANK": "5", "LOCAL_RANK": "1"}
SRUN = {"SLURM_STEP_NUM_TASKS": "6", "SLURM_PROCID": "4", "SLURM_NODEID": "1", "SLURM_STEP_TASKS_PER_NODE": "4,2"}


def test_omp_num_threads_wins_over_everything_and_is_not_set_again():
    threads = choose_threads({"OMP_NUM_THREADS": "3", "SLURM_CPUS_PER_TASK": "8", **TORCHRUN}, cpus=16)
    assert threads.count == 3 and threads.warning is None
    assert "OMP_NUM_THREADS=3" in threads.reason
    assert threads.environment == {"OMP_WAIT_POLICY": WAIT_POLICY}


def test_torchruns_own_omp_num_threads_is_named_as_such():
    """torchrun sets OMP_NUM_THREADS=1 for several processes a node when it is unset."""
    threads = choose_threads({**TORCHRUN, "OMP_NUM_THREADS": "1", "TORCHELASTIC_RUN_ID": "x"}, cpus=16)
    assert threads.count == 1 and "torchrun's default" in threads.reason
    assert "torchrun" not in choose_threads({**TORCHRUN, "OMP_NUM_THREADS": "2", "TORCHELASTIC_RUN_ID": "x"}, 16).reason


def test_omp_num_threads_list_gives_its_first_level():
    assert choose_threads({"OMP_NUM_THREADS": "4,2"}, cpus=2).count == 4


@pytest.mark.parametrize("value", ["abc", "0", "-2", ""])
def test_a_bad_omp_num_threads_is_ignored_with_a_warning_naming_it(value):
    threads = choose_threads({"OMP_NUM_THREADS": value}, cpus=6)
    assert threads.count == 6 and threads.environment["OMP_NUM_THREADS"] == "6"  # replaced: libgomp sees a count
    assert repr(value) in threads.warning and "ignored" in threads.warning


def test_the_cpus_of_the_process_without_any_variable():
    threads = choose_threads({}, cpus=6)
    assert threads.count == 6 and threads.warning is None
    assert threads.environment == {"OMP_NUM_THREADS": "6", "OMP_WAIT_POLICY": WAIT_POLICY}
    assert threads.describe() == (f"6 intra-op threads (the 6 CPUs this process may use; set OMP_NUM_THREADS to "
                                  f"choose) with OMP_WAIT_POLICY={WAIT_POLICY}")
    assert choose_threads({}, cpus=1).describe().startswith("1 intra-op thread (the 1 CPU this process may use;")


@pytest.mark.parametrize("slurm, cpus, expected, named", [("4", 16, 4, True), ("32", 16, 16, False),
                                                           ("x", 16, 16, False), ("0", 3, 3, False)])
def test_slurm_cpus_per_task_when_no_more_than_the_affinity(slurm, cpus, expected, named):
    threads = choose_threads({"SLURM_CPUS_PER_TASK": slurm}, cpus=cpus)
    assert threads.count == expected
    assert ("SLURM_CPUS_PER_TASK" in threads.reason) == named


def test_torchrun_ranks_share_the_cpus_and_the_slurm_task():
    assert choose_threads(TORCHRUN, cpus=16).count == 4
    threads = choose_threads({**TORCHRUN, "SLURM_CPUS_PER_TASK": "8"}, cpus=16)
    assert threads.count == 2 and "shared by 4 local ranks (LOCAL_WORLD_SIZE)" in threads.reason


def test_srun_tasks_share_the_node_unless_each_has_its_cpus_per_task():
    assert local_ranks(SRUN) == (2, "SLURM_STEP_TASKS_PER_NODE")  # node 1 of '4,2'
    assert choose_threads(SRUN, cpus=16).count == 8
    assert choose_threads({**SRUN, "SLURM_CPUS_PER_TASK": "3"}, cpus=16).count == 3  # already per task
    assert choose_threads({**SRUN, "SLURM_NTASKS_PER_NODE": "8"}, cpus=16).count == 2


@pytest.mark.parametrize("per_node, node, expected", [("2(x3),1", "2", 2), ("2(x3),1", "3", 1), ("5", "0", 5),
                                                      ("", "0", 1), ("4", "7", 1)])
def test_srun_tasks_per_node_of_this_node(per_node, node, expected):
    environ = {**SRUN, "SLURM_STEP_TASKS_PER_NODE": per_node, "SLURM_NODEID": node}
    assert local_ranks(environ)[0] == expected


def test_a_batch_script_is_one_process_whatever_its_job_asks():
    """sbatch --ntasks-per-node=4 sets SLURM_NTASKS_PER_NODE in the batch script, which runs alone."""
    assert local_ranks({"SLURM_NTASKS_PER_NODE": "4", "SLURM_PROCID": "0"}) == (1, None)
    assert choose_threads({"SLURM_NTASKS_PER_NODE": "4", "SLURM_PROCID": "0"}, cpus=8).count == 8


def test_never_fewer_than_one_thread():
    assert choose_threads({"LOCAL_WORLD_SIZE": "8"}, cpus=2).count == 1
    assert choose_threads({"SLURM_CPUS_PER_TASK": "1", "LOCAL_WORLD_SIZE": "4"}, cpus=4).count == 1


@pytest.mark.parametrize("variable, value", [("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "1000")])
def test_the_users_wait_policy_is_left_alone_and_shown(variable, value):
    threads = choose_threads({variable: value}, cpus=2)
    assert "OMP_WAIT_POLICY" not in threads.environment
    assert threads.describe() == (f"2 intra-op threads (the 2 CPUs this process may use; set OMP_NUM_THREADS to "
                                  f"choose) with {variable}={value}")


@pytest.mark.parametrize("environ, first", [({}, True), ({"WORLD_SIZE": "2", "RANK": "1", "SLURM_PROCID": "0"}, False),
                                            ({"WORLD_SIZE": "2", "RANK": "0"}, True), (SRUN, False),
                                            ({**SRUN, "SLURM_PROCID": "0"}, True), ({"SLURM_PROCID": "3"}, True)])
def test_first_rank_as_the_distributed_module_numbers_ranks(environ, first):
    """Only rank 0 prints the line; a batch script (SLURM_PROCID without a step) is one process."""
    assert first_rank(environ) == first


ENTRY_POINTS = ["train.py", "train_gano.py", "eval.py", "eval_gano.py", "resume.py", "resume_gano.py"]


@pytest.mark.parametrize("script", ENTRY_POINTS)
def test_every_entry_point_configures_the_threads_before_any_import(script):
    """Its first statement after the docstring: `if __name__ == "__main__"` calling configure()."""
    body = ast.parse((ROOT / script).read_text()).body
    first = body[1]
    assert isinstance(first, ast.If) and ast.unparse(first.test) == "__name__ == '__main__'"
    assert [ast.unparse(node) for node in first.body] == ["from src.threads import configure", "configure()"]


# train.py started as `python train.py` starts it (runpy, __main__), on the first CPU alone, then
# torch's thread count; libgomp prints what it read when torch loaded it (OMP_DISPLAY_ENV).
PROBE = """
import os, runpy, sys
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
sys.argv = ["train.py", "--help"]
try:
    runpy.run_path("train.py", run_name="__main__")
except SystemExit:
    pass
import torch
print(f"torch threads {torch.get_num_threads()}")
"""


ONE_CPU = (f"1 intra-op thread (the 1 CPU this process may use; set OMP_NUM_THREADS to choose) with "
           f"OMP_WAIT_POLICY={WAIT_POLICY}")


@pytest.mark.parametrize("env, threads, line, spin_count", [
    ({"OMP_NUM_THREADS": None, "OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None}, 1, ONE_CPU, "0"),
    ({"OMP_NUM_THREADS": "abc", "OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None}, 1, ONE_CPU, "0"),
    ({"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": None}, 2,
     "2 intra-op threads (OMP_NUM_THREADS=2 in the environment) with OMP_WAIT_POLICY=ACTIVE", "30000000000"),
])
@pytest.mark.slow
def test_train_py_runs_torch_with_the_threads_and_policy_it_prints(env, threads, line, spin_count):
    """The choice for 1 CPU (also in place of a bad OMP_NUM_THREADS, with a warning), and the
    user's choice, reach torch and libgomp (spin count 0: passive)."""
    result = run_command([sys.executable, "-c", PROBE], cwd=ROOT, OMP_DISPLAY_ENV="VERBOSE", **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == line
    bad = env["OMP_NUM_THREADS"] == "abc"
    assert ("warning: OMP_NUM_THREADS='abc' is not a positive integer: ignored" in result.stderr) == bad
    assert "Invalid value" not in result.stderr  # libgomp's complaint: it never saw 'abc'
    assert f"torch threads {threads}" in result.stdout
    assert f"OMP_NUM_THREADS = '{threads}'" in result.stderr and f"GOMP_SPINCOUNT = '{spin_count}'" in result.stderr


@pytest.mark.slow
def test_threads_benchmark_tabulates_every_load_and_column_and_names_the_choice():
    """One cell, beside its twin, to keep it short (four processes start torch, each in seconds)."""
    result = run_command([sys.executable, "-m", "benchmarks.threads", "--quick", "--threads", "2", "--policies",
                          "PASSIVE", "--loads", "twin"])
    assert result.returncode == 0, result.stderr[-3000:]
    # The tests' environment sets OMP_NUM_THREADS=1: the entry points would take it, with their policy.
    assert (f"would choose here 1 intra-op thread (OMP_NUM_THREADS=1 in the environment) with "
            f"OMP_WAIT_POLICY={WAIT_POLICY}: the column '1 thread, {WAIT_POLICY}'") in result.stdout
    table = [[cell.strip() for cell in line.strip("|").split("|")] for line in result.stdout.splitlines()
             if line.startswith("|") and "---" not in line]
    probe, header, rows = table[:3], table[3], table[4:]
    assert [row[0] for row in probe[1:]] == ["before `import torch`", "after `import torch`"]
    assert all(re.fullmatch(r"\d+\.\d{3}", row[1]) for row in probe[1:]), probe  # CPU seconds (the
    # property itself, libgomp reading the policy at load, is the test of train.py above)
    assert header == ["load", "2 threads, PASSIVE"]
    assert [row[0] for row in rows] == ["twin"]
    for row in rows:
        assert all(re.fullmatch(r"\d+\.\d{3} \(1\)", cell) for cell in row[1:]), row
