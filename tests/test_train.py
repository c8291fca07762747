"""End to end: exps/main.sh and train.py on a tiny config, every output file, resuming, bad input.

The experiment scripts run from a copy of the code in a temporary folder, so that a
developer's own exps/env.sh (which main.sh sources) cannot redirect the test's results.
"""

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, TINY, command_environment, run_command, snapshot
from src.config import config_from_dict
from src.data import validation_count
from src.methods.diffusion import Arguments

# The original's checkpoint metrics: model.<metric>.pt and samples/best_<metric>.* are its output files.
METRICS = ("w_skew", "w_var", "w_total", "mean_image_l2", "mean_image_phase_l2")
RES = TINY["resolution"] - TINY["npad"]
N_VALID = validation_count(TINY["ntrain"], TINY["val_size"])


@pytest.fixture(scope="module")
def code_copy(tmp_path_factory, tiny_data):
    """A copy of the repository's code (no env.sh, no .venv) and tiny synthetic data."""
    base = tmp_path_factory.mktemp("train")
    repo = base / "repo"
    repo.mkdir()
    for name in ("train.py", "resume.py", "eval.py", "train_gano.py", "resume_gano.py", "eval_gano.py", "plot_stats.py",
                 "requirements.txt"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "exps", repo / "exps", ignore=shutil.ignore_patterns("env.sh"))
    shutil.copytree(ROOT / "scripts", repo / "scripts")
    # A .venv that scripts/setup_venv.sh takes as up to date: this interpreter, stamped.
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / ".venv" / "bin" / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (repo / ".venv" / "bin" / "python").chmod(0o755)
    shutil.copy(ROOT / "requirements.txt", repo / ".venv" / ".requirements.txt")
    return repo, tiny_data, base / "saved"


@pytest.fixture(scope="module")
def local_run(code_copy):
    """`RUN_LOCAL=1 SLURM_JOB_ID=77 bash main.sh sbgm tiny json/debug.json` from exps/, as the README says."""
    repo, data, savedir = code_copy
    result = run_command(["bash", "main.sh", "sbgm", "tiny", "json/debug.json"], cwd=repo / "exps", data_dir=data,
                         RUN_LOCAL=1, SLURM_JOB_ID=77, SAVEDIR=savedir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return savedir / "tiny" / "77", result


def assert_png(path):
    with Image.open(path) as image:
        image.load()
        assert min(image.size) > 50, path


@pytest.mark.slow
def test_every_output_file_exists_and_is_valid(local_run):
    run_dir, _ = local_run
    config = json.loads((run_dir / "config.json").read_text())
    assert config == {**config, **TINY}  # the json file's values, and every default besides
    assert set(config) == {field for field in vars(Arguments())}

    lines = [json.loads(line) for line in (run_dir / "results.json").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == list(range(1, TINY["epochs"] + 1))
    for line in lines:
        assert {"loss", "loss_valid", "epoch", "lr", "time", "w_rough", *METRICS} <= set(line)
        assert all(np.isfinite(line[key]) for key in ("loss", "loss_valid", "w_rough", *METRICS))

    with open(run_dir / "gt_stats.pkl", "rb") as f:
        gt = pickle.load(f)
    assert gt["var"].shape == gt["skew"].shape == (TINY["ntrain"] - N_VALID,)

    for name in ("model.pt", *(f"model.{metric}.pt" for metric in METRICS)):
        state = torch.load(run_dir / name, weights_only=True)
        assert {"weights", "ema", "optimizer", "metrics", "last_epoch"} <= set(state), name
        assert set(state["metrics"]) == set(METRICS)
    final = torch.load(run_dir / "model.pt", weights_only=True)
    assert final["last_epoch"] == TINY["epochs"] - 1
    assert final["metrics"]["w_total"] == min(line["w_total"] for line in lines)

    pngs = ["u_noised.png", "u_prior.png", "mean_subsamples.png", "samples/1.png", "samples/2.png",
            "samples/mean_sample_1.png", "samples/mean_sample_2.png",
            *(f"noise/{n}.png" for n in ("noise_samples", "init_samples", "noise_sampler_C")),
            *(f"samples/best_{m}.png" for m in METRICS)]
    for name in pngs:
        assert_png(run_dir / name)
    for name in ["samples/1.pdf", "noise/noise_samples.pdf", "noise/init_samples.pdf", "noise/noise_sampler_C.pdf",
                 *(f"samples/best_{m}.pdf" for m in METRICS)]:
        assert (run_dir / name).read_bytes()[:5] == b"%PDF-", name
    for metric in METRICS:
        with open(run_dir / "samples" / f"best_{metric}.pkl", "rb") as f:
            best = pickle.load(f)
        assert best["samples"].shape[1:] == (RES, RES, 2) and best[metric] == final["metrics"][metric]
    assert not list(run_dir.rglob("*.tmp*")), "temporary files left behind"


def test_local_run_uses_the_checkout(local_run, code_copy):
    run_dir, result = local_run
    assert not (run_dir / "code").exists()
    assert f"code:    {code_copy[0]}" in result.stdout


@pytest.mark.slow
def test_training_resumes_from_model_pt(local_run, code_copy):
    """A restarted job (more epochs in --cfg, but the saved config wins) continues where it stopped."""
    run_dir, _ = local_run
    repo, data, _ = code_copy
    before = torch.load(run_dir / "model.pt", weights_only=True)
    longer = repo / "longer.json"
    longer.write_text(json.dumps({**TINY, "epochs": TINY["epochs"] + 1}))
    result = run_command([sys.executable, "train.py", "--cfg", longer, "--savedir", run_dir, "--override_cfg"],
                         cwd=repo, data_dir=data)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming from" in result.stdout and f"at epoch {TINY['epochs'] + 1}" in result.stdout
    lines = [json.loads(line) for line in (run_dir / "results.json").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == list(range(1, TINY["epochs"] + 2))
    after = torch.load(run_dir / "model.pt", weights_only=True)
    assert after["last_epoch"] == TINY["epochs"]
    assert any(not torch.equal(before["weights"][k], after["weights"][k]) for k in before["weights"])


@pytest.mark.slow
def test_validation_leaves_training_unchanged(code_copy, tmp_path):
    """Validation samples from a stream of its own: record_interval 1 and 2 train the same weights."""
    repo, data, _ = code_copy
    weights = []
    for record_interval in (1, 2):
        cfg = tmp_path / f"record{record_interval}.json"
        cfg.write_text(json.dumps({**TINY, "record_interval": record_interval}))
        run_dir = tmp_path / f"run{record_interval}"
        result = run_command([sys.executable, "train.py", "--cfg", cfg, "--savedir", run_dir], cwd=repo, data_dir=data)
        assert result.returncode == 0, result.stderr[-3000:]
        weights.append(torch.load(run_dir / "model.pt", weights_only=True)["weights"])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_cosine_schedule_decays_the_lr_to_zero_over_the_run():
    from src.training import learning_rate
    args = config_from_dict({"lr": 1e-3, "lr_schedule": "cosine"})
    assert [learning_rate(args, step, 100) for step in (0, 50, 100)] == pytest.approx([1e-3, 5e-4, 0.0], abs=1e-12)
    constant = config_from_dict({"lr": 1e-3})
    assert {learning_rate(constant, step, 100) for step in (0, 50, 99)} == {1e-3}


@pytest.mark.slow
def test_cosine_schedule_resumes_where_it_stopped(code_copy, tmp_path):
    """The lr is a function of the step: a run resumed after epoch 1 goes on with the uninterrupted run's lrs."""
    repo, data, _ = code_copy
    cosine = {**TINY, "lr_schedule": "cosine", "epochs": 3, "record_interval": 3}
    lrs = []
    for name, stops in (("straight", [3]), ("resumed", [1, 3])):
        run_dir = tmp_path / name
        for epochs in stops:
            cfg = tmp_path / f"{name}{epochs}.json"
            cfg.write_text(json.dumps({**cosine, "epochs": epochs}))
            result = run_command([sys.executable, "train.py", "--cfg", cfg, "--savedir", run_dir, "--override_cfg"],
                                 cwd=repo, data_dir=data)
            assert result.returncode == 0, result.stderr[-3000:]
        lrs.append([json.loads(line)["lr"] for line in (run_dir / "results.json").read_text().splitlines()])
    assert len(lrs[0]) == 3 and lrs[0][2] < lrs[0][1] < lrs[0][0] < Arguments().lr
    # Epoch 1 of the resumed run was trained as a 1-epoch run; from epoch 2 on both follow the 3-epoch cosine.
    assert lrs[1][1:] == pytest.approx(lrs[0][1:])


@pytest.mark.slow
def test_a_checkpoint_that_does_not_fit_the_config_changes_nothing(local_run, code_copy):
    run_dir, _ = local_run
    repo, data, _ = code_copy
    before = snapshot(run_dir)
    wider = repo / "wider.json"
    wider.write_text(json.dumps({**TINY, "d_co_domain": 8}))
    result = run_command([sys.executable, "train.py", "--cfg", wider, "--savedir", run_dir, "--override_cfg"],
                         cwd=repo, data_dir=data)
    assert result.returncode != 0
    assert "model.pt" in result.stderr and "does not fit" in result.stderr
    assert snapshot(run_dir) == before


@pytest.mark.slow
def test_quickstart_sh_trains_the_config_it_is_given(code_copy, tmp_path):
    """`bash scripts/quickstart.sh debug` trains exps/json/debug.json and says where the results are."""
    repo, data, _ = code_copy
    result = run_command(["bash", "scripts/quickstart.sh", "debug"], cwd=repo, data_dir=data, SAVEDIR=tmp_path,
                         SLURM_JOB_ID=9)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    run_dir = tmp_path / "debug" / "9"
    assert len((run_dir / "results.json").read_text().splitlines()) == TINY["epochs"]
    assert f"Results in {run_dir}" in result.stdout and "launch_eval.py sbgm debug/9" in result.stdout


@pytest.mark.slow
def test_quickstart_sh_trains_a_gano_config_as_method_gan(code_copy, tmp_path):
    repo, data, _ = code_copy
    result = run_command(["bash", "scripts/quickstart.sh", "gano-debug"], cwd=repo, data_dir=data, SAVEDIR=tmp_path,
                         SLURM_JOB_ID=9)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert torch.load(tmp_path / "gano-debug" / "9" / "model.pt", weights_only=True)["method"] == "gan"
    assert "launch_eval.py gan gano-debug/9" in result.stdout


def test_quickstart_sh_names_an_unknown_config(code_copy, tmp_path):
    repo, data, _ = code_copy
    result = run_command(["bash", "scripts/quickstart.sh", "quickstrat"], cwd=repo, data_dir=data, SAVEDIR=tmp_path)
    assert result.returncode == 2
    assert "exps/json/quickstrat.json" in result.stderr and "debug" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_slurm_mode_copies_the_code_and_runs_the_copy(code_copy):
    repo, data, savedir = code_copy
    one_epoch = {**TINY, "epochs": 1}
    (repo / "exps" / "json" / "one.json").write_text(json.dumps(one_epoch))
    result = run_command(["bash", "main.sh", "sbgm", "copied", "json/one.json"], cwd=repo / "exps", data_dir=data,
                         SLURM_JOB_ID=5, SAVEDIR=savedir)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = savedir / "copied" / "5"
    assert (run_dir / "code" / "train.py").is_file() and (run_dir / "code" / "src" / "diffusion.py").is_file()
    assert (run_dir / "model.w_total.pt").is_file()


@pytest.mark.parametrize("args, message", [
    (["gan", "x", "json/debug.json"], "belongs to method 'sbgm'"),
    (["sbgm", "x", "json/gano-debug.json"], "belongs to method 'gan'"),
    (["vae", "x", "json/debug.json"], "unknown method"),
    (["sbgm", "x", "json/missing.json"], "config file not found"),
])
@pytest.mark.slow
def test_main_sh_rejects_bad_arguments(code_copy, args, message):
    repo, data, savedir = code_copy
    result = run_command(["bash", "main.sh", *args], cwd=repo / "exps", data_dir=data, RUN_LOCAL=1, SAVEDIR=savedir)
    assert result.returncode != 0 and message in result.stderr


def test_main_sh_needs_savedir(code_copy):
    repo, data, _ = code_copy
    result = run_command(["bash", "main.sh", "sbgm", "x", "json/debug.json"], cwd=repo / "exps", data_dir=data,
                         RUN_LOCAL=1, SAVEDIR=None)
    assert result.returncode == 2 and "SAVEDIR is not set" in result.stderr


# ---------------------------------------------------------------------------
# Outside Slurm: the original README's recipe (SLURM_JOB_ID set by hand), stops, finished runs

@pytest.fixture
def no_slurm_tools(tmp_path):
    """PATH with an `srun` and an `scontrol` that record their calls and fail, as where Slurm is absent."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("srun", "scontrol"):
        (tools / tool).write_text(f'#!/bin/sh\necho "{tool} $@" >> {tmp_path / "slurm_calls.log"}\nexit 1\n')
        (tools / tool).chmod(0o755)
    return {"PATH": f"{tools}:{Path(sys.executable).parent}:/usr/bin:/bin"}, tmp_path / "slurm_calls.log"


@pytest.mark.slow
def test_a_users_slurm_job_id_runs_the_launchers_in_the_foreground(code_copy, no_slurm_tools, tmp_path):
    """`SLURM_JOB_ID=123 bash launch_exp.sh ...`, resume_exp.sh and launch_eval.sh, as the original README
    says to run without Slurm: no srun, and a finished run given again changes nothing."""
    repo, data, _ = code_copy
    path, calls = no_slurm_tools
    savedir, exps = tmp_path / "saved", repo / "exps"
    result = run_command(["bash", "launch_exp.sh", "sbgm", "lx", "json/debug.json"], cwd=exps, data_dir=data,
                         SLURM_JOB_ID=123, SAVEDIR=savedir, **path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    run_dir = savedir / "lx" / "123"
    assert len((run_dir / "results.json").read_text().splitlines()) == TINY["epochs"]
    assert (run_dir / "code" / "train.py").is_file()  # not RUN_LOCAL: the run's own copy of the code

    before = snapshot(run_dir)
    for command in (["bash", "resume_exp.sh", "sbgm", "lx", "123"],
                    [sys.executable, "resume.py", run_dir],
                    [sys.executable, "train.py", "--cfg", "exps/json/debug.json", "--savedir", run_dir]):
        result = run_command(command, cwd=exps if command[0] == "bash" else repo, data_dir=data, SLURM_JOB_ID=123,
                             SAVEDIR=savedir, **path)
        assert result.returncode == 0, command
        assert f"{run_dir} is finished: {run_dir / 'model.pt'} is the end of epoch 2 of 2" in result.stdout, command
        assert snapshot(run_dir) == before, command
    assert "Resuming" not in result.stdout
    assert f"Using the config saved in {run_dir / 'config.json'}, not --cfg exps/json/debug.json" in result.stdout

    result = run_command(["bash", "launch_eval.sh", "sbgm", "lx/123", "--mode=generate", "--Ntest=4",
                          "--val_batch_size=4"], cwd=exps, data_dir=data, SLURM_JOB_ID=123, SAVEDIR=savedir, **path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert (run_dir / "eval" / "metrics.model.w_total.pt.json").is_file()
    assert not calls.exists(), calls.read_text()


@pytest.mark.slow
def test_a_stopped_local_run_says_how_to_resume_and_requeues_nothing(code_copy, no_slurm_tools, tmp_path):
    """quickstart.sh (SLURM_JOB_ID set by hand) stopped by SIGTERM: exit 75 (not finished), the resume command,
    no scontrol; then the printed command finishes the run."""
    repo, data, _ = code_copy
    path, calls = no_slurm_tools
    (repo / "exps" / "json" / "long.json").write_text(json.dumps({**TINY, "epochs": 1000, "record_interval": 1000}))
    savedir = tmp_path / "saved"
    run_dir = savedir / "long" / "8"
    process = subprocess.Popen(["bash", "scripts/quickstart.sh", "long"], cwd=repo, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=command_environment(data, SAVEDIR=savedir, SLURM_JOB_ID=8, **path))
    deadline = time.time() + 300
    while not (run_dir / "results.json").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    trainer = subprocess.run(["pgrep", "-f", f"train.py --cfg .* --savedir {run_dir}"],
                             capture_output=True, text=True).stdout.split()
    assert trainer, "train.py is not running"
    for pid in trainer:
        os.kill(int(pid), signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 75, stdout[-2000:] + stderr[-3000:]
    epochs_done = len((run_dir / "results.json").read_text().splitlines())
    assert f"resume it with: python resume.py {run_dir}" in stdout and "Done." not in stdout
    resume = f"(cd exps && DATA_DIR={data} SAVEDIR={savedir} bash resume.sh sbgm long 8)"
    assert f"quickstart.sh: training stopped at epoch {epochs_done + 1}; resume with: {resume}" in stderr
    assert not calls.exists(), calls.read_text()
    state = torch.load(run_dir / "model.pt", weights_only=True)
    assert state["epoch"] * 4 + state["step"] >= 4 * epochs_done  # the stop wrote its step's checkpoint


@pytest.mark.slow
def test_main_sh_checks_config_and_data_before_making_anything(code_copy, tmp_path):
    repo, data, _ = code_copy
    savedir = tmp_path / "saved"
    (repo / "exps" / "json" / "typo.json").write_text(json.dumps({**TINY, "epoch": 3}))
    (repo / "exps" / "json" / "quoted.json").write_text(json.dumps({**TINY, "rbf_scale": "0.1"}))
    empty = tmp_path / "empty"
    empty.mkdir()
    for cfg, data_dir, message in (("json/typo.json", data, "epoch"), ("json/quoted.json", data, "rbf_scale"),
                                   ("json/debug.json", empty, f"no .int files under {empty}")):
        for local in (1, None):  # the checkout, and a run's own copy of the code (Slurm's way)
            result = run_command(["bash", "main.sh", "sbgm", "x", cfg], cwd=repo / "exps", data_dir=data_dir,
                                 RUN_LOCAL=local, SLURM_JOB_ID=3, SAVEDIR=savedir)
            assert result.returncode == 2 and message in result.stderr, (cfg, result.stderr[-2000:])
            assert not savedir.exists(), cfg


def test_quickstart_sh_refuses_extra_arguments(code_copy, tmp_path):
    repo, data, _ = code_copy
    result = run_command(["bash", "scripts/quickstart.sh", "gano-quickstart", "--help"], cwd=repo, data_dir=data,
                         SAVEDIR=tmp_path / "saved")
    assert result.returncode == 2 and "usage: bash scripts/quickstart.sh" in result.stderr
    assert not (tmp_path / "saved").exists()
    result = run_command(["bash", "scripts/quickstart.sh", "--help"], cwd=repo, data_dir=data)
    assert result.returncode == 0 and "gano-quickstart" in result.stderr
