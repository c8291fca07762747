"""The benchmark scripts that train: they run end to end on a tiny config and refuse bad input."""

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


def run_variants(base, *args):
    env = {**os.environ, "DATA_DIR": str(base / "data"), "TQDM_DISABLE": "1"}
    return subprocess.run([sys.executable, "benchmarks/quickstart_variants.py", "--cfg", str(base / "tiny.json"),
                           *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_quickstart_variants_trains_every_row_and_tabulates_it(tiny):
    outdir = tiny / "runs"
    result = run_variants(tiny, "--epochs", "1", "--outdir", str(outdir), "--variant", "white", "white_noise=true")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[0] for row in rows] == ["| tiny.json (reference)", "| white"]
    for index, white in enumerate((False, True)):
        config = json.loads((outdir / str(index) / "config.json").read_text())
        assert config["white_noise"] is white and config["epochs"] == 1 and config["record_interval"] == 1
        last = json.loads((outdir / str(index) / "results.json").read_text().splitlines()[-1])
        assert f"{last['w_total']:.4f}" in rows[index]
        assert rows[index].split(" | ")[-1] == f"{last['w_rough']:.4f} |"
        assert rows[index].split(" | ")[2] == "4"  # 1 epoch of 32 training functions in batches of 8

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
