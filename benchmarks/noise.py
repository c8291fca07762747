"""Benchmark the noise samplers: circulant embedding (FFT) against dense Cholesky.

Run from the repository root::

    .venv/bin/python benchmarks/noise.py            # 32, 64, 120 px both; FFT alone at 240, 512, 1024 px
    .venv/bin/python benchmarks/noise.py --quick    # 32, 64 px both; FFT alone at 240 px
    .venv/bin/python benchmarks/noise.py --device cuda --max-cholesky-res 64

Prints a markdown table.  Every (resolution, method) runs in a fresh
subprocess so that peak memory is its own: on CPU the peak is the growth of
the resident set size (``ru_maxrss``) over the baseline after importing torch,
on CUDA ``torch.cuda.max_memory_allocated``.  The kernel is the paper's: the
exponential kernel with ``rbf_scale = 0.05`` and ``rbf_eps = 0.01``.

Columns
-------
setup
    Building the sampler: Cholesky factorization, or the circulant
    eigenvalues.
per batch
    Median wall time of ``sample(batch)`` after one warm-up call.
original loop
    Cholesky rows only: the same batch drawn the original code's way, one
    matrix-vector product ``L z`` per sample and channel.
speed-up
    Cholesky time per batch (batched matmul) over FFT time per batch at the
    same resolution; in brackets, the original loop over FFT.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent

KERNEL = "exponential"
RBF_SCALE = 0.05
RBF_EPS = 0.01
BOTH_METHODS_RESOLUTIONS = (32, 64, 120)
FFT_ONLY_RESOLUTIONS = (240, 512, 1024)
QUICK_BOTH_METHODS_RESOLUTIONS = (32, 64)
QUICK_FFT_ONLY_RESOLUTIONS = (240,)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small resolutions only")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--batch", type=int, default=64, help="draws per batch")
    parser.add_argument("--max-cholesky-res", type=int, default=None,
                        help="skip the Cholesky sampler above this resolution")
    parser.add_argument("--measure", nargs=2, metavar=("RES", "METHOD"),
                        help=argparse.SUPPRESS)  # internal: one measurement, in a child process
    return parser.parse_args()


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(res: int, method: str, device_name: str, batch: int) -> dict:
    """Time and memory of one sampler; runs in its own process."""
    sys.path.insert(0, str(REPOSITORY_ROOT))
    import torch

    from src.noise import build_noise_sampler

    device = torch.device(device_name)
    on_cuda = device.type == "cuda"

    def synchronize() -> None:
        if on_cuda:
            torch.cuda.synchronize(device)

    torch.randn(1, device=device)  # initialize the allocator / CUDA context before the baseline
    synchronize()
    baseline_mb = peak_rss_mb()
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)

    start = time.perf_counter()
    sampler = build_noise_sampler(res, False, RBF_SCALE, RBF_EPS, KERNEL, method, device)
    synchronize()
    setup_s = time.perf_counter() - start

    generator = torch.Generator(device=device).manual_seed(0)
    sampler.sample(batch, generator)  # warm-up: FFT plans, lazy allocations
    synchronize()
    repeats = 5 if res <= 240 else 3
    batch_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sampler.sample(batch, generator)
        synchronize()
        batch_times.append(time.perf_counter() - start)

    result = {
        "res": res,
        "method": method,
        "setup_s": setup_s,
        "batch_s": statistics.median(batch_times),
        "embedding_size": getattr(sampler, "embedding_size", None),
        "fallback": getattr(sampler, "fallback_sampler", None) is not None,
    }

    if method == "cholesky":
        # The original code drew one sample (and channel) at a time: a
        # matrix-vector product, memory bound, instead of one matmul.
        factor = sampler.cholesky_factor
        start = time.perf_counter()
        for _ in range(batch):
            for _channel in range(2):
                factor @ torch.randn(res * res, generator=generator, device=device)
        synchronize()
        result["original_loop_s"] = time.perf_counter() - start

    if on_cuda:
        result["peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        result["peak_mb"] = peak_rss_mb() - baseline_mb
    return result


def run_in_subprocess(res: int, method: str, arguments: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--measure", str(res), method,
               "--device", arguments.device, "--batch", str(arguments.batch)]
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def format_table(results: list[dict], batch: int, device_name: str) -> str:
    memory_label = "peak CUDA memory (MB)" if device_name.startswith("cuda") else "peak RSS growth (MB)"
    header = (f"| res | method | m | setup (s) | per batch of {batch} (s) | per draw (ms) | "
              f"original loop (s) | {memory_label} | speed-up per draw (vs loop) |")
    lines = [header, "|" + "---|" * 9]
    cholesky_by_res = {r["res"]: r for r in results if r["method"] == "cholesky"}
    for result in results:
        cholesky = cholesky_by_res.get(result["res"])
        speed_up = ""
        if result["method"] == "fft" and cholesky is not None:
            speed_up = (f"{cholesky['batch_s'] / result['batch_s']:.1f}x "
                        f"({cholesky['original_loop_s'] / result['batch_s']:.0f}x)")
        embedding = "" if result["embedding_size"] is None else str(result["embedding_size"])
        if result["fallback"]:
            embedding += " (fallback)"
        original_loop = f"{result['original_loop_s']:.3f}" if "original_loop_s" in result else ""
        lines.append(
            f"| {result['res']} | {result['method']} | {embedding} | {result['setup_s']:.3f} | "
            f"{result['batch_s']:.4f} | {1e3 * result['batch_s'] / batch:.3f} | {original_loop} | "
            f"{result['peak_mb']:.0f} | {speed_up} |"
        )
    return "\n".join(lines)


def main() -> None:
    arguments = parse_arguments()
    if arguments.measure is not None:
        res, method = arguments.measure
        print(json.dumps(measure(int(res), method, arguments.device, arguments.batch)))
        return

    both_methods = QUICK_BOTH_METHODS_RESOLUTIONS if arguments.quick else BOTH_METHODS_RESOLUTIONS
    fft_only = QUICK_FFT_ONLY_RESOLUTIONS if arguments.quick else FFT_ONLY_RESOLUTIONS
    plan = []
    for res in both_methods:
        plan.append((res, "fft"))
        if arguments.max_cholesky_res is None or res <= arguments.max_cholesky_res:
            plan.append((res, "cholesky"))
    plan += [(res, "fft") for res in fft_only]

    # The load average tells whether other processes shared the CPU.
    load_before = os.getloadavg()[0]
    results = []
    for res, method in plan:
        print(f"measuring {method} at {res} px ...", file=sys.stderr, flush=True)
        results.append(run_in_subprocess(res, method, arguments))
    load_after = os.getloadavg()[0]
    print(f"kernel {KERNEL}, rbf_scale {RBF_SCALE}, rbf_eps {RBF_EPS}, device {arguments.device}, "
          f"1-min load average {load_before:.2f} before, {load_after:.2f} after\n")
    print(format_table(results, arguments.batch, arguments.device))


if __name__ == "__main__":
    main()
