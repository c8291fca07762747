"""The benchmark scripts that train or score: they run end to end on tiny data and refuse bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from src.synthetic import write_dataset
from test_train import TINY

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("variants")
    write_dataset(base / "data", TINY["ntrain"], seed=0)
    (base / "tiny.json").write_text(json.dumps(TINY))
    return base


def run_script(base, script, *args):
    env = {**os.environ, "DATA_DIR": str(base / "data"), "TQDM_DISABLE": "1"}
    return subprocess.run([sys.executable, script, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def run_variants(base, *args):
    return run_script(base, "benchmarks/quickstart_variants.py", "--cfg", str(base / "tiny.json"), *args)


def table_rows(stdout):
    """The body rows of the markdown table in stdout, each split into its cells."""
    lines = [line for line in stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


@pytest.fixture(scope="module")
def trained_run(tiny):
    run_dir = tiny / "trained"
    result = run_script(tiny, "train.py", "--cfg", str(tiny / "tiny.json"), "--savedir", str(run_dir))
    assert result.returncode == 0, result.stderr
    return run_dir


def test_quickstart_variants_trains_every_row_and_tabulates_it(tiny):
    outdir = tiny / "runs"
    result = run_variants(tiny, "--epochs", "1", "--outdir", str(outdir), "--variant", "white", "white_noise=true")
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert [row[0] for row in rows] == ["tiny.json (reference)", "white"]
    for index, white in enumerate((False, True)):
        config = json.loads((outdir / str(index) / "config.json").read_text())
        assert config["white_noise"] is white and config["epochs"] == 1 and config["record_interval"] == 1
        last = json.loads((outdir / str(index) / "results.json").read_text().splitlines()[-1])
        assert f"{last['w_total']:.4f}" in rows[index]
        assert rows[index][-1] == f"{last['w_rough']:.4f}"
        assert rows[index][2] == "4"  # 1 epoch of 32 training functions in batches of 8

    again = run_variants(tiny, "--epochs", "1", "--outdir", str(outdir))
    assert again.returncode == 2 and "already exist" in again.stderr


@pytest.mark.parametrize("variant, culprit", [(["typo", "epoch=3"], "epoch"),
                                              (["bad", "sigma_1=much"], "sigma_1"),
                                              (["form", "sigma_1"], "is not KEY=VALUE")])
def test_quickstart_variants_names_a_bad_variant_before_training(tiny, variant, culprit):
    outdir = tiny / f"never-{variant[0]}"
    result = run_variants(tiny, "--outdir", str(outdir), "--variant", *variant)
    assert result.returncode == 2 and culprit in result.stderr
    assert not outdir.exists()


def test_quality_scores_untrained_checkpoint_sampler_variant_and_held_out_data(trained_run):
    result = run_script(trained_run.parent, "benchmarks/quality.py", "--exp_name", str(trained_run),
                        "--checkpoint", "model.pt", "--Ntest", "8", "--val_batch_size", "8",
                        "--also_sampler", "epsilon=0.001")
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    last_epoch = len((trained_run / "results.json").read_text().splitlines())
    checkpoint = f"model.pt (epoch {last_epoch})"
    assert [row[0] for row in rows] == ["untrained", checkpoint, f"{checkpoint}, epsilon=0.001", "held-out data"]
    for row in rows:
        assert row[1] == "8"  # Ntest samples each; 8 validation functions of 40
        values = [float(cell) for cell in row[2:]]
        assert len(values) == 6 and all(value >= 0 for value in values)
    assert rows[0][2:] != rows[1][2:]  # training changed the samples


def test_quality_names_a_bad_sampler_key(trained_run):
    result = run_script(trained_run.parent, "benchmarks/quality.py", "--exp_name", str(trained_run),
                        "--also_sampler", "epsilon=-1")
    assert result.returncode == 2 and "epsilon" in result.stderr


def test_data_roughness_compares_plain_and_multilooked_frames(tiny):
    result = run_script(tiny, "benchmarks/data_roughness.py", "--n", "8", "--resolution", "32", "128")
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert [(row[0], row[2]) for row in rows] == [("32", "plain bilinear (original)"), ("32", "multilook"),
                                                  ("128", "plain bilinear (original)"), ("128", "multilook")]
    mean_roughness = [float(row[3]) for row in rows]
    assert mean_roughness[1] < mean_roughness[0]  # multilooking averages decorrelation noise away
    assert rows[2][3:] == rows[3][3:]  # and changes nothing at the native 128 px
