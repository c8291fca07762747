"""A starting config for an array file of functions: its keys follow the data.

    python -m src.array_config DATA.npy --out exps/json/mydata.json [--data_key KEY] [--channels_last true|false]

reads the functions through the project's loader (`src.data.load_functions`, the way training
reads them), writes a diffusion operator's config (`src.config.Arguments`) for them to --out,
and prints each key it wrote with why, one line a key. Train and evaluate with it as with any
config (README.org, "Your own function data")::

    DATA_DIR=DATA.npy python train.py --cfg exps/json/mydata.json --savedir results/mydata/1
    DATA_DIR=DATA.npy python eval.py --exp_name=results/mydata/1 --savedir=results/mydata/1/eval --mode=generate

The config is the quickstart's (exps/json/quickstart.json: its network, optimiser, noise levels
and sampler: Heun's method from the data's Gaussian fit), with what depends on the data set from the data:

- ``resolution`` the file's grid and ``npad`` = resolution / 16 (the paper's 8 at 128 px): the
  functions are trained on their own grid, cropped by a few pixels that the network pads back.
- ``rbf_scale``: the noise's correlation length, 2 rbf_scale^2 for the exponential kernel
  (`src.noise`), is `NOISE_CORRELATION_PIXELS` pixels of the trained grid, so that the noise is
  a function resolved on it rather than white noise (the quickstart's 0.1 is under a pixel).
- ``sigma_1``: the largest variance of the data in any direction of function space, in units of
  the noise's variance in that direction: the top eigenvalue of C^(-1/2) M C^(-1/2), M =
  E[u u^T] the data's second moment about 0 over the grid and C the noise's covariance, one
  channel at a time (`largest_whitened_variance`). Sampling starts from noise at sigma_1 as if it
  were data plus that noise: along a direction v their variances are sigma_1 v^T C v and
  v^T M v + sigma_1 v^T C v, which differ by at most a factor 2 when sigma_1 is this
  (about the mean, not the spread: the noise has mean 0, so the data's mean must be hidden too).
  It is the function-space form of "sigma_1 must cover the data's spread": white noise and
  data of amplitude A give A^2 times the data's largest principal second moment. Song and
  Ermon's rule ("Improved techniques for training score-based generative models", 2020:
  sigma_1 the largest distance between two training functions, squared here, sigma being a
  variance) differs twice: in the noise's norm a squared distance sums the variances of every
  direction instead of taking the largest, which grows with the grid (for white noise, res^2
  times a pixel's variance), and it ignores the data's mean, which the sampler, starting
  from noise of mean 0, must cover too (Darcy-flow solutions are all positive).
  benchmarks/RESULTS.md, "Your own data", measures the samples of this rule, and at 0.3 and 3 times it.
- ``sigma_L`` = sigma_1 / 1000 and ``epsilon`` = sigma_L / 2: the quickstart's ratios (20 to
  0.02, and 0.01), so that its ODE levels and its Langevin step rule cover the same range
  of noise at any amplitude of the data.
- ``ntrain`` the file's count, ``augment`` false (flips would move fixed boundaries: a field
  that vanishes on one side only is not one after a flip), ``epochs`` so that training takes
  as many optimiser steps as 30 epochs of 256 functions (`REFERENCE_FUNCTIONS`,
  `REFERENCE_EPOCHS`), at least one epoch, and ``record_interval`` a third of them.

The data are used as they are, not normalised, as training uses them. Their amplitude matters to
the network, whose other inputs (the grid, the noise level's embedding) are of order 1: a root
mean square outside `AMPLITUDE_RANGE` is warned about, with the factor that brings it to 1.

Wrong input (a file the loader refuses, an existing --out) stops with a one-line message that
names it and exit status 2; nothing is written.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import fields
from pathlib import Path

import torch
import torch.nn.functional as F

from src.config import config_from_dict
from src.data import DataError, channels_first_layout, load_functions, read_array, steps_per_epoch, validation_count
from src.errors import KnownError
from src.files import write_text
from src.methods.diffusion import Arguments
from src.noise import build_noise_sampler

QUICKSTART = Path(__file__).resolve().parents[1] / "exps" / "json" / "quickstart.json"
NOISE_CORRELATION_PIXELS = 4        # the noise's correlation length 2 rbf_scale^2, in pixels of the trained grid
SIGMA_RANGE = 1000.0                # sigma_1 / sigma_L, the quickstart's (20 / 0.02)
EPSILON_PER_SIGMA_L = 0.5           # epsilon / sigma_L, the quickstart's (0.01 / 0.02)
REFERENCE_FUNCTIONS, REFERENCE_EPOCHS = 256, 30   # as many optimiser steps as this many epochs of this many
NPAD_FRACTION = 1 / 16              # npad / resolution: the paper's 8 at 128 px
# The sigma_1 rule's covariance is res^2 x res^2: above this side it is computed on the
# functions resized to it (a few seconds at 64 px), and on at most this many functions.
RULE_MAX_SIDE = 64
RULE_MAX_FUNCTIONS = 1024
SIGNIFICANT_DIGITS = 3
# Root mean squares of the data outside this range are warned about: the network's other inputs
# (the grid, the noise level's embedding) are of order 1, and it learns far smaller or larger
# functions slowly (benchmarks/RESULTS.md, "Your own data": Darcy flow at a root mean square of 0.0072).
AMPLITUDE_RANGE = (0.1, 10.0)


class ArrayConfigError(KnownError, ValueError):
    """Wrong input to the command: the message names the file."""


def largest_whitened_variance(functions: torch.Tensor, covariance: torch.Tensor | None) -> float:
    """The largest variance of ``functions`` along any direction, in units of the noise's there.

    max over v of mean_i <u_i, v>^2 / (v^T C v), per channel, the largest over the channels:
    the top eigenvalue of C^(-1/2) M C^(-1/2), M = mean_i u_i u_i^T (about 0, not the mean).
    Computed as the top squared singular value of W / sqrt(N), W = U L^(-T), C = L L^T.

    Parameters
    ----------
    functions : torch.Tensor, shape (N, res, res, C)
        The data, channels last.
    covariance : torch.Tensor, shape (res^2, res^2), float64, or None
        The noise's covariance over the grid in row-major order (`src.noise.NoiseSampler.covariance_block`
        of res^2 points); None for white noise (the identity).

    Returns
    -------
    float
    """
    n, res = functions.shape[0], functions.shape[1]
    values = functions.double().permute(3, 0, 1, 2).reshape(functions.shape[-1], n, res * res)
    if covariance is not None:
        factor = torch.linalg.cholesky(covariance)
        # W^T = L^(-1) U^T, one triangular solve for every channel's functions at once.
        values = torch.linalg.solve_triangular(factor, values.transpose(1, 2), upper=False).transpose(1, 2)
    return float(torch.linalg.matrix_norm(values, ord=2).max() ** 2 / n)


def rounded(value: float) -> float:
    """``value`` to `SIGNIFICANT_DIGITS` significant digits, as the config shows it."""
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def file_shape(path: Path, data_key: str | None, channels_last: bool | None) -> tuple[int, int, bool | None]:
    """(functions, grid side, channels_last) of an array file, by the loader's own reading of it:
    its layout as given, or found (and printed) for a 4-D array; None for a 3-D one."""
    shape = tuple(read_array(path, data_key).shape)
    where = f"{path}" + (f" ['{data_key}']" if data_key is not None else "")
    if len(shape) == 3:
        return shape[0], shape[1], None
    if len(shape) != 4:
        raise DataError(f"{where} has shape {shape}: expected 3 axes (N, H, W) or 4 (N, C, H, W) or (N, H, W, C)")
    first = channels_first_layout(where, shape, channels_last)
    return shape[0], shape[2] if first else shape[1], not first


def starting_config(path: Path, data_key: str | None = None, channels_last: bool | None = None
                    ) -> tuple[dict, dict, list[str]]:
    """The config of the module docstring for the array file ``path``, and why each key is what it is.

    Parameters
    ----------
    path : Path
        A ``.npy`` or ``.pt`` file that `src.data.load_functions` reads.
    data_key, channels_last
        As the config keys (the tensor of a ``.pt`` dict; the layout of a 4-D array).

    Returns
    -------
    (dict, dict, list of str)
        {key: value}, type-checked as an `Arguments` config, in the quickstart's order;
        {key: reason}, one line each; and warnings about the data, one line each.

    Raises
    ------
    ArrayConfigError
        The loader refuses the file (the message is its, naming the file and the culprit).
    """
    try:
        count, side, layout = file_shape(path, data_key, channels_last)
        npad = round(side * NPAD_FRACTION)
        functions = load_functions(path, count, resolution=side, npad=npad, channels_last=layout, key=data_key)
    except DataError as error:
        raise ArrayConfigError(str(error)) from None
    values = json.loads(QUICKSTART.read_text())
    why = {key: "the quickstart's" for key in values}
    trained_side = side - npad

    def choose(key, value, reason):
        values[key], why[key] = value, reason

    choose("ntrain", count, f"the file's {count} functions")
    choose("resolution", side, f"the file's {side} x {side} grid: trained on it, not resized")
    choose("npad", npad, f"resolution / {round(1 / NPAD_FRACTION)}: cropped from the bottom and the right, "
                         f"the network pads them back; trained on {trained_side} x {trained_side}")
    values.pop("multilook", None)  # Volcano's; array data are resized without it
    why.pop("multilook", None)
    choose("augment", False, "no flips: a flip moves fixed boundaries (data that vanish on one side only)")
    rbf_scale = rounded(math.sqrt(NOISE_CORRELATION_PIXELS / (2 * trained_side)))
    choose("rbf_scale", rbf_scale, f"the noise's correlation length 2 rbf_scale^2 = {2 * rbf_scale ** 2:.3g} is "
                                   f"{NOISE_CORRELATION_PIXELS} pixels of the {trained_side} px grid")

    rule_side = min(trained_side, RULE_MAX_SIDE)
    sample = functions[:RULE_MAX_FUNCTIONS]
    if rule_side < trained_side:  # resized as the loader resizes: antialiased
        sample = F.interpolate(sample.permute(0, 3, 1, 2), size=(rule_side, rule_side), mode="bilinear",
                               align_corners=False, antialias=True).permute(0, 2, 3, 1)
    noise = build_noise_sampler(rule_side, values["white_noise"], rbf_scale, values["rbf_eps"],
                                channels=functions.shape[-1])
    sigma_1 = rounded(largest_whitened_variance(sample, noise.covariance_block(rule_side * rule_side)))
    on = f"{len(sample)} functions" + (f" resized to {rule_side} px" if rule_side < trained_side else "")
    choose("sigma_1", sigma_1, f"the data's largest variance in any direction, in units of the noise's there "
                               f"(over {on}; pixel variance {float(functions.var()):.3g}): noise at sigma_1 "
                               "hides the data in every direction")
    sigma_L = rounded(sigma_1 / SIGMA_RANGE)
    choose("sigma_L", sigma_L, f"sigma_1 / {SIGMA_RANGE:g}, the quickstart's range (20 to 0.02)")
    choose("epsilon", rounded(EPSILON_PER_SIGMA_L * sigma_L),
           f"{EPSILON_PER_SIGMA_L:g} sigma_L, the quickstart's ratio (Langevin: stable below 4 sigma_L)")

    batch_size = values["batch_size"]
    n_train = count - validation_count(count, values["val_size"])
    reference_steps = REFERENCE_EPOCHS * steps_per_epoch(
        REFERENCE_FUNCTIONS - validation_count(REFERENCE_FUNCTIONS, values["val_size"]), batch_size)
    epochs = max(1, round(reference_steps / steps_per_epoch(n_train, batch_size)))
    choose("epochs", epochs, f"{epochs * steps_per_epoch(n_train, batch_size)} optimiser steps of {batch_size} "
                             f"of the {n_train} training functions, as {REFERENCE_EPOCHS} epochs of "
                             f"{REFERENCE_FUNCTIONS} functions take ({reference_steps})")
    choose("record_interval", max(1, epochs // 3), "validation samples 3 times in the run")
    if data_key is not None:
        choose("data_key", data_key, "the tensor of the file's dict, as given")
    if channels_last is not None:
        choose("channels_last", channels_last, "the file's layout, as given")
    config_from_dict(values, source=f"the config for {path}")  # the one check of every key
    warnings = []
    amplitude = float(functions.double().square().mean().sqrt())
    if not AMPLITUDE_RANGE[0] <= amplitude <= AMPLITUDE_RANGE[1]:
        warnings.append(f"the functions' root mean square is {amplitude:.2g}: the network learns functions this far "
                        "from 1 slowly, whatever the noise levels (benchmarks/RESULTS.md, \"Your own data\"); "
                        f"train on them times {rounded(1 / amplitude):g} and divide the samples by it")
    return values, why, warnings


def _parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m src.array_config", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="the array file (.npy, or .pt of a tensor or a dict of tensors)")
    parser.add_argument("--out", type=Path, required=True, help="the config to write (never replaced)")
    parser.add_argument("--data_key", default=None, help="the tensor of a .pt dict (its only one if not given)")
    parser.add_argument("--channels_last", choices=("true", "false"), default=None,
                        help="the layout of a 4-D array (default: the one whose grid is square)")
    arguments = parser.parse_args(argv)
    if arguments.channels_last is not None:
        arguments.channels_last = arguments.channels_last == "true"
    return arguments


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status (2: wrong input, nothing written)."""
    arguments = _parse_arguments(argv)
    if arguments.out.exists():
        print(f"error: refusing to overwrite {arguments.out}; give another --out", file=sys.stderr)
        return 2
    try:
        values, why, warnings = starting_config(arguments.data, arguments.data_key, arguments.channels_last)
    except ArrayConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    width = max(map(len, values))
    for key in [f.name for f in fields(Arguments) if f.name in values]:
        print(f"{key:<{width}} = {json.dumps(values[key])}: {why[key]}")
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    # One key a line, as the configs of exps/json are written.
    write_text(arguments.out, "{\n" + ",\n".join(f"  {json.dumps(key)}: {json.dumps(value)}"
                                                  for key, value in values.items()) + "\n}\n")
    print(f"wrote {arguments.out}; train with: DATA_DIR={arguments.data} python train.py --cfg {arguments.out} "
          "--savedir <run directory>")
    return 0


if __name__ == "__main__":
    sys.exit(main())
