"""Command line of the synthetic data: the files, a preview figure, or both.

From the repository root::

    python -m src.synthetic --outdir DIR [--n 4096] [--seed 0] [--overwrite]
    python -m src.synthetic --preview assets/synthetic_samples.png [--seed 0]
    python -m src.synthetic --kind grf --outdir DIR [--n 4096] [--seed 0] [--resolution 64] [--channels 1]
    python -m src.synthetic --kind darcy --outdir DIR [--n 4096] [--seed 0] [--resolution 64] [--forcing 1]

``--kind volcano`` (the default) is the synthetic Volcano interferograms; ``--kind grf`` the
dataset of known law of `src.synthetic.grf`, written as ``DIR/grf.npy`` and ``DIR/grf.json``
(train on it with ``DATA_DIR=DIR/grf.npy``); ``--kind darcy`` the Darcy-flow solutions of
`src.synthetic.darcy`, ``DIR/darcy.npy`` (N, R, R) and ``DIR/darcy.json``. With either,
``--preview`` draws the first 16 functions.

``--outdir`` writes ``DIR/synthetic_00000.int`` ... (see `src.synthetic.write_dataset`) and
prints a one-line summary. It refuses (exit status 2, naming the file) to replace existing
files unless ``--overwrite`` is given, and warns when ``DIR`` holds other ``.int`` files,
since `src.data.load_volcano` reads every ``.int`` file under its root.

``--preview PNG`` draws the phase of the first 16 frames of ``--seed`` (the first 16 files
that ``--outdir`` writes with that seed, whatever ``--n``), titled with each frame's circular
variance and skewness, and replaces ``PNG``. Given without ``--outdir``, it writes nothing
else.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from src.data import FILE_BYTES
from src.synthetic import generate_interferograms, write_dataset
from src.synthetic import darcy, grf
from src.synthetic.darcy import DarcyProblem, write_darcy_dataset
from src.synthetic.grf import GRFLaw, write_grf_dataset

KINDS = ("volcano", "grf", "darcy")
# The exit status of a refusal to overwrite: wrong input, as argparse's errors.
REFUSED = 2
PREVIEW_FRAMES = 16
PREVIEW_COLUMNS = 4


def write_array_preview(path: Path, seed: int, dataset) -> None:
    """The first `PREVIEW_FRAMES` functions of ``seed`` of a `GRFLaw` or a `DarcyProblem`
    (channel 0), saved to ``path``."""
    from src.plotting import plot_functions

    u = torch.from_numpy(dataset.sample(PREVIEW_FRAMES, seed))
    if u.ndim == 3:
        u = u[..., None]  # (N, R, R): one channel
    titles = [f"std {float(f.std()):.2g}" for f in u]
    name = ("Amplitude-modulated Gaussian random fields" if isinstance(dataset, GRFLaw)
            else f"Darcy flow, -div(a grad u) = {dataset.forcing:g}")
    plot_functions(u, [path], PREVIEW_COLUMNS, kind="field", titles=titles, suptitle=f"{name} (seed {seed})")


def write_preview(path: Path, seed: int) -> None:
    """Phase grid of the first `PREVIEW_FRAMES` frames of ``seed``, saved to ``path``."""
    # Imported here: matplotlib costs seconds of start-up that writing files does not need.
    from src.metrics import circular_stats
    from src.plotting import plot_phase_grid

    frames = generate_interferograms(PREVIEW_FRAMES, seed=seed)
    phase = np.arctan2(frames[..., 1], frames[..., 0])
    u = torch.from_numpy(np.stack([np.cos(phase), np.sin(phase)], axis=-1))
    stats = circular_stats(u)
    titles = [f"var {variance:.2f}  skew {skewness:+.2f}" for variance, skewness in zip(stats["var"], stats["skew"])]
    plot_phase_grid(u, [path], PREVIEW_COLUMNS, titles=titles,
                    suptitle=f"Synthetic Volcano interferograms (seed {seed})")


def _parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m src.synthetic",
        description="Write synthetic Volcano InSAR interferograms as .int files (the format of src/data.py), "
                    "functions of a known law (--kind grf) as DIR/grf.npy, Darcy-flow solutions (--kind darcy) "
                    "as DIR/darcy.npy, a preview figure of the first 16, or both.",
    )
    parser.add_argument("--kind", choices=KINDS, default="volcano",
                        help="volcano: .int interferograms (default); grf: src/synthetic/grf.py's known law; "
                             "darcy: src/synthetic/darcy.py's solutions")
    parser.add_argument("--outdir", type=Path, help="output folder of the .int files (created if missing)")
    parser.add_argument("--n", type=int, default=4096, help="number of files (default 4096)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing synthetic_*.int (grf.npy, darcy.npy) files")
    parser.add_argument("--resolution", type=int, default=GRFLaw.resolution,
                        help="grf, darcy: side of the grid (default 64)")
    parser.add_argument("--channels", type=int, default=None, help=f"grf: channels (default {GRFLaw.channels})")
    parser.add_argument("--forcing", type=float, default=None,
                        help=f"darcy: the source f (default {DarcyProblem.forcing:g}, FNO's); u is proportional to it")
    parser.add_argument("--preview", type=Path, metavar="PNG",
                        help=f"draw the first {PREVIEW_FRAMES} frames of the seed to this PNG (replaced if it exists)")
    arguments = parser.parse_args(argv)
    if arguments.outdir is None and arguments.preview is None:
        parser.error("give --outdir (the .int files), --preview (a figure) or both")
    if arguments.n < 1:
        parser.error(f"--n must be at least 1, got {arguments.n}")
    if arguments.seed < 0:
        parser.error(f"--seed must be non-negative, got {arguments.seed}")
    for option, kind in (("channels", "grf"), ("forcing", "darcy")):
        if getattr(arguments, option) is not None and arguments.kind != kind:
            parser.error(f"--{option} is for --kind {kind}, not --kind {arguments.kind}")
    try:
        if arguments.kind == "grf":
            channels = GRFLaw.channels if arguments.channels is None else arguments.channels
            arguments.dataset = GRFLaw(resolution=arguments.resolution, channels=channels)
        elif arguments.kind == "darcy":
            forcing = DarcyProblem.forcing if arguments.forcing is None else arguments.forcing
            arguments.dataset = DarcyProblem(resolution=arguments.resolution, forcing=forcing)
    except ValueError as error:
        parser.error(str(error))
    return arguments


def _write_files(outdir: Path, n: int, seed: int, overwrite: bool) -> int:
    """`write_dataset` with the command's messages; returns the exit status."""
    try:
        paths = write_dataset(outdir, n, seed=seed, overwrite=overwrite)
    except FileExistsError as error:
        print(f"error: {error}", file=sys.stderr)
        return REFUSED
    written = set(paths)
    others = [path for path in outdir.rglob("*.int") if path not in written]
    if others:
        # load_volcano reads every .int file under its root, these included.
        print(
            f"warning: {outdir} also holds {len(others)} other .int files (e.g. {others[0]}), "
            "which load_volcano will read too",
            file=sys.stderr,
        )
    size_mb = len(paths) * FILE_BYTES / 1e6
    print(f"wrote {len(paths)} synthetic interferograms (seed {seed}, {size_mb:.1f} MB) to {outdir}")
    return 0


def _write_array_dataset(arguments: argparse.Namespace) -> int:
    """The grf or darcy dataset and its preview, with the command's messages; returns the exit status."""
    dataset, module = arguments.dataset, (grf if arguments.kind == "grf" else darcy)
    if arguments.outdir is not None:
        write = write_grf_dataset if arguments.kind == "grf" else write_darcy_dataset
        try:
            path = write(arguments.outdir, arguments.n, arguments.seed, dataset, arguments.overwrite)
        except FileExistsError as error:
            print(f"error: {error}", file=sys.stderr)
            return REFUSED
        shape = np.load(path, mmap_mode="r").shape[1:]
        print(f"wrote {arguments.n} functions of shape {shape} (seed {arguments.seed}) to {path}, "
              f"how they were made to {module.dataset_paths(arguments.outdir)[1]}")
    if arguments.preview is not None:
        write_array_preview(arguments.preview, arguments.seed, dataset)
        print(f"wrote the first {PREVIEW_FRAMES} functions of seed {arguments.seed} to {arguments.preview}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the process exit status."""
    arguments = _parse_arguments(argv)
    if arguments.kind in ("grf", "darcy"):
        return _write_array_dataset(arguments)
    if arguments.outdir is not None:
        status = _write_files(arguments.outdir, arguments.n, arguments.seed, arguments.overwrite)
        if status != 0:
            return status
    if arguments.preview is not None:
        write_preview(arguments.preview, arguments.seed)
        print(f"wrote the first {PREVIEW_FRAMES} frames of seed {arguments.seed} to {arguments.preview}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
