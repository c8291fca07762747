"""Training throughput (samples per second) of the distributed path, side by side in one run.

    python -m benchmarks.distributed_throughput                 # CPU: 1 process against 2 gloo processes
    python -m benchmarks.distributed_throughput --device cuda   # GPU: plain 1 process against DDP at world size 1
        [--cfg exps/json/<...>.json] [--steps 20] [--warmup 3] [--repeats 3]

Each row trains with train.py's step (`src.methods.diffusion.DiffusionTrainer.train_step`: DDP when there is a
process group) and the loop's per-step collectives (`World.mean` of the losses,
`World.agreed_signal`), on random functions of the config's shape: ``--warmup`` steps, then
``--repeats`` times ``--steps`` timed steps; samples/s = global batch x steps / seconds, the
median of the repeats and their range. Every row runs in a fresh process (or processes) of
its own, so thread pools and caches do not carry over.

CPU rows (default config: exps/json/quickstart.json): the reference, 1 process with every
core's thread; DDP at world size 1 (gloo); 1 process with 1 thread; and 2 gloo processes of 1
thread each, the global batch split in two. GPU rows (default: the paper's exps/json/rbf-copied.json): the reference,
1 plain process; and DDP at world size 1 (nccl): the cost of the distributed path itself.
"""

import argparse
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from src.config import load_config
from src.data import keyed_generator
from src.distributed import World, default_device
from src.methods.diffusion import DiffusionTrainer

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def measure(rank: int, cli, processes: int, threads: int, ddp: bool, port: int, outputs) -> None:
    """One rank of one row: train, and (rank 0) put the samples/s of each repeat in outputs."""
    torch.set_num_threads(threads)
    device = default_device(rank) if cli.device == "cuda" else torch.device("cpu")
    world = World(rank, processes, rank, device).start("127.0.0.1", port)
    if ddp and processes == 1:  # World.start joins no group alone: DDP at world size 1 needs one
        dist.init_process_group(world.backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        args = load_config(cli.cfg)
        torch.manual_seed(args.seed)
        trainer = DiffusionTrainer(args, torch.empty(0), world)
        shard = world.shard(args.batch_size)
        res = args.data_resolution
        phase = torch.rand(args.batch_size, res, res, generator=keyed_generator(args.seed)) * 2 * torch.pi
        u = shard.of(torch.stack([phase.cos(), phase.sin()], dim=-1)).to(device)

        def steps(first: int, count: int) -> None:
            for step in range(first, first + count):
                losses = trainer.train_step(u, keyed_generator(args.seed, 0, step, device=device), step, shard)
                world.mean(losses)
                world.agreed_signal(None)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            world.barrier()

        steps(0, cli.warmup)
        rates = []
        for repeat in range(cli.repeats):
            started = time.perf_counter()
            steps(cli.warmup + repeat * cli.steps, cli.steps)
            rates.append(args.batch_size * cli.steps / (time.perf_counter() - started))
        if world.is_main:
            outputs["rates"] = rates
            outputs["batch"] = (args.batch_size, shard.stop - shard.start)
    finally:
        world.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--cfg", default=None, help="config (default: quickstart.json on the CPU, rbf-copied.json on CUDA)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per repeat (default 20 CPU, 50 GPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3 CPU, 10 GPU)")
    parser.add_argument("--repeats", type=int, default=3)
    cli = parser.parse_args()
    gpu = cli.device == "cuda"
    if gpu and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device here")
    cli.cfg = cli.cfg or str(ROOT / "exps" / "json" / ("rbf-copied.json" if gpu else "quickstart.json"))
    cli.steps = cli.steps or (50 if gpu else 20)
    cli.warmup = cli.warmup or (10 if gpu else 3)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if gpu:
        rows = [("1 process (reference)", 1, cores, False), ("DDP, world size 1 (nccl)", 1, cores, True)]
        where = torch.cuda.get_device_name()
    else:
        rows = [("1 process (reference)", 1, cores, False), ("DDP, world size 1 (gloo)", 1, cores, True),
                ("1 process, 1 thread", 1, 1, False), ("2 processes (gloo), 1 thread each", 2, 1, True)]
        where = f"CPU, {cores} cores"
    print(f"Training throughput of {Path(cli.cfg).name} on {where}: {cli.warmup} warm-up steps, then "
          f"{cli.repeats} x {cli.steps} timed steps per row\n")
    print("| row | processes x threads | global batch (per process) | samples/s, median (range) | vs reference |")
    print("|---|---|---|---|---|")
    reference = None
    for name, processes, threads, ddp in rows:
        outputs = mp.Manager().dict()
        mp.spawn(measure, args=(cli, processes, threads, ddp, free_port(), outputs), nprocs=processes)
        rates = outputs["rates"]
        median = statistics.median(rates)
        reference = reference or median
        batch, per_process = outputs["batch"]
        print(f"| {name} | {processes} x {threads} | {batch} ({per_process}) | {median:.1f} ({min(rates):.1f} "
              f"to {max(rates):.1f}) | {median / reference:.2f} |", flush=True)


if __name__ == "__main__":
    main()
