"""End to end: exps/main.sh and train.py on a tiny config, every output file, resuming, bad input.

The experiment scripts run from a copy of the code in a temporary folder, so that a
developer's own exps/env.sh (which main.sh sources) cannot redirect the test's results.
"""

import json
import pickle
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, TINY, run_command, snapshot
from src.config import Arguments, config_from_dict
from src.data import validation_count

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


def test_quickstart_sh_trains_the_config_it_is_given(code_copy, tmp_path):
    """`bash scripts/quickstart.sh debug` trains exps/json/debug.json and says where the results are."""
    repo, data, _ = code_copy
    result = run_command(["bash", "scripts/quickstart.sh", "debug"], cwd=repo, data_dir=data, SAVEDIR=tmp_path,
                         SLURM_JOB_ID=9)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    run_dir = tmp_path / "debug" / "9"
    assert len((run_dir / "results.json").read_text().splitlines()) == TINY["epochs"]
    assert f"Results in {run_dir}" in result.stdout and "launch_eval.py sbgm debug/9" in result.stdout


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
def test_main_sh_rejects_bad_arguments(code_copy, args, message):
    repo, data, savedir = code_copy
    result = run_command(["bash", "main.sh", *args], cwd=repo / "exps", data_dir=data, RUN_LOCAL=1, SAVEDIR=savedir)
    assert result.returncode != 0 and message in result.stderr


def test_main_sh_needs_savedir(code_copy):
    repo, data, _ = code_copy
    result = run_command(["bash", "main.sh", "sbgm", "x", "json/debug.json"], cwd=repo / "exps", data_dir=data,
                         RUN_LOCAL=1, SAVEDIR=None)
    assert result.returncode != 0 and "SAVEDIR" in result.stderr
