"""How much large-scale power the noise has on a coarse grid and on a fine one.

    python -m benchmarks.noise_ring_power [--resolutions 14 28 56] [--rbf_scales 0.1 0.3] [--n 256] [--rings 1 2]

Super-resolution samples on a finer grid with weights trained on a coarse one; it can only work
if the noise has the same law on both at the scales both resolve. For white noise (the
reference) and for the GRF of each ``--rbf_scale`` (exponential kernel, ``rbf_eps`` 0.01, as in
the quickstart), this draws ``--n`` functions at each resolution and prints the mean power of
the lowest Fourier rings (`src.metrics.field_stats`'s radially averaged spectrum, averaged over
the draws and the two channels). A field the coarse grid does not resolve has more power in
those rings on the coarse grid than on the fine one, as white noise has. Prints a markdown table.
"""

import argparse

import torch

from src.metrics import field_stats
from src.noise import build_noise_sampler


def ring_power(res: int, white_noise: bool, rbf_scale: float, n: int, rings: list[int], seed: int) -> list[float]:
    sampler = build_noise_sampler(res, white_noise=white_noise, rbf_scale=rbf_scale, rbf_eps=0.01)
    draws = sampler.sample(n, torch.Generator().manual_seed(seed))
    spectrum = field_stats(draws)["spectrum"].mean(axis=(0, 1))  # (res // 2 + 1,)
    return [float(spectrum[k]) for k in rings]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[14, 28, 56])
    parser.add_argument("--rbf_scales", type=float, nargs="+", default=[0.1, 0.3])
    parser.add_argument("--n", type=int, default=256, help="draws at each resolution")
    parser.add_argument("--rings", type=int, nargs="+", default=[1, 2], help="rings round(|k|) to report")
    parser.add_argument("--seed", type=int, default=0)
    cli = parser.parse_args()
    if min(cli.resolutions) // 2 < max(cli.rings):
        parser.error(f"ring {max(cli.rings)} is above the Nyquist ring of {min(cli.resolutions)} px")

    rows = [("white (reference)", True, 1.0)] + [(f"GRF, rbf_scale {s:g}", False, s) for s in cli.rbf_scales]
    rings = ", ".join(str(k) for k in cli.rings)
    print(f"Mean power of rings |k| = {rings} of {cli.n} draws (seed {cli.seed}), per resolution; "
          f"last column: the coarsest grid's first ring over the finest's\n")
    print("| noise | " + " | ".join(f"{r} px" for r in cli.resolutions)
          + f" | ring {cli.rings[0]}, {cli.resolutions[0]} px / {cli.resolutions[-1]} px |")
    print("|---|" + "---|" * (len(cli.resolutions) + 1))
    for label, white, scale in rows:
        powers = [ring_power(r, white, scale, cli.n, cli.rings, cli.seed) for r in cli.resolutions]
        cells = [", ".join(f"{p:.5f}" for p in per_res) for per_res in powers]
        print(f"| {label} | " + " | ".join(cells) + f" | {powers[0][0] / powers[-1][0]:.2f} |")


if __name__ == "__main__":
    main()
