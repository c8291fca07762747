"""The datasets: the Volcano InSAR ``.int`` files, array files of any functions, splitting,
batching, flipping.

Functions, everywhere in this project (data, noise draws, samples, the networks' inputs and
outputs), are tensors ``(batch, res, res, channels)``: channels last, any number of channels
(2 for Volcano: (cos, sin) of the phase), on a square grid; a network converts to its own
layout inside its ``forward``.

The ``.int`` format (the real dataset's, defined here and nowhere else): one wrapped
interferogram per file, raw little-endian float32 of shape (128, 128, 2) in C order, i.e.
(row, column, [real, imaginary]), no header: 128 * 128 * 2 * 4 = 131072 bytes.
`read_interferogram_phase` reads one, `write_interferogram` writes one. Only the phase
is used, stored as the unit vector (cos(phase), sin(phase)) so that the data are
continuous across the -pi / pi wrap.

An array dataset is one ``.npy`` file, or one ``.pt`` file holding a tensor or a dict of them
(as neuraloperator's Darcy and Navier-Stokes files do), of N real functions on a square grid:
(N, H, H) for one channel, (N, C, H, H) or (N, H, H, C) for C. `load_functions` reads it.

Both kinds are resized to ``resolution`` and cropped to their top-left ``resolution - npad``
square by `resize_and_crop`, and come out channels last: (N, res, res, C), with C = 2,
(cos, sin), for Volcano. How a resize reads a pixel is the data's grid (`DATA_GRIDS`):
'points', the value of the function at (i / side, j / side), the grid of the noise's kernels
(src/noise.py; GANO's Neumann field sits at cell centres) and of point-sampled datasets, whose coarse files are their fine ones at every
k-th point (array data by default); or 'cells', the function over the cell
[i / side, (i + 1) / side) x [j / side, (j + 1) / side), resized as images are (Volcano, as the
original did).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from src.errors import KnownError
from src.progress import progress_bar

FRAME_SIZE = 128
FILE_DTYPE = np.dtype("<f4")
FILE_BYTES = FRAME_SIZE * FRAME_SIZE * 2 * FILE_DTYPE.itemsize
# Below this many files the progress bar is noise rather than information.
_PROGRESS_BAR_MIN_FILES = 256
# How a pixel is read when resizing (see the module docstring): the point (i / side, j / side), or the cell from there.
DATA_GRIDS = ("points", "cells")


class DataError(KnownError, ValueError):
    """Data that cannot be trained on or evaluated: missing, unreadable, of the wrong shape or
    values, or not what the config says; the message names the file and the culprit."""


def read_interferogram_phase(path: str | Path) -> np.ndarray:
    """Read the wrapped phase of one ``.int`` file.

    Parameters
    ----------
    path : str or Path
        A file of exactly 131072 bytes: float32 (128, 128, [real, imaginary]).

    Returns
    -------
    np.ndarray, shape (128, 128), float32
        ``angle(real + 1j * imaginary)`` in [-pi, pi].

    Raises
    ------
    DataError
        If the file cannot be read, its size is not 131072 bytes, or it holds NaN or infinite values.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size != FILE_BYTES:
            raise DataError(
                f"{path} has {size} bytes, expected {FILE_BYTES} "
                f"(float32 {FRAME_SIZE} x {FRAME_SIZE} x 2, real and imaginary parts)"
            )
        values = np.fromfile(path, dtype=FILE_DTYPE).reshape(FRAME_SIZE, FRAME_SIZE, 2)
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror or error}") from None
    if not np.isfinite(values).all():
        raise DataError(f"{path} holds non-finite (NaN or infinite) values")
    return np.arctan2(values[..., 1], values[..., 0])


def write_interferogram(path: str | Path, frame: np.ndarray) -> None:
    """Write one interferogram as an ``.int`` file, which `read_interferogram_phase` reads.

    Parameters
    ----------
    path : str or Path
        Output file, replaced if it exists; its folder must exist.
    frame : np.ndarray, shape (128, 128, 2)
        (row, column, [real, imaginary]), finite; written as little-endian float32.

    Raises
    ------
    ValueError
        If ``frame`` has another shape or holds NaN or infinite values (nothing is written).
    """
    frame = np.asarray(frame)
    if frame.shape != (FRAME_SIZE, FRAME_SIZE, 2):
        raise ValueError(
            f"cannot write {path}: expected a frame of shape ({FRAME_SIZE}, {FRAME_SIZE}, 2) "
            f"(row, column, [real, imaginary]), got {frame.shape}"
        )
    if not np.isfinite(frame).all():
        raise ValueError(f"cannot write {path}: the frame holds non-finite (NaN or infinite) values")
    frame.astype(FILE_DTYPE, copy=False).tofile(path)


def find_interferogram_files(root: str | Path) -> list[Path]:
    """All ``*.int`` files under ``root`` (recursively), sorted by path.

    Raises
    ------
    DataError
        If ``root`` is not a directory or holds no ``.int`` file.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Volcano data root {root} is not a directory")
    # Sorted so that "the first ntrain files" is the same set on every machine.
    paths = sorted(path for path in root.rglob("*.int") if path.is_file())
    if not paths:
        raise DataError(f"no .int files under {root}")
    return paths


def load_volcano(root: str | Path, ntrain: int = 4096, resolution: int = 128, npad: int = 8,
                 multilook: bool = False) -> torch.Tensor:
    """Load the phase of the first ``ntrain`` interferograms under ``root``.

    Each phase becomes (cos, sin), is resized bilinearly from 128 x 128 to
    ``resolution`` x ``resolution``, and the top-left ``resolution - npad``
    square is kept (as in the original code).

    With ``multilook``, downsampling averages (cos, sin) over each output pixel's
    footprint (antialiased bilinear) and keeps the phase of that average, as InSAR
    multilooking does. Plain bilinear downsampling (the original) reads only the 2 x 2
    input pixels nearest each output pixel, so the full-resolution decorrelation noise
    survives into the coarse frames.

    Parameters
    ----------
    root : str or Path
        Folder searched recursively for ``*.int`` files, taken in path order.
    ntrain : int
        Number of files to load, >= 1; there must be at least this many.
    resolution : int
        Side of the resized frames, > ``npad``.
    npad : int
        Rows and columns cropped from the bottom and the right, >= 0.
    multilook : bool
        Average over each output pixel's footprint when resizing, then return to unit
        (cos, sin); no effect at the native 128 px.

    Returns
    -------
    torch.Tensor, shape (ntrain, resolution - npad, resolution - npad, 2), float32
        Channels last: (cos(phase), sin(phase)).

    Raises
    ------
    ValueError
        Bad ``ntrain``, ``resolution`` or ``npad`` (a config checks them first).
    DataError
        ``root`` is not a directory or holds no ``.int`` file; fewer than ``ntrain`` files;
        a file unreadable, of the wrong size or with non-finite values.
    """
    if ntrain < 1:
        raise ValueError(f"ntrain must be at least 1, got {ntrain}")
    if npad < 0 or resolution <= npad:
        raise ValueError(f"need 0 <= npad < resolution, got resolution={resolution}, npad={npad}")
    paths = find_interferogram_files(root)
    if len(paths) < ntrain:
        raise DataError(f"ntrain={ntrain} but only {len(paths)} .int files under {root}")
    paths = paths[:ntrain]

    # Filled file by file: peak memory is the (N, 2, 128, 128) result only.
    unit_vectors = np.empty((len(paths), 2, FRAME_SIZE, FRAME_SIZE), dtype=np.float32)
    progress = progress_bar(paths, desc="loading .int files", unit="file",
                            shown=len(paths) >= _PROGRESS_BAR_MIN_FILES)
    for index, path in enumerate(progress):
        phase = read_interferogram_phase(path)
        np.cos(phase, out=unit_vectors[index, 0])
        np.sin(phase, out=unit_vectors[index, 1])

    unit_vectors = resize_and_crop(torch.from_numpy(unit_vectors), resolution, npad, grid="cells",
                                   antialias=multilook)
    if multilook and resolution != FRAME_SIZE:
        phase = torch.atan2(unit_vectors[..., 1], unit_vectors[..., 0])
        unit_vectors = torch.stack([torch.cos(phase), torch.sin(phase)], dim=-1)
    return unit_vectors


def resize_and_crop(x: torch.Tensor, resolution: int, npad: int, grid: str = "cells",
                    antialias: bool = False) -> torch.Tensor:
    """Functions x (N, C, side, side), channels first, resized to ``resolution`` and cropped to the
    top-left ``resolution - npad`` square: (N, res, res, C), channels last.

    ``grid`` 'cells': a bilinear image resize (``align_corners=False``); ``antialias`` averages
    over each output pixel's footprint when downsampling, without it the resize reads only the
    2 x 2 input pixels nearest each output pixel. 'points': `resample_points` (``antialias`` must
    be False: point data are subsampled, not averaged). At the native size both are the identity.
    """
    if grid not in DATA_GRIDS:
        raise ValueError(f"grid must be one of {list(DATA_GRIDS)}, got {grid!r}")
    if grid == "points" and antialias:
        raise ValueError("antialias applies to the 'cells' grid only: point data are subsampled")
    if x.shape[-1] != resolution:
        # Skipped at the native size, where either resize is the identity.
        if grid == "points":
            x = resample_points(x, resolution)
        else:
            x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                              antialias=antialias)
    cropped = resolution - npad
    return x[:, :, :cropped, :cropped].permute(0, 2, 3, 1).contiguous()


def resample_points(x: torch.Tensor, size: int) -> torch.Tensor:
    """Functions known at the points (i / n, j / n), i, j = 0 .. n-1, of the unit square, at the
    points (i / size, j / size) instead: their bilinear interpolant evaluated there.

    When ``size`` divides n this is every (n / size)-th point, exactly (which is what the coarse
    file of a point-sampled dataset holds); when n divides ``size`` the fine point
    (size / n) i is the point i, exactly. Downsampling by any other ratio evaluates the
    interpolant too, without averaging: the coarse grid of point data is points of the same
    function, and averaging would change their values (a two-valued coefficient field would
    take values between its two).

    Parameters
    ----------
    x : torch.Tensor, shape (N, C, n, n), floating point, finite
    size : int
        Side of the output grid, >= 1.

    Returns
    -------
    torch.Tensor, shape (N, C, size, size), of x's dtype
    """
    n = x.shape[-1]
    # Point j sits at the index coordinate t = j n / size = low + remainder / size, split in integers
    # so that a shared point gets the weight 0 exactly (and lerp returns its value bit for bit).
    scaled = torch.arange(size, device=x.device) * n
    low = scaled // size
    weight = (scaled % size).to(x.dtype) / size
    # Past the last point, t in (n - 1, n) (x in ((n - 1) / n, 1)), the value of the last point. The grid
    # stops short of x = 1, so these are outside the data: the constant continuation never leaves
    # the data's range, which linear extrapolation does (a two-valued field would get a third value),
    # and it is what the 'cells' resize does at its edge. Wrapping round to point 0 is right only for
    # periodic data, which a file does not declare. Few configs keep these points: there are
    # ceil(size / n) - 1 of them a side, none at a training side up to the data's, and fewer than the
    # factor x npad rows and columns that super-resolution from there crops, when npad >= 1.
    high = (low + 1).clamp(max=n - 1)
    rows = torch.lerp(x.index_select(-2, low), x.index_select(-2, high), weight[:, None])
    return torch.lerp(rows.index_select(-1, low), rows.index_select(-1, high), weight)


ARRAY_SUFFIXES = (".npy", ".pt")


def is_array_file(path: str | Path) -> bool:
    """Whether ``path`` names an array dataset (`load_functions`) rather than a Volcano folder."""
    return Path(path).suffix in ARRAY_SUFFIXES


def read_array(path: str | Path, key: str | None = None) -> np.ndarray | torch.Tensor:
    """The array of a ``.npy`` file, or the tensor of a ``.pt`` file (alone, or under ``key`` in
    a dict; without ``key`` the dict's only tensor).

    Raises
    ------
    DataError
        Naming the file: missing or unreadable, another suffix, a key that is not there or an
        ambiguous dict (the message lists its tensors' keys), or no array inside.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"array dataset {path} is not a file")
    try:
        if path.suffix == ".npy":
            # Memory-mapped: only the ntrain functions taken are read.
            return np.load(path, mmap_mode="r", allow_pickle=False)
        if path.suffix == ".pt":
            content = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise DataError(f"expected a {' or '.join(ARRAY_SUFFIXES)} file")
    except Exception as error:  # numpy and torch fail on a bad file in many ways
        raise DataError(f"cannot read the array dataset {path}: {str(error).splitlines()[0]}") from None
    if isinstance(content, torch.Tensor):
        return content
    if not isinstance(content, dict):
        raise DataError(f"{path} holds a {type(content).__name__}, not a tensor or a dict of tensors")
    tensors = sorted(name for name, value in content.items() if isinstance(value, torch.Tensor))
    if key is None:
        if len(tensors) != 1:
            raise DataError(f"{path} holds a dict of {len(tensors)} tensors "
                            f"({', '.join(map(str, tensors)) or 'none'}): "
                            "set the config key data_key to the one to train on")
        key = tensors[0]
    if key not in tensors:
        raise DataError(f"{path} has no tensor under data_key '{key}'; its tensors: "
                        f"{', '.join(map(str, tensors)) or 'none'}")
    return content[key]


def channels_first_layout(path: str | Path, shape: tuple, channels_last: bool | None, announce: bool = True) -> bool:
    """Whether an array of ``shape`` (N, a, b, c) is channels first (N, C, H, H), from
    ``channels_last`` or, when that is None, from the one layout whose grid is square (printed
    if ``announce``).

    Raises
    ------
    DataError
        The grid of the layout asked for, or of both layouts, is not square; or both are square
        (N, H, H, H): the message asks for ``channels_last``.
    """
    _, a, b, c = shape
    if channels_last is not None:
        height, width = (a, b) if channels_last else (b, c)
        if height != width:
            raise DataError(f"{path}: shape {tuple(shape)} read channels-{'last' if channels_last else 'first'} "
                             f"(channels_last: {str(channels_last).lower()}) is a {height} x {width} grid, "
                             "not a square one")
        return not channels_last
    if a == b == c:
        raise DataError(f"{path}: shape {tuple(shape)} is square both ways: set the config key channels_last "
                         "(true: (N, H, W, C), false: (N, C, H, W))")
    if a != b and b != c:
        raise DataError(f"{path}: shape {tuple(shape)} has no square grid: neither (N, H, W, C) nor (N, C, H, W) "
                         "with H = W")
    first = b == c
    if announce:
        print(f"{Path(path).name}: shape {tuple(shape)} read as channels-{'first' if first else 'last'}: "
              f"{a if first else c} channel(s) on a {b} x {b} grid (set channels_last to choose)")
    return first


def grid_layout(where: str, shape: tuple, channels_last: bool | None, announce: bool = True) -> tuple[bool, int]:
    """(channels first, side of the square grid) of an array dataset of ``shape``: (N, H, H) is one
    channel, channels first; (N, a, b, c) as `channels_first_layout` reads it.

    Raises
    ------
    DataError
        Naming ``where``: a rank other than 3 or 4, a grid that is not square, an ambiguous layout.
    """
    if len(shape) not in (3, 4):
        raise DataError(f"{where} has shape {shape}: expected 3 axes (N, H, W) or 4 (N, C, H, W) or (N, H, W, C)")
    if len(shape) == 3:
        if shape[1] != shape[2]:
            raise DataError(f"{where} has shape {shape}: a {shape[1]} x {shape[2]} grid, not a square one")
        return True, shape[1]
    first = channels_first_layout(where, shape, channels_last, announce)
    return first, shape[2] if first else shape[1]


def array_side(path: str | Path, channels_last: bool | None = None, key: str | None = None) -> int:
    """Side of the square grid of an array dataset (its native resolution), from its shape alone:
    a ``.npy`` file's header is all that is read. Raises as `load_functions` does for the shape."""
    array = read_array(path, key)
    where = f"{path}" + (f" ['{key}']" if key is not None else "")
    return grid_layout(where, tuple(array.shape), channels_last, announce=False)[1]


def load_functions(path: str | Path, ntrain: int, resolution: int, npad: int, channels_last: bool | None = None,
                   key: str | None = None, grid: str = "points") -> torch.Tensor:
    """Load the first ``ntrain`` functions of an array dataset (see the module docstring).

    Each is resized from its square grid, of any side, to ``resolution`` and cropped to its
    top-left ``resolution - npad`` square, as `load_volcano` does: on the grid of points (the
    bilinear interpolant of the points evaluated at the new ones, `resample_points`), or, with
    ``grid`` 'cells', as an image (bilinear, antialiased when downsampling).

    Parameters
    ----------
    path : str or Path
        A ``.npy`` file, or a ``.pt`` file of a tensor or a dict of tensors.
    ntrain : int
        Number of functions to load, >= 1; the file must hold at least this many.
    resolution, npad : int
        As for `load_volcano`.
    channels_last : bool or None
        Layout of a 4-D array: (N, H, W, C) if True, (N, C, H, W) if False, None = the layout
        whose grid is square. A 3-D array (N, H, W) is one channel.
    key : str or None
        The tensor of a ``.pt`` dict; None = its only tensor.
    grid : {'points', 'cells'}
        What a pixel of the file is: the function's value at (i / side, j / side), or its
        value over the cell from there (see the module docstring).

    Returns
    -------
    torch.Tensor, shape (ntrain, resolution - npad, resolution - npad, C), float32

    Raises
    ------
    ValueError
        Bad ``ntrain``, ``resolution`` or ``npad`` (a config checks them first).
    DataError
        Naming the file and the culprit: unreadable, a missing or ambiguous key, a rank other
        than 3 or 4, a non-square grid, an ambiguous layout, not real numbers, fewer than
        ``ntrain`` functions, non-finite values (with the first function that has them).
    """
    if ntrain < 1:
        raise ValueError(f"ntrain must be at least 1, got {ntrain}")
    if npad < 0 or resolution <= npad:
        raise ValueError(f"need 0 <= npad < resolution, got resolution={resolution}, npad={npad}")
    array = read_array(path, key)
    where = f"{path}" + (f" ['{key}']" if key is not None else "")
    shape = tuple(array.shape)
    first, side = grid_layout(where, shape, channels_last)
    # Integers and floats of either library; not complex numbers, booleans or objects.
    dtype = array.dtype if isinstance(array, np.ndarray) else torch.empty(0, dtype=array.dtype).numpy().dtype
    if dtype.kind not in "iuf":
        raise DataError(f"{where} holds {array.dtype} values, not real numbers")
    if len(shape) == 3:
        array = array[:, None]
    if shape[0] < ntrain:
        raise DataError(f"ntrain={ntrain} but {where} holds only {shape[0]} functions")
    # A copy, in float32: the memory map of a .npy file is read-only.
    x = torch.from_numpy(np.array(array[:ntrain], dtype=np.float32)) if isinstance(array, np.ndarray) \
        else array[:ntrain].to(torch.float32)
    finite = torch.isfinite(x).flatten(1).all(dim=1)
    if not finite.all():
        bad = int((~finite).nonzero()[0])
        raise DataError(f"{where} holds non-finite (NaN or infinite) values, first in function {bad} "
                         f"({int((~finite).sum())} of the first {ntrain} functions)")
    if not first:
        x = x.permute(0, 3, 1, 2)
    return resize_and_crop(x.contiguous(), resolution, npad, grid=grid,
                           antialias=grid == "cells" and resolution < side)


# ---------------------------------------------------------------------------
# The data of a config: ``args`` is a config (src/config.py's CommonArguments, either method's)

DATA_FORMAT_DESCRIPTIONS = {"volcano": "a folder of .int files", "array": "an array file"}


def data_format_of(data_dir: str) -> str:
    """'array' for a .npy or .pt file, else 'volcano' (a folder of .int files)."""
    return "array" if is_array_file(data_dir) else "volcano"


def load_data(args, data_dir: str, factor: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Training and validation functions (N, res, res, C) of config ``args``, res = factor * args.data_resolution.

    ``data_dir`` is a folder of Volcano ``.int`` files, or an array file (``.npy``, ``.pt``) of
    any functions, resized on the config's ``data_grid``. ``factor`` > 1 gives the ground truth
    for super-resolution: the functions resized to factor x resolution and cropped by factor x
    npad, the same region at a finer grid (interpolated above `native_side`).

    Raises
    ------
    DataError
        Bad data (see `load_volcano`, `load_functions`), or data not of the config's
        ``data_format`` or ``channels`` (a run trained on other data).
    """
    data_format = data_format_of(data_dir)
    if args.data_format not in (None, data_format):
        raise DataError(f"config key 'data_format' = {args.data_format!r}, but DATA_DIR={data_dir} is "
                        f"{DATA_FORMAT_DESCRIPTIONS[data_format]}")
    resolution, npad = factor * args.resize_to, factor * args.npad
    if data_format == "array":
        x = load_functions(data_dir, args.ntrain, resolution, npad, channels_last=args.channels_last,
                           key=args.data_key, grid=args.data_grid)
    else:
        x = load_volcano(data_dir, ntrain=args.ntrain, resolution=resolution, npad=npad, multilook=args.multilook)
    if args.channels is not None and x.shape[-1] != args.channels:
        raise DataError(f"config key 'channels' = {args.channels}, but the functions of DATA_DIR={data_dir} "
                        f"have {x.shape[-1]}")
    return split_train_valid(x, args.val_size, seed=args.seed)


def data_grid_of(args) -> str:
    """How the config's functions sit on their grid, and so how they are carried to a finer one:
    'cells' for Volcano (an image resize), the config's ``data_grid`` for an array file."""
    return args.data_grid if args.data_format == "array" else "cells"


def native_side(args, data_dir: str) -> int:
    """Side of the grid the data are stored on (Volcano: 128 px; an array file: its grid's side,
    from its shape): above it, resized data are interpolated, with no finer detail."""
    if data_format_of(data_dir) == "volcano":
        return FRAME_SIZE
    return array_side(data_dir, channels_last=args.channels_last, key=args.data_key)


def with_data(args, data_dir: str, functions: torch.Tensor):
    """``args`` with ``data_format`` and ``channels`` of the data set, as training records them in
    config.json: evaluation rebuilds the networks and picks the metrics from them alone."""
    return replace(args, data_format=data_format_of(data_dir), channels=functions.shape[-1])


def validation_count(n_frames: int, val_size: float) -> int:
    """How many of ``n_frames`` frames `split_train_valid` holds out for validation."""
    return round(val_size * n_frames)


def split_train_valid(x: torch.Tensor, val_size: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly split frames into a training and a validation set.

    Parameters
    ----------
    x : torch.Tensor, shape (N, ...)
    val_size : float
        Fraction in [0, 1] of the frames for validation, ``round(val_size * N)``
        of them.
    seed : int
        Seed of the shuffle; the split depends only on (N, val_size, seed).

    Returns
    -------
    train : torch.Tensor, shape (N - round(val_size * N), ...)
    valid : torch.Tensor, shape (round(val_size * N), ...)
        Disjoint; ``valid`` is empty when ``val_size`` is 0.
    """
    if not 0.0 <= val_size <= 1.0:
        raise ValueError(f"val_size must be in [0, 1], got {val_size}")
    n_frames = x.shape[0]
    n_valid = validation_count(n_frames, val_size)
    # A private generator: the split neither depends on nor disturbs the global RNG.
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n_frames, generator=generator)
    n_train = n_frames - n_valid
    return x[order[:n_train]], x[order[n_train:]]


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Batches of an epoch: an incomplete last batch is dropped unless it is the only one."""
    return n_train // batch_size if n_train >= batch_size else 1


def keyed_generator(*key: int, device="cpu") -> torch.Generator:
    """A torch generator whose stream is a function of the integers ``key`` alone (mixed by
    numpy's SeedSequence), so that any process that knows the key draws the same numbers."""
    seed = int(np.random.SeedSequence(list(key)).generate_state(1, dtype=np.uint64)[0])
    return torch.Generator(device=device).manual_seed(seed)


def epoch_batches(n_train: int, batch_size: int, seed: int, epoch: int,
                  augment: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of one training epoch, a function of its arguments only.

    The order and the flips come from a generator seeded with (seed, epoch), so a run resumed
    at any step of any epoch sees the batches the uninterrupted run saw.

    Returns
    -------
    list of (indices, flips), `steps_per_epoch` of them: ``indices`` (B,) into the training
    functions, each function at most once an epoch; ``flips`` (B, 2) bool, flip horizontally
    and vertically (all False without ``augment``); see `flip`.
    """
    generator = keyed_generator(seed, epoch)
    order = torch.randperm(n_train, generator=generator)
    flips = torch.rand(n_train, 2, generator=generator) < 0.5
    if not augment:
        flips.zero_()
    size = min(batch_size, n_train)
    return [(order[start:start + size], flips[start:start + size])
            for start in range(0, steps_per_epoch(n_train, batch_size) * size, size)]


def flip(u: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Functions u (B, res, res, channels) flipped where ``flips`` (B, 2) says: [:, 0] reverses the
    columns (horizontal), [:, 1] the rows. No channel changes, so (cos, sin) stays valid."""
    u = torch.where(flips[:, 0, None, None, None], u.flip(2), u)
    return torch.where(flips[:, 1, None, None, None], u.flip(1), u)
