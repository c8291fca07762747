"""Seconds per training step at 1 and 2 intra-op threads, OpenMP's two wait policies, with and
without a competing CPU load, side by side in one run; and what the entry points choose here.

    python -m benchmarks.threads            # the quickstart's step: minutes (15 on 2 loaded cores)
    python -m benchmarks.threads --quick    # the tiny config, 1 step a cell: the table's shape only
        [--cfg exps/json/<...>.json] [--threads 1 2] [--policies default PASSIVE ACTIVE]
        [--loads none "busy loop" twin] [--warmup 1] [--steps 6] [--cell_seconds 10]

First, why each cell is a process of its own: libgomp reads OMP_NUM_THREADS and OMP_WAIT_POLICY
when torch loads it. A probe sets OMP_WAIT_POLICY=ACTIVE (spin) in ``os.environ`` before or after
``import torch``, runs a parallel op on 2 threads and sleeps 1 s: set before, the idle thread
spins through the sleep (about 1 CPU second); set after, it changes nothing (about 0).

Each cell is then a fresh process that trains with train.py's step
(`DiffusionTrainer.train_step`) on random functions of the config's shape: ``--warmup`` steps,
then ``--steps`` timed ones, or fewer if they pass ``--cell_seconds``; the cell shows the median
seconds per step and the number of steps timed. The loads, one row each:

- none: nothing else started (other users of the machine are not controlled: check ``uptime``);
- busy loop: one Python process per CPU spinning in ``while True`` (a job that never sleeps);
- twin: a second training process with the same threads and policy as the cell, stepping
  throughout: two of these runs side by side, as two users of the machine would run them.

The policy ``default`` leaves OMP_WAIT_POLICY unset (libgomp spins about 300000 times, a few
milliseconds, before it sleeps); ``PASSIVE`` sleeps at once; ``ACTIVE`` spins for minutes.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from src.threads import available_cpus, choose_threads  # no torch: this process only starts others

ROOT = Path(__file__).resolve().parents[1]

LOADS = ("none", "busy loop", "twin")
READY = "ready"


def step_loop(cfg: str, warmup: int, steps: int, seconds: float) -> None:
    """The cell's process: ``warmup`` steps, then print READY; then (``steps`` > 0) wait for a line
    on stdin, time the steps and print one JSON line of their times; ``steps`` 0: step until
    killed (the twin load)."""
    import torch

    from src.config import load_config
    from src.data import keyed_generator
    from src.distributed import World
    from src.methods.diffusion import DiffusionTrainer

    args = load_config(cfg)
    torch.manual_seed(args.seed)
    trainer = DiffusionTrainer(args, torch.empty(0), World(device="cpu"))
    res = args.data_resolution
    phase = torch.rand(args.batch_size, res, res, generator=keyed_generator(args.seed)) * 2 * torch.pi
    u = torch.stack([phase.cos(), phase.sin()], dim=-1)
    shard = World().shard(args.batch_size)

    def step(index: int) -> float:
        started = time.perf_counter()
        trainer.train_step(u, keyed_generator(args.seed, 0, index), index, shard)
        return time.perf_counter() - started

    for index in range(warmup):
        step(index)
    print(READY, flush=True)
    if steps:
        sys.stdin.readline()  # the load is up too
    times, started = [], time.perf_counter()
    index = warmup
    while steps == 0 or (len(times) < steps and (not times or time.perf_counter() - started < seconds)):
        times.append(step(index))
        index += 1
    print(json.dumps({"seconds": times, "threads": torch.get_num_threads()}), flush=True)


def probe(when: str) -> None:
    """The probe's process (2 threads): OMP_WAIT_POLICY=ACTIVE set in os.environ ``when`` ('before'
    or 'after') torch is imported; prints the CPU seconds of 1 s asleep after a parallel op,
    which a spinning thread spends."""
    if when == "before":
        os.environ["OMP_WAIT_POLICY"] = "ACTIVE"
    import torch

    if when == "after":
        os.environ["OMP_WAIT_POLICY"] = "ACTIVE"
    x = torch.rand(2000, 2000)
    (x * 2).sum()  # the threads start
    cpu = time.process_time()
    (x * 2).sum()
    time.sleep(1.0)
    print(f"{time.process_time() - cpu:.3f}")


def environment(threads: int, policy: str) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(OMP_NUM_THREADS=str(threads), TQDM_DISABLE="1")
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    return env


def start(cli, threads: int, policy: str, steps: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "benchmarks.threads", "--cell", "--cfg", cli.cfg, "--warmup", str(cli.warmup),
               "--steps", str(steps), "--cell_seconds", str(cli.cell_seconds)]
    return subprocess.Popen(command, env=environment(threads, policy), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=ROOT)


def wait_ready(process: subprocess.Popen, what: str) -> None:
    if process.stdout.readline().strip() != READY:
        raise RuntimeError(f"{what} stopped before its first steps (exit code {process.wait()})")


def stop(processes) -> None:
    for process in processes:
        process.kill()
        process.wait()


def measure(cli, load: str, threads: int, policy: str) -> dict:
    """One cell: the timed process and its load, the timing started once both are up (the busy
    loops are started then, so that they do not slow the cell's start-up)."""
    what = f"the cell ({load}, {threads} threads, {policy})"
    loads = []
    try:
        if load == "twin":
            loads = [start(cli, threads, policy, steps=0)]
        cell = start(cli, threads, policy, cli.steps)
        loads.append(cell)  # stopped too if this process is
        wait_ready(cell, what)
        if load == "twin":
            wait_ready(loads[0], f"the twin of {what}")
        elif load == "busy loop":
            loads += [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(available_cpus())]
        out, _ = cell.communicate("go\n")
        if cell.returncode != 0:
            raise RuntimeError(f"{what} failed with exit code {cell.returncode}")
        return json.loads(out.splitlines()[-1])
    finally:
        stop(loads)


def column_name(threads: int, policy: str | None) -> str:
    return f"{threads} thread{'s' if threads > 1 else ''}, {policy or 'GOMP_SPINCOUNT'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default=None, help="config (default: exps/json/quickstart.json; --quick: debug.json)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--policies", nargs="+", default=["default", "PASSIVE"],
                        choices=["default", "PASSIVE", "ACTIVE"])
    parser.add_argument("--loads", nargs="+", default=list(LOADS), choices=LOADS)
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per cell (default 6; --quick 1)")
    parser.add_argument("--cell_seconds", type=float, default=10.0,
                        help="stop timing a cell after this many seconds, at least one step (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="the tiny config and 1 step a cell (for the tests)")
    parser.add_argument("--cell", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--probe", choices=["before", "after"], help=argparse.SUPPRESS)
    cli = parser.parse_args()
    cli.cfg = cli.cfg or str(ROOT / "exps" / "json" / ("debug.json" if cli.quick else "quickstart.json"))
    cli.steps = cli.steps if cli.steps is not None else (1 if cli.quick else 6)
    if cli.cell:
        step_loop(cli.cfg, cli.warmup, cli.steps, cli.cell_seconds)
        return
    if cli.probe:
        probe(cli.probe)
        return

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a kill stops the loads too (finally)
    cpus = available_cpus()
    chosen = choose_threads(os.environ, cpus)
    environ = {**os.environ, **chosen.environment}
    policy = None if "GOMP_SPINCOUNT" in environ else environ.get("OMP_WAIT_POLICY", "default").upper()
    print(f"{cpus} CPUs; the entry points would choose here {chosen.describe()}: the column "
          f"{column_name(chosen.count, policy)!r}")

    print("| OMP_WAIT_POLICY=ACTIVE set in os.environ | CPU seconds of 1 s asleep after a parallel op, 2 threads |")
    print("|---|---|")
    for when in ("before", "after"):
        seconds = subprocess.run([sys.executable, "-m", "benchmarks.threads", "--probe", when],
                                 env=environment(2, "default"), cwd=ROOT,
                                 capture_output=True, text=True, check=True).stdout.strip()
        print(f"| {when} `import torch` | {seconds} |", flush=True)
    print(f"\n{Path(cli.cfg).name}: {cli.warmup} warm-up step(s), then {cli.steps} timed steps per cell (fewer past "
          f"{cli.cell_seconds:g} s); seconds per step, median (steps timed)\n")
    columns = [(threads, policy) for threads in cli.threads for policy in cli.policies]
    print("| load | " + " | ".join(column_name(*column) for column in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for load in cli.loads:
        cells = []
        for threads, policy in columns:
            result = measure(cli, load, threads, policy)
            if result["threads"] != threads:
                raise RuntimeError(f"a cell asked for {threads} threads ran {result['threads']}")
            cells.append(f"{statistics.median(result['seconds']):.3f} ({len(result['seconds'])})")
        print(f"| {load} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
