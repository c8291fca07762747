"""The benchmark scripts that train or score: they run end to end on tiny data and refuse bad input."""

import json
import re
import sys

import pytest
import torch

import eval as eval_script
from conftest import TINY, copy_run, run_command
from src.config import load_config
from src.data import load_data, validation_count
from src.metrics import circular_stats, wasserstein_metrics

N_VALID = validation_count(TINY["ntrain"], TINY["val_size"])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_data):
    base = tmp_path_factory.mktemp("variants")
    (base / "data").symlink_to(tiny_data)  # where run_script's commands find DATA_DIR
    (base / "tiny.json").write_text(json.dumps(TINY))
    return base


def run_script(base, script, *args):
    return run_command([sys.executable, script, *args], data_dir=base / "data")


def run_benchmark(base, name, *args):
    """``python -m benchmarks.<name> args`` from the repository root, as the benchmarks run."""
    return run_script(base, "-m", f"benchmarks.{name}", *args)


def run_variants(base, *args):
    return run_benchmark(base, "quickstart_variants", "--cfg", str(base / "tiny.json"), *args)


def table_rows(stdout):
    """The body rows of the markdown table in stdout, each split into its cells."""
    lines = [line for line in stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


@pytest.fixture(scope="module")
def trained_run(tiny, tiny_run):
    """The session's tiny run, copied beside this module's data (the benchmarks find DATA_DIR there)."""
    return copy_run(tiny_run, tiny / "trained")


@pytest.mark.slow
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
        assert rows[index][2:4] == ["langevin (config)", str(TINY["L"] * TINY["T"])]
        assert rows[index][4] == str((TINY["ntrain"] - N_VALID) // TINY["batch_size"])  # the steps of 1 epoch

    again = run_variants(tiny, "--epochs", "1", "--outdir", str(outdir))
    assert again.returncode == 2 and "already exist" in again.stderr


@pytest.mark.slow
def test_quickstart_variants_trains_each_seed_and_samples_each_run_every_way(tiny):
    """--no_variants: the reference alone, once per seed; --sampler: a row sampling those runs another way."""
    outdir = tiny / "seeded"
    result = run_variants(tiny, "--epochs", "1", "--Ntest", "6", "--seeds", "0", "1", "--outdir", str(outdir),
                          "--no_variants", "--sampler", "heun 5", "sampler=heun", "sampler_steps=3", "sampler_rho=2")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = table_rows(result.stdout)
    assert [row[:4] for row in rows] == [["tiny.json (reference)", "-", "langevin (config)", str(TINY["L"] * TINY["T"])],
                                         ["tiny.json (reference)", "-", "heun 5", "5"]]
    assert sorted(d.name for d in outdir.iterdir()) == ["0-seed0", "0-seed1"]
    w_total = []
    for seed in (0, 1):
        config = json.loads((outdir / f"0-seed{seed}" / "config.json").read_text())
        assert (config["seed"], config["Ntest"]) == (seed, 6)
        w_total.append(json.loads((outdir / f"0-seed{seed}" / "results.json").read_text().splitlines()[-1])["w_total"])
    # The config's row is the mean +- standard deviation of the seeds' last validation.
    mean, spread = (float(part) for part in rows[0][-2].split("+-"))
    assert mean == pytest.approx(sum(w_total) / 2, abs=1e-4)
    assert spread == pytest.approx(abs(w_total[0] - w_total[1]) / 2 ** 0.5, abs=1e-4)
    assert "+-" in rows[1][-2] and rows[1][6] == "-"  # a sampler row has no loss


@pytest.mark.slow
def test_quickstart_variants_refuses_a_key_that_is_not_the_samplers(tiny):
    outdir = tiny / "never-sampler"
    result = run_variants(tiny, "--outdir", str(outdir), "--sampler", "bad", "lr=0.1")
    assert result.returncode == 2 and "lr is not a sampler key" in result.stderr
    assert not outdir.exists()


@pytest.mark.parametrize("variant, culprit", [(["typo", "epoch=3"], "epoch"),
                                              (["bad", "sigma_1=much"], "sigma_1"),
                                              (["form", "sigma_1"], "is not KEY=VALUE")])
@pytest.mark.slow
def test_quickstart_variants_names_a_bad_variant_before_training(tiny, variant, culprit):
    outdir = tiny / f"never-{variant[0]}"
    result = run_variants(tiny, "--outdir", str(outdir), "--variant", *variant)
    assert result.returncode == 2 and culprit in result.stderr
    assert not outdir.exists()


@pytest.mark.slow
def test_quality_scores_untrained_checkpoint_sampler_variant_and_held_out_data(trained_run, tmp_path):
    result = run_benchmark(trained_run.parent, "quality", "--exp_name", str(trained_run),
                           "--checkpoint", "model.pt", "--Ntest", "8", "--val_batch_size", "8",
                           "--also_sampler", "epsilon=0.001")
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    last_epoch = len((trained_run / "results.json").read_text().splitlines())
    checkpoint = f"model.pt (epoch {last_epoch})"
    assert [row[0] for row in rows] == ["untrained", checkpoint, f"{checkpoint}, epsilon=0.001", "held-out data"]
    assert [row[1] for row in rows] == ["8"] * 4  # Ntest samples each, and 8 of the validation functions
    w_total = {row[0]: float(row[4]) for row in rows}
    # The checkpoint's row is what eval.py measures for the same checkpoint, seed and batches...
    assert eval_script.main([f"--exp_name={trained_run}", f"--savedir={tmp_path}", "--mode=generate",
                             "--checkpoint=model.pt", "--Ntest=8", "--val_batch_size=8", "--seed=0"]) == 0
    assert w_total[checkpoint] == pytest.approx(json.loads((tmp_path / "metrics.model.pt.json").read_text())["w_total"],
                                                abs=1e-4)
    # ... and the held-out row scores the first 8 validation functions against the training split.
    train, valid = load_data(load_config(trained_run / "config.json"), trained_run.parent / "data")
    expected = wasserstein_metrics(circular_stats(train), circular_stats(valid[:8]))["w_total"]
    assert w_total["held-out data"] == pytest.approx(expected, abs=1e-4)


@pytest.mark.slow
def test_quality_names_a_bad_sampler_key(trained_run):
    result = run_benchmark(trained_run.parent, "quality", "--exp_name", str(trained_run),
                           "--also_sampler", "epsilon=-1")
    assert result.returncode == 2 and "epsilon" in result.stderr


@pytest.mark.slow
def test_data_roughness_compares_plain_and_multilooked_frames(tiny):
    result = run_benchmark(tiny, "data_roughness", "--n", "8", "--resolution", "32", "128")
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert [(row[0], row[2]) for row in rows] == [("32", "plain bilinear (original)"), ("32", "multilook"),
                                                  ("128", "plain bilinear (original)"), ("128", "multilook")]
    mean_roughness = [float(row[3]) for row in rows]
    assert mean_roughness[1] < mean_roughness[0]  # multilooking averages decorrelation noise away
    assert rows[2][3:] == rows[3][3:]  # and changes nothing at the native 128 px


@pytest.mark.slow
def test_checkpoint_cost_tabulates_the_training_state_and_the_checkpoint(tiny):
    result = run_benchmark(tiny, "checkpoint_cost", "--cfg", "exps/json/debug.json", "--repeats", "1")
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert [row[2] for row in rows] == ["training state alone (no position, RNG or fsync)",
                                        "now, a full epoch of losses"]
    extra = int(rows[1][4].replace(",", ""))
    # The position, 4 losses and torch's RNG state (5 kB): kilobytes, not a copy of the weights.
    assert 5_000 < extra < 20_000 and extra == int(rows[1][3].replace(",", "")) - int(rows[0][3].replace(",", ""))


@pytest.mark.slow
def test_distributed_throughput_measures_one_and_two_processes_and_ddp_alone(tiny):
    result = run_benchmark(tiny, "distributed_throughput", "--cfg", "exps/json/debug.json",
                           "--steps", "2", "--warmup", "1", "--repeats", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row[0]: row for row in table_rows(result.stdout)}
    assert set(rows) == {"1 process (reference)", "DDP, world size 1 (gloo)", "1 process, 1 thread",
                         "2 processes (gloo), 1 thread each"}
    assert rows["2 processes (gloo), 1 thread each"][2] == f"{TINY['batch_size']} ({TINY['batch_size'] // 2})"
    assert [row[1] for row in rows.values()].count("2 x 1") == 1
    # Each row's last cell is its median over the reference's (to the printed digits), and each
    # median lies in its range.
    reference = float(rows["1 process (reference)"][3].split()[0])
    for name, row in rows.items():
        median, low, high = (float(number) for number in re.findall(r"\d+\.\d", row[3]))
        assert low <= median <= high, name
        assert float(row[4]) == pytest.approx(median / reference, abs=0.006 + 0.05 * (1 + median / reference) / reference), name


@pytest.mark.slow
def test_sampler_quality_scores_every_sampler_at_its_budgets(trained_run, tmp_path):
    figure = tmp_path / "sampler_quality.png"
    result = run_benchmark(trained_run.parent, "sampler_quality", "--exp_name", str(trained_run),
                           "--n_samples", "4", "--seeds", "0", "1", "--budgets", "5", "9", "--churns", "0", "1000",
                           "--samplers", "heun", "--figure", str(figure))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = table_rows(result.stdout)
    evaluations = TINY["L"] * TINY["T"]
    assert [(row[0], row[1]) for row in rows] == [
        ("langevin (config)", str(evaluations)),  # then L = budget // T levels of T steps (T = 2 here)
        ("langevin", "4"), ("heun", "5"), ("heun, data_fit", "5"), ("heun churn 1000", "5"),
        ("heun churn 1000, data_fit", "5"),
        ("langevin", "8"), ("heun", "9"), ("heun, data_fit", "9"), ("heun churn 1000", "9"),
        ("heun churn 1000, data_fit", "9"), ("held-out data", "-")]
    assert all("+-" in row[2] for row in rows[:-1])  # mean +- spread over the 2 seeds
    assert "for the loop" in result.stdout
    assert figure.stat().st_size > 0


@pytest.mark.slow
def test_sampler_quality_gpu_script_stops_training_at_its_time_and_scores_those_weights(tiny):
    """The GPU script's path on the CPU: training that would run for 10^4 epochs is stopped by
    its SIGUSR1 after TRAIN_SECONDS, writes its checkpoint, and sampler_quality scores it."""
    (tiny / "long.json").write_text(json.dumps(TINY | {"epochs": 10_000}))
    run_dir = tiny / "gpu-script-run"
    result = run_command(["bash", "benchmarks/sampler_quality_gpu.sh"], data_dir=tiny / "data", CFG=tiny / "long.json",
                         TRAIN_SECONDS=12, N_SAMPLES=4, SEEDS="0 1", BUDGETS=5, RUN_DIR=run_dir, PYTHON=sys.executable)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SIGUSR1: stopped a" in result.stdout  # at epoch E, step S; or after epoch E
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["epochs"], config["Ntest"]) == (10_000, 4)
    assert not (run_dir / "samples").exists() or not list((run_dir / "samples").glob("*.png"))  # no validation
    rows = table_rows(result.stdout)
    assert [row[0] for row in rows] == ["langevin (config)", "langevin", "euler", "euler, data_fit", "euler churn 1000",
                                        "euler churn 1000, data_fit", "heun", "heun, data_fit", "heun churn 1000",
                                        "heun churn 1000, data_fit", "held-out data"]
    assert (run_dir / "sampler_quality_gpu.png").stat().st_size > 0

    again = run_command(["bash", "benchmarks/sampler_quality_gpu.sh"], data_dir=tiny / "data", RUN_DIR=run_dir,
                        PYTHON=sys.executable)
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.mark.slow
def test_claims_trains_each_seed_and_scores_every_factor(tiny, tmp_path):
    """Both datasets, GRF noise, 2 seeds, factors 1 and 2 on the tiny config: every run is trained and
    evaluated by train.py and eval.py, the rows are their metrics files' mean over the seeds, and
    the known-law dataset is written on the largest factor's grid and scored against its law."""
    outdir, grf_dir, figure = tmp_path / "runs", tmp_path / "grf", tmp_path / "claims.png"
    resize_to = TINY["resolution"]
    result = run_benchmark(tiny, "claims", "--cfg", str(tiny / "tiny.json"), "--seeds", "0", "1",
                           "--factors", "1", "2", "--resolution", str(resize_to), "--npad", str(TINY["npad"]),
                           "--epochs", "1", "--n_samples", "6", "--outdir", str(outdir),
                           "--volcano_dir", str(tiny / "data"), "--grf_dir", str(grf_dir), "--figure", str(figure),
                           "--noises", "GRF", "--rbf_scale", "0.3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((grf_dir / "grf.json").read_text())["resolution"] == 2 * resize_to
    grf_config = json.loads((outdir / "grf-GRF-seed1" / "config.json").read_text())
    assert (grf_config["rbf_scale"], grf_config["white_noise"], grf_config["seed"]) == (0.3, False, 1)
    rows = [row for row in table_rows(result.stdout) if row[0] != "noise"]  # the second table's header
    side = resize_to - TINY["npad"]
    labels = [(row[0], row[1], row[2]) for row in rows]
    expected = [(label, str(f), str(f * side)) for f in (1, 2) for label in ("GRF", "held-out data")]
    assert labels == expected + expected  # volcano, then grf
    assert sorted(d.name for d in outdir.iterdir()) == [f"{dataset}-GRF-seed{seed}" for dataset in ("grf", "volcano")
                                                        for seed in (0, 1)]
    for dataset, table in (("volcano", rows[:4]), ("grf", rows[4:])):
        for row in table[:1]:
            noise, factor = row[0], int(row[1])
            name = "metrics.model.pt.json" if factor == 1 else f"metrics_{factor}x.model.pt.json"
            w_total = [json.loads((outdir / f"{dataset}-{noise}-seed{seed}" / "eval" / name).read_text())["w_total"]
                       for seed in (0, 1)]
            assert float(row[3].split("+-")[0]) == pytest.approx(sum(w_total) / 2, abs=1e-4)
    grf_at_2x = [row for row in rows[4:] if row[1] == "2"]
    assert all("+-" in row[-1] and "+-" in row[-2] for row in grf_at_2x)  # against the exact law
    assert all(row[-1] == "-" for row in rows[4:] if row[1] == "1")  # the resized data: no exact law
    assert figure.stat().st_size > 0

    again = run_benchmark(tiny, "claims", "--outdir", str(outdir))
    assert again.returncode == 2 and "not empty" in again.stderr


def test_known_law_metrics_of_draws_of_the_law_are_small_and_of_other_data_large():
    """exact_law_metrics: draws of the law itself score near 0 against it (sampling error only);
    the same draws scaled by 2 score far from it."""
    from benchmarks.claims import exact_law_metrics
    from src.synthetic.grf import GRFLaw

    law = GRFLaw(resolution=32)
    u = torch.from_numpy(law.sample(512, seed=3)).float()
    own, scaled = exact_law_metrics(u, law), exact_law_metrics(2 * u, law)
    assert own["exact_marginal"] < 0.07 and own["exact_spectrum"] < 0.15  # 0.02-0.04 and 0.02-0.08 over 5 seeds
    assert scaled["exact_marginal"] > 0.5 and scaled["exact_spectrum"] > 1.0  # 0.84-0.95 and 1.31-1.45 (log 4 = 1.39)


@pytest.mark.slow
def test_array_data_writes_each_config_trains_each_seed_and_scores_it_beside_the_floor(tmp_path):
    """--quick: both datasets, 2 seeds, through src.array_config, train.py and eval.py; the samples'
    row is the mean of eval.py's metrics files, the held-out row the validation split scored
    against the training split, and the ratio each seed's quotient of the two."""
    from src.metrics import field_stats

    outdir = tmp_path / "runs"
    result = run_command([sys.executable, "-m", "benchmarks.array_data", "--quick", "--outdir", outdir])
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {(row[0], row[1]): row for row in table_rows(result.stdout)}
    assert list(rows) == [(dataset, label) for dataset in ("grf", "darcy") for label in ("samples", "held-out data")]
    for dataset in ("grf", "darcy"):
        written = load_config(outdir / f"{dataset}.json")
        assert (written.resolution, written.ntrain, written.augment) == (16, 40, False)
        ratios, samples_w, floors_w = [], [], []
        for seed in (0, 1):
            run = outdir / f"{dataset}-seed{seed}"
            trained = load_config(run / "config.json")
            assert (trained.seed, trained.epochs, trained.sigma_1, trained.rbf_scale) == \
                (seed, 1, written.sigma_1, written.rbf_scale)
            w_total = json.loads((run / "eval" / "metrics.model.pt.json").read_text())["w_total"]
            train, valid = load_data(trained, outdir / "data" / dataset / f"{dataset}.npy")
            n = validation_count(written.ntrain, written.val_size)
            floor = wasserstein_metrics(field_stats(train), field_stats(valid[:n]))["w_total"]
            samples_w.append(w_total), floors_w.append(floor), ratios.append(w_total / floor)
        assert float(rows[dataset, "samples"][2].split("+-")[0]) == pytest.approx(sum(samples_w) / 2, abs=1e-4)
        assert float(rows[dataset, "held-out data"][2].split("+-")[0]) == pytest.approx(sum(floors_w) / 2, abs=1e-4)
        assert float(rows[dataset, "samples"][7].split("+-")[0]) == pytest.approx(sum(ratios) / 2, abs=0.01)
    assert all("+-" in cell for cell in rows["grf", "samples"][-2:])  # against the exact law
    assert rows["darcy", "samples"][-2:] == ["-", "-"]
    assert "sigma_1" in result.stdout and "largest variance" in result.stdout  # the command's reasons, printed

    again = run_command([sys.executable, "-m", "benchmarks.array_data", "--quick", "--outdir", outdir])
    assert again.returncode == 2 and "not empty" in again.stderr


def test_noise_ring_power_of_white_noise_falls_with_the_pixels_and_of_a_resolved_field_does_not():
    """noise_ring_power.ring_power: white noise of unit pixel variance spreads over res^2 modes, so
    a ring's mean power falls as 1 / res^2 (16 times from 8 to 32 px); a field whose correlation
    length the grids resolve has the same large-scale power on both."""
    from benchmarks.noise_ring_power import ring_power

    white = [ring_power(res, True, 1.0, 256, [1], seed=0)[0] for res in (8, 32)]
    assert 12 < white[0] / white[1] < 20
    assert white[0] == pytest.approx(1 / 8 ** 2, rel=0.2)
    smooth = [ring_power(res, False, 0.3, 256, [1], seed=0)[0] for res in (8, 32)]
    assert 0.8 < smooth[0] / smooth[1] < 1.25
