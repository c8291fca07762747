"""The GANO baseline: its penalty and networks (src/methods/gano.py), and train_gano.py,
eval_gano.py, resume_gano.py and the exps/ scripts with method 'gan', end to end on tiny data."""

import json
import pickle
import shutil
import sys

import pytest
import torch

from conftest import ROOT, run_command
from src.cli import STOPPED_EXIT
from src.methods.gano import Discriminator, Generator, discriminator_loss, gradient_penalty

GANO_TINY = json.loads((ROOT / "exps" / "json" / "gano-debug.json").read_text())
RES = GANO_TINY["resolution"] - GANO_TINY["npad"]
METRICS = ("w_skew", "w_var", "w_total", "mean_image_l2", "mean_image_phase_l2")


# ---------------------------------------------------------------------------
# The gradient penalty against a hand computation

class LinearFunctional(torch.nn.Module):
    """D(f) = mean over the H x H grid of sum_c w f: its gradient is w / H^2 everywhere."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = w

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return (self.w * f).sum(dim=(1, 2, 3)) / (f.shape[1] * f.shape[2])


@pytest.mark.parametrize("side", [8, 15])
def test_gradient_penalty_of_a_linear_functional_is_the_hand_computed_value(side):
    w = torch.randn(side, side, 2, dtype=torch.float64)
    real, fake = torch.rand(4, side, side, 2, dtype=torch.float64), torch.rand(4, side, side, 2, dtype=torch.float64)
    # ||grad D|| = ||w||_2 / H^2 at every interpolate, whatever a is; the target is 1 / H.
    expected = (w.norm() / side**2 - 1.0 / side) ** 2
    penalty = gradient_penalty(LinearFunctional(w), real, fake, torch.Generator().manual_seed(0))
    assert torch.allclose(penalty, expected, rtol=1e-12)


def test_a_discriminator_with_unit_l2_gradient_has_no_penalty():
    side = 12
    w = torch.randn(side, side, 2, dtype=torch.float64)
    w *= side / w.norm()  # ||w||_2 / H = 1: an L2 (function-space) gradient of norm 1
    real, fake = torch.randn(3, side, side, 2, dtype=torch.float64), torch.randn(3, side, side, 2, dtype=torch.float64)
    assert gradient_penalty(LinearFunctional(w), real, fake).item() < 1e-24


def test_interpolation_weights_are_standard_normal_per_function():
    """x_hat = a u + (1 - a) G(z), a ~ N(0, 1) per function (GANO's choice, not U(0, 1))."""
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, f):
            seen.append(f.detach().clone())
            return f.sum(dim=(1, 2, 3))

    n = 4000
    real, fake = torch.ones(n, 2, 2, 1), torch.zeros(n, 2, 2, 1)
    gradient_penalty(Recorder(), real, fake, torch.Generator().manual_seed(1))
    weights = seen[0][:, 0, 0, 0]
    assert (seen[0] == weights[:, None, None, None]).all()  # one a per function
    assert abs(weights.mean()) < 0.06 and abs(weights.std() - 1) < 0.05 and (weights < 0).any()


def test_discriminator_loss_is_the_negative_wasserstein_estimate_plus_the_weighted_penalty():
    side = 6
    w = torch.randn(side, side, 2, dtype=torch.float64)
    critic = LinearFunctional(w)
    real, fake = torch.rand(5, side, side, 2, dtype=torch.float64), torch.rand(5, side, side, 2, dtype=torch.float64)
    loss, parts = discriminator_loss(critic, real, fake, lambda_grad=10.0, generator=torch.Generator().manual_seed(0))
    wasserstein = critic(real).mean() - critic(fake).mean()
    assert torch.allclose(parts["wasserstein"], wasserstein)
    assert torch.allclose(loss, -wasserstein + 10.0 * parts["gradient_penalty"])


# ---------------------------------------------------------------------------
# The networks

def test_gano_networks_keep_ganos_fourier_modes_at_128_px():
    """Frequencies below 24, 16, 8, 4 (down) and 4, 8, 16, 24 (up) at s = 128, as GANO's layers."""
    generator = Generator(res=120, npad=8, d_co_domain=2)
    kept = [block.fourier.convs[0].n_modes[0] // 2 for block in (*generator.down, *generator.up)]
    assert kept == [24, 16, 8, 4, 4, 8, 16, 24]
    widths = [block.fourier.convs[0].out_channels for block in (*generator.down, *generator.up)]
    assert widths == [3, 6, 12, 24, 12, 6, 3, 2]  # d x (1.5, 3, 6, 12) and back to d


def test_generator_and_discriminator_shapes_gradients_and_finer_grids():
    generator, critic = Generator(res=14, npad=2, d_co_domain=4), Discriminator(res=14, npad=2, d_co_domain=4)
    z = torch.randn(3, 14, 14, 2)
    fake = generator(z)
    assert fake.shape == z.shape and fake.abs().max() <= 1
    score = critic(fake)
    assert score.shape == (3,)
    score.sum().backward()
    for network in (generator, critic):
        unused = [name for name, p in network.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert unused == []
    # Operators: the same weights on a grid twice as fine (padding scaled).
    assert generator(torch.randn(2, 28, 28, 2)).shape == (2, 28, 28, 2)
    assert critic(torch.randn(2, 28, 28, 2)).shape == (2,)


# ---------------------------------------------------------------------------
# Training, evaluation and resumption end to end

def train_gano(run_dir, data, cfg=None, *extra, command=None):
    return run_command([*(command or [sys.executable, ROOT / "train_gano.py"]),
                        "--cfg", cfg or ROOT / "exps" / "json" / "gano-debug.json", "--savedir", run_dir, *extra],
                       data_dir=data)


@pytest.fixture(scope="module")
def gano_run(tmp_path_factory, tiny_data):
    run_dir = tmp_path_factory.mktemp("gano") / "run"
    result = train_gano(run_dir, tiny_data)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return run_dir


def lines(run_dir):
    return [json.loads(line) for line in (run_dir / "results.json").read_text().splitlines()]


@pytest.mark.slow
def test_training_writes_every_output_file_with_finite_losses(gano_run):
    results = lines(gano_run)
    assert [line["epoch"] for line in results] == [1, 2]
    for line in results:
        for key in ("loss_D", "wasserstein", "gradient_penalty", "loss_G", "lr", "time", *METRICS, "w_rough"):
            assert isinstance(line[key], float) and line[key] == line[key] and abs(line[key]) < 1e6, key
    assert results[0]["wasserstein"] != results[1]["wasserstein"]  # the discriminator learns

    config = json.loads((gano_run / "config.json").read_text())
    assert config["n_critic"] == GANO_TINY["n_critic"] and "epsilon" not in config
    with open(gano_run / "gt_stats.pkl", "rb") as f:
        assert set(pickle.load(f)) == {"var", "skew"}
    state = torch.load(gano_run / "model.pt", weights_only=True)
    assert state["method"] == "gan" and state["epoch"] == 2
    assert {"weights", "discriminator", "ema", "optimizer", "optimizer_discriminator"} <= set(state)
    assert set(state["metrics"]) == set(METRICS)
    for name in METRICS:
        assert torch.load(gano_run / f"model.{name}.pt", weights_only=True)["method"] == "gan"
        assert (gano_run / "samples" / f"best_{name}.png").is_file()
    for figure in ("noise/noise_samples.png", "noise/noise_sampler_C.png", "samples/1.png", "samples/2.png"):
        assert (gano_run / figure).is_file(), figure


@pytest.mark.slow
def test_eval_generate_superres_and_plot_then_plot_stats(gano_run, tiny_data, tmp_path):
    eval_dir = tmp_path / "eval"
    for mode in ("generate", "superres", "plot"):
        result = run_command([sys.executable, ROOT / "eval_gano.py", f"--exp_name={gano_run}", f"--savedir={eval_dir}",
                              f"--mode={mode}", "--Ntest=6", "--val_batch_size=4"], data_dir=tiny_data)
        assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = "model.w_total.pt"
    with open(eval_dir / f"samples.{checkpoint}.pkl", "rb") as f:
        assert pickle.load(f)["samples"].shape == (6, RES, RES, 2)
    with open(eval_dir / f"samples_2x.{checkpoint}.pkl", "rb") as f:
        assert pickle.load(f)["samples"].shape == (6, 2 * RES, 2 * RES, 2)
    metrics = json.loads((eval_dir / f"metrics.{checkpoint}.json").read_text())
    assert {"w_var", "w_skew", "w_total"} <= set(metrics)
    for figure in (f"stats.{checkpoint}.png", f"stats_2x.{checkpoint}.png", f"samples.{checkpoint}.4x4.0.png"):
        assert (eval_dir / figure).is_file(), figure
    result = run_command([sys.executable, ROOT / "plot_stats.py", "--exp_name", gano_run, "--stats_filename",
                          eval_dir / f"stats.{checkpoint}.pkl", "--out_filename", tmp_path / "final_stats.png"])
    assert result.returncode == 0 and (tmp_path / "final_stats.png").is_file()


@pytest.mark.slow
def test_methods_refuse_each_others_experiments_and_write_nothing(gano_run, tiny_data, tmp_path):
    # A GANO experiment given to the diffusion evaluation and trainer.
    result = run_command([sys.executable, ROOT / "eval.py", f"--exp_name={gano_run}", f"--savedir={tmp_path / 'e'}",
                          "--mode=generate"], data_dir=tiny_data)
    assert result.returncode == 2 and "'n_critic' belongs to method 'gan'" in result.stderr
    before = {path.name: path.read_bytes() for path in gano_run.iterdir() if path.is_file()}
    result = run_command([sys.executable, ROOT / "train.py", "--cfg", gano_run / "config.json", "--savedir", gano_run],
                         data_dir=tiny_data)
    assert result.returncode == 2 and "belongs to method 'gan'" in result.stderr
    assert {path.name: path.read_bytes() for path in gano_run.iterdir() if path.is_file()} == before
    assert not (tmp_path / "e").exists()

    # A diffusion checkpoint in a GANO experiment: named as the diffusion operator's.
    foreign = tmp_path / "run"
    shutil.copytree(gano_run, foreign)
    state = torch.load(foreign / "model.w_total.pt", weights_only=True)
    state.pop("discriminator")
    state["method"] = "sbgm"
    torch.save(state, foreign / "model.sbgm.pt")
    result = run_command([sys.executable, ROOT / "eval_gano.py", f"--exp_name={foreign}", f"--savedir={foreign / 'e'}",
                          "--mode=generate", "--checkpoint=model.sbgm.pt"], data_dir=tiny_data)
    assert result.returncode == 2 and "is a checkpoint of method 'sbgm'" in result.stderr
    assert not (foreign / "e").exists()


@pytest.mark.slow
def test_a_gano_run_stopped_mid_epoch_resumes_exactly(gano_run, tiny_data, tmp_path):
    """SIGUSR1 at the 3rd step (Slurm's warning), then resume_gano.py: the same lines and weights."""
    run_dir = tmp_path / "run"
    command = [sys.executable, ROOT / "tests" / "interrupted_train.py", "step", "3", "USR1"]
    result = run_command([*command, "--cfg", ROOT / "exps" / "json" / "gano-debug.json", "--savedir", run_dir],
                         data_dir=tiny_data, TRAIN_SCRIPT="train_gano")
    assert result.returncode == STOPPED_EXIT, result.stderr[-2000:]  # outside Slurm: not finished
    assert "SIGUSR1: stopped at epoch 1, step 3" in result.stdout
    assert f"resume it with: python resume_gano.py {run_dir}" in result.stdout
    stopped = torch.load(run_dir / "model.pt", weights_only=True)
    assert (stopped["epoch"], stopped["step"]) == (0, 3) and len(stopped["epoch_losses"]["loss_D"]) == 3
    result = run_command([sys.executable, ROOT / "resume_gano.py", run_dir], data_dir=tiny_data)
    assert result.returncode == 0, result.stderr[-2000:]

    def without_time(run):
        return [{k: v for k, v in line.items() if k != "time"} for line in lines(run)]

    assert without_time(run_dir) == without_time(gano_run)
    resumed, whole = (torch.load(run / "model.pt", weights_only=True) for run in (run_dir, gano_run))
    for key in ("weights", "discriminator", "ema"):
        assert all(torch.equal(resumed[key][name], whole[key][name]) for name in whole[key]), key
    assert resumed["optimizer_discriminator"]["state"].keys() == whole["optimizer_discriminator"]["state"].keys()


@pytest.fixture(scope="module")
def code_copy(tmp_path_factory, tiny_data):
    """The repository's scripts in a folder of their own (no developer env.sh); code linked."""
    repo = tmp_path_factory.mktemp("gano_repo")
    shutil.copytree(ROOT / "exps", repo / "exps", ignore=shutil.ignore_patterns("env.sh"))
    for name in ("train_gano.py", "resume_gano.py", "eval_gano.py", "eval.py", "train.py", "src"):
        (repo / name).symlink_to(ROOT / name)
    python = repo / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return repo, tiny_data, repo / "saved"


@pytest.mark.slow
def test_main_sh_launch_eval_and_resume_sh_with_method_gan(code_copy):
    """The original README's commands with 'gan': train, evaluate, resume a stopped run."""
    repo, data, savedir = code_copy
    exps = repo / "exps"
    result = run_command(["bash", "main.sh", "gan", "tiny", "json/gano-debug.json"], cwd=exps, data_dir=data,
                         RUN_LOCAL=1, SLURM_JOB_ID=9, SAVEDIR=savedir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    run_dir = savedir / "tiny" / "9"
    assert (run_dir / "model.w_total.pt").is_file()

    result = run_command(["bash", "launch_eval.py", "gan", "tiny/9", "--mode=generate", "--Ntest=4",
                          "--val_batch_size=4"], cwd=exps, data_dir=data, SAVEDIR=savedir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "eval" / "metrics.model.w_total.pt.json").is_file()

    # Two more epochs on the same run directory, through resume.sh gan.
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "epochs": 3}))
    result = run_command(["bash", "resume.sh", "gan", "tiny", "9"], cwd=exps, data_dir=data, SAVEDIR=savedir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [line["epoch"] for line in lines(run_dir)] == [1, 2, 3]
