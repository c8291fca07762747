"""How much of a whole generation the noise takes: FFT vs Cholesky GRF sampler, same run.

    python -m benchmarks.generation_noise --cfg exps/json/quickstart.json [--Ntest 64] [--factor 1]

Builds the config's network (timing only: initial weights), then draws Ntest functions by
annealed Langevin dynamics (src.experiment.sample, the code path of validation and eval.py)
once with each noise sampler, timing the whole generation and the time spent inside the noise
sampler: the original code's algorithm (exponential kernel only; see benchmarks/noise.py),
our batched dense Cholesky, and the FFT sampler. Prints a markdown table.
"""

import argparse
import time
from dataclasses import replace

import torch

from src.config import load_config
from src.distributed import default_device
from src.experiment import build_noise, sample
from src.methods.diffusion import METHOD as DIFFUSION
from benchmarks.noise import OriginalGaussianRF


class TimedSampler:
    """Wraps a noise sampler and adds up the wall time of its draws."""

    def __init__(self, sampler, device):
        self.sampler, self.device, self.seconds = sampler, device, 0.0

    def sample(self, n, generator=None):
        start = time.perf_counter()
        draw = self.sampler.sample(n, generator=generator)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - start
        return draw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True)
    parser.add_argument("--Ntest", type=int, default=None, help="default: the config's")
    parser.add_argument("--factor", type=int, default=1)
    cli = parser.parse_args()
    args = load_config(cli.cfg)
    n = cli.Ntest or args.Ntest
    device = default_device()
    torch.manual_seed(0)
    model = DIFFUSION.build_model(args).to(device).eval()
    res = cli.factor * args.data_resolution
    print(f"{n} samples of {res} x {res} px, {args.L} x {args.T} Langevin steps, batch {args.val_batch_size}, "
          f"{torch.get_num_threads()} threads, {device}\n")
    print("| noise method | setup (s) | generation (s) | of which noise (s) | noise share |")
    print("|---|---|---|---|---|")
    methods = ("original", "cholesky", "fft") if args.noise_kernel == "exponential" else ("cholesky", "fft")
    for method in methods:
        start = time.perf_counter()
        if method == "original":
            sampler = OriginalGaussianRF(res, args.rbf_scale, args.rbf_eps, device)
        else:
            sampler = build_noise(replace(args, noise_method=method), res, device)
        sampler = TimedSampler(sampler, device)
        setup = time.perf_counter() - start
        start = time.perf_counter()
        sample(DIFFUSION, model, args, sampler, n, args.val_batch_size, seed=0, progress=False)
        total = time.perf_counter() - start
        print(f"| {method} | {setup:.2f} | {total:.1f} | {sampler.seconds:.1f} | {sampler.seconds / total:.0%} |")


if __name__ == "__main__":
    main()
