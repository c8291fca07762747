"""Distributed training on the CPU (gloo): 2 processes started by torchrun take the steps of
1 process with the same global batch, split validation sampling without changing a sample,
agree on a stop signal that reaches one rank, and resume under another world size.

Tolerances: 2 ranks sum the two halves' gradients where 1 process sums the whole batch, so
float32 rounding differs. Over the tiny configs' 8 steps (measured 2026-12-02): weights and EMA
within 1.2e-7 (diffusion) and 6e-8 (GANO), results lines within a relative 6e-8 (diffusion)
and 4.4e-11 absolute on GANO's Wasserstein estimate (about 3e-6 itself, untrained). The tests
allow 1e-5 on weights, and a relative 1e-5 or an absolute 1e-7 on every results entry.
"""

import json
import sys

import pytest
import torch
import torch.multiprocessing as mp

from conftest import ROOT, TINY, run_command
from src.config import config_from_dict
from src.distributed import Shard, World
from src.experiment import build_noise, sample
from src.methods.diffusion import METHOD as DIFFUSION

GANO_TINY = json.loads((ROOT / "exps" / "json" / "gano-debug.json").read_text())
SCRIPTS = {"sbgm": (ROOT / "train.py", TINY), "gan": (ROOT / "train_gano.py", GANO_TINY)}
WEIGHT_TOLERANCE, LOSS_TOLERANCE = 1e-5, 1e-5
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def train(script, config, run_dir, data, processes=1, fault=(), status=0, **env):
    """``script`` on ``config`` as 1 process or under torchrun, through tests/interrupted_train.py
    when a fault is given; its exit status must be ``status``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir.parent / f"{run_dir.name}.json").write_text(json.dumps(config))
    command = [sys.executable] if processes == 1 else [*TORCHRUN]
    if fault:
        command += [ROOT / "tests" / "interrupted_train.py", *fault]
        env["TRAIN_SCRIPT"] = script.stem
    else:
        command += [script]
    result = run_command([*command, "--cfg", run_dir.parent / f"{run_dir.name}.json", "--savedir", run_dir],
                         data_dir=data, **env)
    assert result.returncode == status, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def results(run_dir):
    return [json.loads(line) for line in (run_dir / "results.json").read_text().splitlines()]


def assert_close_runs(a, b):
    """Same results lines (losses to LOSS_TOLERANCE, relative) and weights (WEIGHT_TOLERANCE)."""
    lines_a, lines_b = results(a), results(b)
    assert len(lines_a) == len(lines_b)
    for line_a, line_b in zip(lines_a, lines_b):
        assert line_a.keys() == line_b.keys()
        for key in line_a.keys() - {"time"}:
            assert line_a[key] == pytest.approx(line_b[key], rel=LOSS_TOLERANCE, abs=1e-7), key
    state_a, state_b = (torch.load(run / "model.pt", weights_only=True) for run in (a, b))
    for key in ("weights", "ema", "discriminator"):
        if key in state_a:
            for name, value in state_a[key].items():
                assert torch.allclose(value, state_b[key][name], rtol=0, atol=WEIGHT_TOLERANCE), (key, name)


@pytest.fixture(scope="module")
def one_process(tiny_data, tmp_path_factory):
    """{method: the run directory of the tiny config trained by one process}, trained on demand."""
    runs, base = {}, tmp_path_factory.mktemp("one_process")

    def run_of(method):
        if method not in runs:
            script, config = SCRIPTS[method]
            train(script, config, base / method, tiny_data)
            runs[method] = base / method
        return runs[method]
    return run_of


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sbgm", "gan"])
def test_two_gloo_processes_take_the_steps_of_one(method, one_process, tiny_data, tmp_path):
    script, config = SCRIPTS[method]
    two = train(script, config, tmp_path / "two", tiny_data, processes=2)
    assert "(4 per process)" in two.stdout and "2 processes (gloo)" in two.stdout
    assert "rank 1 of 2" in two.stdout  # rank 1's one line
    assert two.stdout.count("epoch=2 ") == 1  # progress is rank 0's alone
    assert_close_runs(one_process(method), tmp_path / "two")


@pytest.mark.slow
def test_a_signal_to_one_rank_stops_both_and_the_run_resumes_on_one_process(one_process, tiny_data, tmp_path):
    script, config = SCRIPTS["sbgm"]
    stopped = train(script, config, tmp_path / "resized", tiny_data, processes=2,
                    fault=("step", "3", "USR1"), FAULT_RANK="1", status=1)  # torchrun: a rank exited 75
    assert "SIGUSR1: stopped at epoch 1, step 3" in stopped.stdout
    assert f"resume it with: python resume.py {tmp_path / 'resized'}" in stopped.stdout
    state = torch.load(tmp_path / "resized" / "model.pt", weights_only=True)
    assert (state["epoch"], state["step"], len(state["epoch_losses"]["loss"])) == (0, 3, 3)
    assert not (tmp_path / "resized" / "results.json").exists()
    resumed = train(script, config, tmp_path / "resized", tiny_data)
    assert "Resuming from" in resumed.stdout and "at epoch 1, step 4" in resumed.stdout
    assert_close_runs(one_process("sbgm"), tmp_path / "resized")


@pytest.mark.slow
def test_a_batch_that_does_not_split_evenly_is_refused_naming_batch_size(tiny_data, tmp_path):
    script, config = SCRIPTS["sbgm"]
    (tmp_path / "odd.json").write_text(json.dumps({**config, "batch_size": 7}))
    result = run_command([*TORCHRUN, script, "--cfg", tmp_path / "odd.json", "--savedir", tmp_path / "odd"],
                         data_dir=tiny_data)
    assert result.returncode != 0
    assert "a batch of 7 does not split evenly over 2 processes" in result.stderr
    assert "batch_size" in result.stderr
    assert not (tmp_path / "odd").exists()


def test_shards_cut_whole_batch_draws():
    world = World(rank=1, size=2)
    shard = world.shard(6)
    assert shard == Shard(3, 6, 6)
    assert torch.equal(shard.of(torch.arange(6)), torch.tensor([3, 4, 5]))
    assert Shard.whole(4).of(torch.arange(4)).tolist() == [0, 1, 2, 3]


def sample_on_rank(rank, config, weights, port, outputs):
    """One rank of a 2-process world: sample as validation does and keep what rank 0 gets."""
    torch.set_num_threads(1)
    world = World(rank=rank, size=2, device=torch.device("cpu")).start("127.0.0.1", port)
    try:
        args = config_from_dict(config, "test")
        model = DIFFUSION.build_model(args)
        model.load_state_dict(weights)
        samples = sample(DIFFUSION, model, args, build_noise(args, args.data_resolution, "cpu"), n=args.Ntest,
                         batch_size=args.val_batch_size, seed=5, progress=False, world=world)
        outputs[rank] = samples
    finally:
        world.close()


@pytest.mark.slow
def test_validation_split_over_two_ranks_draws_the_samples_of_one(unused_tcp_port):
    config = {**TINY, "Ntest": 7, "val_batch_size": 2}  # 4 batches, the last one short: 2 per rank
    args = config_from_dict(config, "test")
    torch.manual_seed(0)
    model = DIFFUSION.build_model(args)
    alone = sample(DIFFUSION, model, args, build_noise(args, args.data_resolution, "cpu"), n=7, batch_size=2, seed=5,
                   progress=False)
    outputs = mp.Manager().dict()
    mp.spawn(sample_on_rank, args=(config, model.state_dict(), unused_tcp_port, outputs), nprocs=2)
    assert alone.shape[0] == 7
    assert torch.equal(outputs[0], alone) and torch.equal(outputs[1], alone)


@pytest.fixture
def unused_tcp_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
