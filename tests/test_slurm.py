"""exps/launch_exp.sh on a real Slurm: a one-node cluster on this machine
(scripts/local_slurm.sh; skipped, saying why, where Slurm cannot be installed).

Three jobs of the tiny config (6 epochs) run side by side, each submitted as a user of a
one-node cluster would, `sbatch launch_exp.sh sbgm <name> <json>` from exps/ with only the
overrides such a cluster needs (memory, CPUs, the log's folder):

- one uninterrupted, the reference;
- one preempted after its first epoch with the signal the script's header asks for: it must
  write its checkpoint, requeue itself, resume, and end with the reference's results, bit for
  bit (both are one CPU process);
- one of 2 tasks (srun, gloo), as on 2 GPUs, preempted the same way: both ranks stop, rank 0
  writes one checkpoint, neither fails, and the job ends with the reference's results to float
  rounding.
"""

import json
import re
import subprocess
import time

import pytest
import torch

from conftest import ROOT, TINY, assert_same_state, command_environment, run_command

CONFIG = {**TINY, "epochs": 6}  # long enough to be preempted after the first epoch
USER_OVERRIDES = ["--mem=1G", "--cpus-per-task=1"]  # what this node has, beside the headers' GPU node
TIMEOUT = 300
PREEMPTED = ("preempted", "two_tasks")


def header_signal() -> str:
    """The signal that launch_exp.sh asks Slurm to send before the time limit (#SBATCH --signal)."""
    match = re.search(r"^#SBATCH --signal=(?:[RB]:)?(\w+)@", (ROOT / "exps" / "launch_exp.sh").read_text(), re.M)
    return match.group(1)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running one-node Slurm: {'SLURM_CONF': its config}; stopped after the module."""
    state = tmp_path_factory.mktemp("slurm")
    script = ROOT / "scripts" / "local_slurm.sh"
    try:
        started = subprocess.run(["bash", script, "start", state], capture_output=True, text=True, timeout=TIMEOUT)
    except OSError as error:
        pytest.skip(f"Slurm tests skipped: cannot run {script}: {error}")
    if started.returncode == 3:
        pytest.skip(f"Slurm tests skipped: Slurm cannot be installed on this machine: {started.stderr.strip()}")
    assert started.returncode == 0, started.stderr[-3000:]
    yield {"SLURM_CONF": started.stdout.strip().split("=", 1)[1]}
    subprocess.run(["bash", script, "stop", state], capture_output=True, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def jobs(slurm, tiny_data, tmp_path_factory):
    """The three jobs, run to their end: {name: (job id, sbatch's exit code, log, run directory)}."""
    base = tmp_path_factory.mktemp("slurm_jobs")
    (base / "logs").mkdir()  # Slurm never creates the folder of -o
    (base / "tiny.json").write_text(json.dumps(CONFIG))
    environment = command_environment(tiny_data, SAVEDIR=base / "results", **slurm)
    flags = {"reference": [], "preempted": [], "two_tasks": ["--ntasks-per-node=2"]}
    submitted = {}
    for name, extra in flags.items():
        # --wait: sbatch returns when the job has ended, after any requeue, with its exit code.
        process = subprocess.Popen(
            ["sbatch", "--wait", "--parsable", *USER_OVERRIDES, *extra, f"--output={base}/logs/slurm-%j.out",
             "launch_exp.sh", "sbgm", name, str(base / "tiny.json")],
            cwd=ROOT / "exps", env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        submitted[name] = (process, process.stdout.readline().strip())
    job_of = {name: job for name, (process, job) in submitted.items()}
    assert all(job.isdigit() for job in job_of.values()), job_of

    # Preempt each of them once its first epoch is done (its Python is up, its handlers set).
    waiting = {name: base / "results" / name / job_of[name] / "results.json" for name in PREEMPTED}
    deadline = time.time() + TIMEOUT
    while waiting:
        for name, results in list(waiting.items()):
            if results.exists() and results.read_text().count("\n") >= 1:
                signalled = run_command(["scancel", f"--signal={header_signal()}", job_of[name]], **slurm)
                assert signalled.returncode == 0, signalled.stderr
                del waiting[name]
        assert time.time() < deadline, f"never finished their first epoch: {sorted(waiting)}"
        time.sleep(0.2)

    ended = {}
    for name, (process, job) in submitted.items():
        process.wait(timeout=TIMEOUT)
        ended[name] = (job, process.returncode, (base / "logs" / f"slurm-{job}.out").read_text(),
                       base / "results" / name / job)
    return ended


def results(run_dir):
    return [{k: v for k, v in json.loads(line).items() if k != "time"}
            for line in (run_dir / "results.json").read_text().splitlines()]


@pytest.mark.slow
def test_launch_exp_runs_a_job_to_the_end(jobs):
    job, returncode, log, run_dir = jobs["reference"]
    assert returncode == 0, log[-3000:]
    assert "1 process" in log and f"epoch={CONFIG['epochs']} " in log
    assert len(results(run_dir)) == CONFIG["epochs"]
    assert torch.load(run_dir / "model.pt", weights_only=True)["epoch"] == CONFIG["epochs"]
    assert (run_dir / "code" / "train.py").exists()  # the job ran its own copy of the code


def test_a_preempted_job_requeues_resumes_and_ends_as_if_never_stopped(jobs):
    job, returncode, log, run_dir = jobs["preempted"]
    assert returncode == 0, log[-3000:]
    assert f"SIG{header_signal()}: stopped" in log
    assert f"scontrol requeue {job}: done" in log
    assert "Resuming from" in log  # the requeued job, in the same log (--open-mode=append)
    reference = jobs["reference"][3]
    assert results(run_dir) == results(reference)
    for name in ("model.pt", "model.w_total.pt"):
        assert_same_state(torch.load(run_dir / name, weights_only=True),
                          torch.load(reference / name, weights_only=True))


def test_two_tasks_train_as_two_gloo_ranks_and_survive_a_preemption(jobs):
    job, returncode, log, run_dir = jobs["two_tasks"]
    assert returncode == 0, log[-3000:]
    assert "2 processes (gloo)" in log and "(4 per process)" in log
    assert re.search(r"^1: rank 1 of 2", log, re.M)  # srun --label: every rank's lines, labelled
    first_run, resumed = log.split("DUE TO JOB REQUEUE", 1)
    assert len(re.findall(r"^0: SIGUSR1: stopped .* written$", first_run, re.M)) == 1  # rank 0, once
    assert "Exited with exit code" not in first_run and "Traceback" not in first_run  # no rank failed
    assert "0: Resuming from" in resumed and "1: rank 1 of 2" in resumed
    reference = jobs["reference"][3]
    for line, expected in zip(results(run_dir), results(reference), strict=True):
        assert line == pytest.approx(expected, rel=1e-5, abs=1e-7)
    weights = torch.load(run_dir / "model.pt", weights_only=True)["weights"]
    for name, value in torch.load(reference / "model.pt", weights_only=True)["weights"].items():
        assert torch.allclose(weights[name], value, rtol=0, atol=1e-5), name
