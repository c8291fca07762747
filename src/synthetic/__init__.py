"""Synthetic stand-in for the Volcano InSAR dataset, written in the real dataset's format.

The real dataset is a folder of wrapped interferograms of volcanoes, one ``.int`` file per
frame (the format is defined in `src.data`). `write_dataset` writes synthetic frames as
``synthetic_00000.int``, ``synthetic_00001.int``, ... so that everything downstream
(`src.data.load_volcano`, training, evaluation) runs unchanged without the real data.

- `src.synthetic.physics`: what the frames are (the physical model, its parameters and
  their ranges) and `generate_interferograms`, which draws them.
- this module: `write_dataset`, the files.
- `src.synthetic.grf` and `src.synthetic.darcy`: array datasets of functions (a known law;
  Darcy-flow solutions), each written by `write_array_dataset` as ``DIR/<name>.npy`` with a
  ``DIR/<name>.json`` that says how it was made.
- `src.synthetic.__main__`: the command line, ``python -m src.synthetic --help``.

From Python::

    from src.synthetic import generate_interferograms, write_dataset
    frames = generate_interferograms(16, seed=0)    # (16, 128, 128, 2) float32
    paths = write_dataset("data/synthetic", n=4096, seed=0)

README.org, section "Synthetic Volcano data", shows the first frames of seed 0.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from src.data import write_interferogram
from src.files import atomic_paths
from src.synthetic.physics import generate_interferograms

__all__ = ["array_dataset_paths", "generate_interferograms", "synthetic_file_name", "write_array_dataset",
           "write_dataset"]

FILE_NAME_FORMAT = "synthetic_{:05d}.int"
# Frames generated at a time: memory stays bounded for any number of files.
_FRAMES_PER_CHUNK = 256


def synthetic_file_name(index: int) -> str:
    """File name of frame ``index``, e.g. ``synthetic_00042.int``."""
    return FILE_NAME_FORMAT.format(index)


def write_dataset(outdir: str | Path, n: int, seed: int = 0, overwrite: bool = False) -> list[Path]:
    """Write synthetic frames ``0, ..., n - 1`` of ``seed`` as ``.int`` files.

    Parameters
    ----------
    outdir : str or Path
        Output folder, created (with parents) if missing.
    n : int
        Number of files, ``synthetic_00000.int`` to ``synthetic_{n-1:05d}.int``.
    seed : int
        Non-negative seed (see `generate_interferograms`): the same seed gives the same
        bytes, and a smaller ``n`` the first of the files of a larger one.
    overwrite : bool
        Allow replacing existing files of the same names.

    Returns
    -------
    list of Path
        The written files, in frame order.

    Raises
    ------
    FileExistsError
        If a target file exists and ``overwrite`` is False; checked before anything is
        written, and the message names the first such file.
    """
    outdir = Path(outdir)
    paths = [outdir / synthetic_file_name(index) for index in range(n)]
    if not overwrite:
        existing = [path for path in paths if path.exists()]
        if existing:
            raise FileExistsError(
                f"refusing to overwrite {existing[0]} ({len(existing)} of the {n} target files exist); "
                "pass overwrite=True (--overwrite) to replace them"
            )
    outdir.mkdir(parents=True, exist_ok=True)
    for chunk_start in range(0, n, _FRAMES_PER_CHUNK):
        chunk = generate_interferograms(min(_FRAMES_PER_CHUNK, n - chunk_start), seed=seed, start=chunk_start)
        for offset, frame in enumerate(chunk):
            write_interferogram(paths[chunk_start + offset], frame)
    return paths


def array_dataset_paths(outdir: str | Path, name: str) -> tuple[Path, Path]:
    """(DIR/<name>.npy, DIR/<name>.json): an array dataset's functions and how they were made."""
    outdir = Path(outdir)
    return outdir / f"{name}.npy", outdir / f"{name}.json"


def write_array_dataset(outdir: str | Path, name: str, make_functions: Callable[[], np.ndarray],
                        description: dict, overwrite: bool = False) -> Path:
    """Write ``make_functions()`` to DIR/<name>.npy and ``description`` to DIR/<name>.json, together.

    Parameters
    ----------
    outdir : str or Path
        Output folder, created (with parents) if missing.
    name : str
        The dataset's name, the stem of both files.
    make_functions : callable
        Returns the functions, e.g. (N, R, R) or (N, R, R, C); called only once the targets
        are known to be free, so that a refusal costs nothing.
    description : dict
        JSON-serialisable: what rebuilds the functions (their parameters, n, seed).
    overwrite : bool
        Allow replacing existing files.

    Returns
    -------
    Path
        The .npy file, which is what DATA_DIR points at.

    Raises
    ------
    FileExistsError
        Naming the file, if either exists and ``overwrite`` is False (nothing is written).
    """
    array_path, description_path = array_dataset_paths(outdir, name)
    if not overwrite:
        for path in (array_path, description_path):
            if path.exists():
                raise FileExistsError(f"refusing to overwrite {path}; pass overwrite=True (--overwrite) to replace it")
    # Both files or neither: a failure leaves the earlier pair whole.
    with atomic_paths([array_path, description_path]) as (array_temporary, description_temporary):
        with open(array_temporary, "wb") as f:
            np.save(f, make_functions())
        description_temporary.write_text(json.dumps(description, indent=2) + "\n")
    return array_path
