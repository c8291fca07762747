"""Checkpoints and the exponential moving average (EMA) of the weights.

A checkpoint is a plain dict of tensors and numbers, loadable with
``torch.load(path, weights_only=True)``::

    weights       model state dict
    ema           EMA shadow weights (state dict) or None
    optimizer     Adam state dict
    metrics       {metric name: best value so far}
    last_epoch    index of the last finished epoch (0-based; -1 before the first)
    epoch, step   where training goes on: step ``step`` (0-based) of epoch ``epoch``
    epoch_losses  (step,) the losses of that epoch's steps so far, for its mean
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

from src.files import atomic_paths


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


def save_checkpoint(path: Path, model: nn.Module, ema, optimizer, metrics: dict, epoch: int, step: int,
                    epoch_losses) -> None:
    """Write a checkpoint atomically (see the module docstring for its keys).

    ``epoch`` (0-based) and ``step`` are where training goes on from: step ``step`` of epoch
    ``epoch``, after the steps whose losses are ``epoch_losses``.
    """
    state = {
        "weights": model.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "optimizer": optimizer.state_dict(),
        "metrics": dict(metrics),
        "last_epoch": epoch - 1,
        "epoch": epoch,
        "step": step,
        "epoch_losses": torch.stack(list(epoch_losses)).cpu() if len(epoch_losses) else torch.empty(0),
        "rng": {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
    }
    with atomic_paths([path]) as (temporary,):
        torch.save(state, temporary)


def load_checkpoint(path: Path, device) -> dict:
    """Read a checkpoint with ``weights_only=True``; a clear error if it is not one."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        raise ValueError(f"{path} is not a readable checkpoint: {error}") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a checkpoint of this project (a {type(state).__name__}, not a dict)")
    missing = {"weights", "metrics", "last_epoch"} - set(state)
    if missing:
        raise ValueError(f"{path} is not a checkpoint of this project: it lacks {sorted(missing)}")
    return state


def model_weights(state: dict, use_ema: bool = True) -> dict:
    """The weights to sample with: the EMA shadow when there is one, else the raw weights."""
    return state["ema"] if use_ema and state.get("ema") is not None else state["weights"]
