"""How much decorrelation noise each way of downsampling leaves in the training frames.

    DATA_DIR=... python -m benchmarks.data_roughness [--n 512] [--resolution 32 64 128] [--npad 4]

For each resolution, the first ``--n`` interferograms under DATA_DIR are loaded as
`src.data.load_volcano` loads them for training, both with the original's plain bilinear
resize (the reference) and with ``multilook`` (the footprint average), and the phase
roughness of the frames (`src.metrics.phase_roughness`: 0 for a constant phase, about 1 for
noise) is summarised. Prints a markdown table.
"""

import argparse
import os

import torch

from src.data import load_volcano
from src.metrics import phase_roughness

RESIZES = (("plain bilinear (original)", False), ("multilook", True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=512, help="interferograms to load")
    parser.add_argument("--resolution", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--npad", type=int, default=4, help="rows and columns cropped (the quickstart's 4)")
    cli = parser.parse_args()
    if "DATA_DIR" not in os.environ:
        parser.error("set DATA_DIR to the folder of *.int files")

    print("| resolution | frame px | resize | roughness mean | median | 90th percentile |")
    print("|---|---|---|---|---|---|")
    for resolution in cli.resolution:
        for name, multilook in RESIZES:
            frames = load_volcano(os.environ["DATA_DIR"], ntrain=cli.n, resolution=resolution, npad=cli.npad,
                                  multilook=multilook)
            roughness = phase_roughness(frames)
            print(f"| {resolution} | {resolution - cli.npad} | {name} | {roughness.mean():.3f} "
                  f"| {roughness.median():.3f} | {torch.quantile(roughness, 0.9):.3f} |")


if __name__ == "__main__":
    main()
