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
"""

import contextlib
from pathlib import Path

import torch
from torch import nn

from src.errors import KnownError
from src.files import atomic_paths

# What `save_checkpoint` writes for every method (GANO adds its discriminator's keys).
REQUIRED_KEYS = ("method", "weights", "ema", "optimizer", "metrics", "last_epoch", "epoch", "step", "epoch_losses",
                 "rng")


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


def load_checkpoint(path: Path, device, method: str) -> dict:
    """Read a checkpoint of method ``method`` with ``weights_only=True``; `CheckpointError` if it
    is not a checkpoint of this project, or another method made it."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        raise CheckpointError(f"{path} is not a readable checkpoint: {error}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a checkpoint of this project (a {type(state).__name__}, not a dict)")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path} is not a checkpoint of this project: it lacks {missing}")
    if state["method"] != method:
        made_by = state["method"]
        raise CheckpointError(f"{path} is a checkpoint of method '{made_by}', not of '{method}': use the {made_by} "
                              f"scripts for it (launch_eval.py {made_by}, resume.sh {made_by})")
    return state


def model_weights(state: dict, use_ema: bool = True) -> dict:
    """The weights to sample with: the EMA shadow when there is one, else the raw weights."""
    return state["ema"] if use_ema and state["ema"] is not None else state["weights"]
