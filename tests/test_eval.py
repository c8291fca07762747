"""Tests of the evaluation: eval.py (generate, superres, plot), plot_stats.py, exps/launch_eval.*.

One tiny experiment is trained once per module (train.py in a subprocess, on 48 synthetic
files) and then evaluated in every mode; the tests check the files that come out (pickles,
figures, shapes), the printed Wasserstein distances against scipy, the launchers, the error
messages, and that the experiment directory itself is never changed.
"""

import json
import os
import pickle
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import wasserstein_distance

import eval as eval_script
import plot_stats
from conftest import ROOT, TINY, copy_run, launcher_copy, run_command, snapshot
from src.config import load_config
from src.data import validation_count
from src.evaluation import EvaluationError, find_sample_factors, load_experiment, read_stats, samples_name
from src.files import atomic_paths, write_outputs
from src.metrics import circular_stats
from src.plotting import GRID_PRESETS, page_indices
from src.score_network import UNOScoreNetwork

CHECKPOINT = "model.w_total.pt"
N_SAMPLES = 10
RES = TINY["resolution"] - TINY["npad"]
N_TRAIN = TINY["ntrain"] - validation_count(TINY["ntrain"], TINY["val_size"])


def eval_py(exp_dir, savedir, mode, data_dir, *extra):
    return run_command([sys.executable, ROOT / "eval.py", f"--exp_name={exp_dir}", f"--savedir={savedir}", f"--mode={mode}",
                f"--Ntest={N_SAMPLES}", "--val_batch_size=5", *extra], data_dir=data_dir)


def printed_metrics(stdout: str, header: str = "") -> dict:
    """The ``name = value`` lines printed after the first line containing ``header``."""
    text = stdout[stdout.index(header):] if header else stdout
    metrics = {}
    for name, value in re.findall(r"^\s+(w_var|w_skew|w_total|w_rough|mean_image_l2|mean_image_phase_l2) = (\S+)$",
                                  text, flags=re.MULTILINE):
        metrics.setdefault(name, float(value))
    return metrics


def scipy_distances(real: dict, generated: dict) -> dict:
    w_var = wasserstein_distance(real["var"], generated["var"])
    w_skew = wasserstein_distance(real["skew"], generated["skew"])
    return {"w_var": w_var, "w_skew": w_skew, "w_total": w_var + w_skew}


def assert_distances_printed(printed: dict, real: dict, generated: dict):
    for name, expected in scipy_distances(real, generated).items():
        assert printed[name] == pytest.approx(expected, rel=1e-6, abs=1e-9), name


def load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def assert_image(path: Path, min_side: int = 50):
    with Image.open(path) as image:
        image.load()  # decodes the whole file
        assert min(image.size) >= min_side, path


def assert_pdf(path: Path):
    assert path.read_bytes()[:5] == b"%PDF-", path


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, tiny_data, tiny_run):
    """(experiment dir, data dir): a copy of the session's tiny run, which this module evaluates into."""
    exp_dir = copy_run(tiny_run, tmp_path_factory.mktemp("eval") / "runs" / "tiny" / "1")
    assert (exp_dir / CHECKPOINT).is_file()
    return exp_dir, tiny_data


@pytest.fixture(scope="module")
def evaluated(experiment):
    """eval.py in every mode into <exp>/eval; the stdout of each and snapshots of the experiment."""
    exp_dir, data_dir = experiment
    before = snapshot(exp_dir)
    stdout = {}
    for mode, extra in (("generate", ()), ("superres", ("--factor=2",)), ("plot", ())):
        result = eval_py(exp_dir, exp_dir / "eval", mode, data_dir, *extra)
        assert result.returncode == 0, f"{mode}: {result.stderr[-3000:]}"
        stdout[mode] = result.stdout
    return {"exp_dir": exp_dir, "savedir": exp_dir / "eval", "data_dir": data_dir, "stdout": stdout,
            "before": before, "after": snapshot(exp_dir)}


# ---------------------------------------------------------------------------
# eval.py, every mode

@pytest.mark.slow
def test_generate_writes_samples_stats_and_prints_scipy_distances(evaluated):
    savedir, exp_dir = evaluated["savedir"], evaluated["exp_dir"]
    record = load(savedir / f"samples.{CHECKPOINT}.pkl")
    stats = load(savedir / f"stats.{CHECKPOINT}.pkl")
    gt = load(exp_dir / "gt_stats.pkl")

    samples = record["samples"]
    assert samples.shape == (N_SAMPLES, RES, RES, 2) and samples.dtype == np.float32
    assert np.isfinite(samples).all()
    assert set(stats) == {"var", "skew"}
    assert all(isinstance(stats[k], np.ndarray) and stats[k].shape == (N_SAMPLES,) for k in stats)
    # The statistics are those of the samples, in both pickles.
    recomputed = circular_stats(torch.from_numpy(samples))
    for key in ("var", "skew"):
        np.testing.assert_allclose(stats[key], recomputed[key], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(record[key], stats[key])
    # DATA_DIR was set: the mean training function is stored for the mean image figure.
    assert record["data_mean"].shape == (RES, RES, 2)
    assert record["checkpoint"] == CHECKPOINT and record["factor"] == 1
    assert record["epoch"] == torch.load(exp_dir / CHECKPOINT, weights_only=True)["last_epoch"] + 1

    printed = printed_metrics(evaluated["stdout"]["generate"])
    assert_distances_printed(printed, gt, stats)
    metrics = json.loads((savedir / f"metrics.{CHECKPOINT}.json").read_text())
    # Before sampling, its cost: the evaluations (the tiny config's 5 levels x 2 Langevin steps), then the
    # first batch's time and what it predicts for both.
    evaluations = TINY["L"] * TINY["T"]
    assert metrics["network_evaluations"] == evaluations
    assert (f"{evaluations} network evaluations a function: {evaluations * N_SAMPLES} in all, in 2 batch(es) of 5"
            in evaluated["stdout"]["generate"])
    assert re.search(r"The first batch took [0-9.]+ s: about [0-9.]+ (s|min) for all 2", evaluated["stdout"]["generate"])
    assert metrics["w_total"] == pytest.approx(printed["w_total"], rel=1e-6)
    assert metrics["mean_image_l2"] == pytest.approx(printed["mean_image_l2"], rel=1e-6)
    assert metrics["n_samples"] == N_SAMPLES and metrics["resolution"] == RES
    assert metrics["w_rough"] == pytest.approx(printed["w_rough"], rel=1e-6)


def test_superres_samples_on_a_twice_finer_grid(evaluated):
    savedir, exp_dir = evaluated["savedir"], evaluated["exp_dir"]
    record = load(savedir / f"samples_2x.{CHECKPOINT}.pkl")
    stats = load(savedir / f"stats_2x.{CHECKPOINT}.pkl")
    gt_2x = load(savedir / "gt_stats_2x.pkl")
    gt = load(exp_dir / "gt_stats.pkl")

    assert record["samples"].shape == (N_SAMPLES, 2 * RES, 2 * RES, 2)
    assert record["data_mean"].shape == (2 * RES, 2 * RES, 2)
    assert record["factor"] == 2 and record["resolution"] == 2 * RES
    assert stats["var"].shape == stats["skew"].shape == (N_SAMPLES,)
    # The same training split at twice the resolution: as many functions, similar statistics.
    assert gt_2x["var"].shape == gt["var"].shape == (N_TRAIN,)
    assert not np.array_equal(gt_2x["var"], gt["var"])
    np.testing.assert_allclose(gt_2x["var"], gt["var"], atol=0.1)
    assert_distances_printed(printed_metrics(evaluated["stdout"]["superres"]), gt_2x, stats)
    # 32 px is within the 128 px files' grid: no note that the ground truth is interpolated.
    assert "interpolated" not in evaluated["stdout"]["superres"]


@pytest.mark.parametrize("postfix", ["", "_2x"])
def test_plot_writes_every_figure(evaluated, postfix):
    savedir = evaluated["savedir"]
    for preset in GRID_PRESETS:
        for page in range(4):
            assert_image(savedir / f"samples{postfix}.{CHECKPOINT}.{preset}.{page}.png", min_side=200)
            assert_pdf(savedir / f"samples{postfix}.{CHECKPOINT}.{preset}.{page}.pdf")
    for kind in ("mean_sample", "stats"):
        assert_image(savedir / f"{kind}{postfix}.{CHECKPOINT}.png")
        assert_pdf(savedir / f"{kind}{postfix}.{CHECKPOINT}.pdf")
    # The distances in the figure titles, printed, are scipy's on the pickles.
    gt = load(savedir / "gt_stats_2x.pkl") if postfix else load(evaluated["exp_dir"] / "gt_stats.pkl")
    stats = load(savedir / f"stats{postfix}.{CHECKPOINT}.pkl")
    printed = printed_metrics(evaluated["stdout"]["plot"], header=f"stats{postfix}.{CHECKPOINT}.pkl against")
    assert_distances_printed(printed, gt, stats)
    assert not list(savedir.glob(".*")), "temporary files left behind"


def test_eval_never_changes_the_experiment_directory(evaluated):
    before, after = evaluated["before"], evaluated["after"]
    assert not any(name.startswith("eval/") for name in before)
    # Every earlier file is still there, byte for byte; new files are only under eval/.
    assert {name: digest for name, digest in after.items() if not name.startswith("eval/")} == before
    assert any(name.startswith("eval/") for name in after)


def test_same_seed_same_samples_and_generate_without_data(experiment, tmp_path, monkeypatch, capsys):
    exp_dir, _ = experiment
    monkeypatch.delenv("DATA_DIR", raising=False)
    samples = []
    for savedir, seed in (("a", 3), ("b", 3), ("c", 4)):
        assert eval_script.main([f"--exp_name={exp_dir}", f"--savedir={tmp_path / savedir}", "--mode=generate",
                                 "--Ntest=3", "--val_batch_size=3", f"--seed={seed}"]) == 0
        samples.append(load(tmp_path / savedir / f"samples.{CHECKPOINT}.pkl"))
    np.testing.assert_array_equal(samples[0]["samples"], samples[1]["samples"])
    assert not np.array_equal(samples[0]["samples"], samples[2]["samples"])
    # Without DATA_DIR: the Wasserstein distances (from gt_stats.pkl) but no data mean.
    assert samples[0]["data_mean"] is None
    assert set(samples[0]["metrics"]) == {"w_var", "w_skew", "w_total"}
    assert "DATA_DIR is not set" in capsys.readouterr().out


@pytest.mark.slow
def test_sampler_flags_sample_another_way_into_files_of_their_own(evaluated, tmp_path, capsys):
    """--sampler changes the sampler for one evaluation; its outputs sit beside the config's,
    named after the change, and record the sampler and its network calls."""
    exp_dir, data_dir = evaluated["exp_dir"], evaluated["data_dir"]
    savedir = tmp_path / "eval"
    shutil.copytree(evaluated["savedir"], savedir)
    before = snapshot(savedir)
    flags = ["--sampler", "sampler=heun", "sampler_steps=3"]
    for mode in ("generate", "plot"):
        result = eval_py(exp_dir, savedir, mode, data_dir, *flags)
        assert result.returncode == 0, result.stderr[-3000:]
    label = f"{CHECKPOINT}.sampler=heun.sampler_steps=3"
    metrics = json.loads((savedir / f"metrics.{label}.json").read_text())
    assert metrics["network_evaluations"] == 5
    assert metrics["sampler"]["sampler"] == "heun" and metrics["sampler"]["sampler_steps"] == 3
    assert load(savedir / f"samples.{label}.pkl")["samples"].shape == (N_SAMPLES, RES, RES, 2)
    assert (savedir / f"stats.{label}.png").exists()
    after = snapshot(savedir)
    assert {name: after[name] for name in before} == before  # the config's own outputs untouched
    # The config's sampler, recorded the same way.
    assert json.loads((savedir / f"metrics.{CHECKPOINT}.json").read_text())["network_evaluations"] == \
        TINY["L"] * TINY["T"]


@pytest.mark.parametrize("flags, message", [
    (["--sampler", "d_co_domain=8"], "d_co_domain is not a sampler key"),
    (["--sampler", "sampler=ddim"], "sampler"),
    (["--sampler", "sampler_steps=0"], "sampler_steps"),
])
def test_bad_sampler_flags_are_refused_naming_the_key(experiment, tmp_path, capsys, flags, message):
    exp_dir, _ = experiment
    assert eval_script.main([f"--exp_name={exp_dir}", f"--savedir={tmp_path / 'eval'}", "--mode=generate",
                             *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "eval").exists()


# ---------------------------------------------------------------------------
# Errors

@pytest.mark.slow
def test_load_experiment_gives_the_score_network_and_config_of_a_run_of_ours(experiment):
    exp_dir, _ = experiment
    network, args = load_experiment(exp_dir, CHECKPOINT, device="cpu")
    assert isinstance(network, UNOScoreNetwork) and not network.training
    assert args == load_config(exp_dir / "config.json")
    state = torch.load(exp_dir / CHECKPOINT, weights_only=True)
    x, sigma = torch.randn(3, RES, RES, 2), torch.tensor([0.01, 0.1, 1.0])
    with torch.no_grad():
        score = network(x, sigma)
        raw, _ = load_experiment(exp_dir, CHECKPOINT, use_ema=False)
        assert score.shape == x.shape and not torch.allclose(raw(x, sigma), score)  # the EMA samples
    assert all(torch.equal(value, state["ema"][name]) for name, value in network.state_dict().items())


@pytest.mark.slow
def test_missing_checkpoint_lists_the_existing_ones(experiment, tmp_path):
    exp_dir, data_dir = experiment
    result = eval_py(exp_dir, tmp_path / "out", "generate", data_dir, "--checkpoint=model.w_nope.pt")
    assert result.returncode != 0
    assert "model.w_nope.pt not found" in result.stderr
    for name in ("model.pt", "model.w_total.pt", "model.w_var.pt", "model.w_skew.pt"):
        assert name in result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_experiment_directory_and_config(experiment, tmp_path, capsys):
    exp_dir, _ = experiment
    missing = exp_dir.parent / "2"
    assert eval_script.main([f"--exp_name={missing}", f"--savedir={tmp_path / 'out'}", "--mode=generate"]) == 2
    error = capsys.readouterr().err
    assert f"{missing} does not exist" in error and "experiments in" in error and ": 1" in error

    no_config = tmp_path / "no_config"
    no_config.mkdir()
    (no_config / "model.w_var.pt").write_bytes(b"")
    assert eval_script.main([f"--exp_name={no_config}", f"--savedir={tmp_path / 'out'}", "--mode=plot"]) == 2
    error = capsys.readouterr().err
    assert "no config.json" in error and "model.w_var.pt" in error
    assert not (tmp_path / "out").exists()


@pytest.fixture
def copied_experiment(experiment, tmp_path):
    """A copy of the tiny experiment with a copy of its evaluation, to break things in."""
    exp_dir, _ = experiment
    copy = tmp_path / "exp"
    shutil.copytree(exp_dir, copy, ignore=shutil.ignore_patterns("*.png", "*.pdf"))
    return copy


def test_bad_input_leaves_earlier_results_alone(evaluated, copied_experiment, monkeypatch, capsys):
    exp_dir, savedir = copied_experiment, copied_experiment / "eval"
    monkeypatch.setenv("DATA_DIR", str(evaluated["data_dir"]))
    before = snapshot(exp_dir)

    def eval_main(*flags):
        return eval_script.main([f"--exp_name={exp_dir}", f"--savedir={savedir}", "--Ntest=2", *flags])

    (exp_dir / "model.w_var.pt").write_bytes(b"not a checkpoint")  # a truncated download, say
    assert eval_main("--mode=generate", "--checkpoint=model.w_var.pt") == 2
    assert "not a readable checkpoint" in capsys.readouterr().err

    original_config = (exp_dir / "config.json").read_text()
    config = json.loads(original_config)
    (exp_dir / "config.json").write_text(json.dumps({**config, "d_co_domain": 8}))
    assert eval_main("--mode=generate") == 2
    assert "does not fit the experiment's config.json" in capsys.readouterr().err
    (exp_dir / "config.json").write_text(original_config)

    monkeypatch.setenv("DATA_DIR", str(exp_dir / "no_data"))
    assert eval_main("--mode=superres") == 2
    assert "not a directory" in capsys.readouterr().err
    monkeypatch.delenv("DATA_DIR")
    assert eval_main("--mode=superres") == 2
    assert "DATA_DIR" in capsys.readouterr().err
    assert eval_main("--mode=superres", "--factor=1") == 2

    (savedir / f"stats.{CHECKPOINT}.pkl").write_bytes(b"garbage")
    assert eval_main("--mode=plot") == 2
    assert "not a readable pickle" in capsys.readouterr().err

    after = snapshot(exp_dir)
    changed = {name for name in before if before[name] != after.get(name)}
    assert changed == {"model.w_var.pt", f"eval/stats.{CHECKPOINT}.pkl"}  # the two files broken here
    assert set(after) == set(before)


def test_plot_without_samples_says_what_to_run(experiment, tmp_path, capsys):
    exp_dir, _ = experiment
    assert eval_script.main([f"--exp_name={exp_dir}", f"--savedir={tmp_path}", "--mode=plot",
                             "--checkpoint=model.w_var.pt"]) == 2
    assert "run --mode=generate or --mode=superres first" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# Launchers

@pytest.fixture
def repository_copy(tmp_path):
    """exps/launch_eval.{py,sh} in a tree like the repository's (see `conftest.launcher_copy`)."""
    return launcher_copy(tmp_path / "repo")


@pytest.mark.slow
def test_launcher_runs_eval_on_savedir_experiment(experiment, repository_copy, tmp_path):
    exp_dir, data_dir = experiment
    savedir = tmp_path / "savedir"
    shutil.copytree(exp_dir, savedir / "tiny" / "1", ignore=shutil.ignore_patterns("eval"))
    # SAVEDIR relative to exps/, where the user types the command (the launcher runs from the root).
    relative_savedir = os.path.relpath(savedir, repository_copy / "exps")
    (repository_copy / "exps" / "env.sh").write_text(
        f'export SAVEDIR="{relative_savedir}"\nexport DATA_DIR="{data_dir}"\n')
    # The README's command, from exps/; the extra flags override the launcher's defaults.
    result = run_command(["bash", "launch_eval.py", "sbgm", "tiny/1", f"--checkpoint={CHECKPOINT}", "--mode=generate",
                          "--Ntest=4", "--val_batch_size=4"], cwd=repository_copy / "exps")
    assert result.returncode == 0, result.stderr[-3000:]
    record = load(savedir / "tiny" / "1" / "eval" / f"samples.{CHECKPOINT}.pkl")
    assert record["samples"].shape == (4, RES, RES, 2)
    assert record["data_mean"] is not None  # DATA_DIR came from env.sh


@pytest.mark.slow
def test_launcher_errors(experiment, repository_copy, tmp_path):
    exps = repository_copy / "exps"
    savedir = tmp_path / "savedir"
    shutil.copytree(experiment[0], savedir / "tiny" / "1", ignore=shutil.ignore_patterns("eval"))
    for launcher in (["bash", "launch_eval.py"], ["bash", "launch_eval.sh"], [sys.executable, "launch_eval.py"]):
        # A diffusion experiment given to GANO's evaluation: refused, the method named, nothing written.
        result = run_command([*launcher, "gan", "tiny/1", "--mode=generate"], cwd=exps, SAVEDIR=savedir)
        assert result.returncode == 2 and "belongs to method 'sbgm'" in result.stderr
        assert not (savedir / "tiny" / "1" / "eval").exists()
    result = run_command(["bash", "launch_eval.py", "sbgm"], cwd=exps)
    assert result.returncode == 2 and "usage" in result.stderr
    result = run_command(["bash", "launch_eval.py", "nope", "tiny/1"], cwd=exps)
    assert result.returncode == 2 and "usage" in result.stderr
    result = run_command(["bash", "launch_eval.py", "sbgm", "tiny/1"], cwd=exps, SAVEDIR=None)
    assert result.returncode == 2 and "SAVEDIR is not set" in result.stderr


# ---------------------------------------------------------------------------
# plot_stats.py

def test_plot_stats_draws_and_prints_scipy_distances(evaluated, tmp_path, capsys):
    exp_dir, savedir = evaluated["exp_dir"], evaluated["savedir"]
    out = tmp_path / "final_stats_2x.png"
    # stats relative to the experiment, ground truth absolute.
    assert plot_stats.main([f"--exp_name={exp_dir}", f"--stats_filename=eval/stats_2x.{CHECKPOINT}.pkl",
                            "--gt_stats_filename", str(savedir / "gt_stats_2x.pkl"), f"--out_filename={out}",
                            "--figsize", "8", "3"]) == 0
    with Image.open(out) as image:
        image.load()
        assert image.size[0] > 2 * image.size[1]
    assert_distances_printed(printed_metrics(capsys.readouterr().out), load(savedir / "gt_stats_2x.pkl"),
                             load(savedir / f"stats_2x.{CHECKPOINT}.pkl"))
    assert not list(tmp_path.glob(".*"))


def test_plot_stats_missing_files(evaluated, tmp_path, capsys):
    exp_dir = evaluated["exp_dir"]
    out = tmp_path / "out.png"
    assert plot_stats.main([f"--exp_name={exp_dir}", "--stats_filename=eval/nope.pkl",
                            f"--out_filename={out}"]) == 2
    assert "nope.pkl not found" in capsys.readouterr().err
    assert plot_stats.main([f"--exp_name={tmp_path / 'nope'}", "--stats_filename=x.pkl",
                            f"--out_filename={out}"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists()


# ---------------------------------------------------------------------------
# The pieces: src/plotting.py, src/evaluation.py, src/files.py

def test_page_indices_distinct_while_enough_samples():
    pages = [page_indices(64, 16, page) for page in range(4)]
    assert sorted(sum(pages, [])) == list(range(64))
    assert page_indices(20, 16, 1) == [16, 17, 18, 19] + list(range(12))
    assert page_indices(5, 16, 2) == [0, 1, 2, 3, 4]
    assert page_indices(0, 16, 0) == []


def test_find_sample_factors(tmp_path):
    for name in (samples_name(CHECKPOINT), samples_name(CHECKPOINT, 2), samples_name(CHECKPOINT, 4),
                 samples_name("model.w_var.pt"), f"samples_2x.{CHECKPOINT}.4x4.0.png"):
        (tmp_path / name).touch()
    assert samples_name(CHECKPOINT, 2) == "samples_2x.model.w_total.pt.pkl"
    assert find_sample_factors(tmp_path, CHECKPOINT) == [1, 2, 4]
    assert find_sample_factors(tmp_path, "model.w_var.pt") == [1]
    assert find_sample_factors(tmp_path, "model.pt") == []


def test_atomic_paths_keep_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "result.pkl"
    target.write_bytes(b"earlier result")
    with pytest.raises(RuntimeError):
        with atomic_paths([target]) as (temporary,):
            temporary.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"earlier result"
    assert [p.name for p in tmp_path.iterdir()] == ["result.pkl"]


def test_atomic_writes_give_files_the_mode_open_would(tmp_path):
    """Results on a shared cluster stay readable by the group: not mkstemp's owner-only 0600."""
    old_mask = os.umask(0o022)
    try:
        write_outputs({tmp_path / "metrics.json": {"w_total": 0.5}})
        (tmp_path / "plain").write_text("")
    finally:
        os.umask(old_mask)
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777 == 0o644


def test_write_outputs_replaces_all_files_or_none(tmp_path):
    first, second = tmp_path / "samples.pkl", tmp_path / "metrics.json"
    write_outputs({first: {"a": 1}, second: {"w_total": 0.5}})
    assert load(first) == {"a": 1} and json.loads(second.read_text()) == {"w_total": 0.5}
    with pytest.raises(Exception):
        write_outputs({first: {"a": 2}, second: {"w_total": object()}})  # not JSON: fails after first
    assert load(first) == {"a": 1} and json.loads(second.read_text()) == {"w_total": 0.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "samples.pkl"]


def test_read_stats_rejects_bad_pickles(tmp_path):
    path = tmp_path / "stats.pkl"
    path.write_bytes(pickle.dumps({"var": np.zeros(3)}))
    with pytest.raises(EvaluationError, match="lacks the keys"):
        read_stats(path)
    path.write_bytes(pickle.dumps({"var": np.zeros(3), "skew": np.zeros(2)}))
    with pytest.raises(EvaluationError, match="equal length"):
        read_stats(path)


def test_superres_refuses_noise_whose_dense_fallback_would_not_fit(evaluated, copied_experiment, monkeypatch,
                                                                    capsys):
    """Long-range noise has no FFT embedding; at 9 x 14 = 126 px its dense covariance would be 1.9 GiB."""
    config = json.loads((copied_experiment / "config.json").read_text())
    (copied_experiment / "config.json").write_text(json.dumps({**config, "rbf_scale": 1.0}))
    monkeypatch.setenv("DATA_DIR", str(evaluated["data_dir"]))
    savedir = copied_experiment / "superres"
    assert eval_script.main([f"--exp_name={copied_experiment}", f"--savedir={savedir}", "--mode=superres",
                             "--factor=9", "--Ntest=2"]) == 2
    error = capsys.readouterr().err
    assert "126 x 126 points" in error and "1.9 GiB" in error and "embeds" in error
    assert not savedir.exists()
