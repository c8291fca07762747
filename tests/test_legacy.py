"""Tests of the experiment directories the original code wrote (its published checkpoints).

tests/fixtures/legacy/ is a small run written by the original code itself: its own train.run()
(neuraloperator/DiffusionOperators 589f525 on neuraloperator 8a0f526, tensorly 0.8.1,
tensorly-torch 0.4.0, torch 2.13 on the CPU, seeded), the paper's rbf-copied.json with
d_co_domain 8, resolution 32, npad 4 and 2 epochs, on 40 synthetic phase maps: ``run/``
(config.json, model.w_total.pt, results.json, gt_stats.pkl) and ``reference_outputs.pt``, the
original network's outputs on fixed inputs (raw weights, EMA, 2x), block by block. The tests
check src/legacy_uno.py against those outputs, the reading of the original's checkpoints and
config.json, and the original README's evaluation commands on that directory, which must stay
unchanged.
"""

import json
import pathlib
import pickle
import shutil
import stat
import sys

import numpy as np
import pytest
import torch

import eval as eval_script
import plot_stats
import resume as resume_script
from conftest import ROOT, launcher_copy, run_command, snapshot
from src import methods
from src.checkpoint import CheckpointError, load_checkpoint, load_sampling_checkpoint, read_checkpoint
from src.config import load_original_config
from src.evaluation import load_experiment
from src.legacy_uno import BLOCK_NAMES, LegacyUNO, tucker_rank

FIXTURE = ROOT / "tests" / "fixtures" / "legacy"
RUN = FIXTURE / "run"
CHECKPOINT = "model.w_total.pt"
# max |ours - original| / max |original|: what holds against the original's own outputs
# (at most 3.3e-7 measured: the round-off of another order of the Tucker contraction).
TOLERANCE = 1e-6
EXPERIMENT = "tmp2000_rbf_pred-noise-b_repeat/3307092"  # the original README's name for its RBF run
# A cheap sampler for the launcher runs (the fixture's own makes 500 levels x 3 steps: minutes).
QUICK = ("--sampler", "L=5")
QUICK_NAME = f"{CHECKPOINT}.L=5"


def relative_difference(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).abs().max() / reference.abs().max())


@pytest.fixture(scope="module")
def reference() -> dict:
    return torch.load(FIXTURE / "reference_outputs.pt", weights_only=True)


class Payload:
    """An object whose unpickling would create a file: what a checkpoint must never do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def copy_run(exp_dir):
    """A copy of the fixture's run at ``exp_dir``, to change or to write beside."""
    shutil.copytree(RUN, exp_dir)
    return exp_dir


def refused(exp_dir, tmp_path, capsys) -> str:
    """eval.py --mode=generate on ``exp_dir``: it must exit 2 and write nothing; its stderr."""
    savedir = tmp_path / "eval"
    before = snapshot(exp_dir)
    status = eval_script.main([f"--exp_name={exp_dir}", f"--savedir={savedir}", "--mode=generate", "--Ntest=2",
                               "--val_batch_size=2"])
    assert status == 2
    assert not savedir.exists() and snapshot(exp_dir) == before
    return capsys.readouterr().err


# ---------------------------------------------------------------------------
# The network against the original's outputs


@pytest.mark.parametrize("use_ema, output", [(False, "out_weights"), (True, "out_ema")])
def test_legacy_network_computes_the_originals_outputs(reference, use_ema, output):
    network, args = load_experiment(RUN, CHECKPOINT, device="cpu", use_ema=use_ema)
    assert isinstance(network, LegacyUNO)
    with torch.no_grad():
        out = network(reference["x"], reference["sigmas"].flatten())
    assert out.shape == reference[output].shape
    assert relative_difference(out, reference[output]) <= TOLERANCE


def test_raw_and_ema_weights_are_different_functions(reference):
    # Else the two tests above would not tell the weights from the EMA.
    assert relative_difference(reference["out_weights"], reference["out_ema"]) > 100 * TOLERANCE


def test_legacy_network_super_resolves_as_the_original(reference):
    network, _ = load_experiment(RUN, CHECKPOINT)
    x = reference["x_superres"]
    assert network.padding_for(x.shape[1]) == reference["superres_padding"]  # doubled at 2x
    with torch.no_grad():
        out = network(x, reference["sigmas_superres"].flatten())
    assert relative_difference(out, reference["out_superres_ema"]) <= TOLERANCE


@pytest.mark.parametrize("use_ema", [False, True])
def test_every_block_computes_the_originals_intermediates(reference, use_ema):
    network, _ = load_experiment(RUN, CHECKPOINT, use_ema=use_ema)
    got = {}

    def keep(name):
        def hook(module, inputs, output):
            got[name] = output[:1].detach()
        return hook

    hooks = [network.init_conv.register_forward_hook(keep("init_conv"))]
    for name in BLOCK_NAMES:
        block = getattr(network, name)
        hooks += [block.register_forward_hook(keep(name)),
                  block.block1.convs.register_forward_hook(keep(f"{name}.spectral")),
                  block.block1.fno_skips[0].register_forward_hook(keep(f"{name}.skip_preresample"))]
    with torch.no_grad():
        network(reference["x"], reference["sigmas"].flatten())
    for hook in hooks:
        hook.remove()
    expected = reference["intermediates_ema" if use_ema else "intermediates_weights"]
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name].shape == value.shape, name
        assert relative_difference(got[name], value) <= TOLERANCE, name


@pytest.mark.parametrize("resolution, npad", [(128, 8), (64, 4)])  # the paper's 120 px and 60 px runs
@pytest.mark.parametrize("factor", [1, 2])
def test_legacy_network_runs_on_the_papers_grids_and_twice_as_fine(resolution, npad, factor):
    network = LegacyUNO(res=resolution - npad, npad=npad, d_co_domain=2, mult_dims=[1, 2, 4, 4], fmult=0.5, rank=0.1)
    x = torch.randn(1, factor * (resolution - npad), factor * (resolution - npad), 2)
    with torch.no_grad():
        assert network(x, torch.ones(1)).shape == x.shape


def test_tucker_ranks_are_those_of_the_originals_weights():
    state = read_checkpoint(RUN / CHECKPOINT, "cpu")["weights"]
    for name in BLOCK_NAMES:
        prefix = f"{name}.block1.convs.weight.0"
        shape = [state[f"{prefix}.factors.factor_{k}"].shape[0] for k in range(4)]
        assert tucker_rank(shape, 0.1) == list(state[f"{prefix}.core"].shape[:4]), name


# ---------------------------------------------------------------------------
# Reading the original's checkpoints and config.json


def test_original_checkpoint_reads_as_ours():
    state = load_sampling_checkpoint(RUN / CHECKPOINT, "cpu", "sbgm")
    assert state["original"] and state["method"] == "sbgm" and state["last_epoch"] == 1
    assert state["ema"].keys() == state["weights"].keys()
    # {name: {"best": numpy.float64}} as plain floats; results.json's last line has them.
    last = json.loads((RUN / "results.json").read_text().splitlines()[-1])
    for name in ("w_var", "w_skew", "w_total"):
        assert type(state["metrics"][name]) is float and state["metrics"][name] == last[name]


def test_original_config_takes_the_originals_values(tmp_path):
    _, args = load_experiment(RUN, CHECKPOINT)
    saved = json.loads((RUN / "config.json").read_text())
    assert all(getattr(args, key) == value for key, value in saved.items())
    # The original's sampler: 500 levels x 3 Langevin steps, its step rule, no denoising step.
    assert (args.sampler, args.step_rule, args.denoise_last) == ("langevin", "sigma_squared", False)
    assert methods.get("sbgm").network_evaluations(args) == 500 * 3
    assert (args.data_format, args.function_channels, args.noise_kernel) == ("volcano", 2, "exponential")

    # The paper's configs say "resolution": null, which meant 128.
    (tmp_path / "config.json").write_text(json.dumps({**saved, "resolution": None, "npad": 8}))
    assert load_original_config(tmp_path / "config.json").data_resolution == 120


def test_original_checkpoint_without_last_epoch(tmp_path):
    exp_dir = copy_run(tmp_path / "run")
    state = read_checkpoint(exp_dir / CHECKPOINT, "cpu")
    del state["last_epoch"]  # as the original's checkpoints older than 2023-05
    torch.save(state, exp_dir / CHECKPOINT)
    assert load_sampling_checkpoint(exp_dir / CHECKPOINT, "cpu")["last_epoch"] is None
    network, _ = load_experiment(exp_dir, CHECKPOINT)
    assert isinstance(network, LegacyUNO)


def test_training_on_from_an_original_checkpoint_is_refused_saying_why(tmp_path, capsys):
    with pytest.raises(CheckpointError, match="written by the original code.*no optimizer state"):
        load_checkpoint(RUN / CHECKPOINT, "cpu", "sbgm")
    exp_dir = copy_run(tmp_path / "run")
    shutil.copy2(exp_dir / CHECKPOINT, exp_dir / "model.pt")  # the original's latest checkpoint, same format
    (exp_dir / "config.json").write_text(json.dumps({**json.loads((RUN / "config.json").read_text()),
                                                     "resolution": None}))
    before = snapshot(exp_dir)
    assert resume_script.main([str(exp_dir)]) == 2
    assert "written by the original code" in capsys.readouterr().err and snapshot(exp_dir) == before


def test_checkpoint_needing_another_global_is_refused_naming_it(tmp_path, capsys):
    exp_dir = copy_run(tmp_path / "run")
    marker = tmp_path / "code_ran"
    state = read_checkpoint(exp_dir / CHECKPOINT, "cpu")
    state["metrics"]["w_total"]["best"] = Payload(marker)
    torch.save(state, exp_dir / CHECKPOINT)
    error = refused(exp_dir, tmp_path, capsys)
    assert f"{exp_dir / CHECKPOINT} needs the pickle global(s)" in error and "builtins.getattr" in error
    assert not marker.exists()


def test_truncated_checkpoint_is_refused(tmp_path, capsys):
    exp_dir = copy_run(tmp_path / "run")
    data = (exp_dir / CHECKPOINT).read_bytes()
    (exp_dir / CHECKPOINT).write_bytes(data[:len(data) // 2])
    error = refused(exp_dir, tmp_path, capsys)
    assert f"{exp_dir / CHECKPOINT} is not a readable checkpoint" in error


def test_config_with_a_key_the_original_lacks_is_refused_naming_it(tmp_path, capsys):
    exp_dir = copy_run(tmp_path / "run")
    config = json.loads((exp_dir / "config.json").read_text())
    (exp_dir / "config.json").write_text(json.dumps({**config, "sampler_steps": 10}))
    error = refused(exp_dir, tmp_path, capsys)
    assert f"{exp_dir / 'config.json'}: config key 'sampler_steps' is not one of the original code's" in error


def test_gano_scripts_refuse_an_original_directory(tmp_path, capsys):
    import eval_gano
    savedir = tmp_path / "eval"
    assert eval_gano.main([f"--exp_name={RUN}", f"--savedir={savedir}", "--mode=generate", "--Ntest=2"]) == 2
    assert "belongs to method 'sbgm'" in capsys.readouterr().err
    assert not savedir.exists()


# ---------------------------------------------------------------------------
# The original README's commands on the directory


@pytest.fixture(scope="module")
def volcano_data(tmp_path_factory, tiny_data):
    """A DATA_DIR of 4096 .int files (the original's ntrain, which its config.json does not
    record), links to the tiny synthetic ones: superres's ground truth."""
    folder = tmp_path_factory.mktemp("volcano")
    files = sorted(tiny_data.rglob("*.int"))
    for i in range(4096):
        (folder / f"{i:05d}.int").symlink_to(files[i % len(files)])
    return folder


@pytest.fixture(scope="module")
def launched(tmp_path_factory, volcano_data):
    """The original README's launch_eval.py commands, from exps/, on a read-only copy of the
    fixture's run under $SAVEDIR; outputs under --savedir. Their stdout and the directory's
    snapshots."""
    base = tmp_path_factory.mktemp("launched")
    repo = launcher_copy(base / "repo")
    savedir = base / "savedir"
    exp_dir = copy_run(savedir / EXPERIMENT)
    for path in [exp_dir, *exp_dir.iterdir()]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    out = base / "eval"
    (repo / "exps" / "env.sh").write_text(f'export SAVEDIR="{savedir}"\n')
    before = snapshot(exp_dir)
    stdout = {}
    for mode in ("generate", "superres", "plot"):
        # Only superres needs the data (generate scores against gt_stats.pkl without it).
        result = run_command(["bash", "launch_eval.py", "sbgm", EXPERIMENT, f"--checkpoint={CHECKPOINT}",
                              f"--mode={mode}", "--Ntest=4", "--val_batch_size=4", f"--savedir={out}", *QUICK],
                             cwd=repo / "exps", data_dir=volcano_data if mode == "superres" else None)
        assert result.returncode == 0, f"{mode}: {result.stderr[-3000:]}"
        stdout[mode] = result.stdout
    yield {"exp_dir": exp_dir, "out": out, "stdout": stdout, "before": before, "after": snapshot(exp_dir)}
    for path in [exp_dir, *exp_dir.iterdir()]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)  # so that pytest can remove it


def load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


@pytest.mark.slow
def test_launcher_leaves_the_original_directory_unchanged(launched):
    assert launched["before"] == launched["after"]
    assert sorted(launched["before"]) == ["config.json", "gt_stats.pkl", CHECKPOINT, "results.json"]


@pytest.mark.slow
def test_launcher_generate_writes_the_usual_files(launched):
    out = launched["out"]
    record = load(out / f"samples.{QUICK_NAME}.pkl")
    assert record["samples"].shape == (4, 28, 28, 2) and np.isfinite(record["samples"]).all()
    assert record["epoch"] == 2 and record["data_mean"] is None
    metrics = json.loads((out / f"metrics.{QUICK_NAME}.json").read_text())
    assert metrics["network_evaluations"] == 5 * 3 and metrics["sampler"]["sampler"] == "langevin"
    stats = load(out / f"stats.{QUICK_NAME}.pkl")
    assert stats["var"].shape == (4,) and "written by the original code" in launched["stdout"]["generate"]


@pytest.mark.slow
def test_launcher_superres_doubles_the_grid(launched):
    out = launched["out"]
    record = load(out / f"samples_2x.{QUICK_NAME}.pkl")
    assert record["samples"].shape == (4, 56, 56, 2) and record["factor"] == 2
    assert (out / "gt_stats_2x.pkl").is_file() and (out / f"metrics_2x.{QUICK_NAME}.json").is_file()


@pytest.mark.slow
def test_launcher_plot_draws_both_resolutions(launched):
    out = launched["out"]
    for postfix in ("", "_2x"):
        assert (out / f"stats{postfix}.{QUICK_NAME}.png").stat().st_size > 1000
        assert (out / f"samples{postfix}.{QUICK_NAME}.4x4.0.png").stat().st_size > 1000
    assert (out / f"mean_sample_2x.{QUICK_NAME}.png").stat().st_size > 1000  # superres had the data


@pytest.mark.slow
def test_plot_stats_and_fast_samplers_on_the_original_directory(launched, tmp_path, capsys):
    exp_dir, out = launched["exp_dir"], launched["out"]
    figure = tmp_path / "final_stats.png"
    assert plot_stats.main(["--exp_name", str(exp_dir), "--stats_filename", str(out / f"stats.{QUICK_NAME}.pkl"),
                            "--out_filename", str(figure)]) == 0
    assert figure.stat().st_size > 1000
    savedir = tmp_path / "euler"
    assert eval_script.main([f"--exp_name={exp_dir}", f"--savedir={savedir}", "--mode=generate", "--Ntest=4",
                             "--val_batch_size=4", "--sampler", "sampler=euler", "sampler_steps=4"]) == 0
    metrics = json.loads((savedir / f"metrics.{CHECKPOINT}.sampler=euler.sampler_steps=4.json").read_text())
    assert metrics["network_evaluations"] == 4 and np.isfinite(metrics["w_total"])
    assert snapshot(exp_dir) == launched["before"]


@pytest.mark.slow
def test_gpu_check_script_tabulates_each_case_on_the_cpu():
    result = run_command([sys.executable, "-m", "benchmarks.legacy_gpu", "--devices", "cpu"])
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.strip("|").split("|") for line in result.stdout.splitlines() if line.startswith("| cpu ")]
    assert [row[1].strip() for row in rows] == ["weights", "ema", "superres 2x (ema)"]
    for row in rows:
        assert float(row[2]) <= TOLERANCE and float(row[3]) == 0.0 and row[4].strip() == "yes"
