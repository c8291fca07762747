"""Checkpoints and the exponential moving average (EMA) of the weights.

A checkpoint is a plain dict of tensors and numbers, loadable with
``torch.load(path, weights_only=True)``::

    method        the method that made it: 'sbgm' (the diffusion operator) or 'gan' (GANO)
    weights       state dict of the network that samples (the score network, GANO's generator)
    ema           its EMA shadow weights (state dict) or None
    optimizer     its Adam state dict
    discriminator, optimizer_discriminator
                  GANO's discriminator and its Adam (method 'gan' only)
    metrics       {metric name: best value so far}
    last_epoch    index of the last finished epoch (0-based; -1 before the first)
    epoch, step   where training goes on: step ``step`` (0-based) of epoch ``epoch``
    epoch_losses  {loss name: (steps,) its values at that epoch's steps so far}, for the means
    rng           torch's global random states (CPU, and CUDA per device), restored on resume

Training itself draws from generators seeded by (seed, epoch, step), so the position is all
that exact resumption needs of randomness; ``rng`` keeps the global states for code that
draws from them. Writes are atomic (see `src.files`), so a job killed while saving never
leaves a truncated checkpoint behind.

The original code's checkpoints (its train.py) hold ``weights``,
``ema_helper`` (the EMA, a dict of the same names), ``metrics`` as ``{name: {"best": value}}``
with numpy scalars among the values, and ``last_epoch`` (not in the oldest), and no ``method``
nor optimizer state. `load_sampling_checkpoint` reads them, for evaluation only, as the keys of
ours that sampling reads; `load_checkpoint`, for training on, refuses them.

Every checkpoint is read with ``weights_only=True``. The one exception to its default list of
globals is numpy's scalar reconstructor and its numeric dtypes, which the original's metrics
need; a checkpoint that needs any other global is refused, naming it: nothing in a checkpoint
runs code.
"""

import contextlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from src.errors import KnownError
from src.files import atomic_paths

# What `save_checkpoint` writes for every method (GANO adds its discriminator's keys).
REQUIRED_KEYS = ("method", "weights", "ema", "optimizer", "metrics", "last_epoch", "epoch", "step", "epoch_losses",
                 "rng")
# The keys by which a checkpoint of the original code is known (it has no 'method'), and its one method.
ORIGINAL_KEYS = ("weights", "ema_helper")
ORIGINAL_METHOD = "sbgm"

_NUMPY_CORE = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core to numpy._core
_NUMERIC_DTYPES = [getattr(np.dtypes, name) for name in (
    "BoolDType", "Int8DType", "Int16DType", "Int32DType", "Int64DType", "UInt8DType", "UInt16DType", "UInt32DType",
    "UInt64DType", "Float16DType", "Float32DType", "Float64DType", "Complex64DType", "Complex128DType")]
# The globals beyond torch's own that a checkpoint may name: numpy's scalars (under numpy 1's
# module name too, as the original's pickles spell it) and their dtypes. No object dtype.
NUMPY_SCALAR_GLOBALS = [(_NUMPY_CORE.multiarray.scalar, "numpy.core.multiarray.scalar"),
                        _NUMPY_CORE.multiarray.scalar, np.dtype, *_NUMERIC_DTYPES]
ALLOWED_GLOBAL_NAMES = {"numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype",
                        *(f"numpy.dtypes.{dtype.__name__}" for dtype in _NUMERIC_DTYPES)}


class CheckpointError(KnownError, ValueError):
    """A file that is not a checkpoint of this project, of another method, or that does not fit the config."""


class EMA:
    """EMA of a model's floating-point state, the original's convention.

    ``shadow = (1 - rate) * weights + rate * shadow`` after every optimiser step, so
    ``rate`` is the weight kept on the *past*: 0 follows the weights exactly, values near 1
    average over about 1 / (1 - rate) steps.
    """

    def __init__(self, model: nn.Module, rate: float):
        self.rate = rate
        self.shadow = {name: value.detach().clone() for name, value in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for name, value in model.state_dict().items():
            if value.dtype.is_floating_point or value.dtype.is_complex:
                self.shadow[name].lerp_(value, 1.0 - self.rate)
            else:
                self.shadow[name].copy_(value)

    @contextlib.contextmanager
    def applied_to(self, model: nn.Module):
        """Run the body with the EMA weights loaded into ``model``; restore them after."""
        saved = {name: value.detach().clone() for name, value in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield model
        finally:
            model.load_state_dict(saved)

    def state_dict(self) -> dict:
        return self.shadow

    def load_state_dict(self, shadow: dict) -> None:
        for name, value in shadow.items():
            self.shadow[name].copy_(value)


def save_checkpoint(path: Path, networks: dict, optimizers: dict, ema, metrics: dict, epoch: int, step: int,
                    epoch_losses: dict, method: str) -> None:
    """Write a checkpoint atomically (see the module docstring for its keys).

    ``networks`` and ``optimizers`` map checkpoint keys to modules and optimizers (the
    network that samples under 'weights', its optimizer under 'optimizer'). ``epoch``
    (0-based) and ``step`` are where training goes on from: step ``step`` of epoch
    ``epoch``, after the steps whose losses are ``epoch_losses`` ({name: [values]}).
    """
    state = {key: network.state_dict() for key, network in networks.items()}
    state.update({key: optimizer.state_dict() for key, optimizer in optimizers.items()})
    state.update({
        "method": method,
        "ema": ema.state_dict() if ema is not None else None,
        "metrics": dict(metrics),
        "last_epoch": epoch - 1,
        "epoch": epoch,
        "step": step,
        "epoch_losses": {name: torch.stack(values).cpu() for name, values in epoch_losses.items()},
        "rng": {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
    })
    with atomic_paths([path]) as (temporary,):
        torch.save(state, temporary)


def read_checkpoint(path: Path, device, mmap: bool = False) -> dict:
    """The dict a checkpoint file holds, read with ``weights_only=True`` onto ``device``, numpy's
    scalars and dtypes allowed (see the module docstring); ``mmap`` maps the tensors instead of
    reading them. `CheckpointError` for a file that is unreadable, truncated, not a dict, or
    that needs another global, which is named."""
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip checkpoint: torch.load below says why
        needed = []
    refused = [name for name in needed if name not in ALLOWED_GLOBAL_NAMES]
    if refused:
        raise CheckpointError(f"{path} needs the pickle global(s) {', '.join(refused)}, which no checkpoint may: "
                              "only tensors, numbers, strings, containers and numpy scalars load, since nothing in "
                              "a checkpoint may run code")
    try:
        with torch.serialization.safe_globals(NUMPY_SCALAR_GLOBALS):
            state = torch.load(path, map_location=device, weights_only=True, mmap=mmap)
    except Exception as error:  # unpickling errors come in many types
        raise CheckpointError(f"{path} is not a readable checkpoint: {load_failure(error)}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a checkpoint (a {type(state).__name__}, not a dict)")
    return state


def load_failure(error: Exception) -> str:
    """What `torch.load` says about a file in one line: its weights-only errors are paragraphs
    of advice around the unpickler's own words."""
    text = str(error)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
    return " ".join(text.split()) or type(error).__name__


def is_original(state: dict) -> bool:
    """Whether a checkpoint dict is the original code's: ``weights`` and ``ema_helper``, no ``method``."""
    return "method" not in state and all(key in state for key in ORIGINAL_KEYS)


def load_checkpoint(path: Path, device, method: str) -> dict:
    """Read a checkpoint of this project of method ``method`` (to train on, or to sample);
    `CheckpointError` if it is not one, another method made it, or the original code did."""
    state = read_checkpoint(path, device)
    if is_original(state):
        raise CheckpointError(f"{path} was written by the original code (weights and ema_helper, no method): it "
                              "evaluates (eval.py, launch_eval.py, src.evaluation.load_experiment) but cannot be "
                              "trained on here, since it holds no optimizer state and its network is not this "
                              "project's (README.org, Reproducing evaluation)")
    return _checked_ours(path, state, method)


def load_sampling_checkpoint(path: Path, device, method: str | None = None) -> dict:
    """What sampling reads of a checkpoint of this project or of the original code: ``method``,
    ``weights``, ``ema`` (or None), ``metrics`` ({name: best value}), ``last_epoch`` (None
    when the original's lacks it) and ``original`` (whether the original code wrote it).
    ``method``, if given, must be the checkpoint's; `CheckpointError` naming the culprit."""
    state = read_checkpoint(path, device)
    if not is_original(state):
        return {**_checked_ours(path, state, method), "original": False}
    if method is not None and method != ORIGINAL_METHOD:
        raise CheckpointError(f"{path} was written by the original code, whose one method is "
                              f"'{ORIGINAL_METHOD}', not '{method}': use launch_eval.py {ORIGINAL_METHOD}")
    for key in ORIGINAL_KEYS:
        if not isinstance(state[key], dict) or not all(isinstance(v, torch.Tensor) for v in state[key].values()):
            raise CheckpointError(f"{path}: '{key}' is not a state dict of tensors")
    metrics = state.get("metrics", {})
    if not isinstance(metrics, dict) or not all(isinstance(v, dict) and "best" in v for v in metrics.values()):
        raise CheckpointError(f"{path}: 'metrics' is not the original's {{name: {{'best': value}}}}")
    last_epoch = state.get("last_epoch")
    return {"method": ORIGINAL_METHOD, "weights": state["weights"], "ema": state["ema_helper"],
            "metrics": {name: float(value["best"]) for name, value in metrics.items()},
            "last_epoch": None if last_epoch is None else int(last_epoch), "original": True}


def _checked_ours(path: Path, state: dict, method: str | None) -> dict:
    """``state`` if it is a checkpoint of this project (of ``method``, if given), else `CheckpointError`."""
    if "method" not in state:
        raise CheckpointError(f"{path} is neither a checkpoint of this project (it lacks 'method') nor one of the "
                              f"original code (it lacks {[key for key in ORIGINAL_KEYS if key not in state]})")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path} is not a checkpoint of this project: it lacks {missing}")
    if method is not None and state["method"] != method:
        made_by = state["method"]
        raise CheckpointError(f"{path} is a checkpoint of method '{made_by}', not of '{method}': use the {made_by} "
                              f"scripts for it (launch_eval.py {made_by}, resume.sh {made_by})")
    return state


def model_weights(state: dict, use_ema: bool = True) -> dict:
    """The weights to sample with: the EMA shadow when there is one, else the raw weights."""
    return state["ema"] if use_ema and state["ema"] is not None else state["weights"]
