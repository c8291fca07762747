"""Benchmark the noise samplers: circulant embedding (FFT) against the original algorithm and dense Cholesky.

Run from the repository root::

    .venv/bin/python -m benchmarks.noise            # 32, 64, 120 px all three; FFT alone at 240, 512, 1024 px
    .venv/bin/python -m benchmarks.noise --quick    # 32, 64 px all three; FFT alone at 240 px
                                                    # (both: GANO's noise at 128, 256 px)
    .venv/bin/python -m benchmarks.noise --device cuda --max-cholesky-res 64

Prints a markdown table.  Every (resolution, method) runs in a fresh
subprocess so that peak memory is its own: on CPU the peak is the growth of
the resident set size (``ru_maxrss``) over the baseline after importing torch,
on CUDA ``torch.cuda.max_memory_allocated``.  The kernel is the paper's: the
exponential kernel with ``rbf_scale = 0.05`` and ``rbf_eps = 0.01``.

Methods
-------
original
    The original code's ``GaussianRF_RBF``, reproduced here as the reference
    (``OriginalGaussianRF``): float32 covariance from ``cdist`` of float32 grid
    coordinates, float32 Cholesky, and one ``L @ z`` per sample, ``z`` of shape
    ``(res^2, 2)``.  Its factor keeps the float32 subnormals that x86
    multiplies in microcode: that is the original's real cost.
cholesky
    ``CholeskyGRF``, our dense reference: float64 factorization, float32
    factor without subnormals, all samples of a batch in one matmul.
fft
    ``FFTGRF``, circulant embedding.
gano
    ``NeumannGRF``, GANO's noise (``noise_kernel: gano``, ``grf_alpha = 1.5``,
    ``grf_tau = 1``, the same ``rbf_eps``) by a separable DCT as matrix products:
    another distribution, timed beside the others.

Columns
-------
m
    FFT rows: the torus size (compact when smaller than ``2 (res - 1)``).
entry error bound
    FFT rows: ``max_covariance_error``, the bound on how much the torus
    changes an entry of the covariance (0 for the full torus).
setup
    Building the sampler: covariance and factorization, or the circulant
    eigenvalues.
per batch
    Median wall time of ``sample(batch)`` after one warm-up call.
FFT speed-up per draw
    On the FFT row of a resolution: the time per draw of the original
    algorithm, and of our batched Cholesky, over that of the FFT sampler.
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
METHODS = ("fft", "cholesky", "original")
DENSE_METHODS = ("cholesky", "original")
ALL_METHODS_RESOLUTIONS = (32, 64, 120)
FFT_ONLY_RESOLUTIONS = (240, 512, 1024)
QUICK_ALL_METHODS_RESOLUTIONS = (32, 64)
QUICK_FFT_ONLY_RESOLUTIONS = (240,)
GANO_RESOLUTIONS = (128, 256)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small resolutions only")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--batch", type=int, default=64, help="draws per batch")
    parser.add_argument("--max-cholesky-res", type=int, default=None,
                        help="skip the dense samplers (cholesky and original) above this resolution")
    parser.add_argument("--measure", nargs=2, metavar=("RES", "METHOD"),
                        help=argparse.SUPPRESS)  # internal: one measurement, in a child process
    return parser.parse_args()


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class OriginalGaussianRF:
    """The original code's ``GaussianRF_RBF``: the reference the speed-ups are measured against.

    Everything in float32, as the original: grid coordinates ``(i / res, j / res)``
    row-major, ``C = exp(-cdist(x, x) / (2 rbf_scale^2))``, ``C + rbf_eps^2 I``,
    ``torch.linalg.cholesky``, then one matrix product ``L z`` per sample with
    ``z`` of shape ``(res^2, 2)`` (both channels in one product).  The
    subnormal entries of the factor are deliberately left in.
    """

    def __init__(self, res: int, rbf_scale: float, rbf_eps: float, device) -> None:
        import torch

        self.res = res
        self.device = device
        rows, cols = torch.meshgrid(torch.arange(res), torch.arange(res), indexing="ij")
        coordinates = torch.stack([rows.reshape(-1) / res, cols.reshape(-1) / res], dim=-1).float().to(device)
        covariance = torch.exp(-torch.cdist(coordinates, coordinates) / (2 * rbf_scale**2))
        covariance = covariance + rbf_eps**2 * torch.eye(res * res, device=device)
        self.cholesky_factor = torch.linalg.cholesky(covariance)

    def sample(self, n: int, generator=None):
        import torch

        draws = []
        for _ in range(n):
            white = torch.randn(self.res * self.res, 2, generator=generator, device=self.device)
            draws.append((self.cholesky_factor @ white).reshape(self.res, self.res, 2))
        return torch.stack(draws)


def measure(res: int, method: str, device_name: str, batch: int) -> dict:
    """Time and memory of one sampler; runs in its own process."""
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
    if method == "original":
        sampler = OriginalGaussianRF(res, RBF_SCALE, RBF_EPS, device)
    elif method == "gano":
        sampler = build_noise_sampler(res, False, RBF_SCALE, RBF_EPS, "gano", "fft", device)
    else:
        sampler = build_noise_sampler(res, False, RBF_SCALE, RBF_EPS, KERNEL, method, device)
    synchronize()
    setup_s = time.perf_counter() - start

    generator = torch.Generator(device=device).manual_seed(0)
    sampler.sample(batch, generator)  # warm-up: FFT plans, lazy allocations
    synchronize()
    # The original takes half a minute per batch at 120 px.
    repeats = 3 if method == "original" or res > 240 else 5
    batch_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sampler.sample(batch, generator)
        synchronize()
        batch_times.append(time.perf_counter() - start)

    return {
        "res": res,
        "method": method,
        "setup_s": setup_s,
        "batch_s": statistics.median(batch_times),
        "repeats": repeats,
        "embedding_size": getattr(sampler, "embedding_size", None),
        "max_covariance_error": getattr(sampler, "max_covariance_error", None),
        "fallback": getattr(sampler, "fallback_sampler", None) is not None,
        "peak_mb": (torch.cuda.max_memory_allocated(device) / 2**20 if on_cuda
                    else peak_rss_mb() - baseline_mb),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def run_in_subprocess(res: int, method: str, arguments: argparse.Namespace) -> dict:
    command = [sys.executable, "-m", "benchmarks.noise", "--measure", str(res), method,
               "--device", arguments.device, "--batch", str(arguments.batch)]
    completed = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPOSITORY_ROOT)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def format_table(results: list[dict], batch: int, device_name: str) -> str:
    memory_label = "peak CUDA memory (MB)" if device_name.startswith("cuda") else "peak RSS growth (MB)"
    header = (f"| res | method | m | entry error bound | setup (s) | per batch of {batch} (s) | per draw (ms) | "
              f"{memory_label} | FFT speed-up per draw vs original | vs batched Cholesky |")
    lines = [header, "|" + "---|" * 10]
    by_res_and_method = {(r["res"], r["method"]): r for r in results}

    def speed_up(result: dict, reference_method: str) -> str:
        reference = by_res_and_method.get((result["res"], reference_method))
        if result["method"] != "fft" or reference is None:
            return ""
        ratio = reference["batch_s"] / result["batch_s"]
        return f"{ratio:.1f}x" if ratio < 10 else f"{ratio:.0f}x"

    for result in results:
        embedding = "" if result["embedding_size"] is None else str(result["embedding_size"])
        if result["fallback"]:
            embedding += " (fallback)"
        error_bound = "" if result["max_covariance_error"] is None else f"{result['max_covariance_error']:.0e}"
        lines.append(
            f"| {result['res']} | {result['method']} | {embedding} | {error_bound} | {result['setup_s']:.3f} | "
            f"{result['batch_s']:.4f} | {1e3 * result['batch_s'] / batch:.3f} | {result['peak_mb']:.0f} | "
            f"{speed_up(result, 'original')} | {speed_up(result, 'cholesky')} |"
        )
    return "\n".join(lines)


def main() -> None:
    arguments = parse_arguments()
    if arguments.measure is not None:
        res, method = arguments.measure
        print(json.dumps(measure(int(res), method, arguments.device, arguments.batch)))
        return

    all_methods = QUICK_ALL_METHODS_RESOLUTIONS if arguments.quick else ALL_METHODS_RESOLUTIONS
    fft_only = QUICK_FFT_ONLY_RESOLUTIONS if arguments.quick else FFT_ONLY_RESOLUTIONS
    plan = []
    for res in all_methods:
        for method in METHODS:
            dense_skipped = arguments.max_cholesky_res is not None and res > arguments.max_cholesky_res
            if method not in DENSE_METHODS or not dense_skipped:
                plan.append((res, method))
    plan += [(res, "fft") for res in fft_only]
    plan += [(res, "gano") for res in GANO_RESOLUTIONS]

    # The load average tells whether other processes shared the CPU.
    load_before = os.getloadavg()[0]
    results = []
    for res, method in plan:
        print(f"measuring {method} at {res} px ...", file=sys.stderr, flush=True)
        results.append(run_in_subprocess(res, method, arguments))
    load_after = os.getloadavg()[0]
    print(f"kernel {KERNEL}, rbf_scale {RBF_SCALE}, rbf_eps {RBF_EPS}, device {arguments.device}, "
          f"torch {results[0]['torch']} with {results[0]['threads']} threads, "
          f"1-min load average {load_before:.2f} before, {load_after:.2f} after\n")
    print(format_table(results, arguments.batch, arguments.device))


if __name__ == "__main__":
    main()
