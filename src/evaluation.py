"""Evaluation of a trained experiment: output names, reading its files, metrics of samples.

`eval.py` (the command line) and `plot_stats.py` are made of these functions, of
`src.experiment.sample` (sampling) and of `src.plotting` (figures). Nothing here reads the
environment or argv; paths and values come in as arguments.

Files of an evaluation, all in its ``savedir`` (``ckpt`` is the checkpoint's file name,
``postfix`` is ``""`` at the training resolution and ``"_{factor}x"`` for super-resolution)::

    samples{postfix}.{ckpt}.pkl   dict, see `samples_record`
    stats{postfix}.{ckpt}.pkl     per-function statistics, the format of gt_stats.pkl: for Volcano
                                  {'var': (N,), 'skew': (N,)} numpy, for array data
                                  src.metrics.field_stats
    metrics{postfix}.{ckpt}.json  the metrics of those samples against the ground truth
    gt_stats_{factor}x.pkl        ground-truth statistics at factor x the training resolution

The ground truth at the training resolution is the experiment's own ``gt_stats.pkl``.
"""

import pickle
import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from src.checkpoint import load_checkpoint, model_weights
from src.config import CommonArguments, method_of
from src.experiment import build_model
from src.metrics import STATS_KEYS, function_stats, kind_of, validation_metrics, wasserstein_metrics

GT_STATS = "gt_stats.pkl"


class EvaluationError(ValueError):
    """An evaluation that cannot run: a missing file, a checkpoint that does not fit, ..."""


# ---------------------------------------------------------------------------
# Names

def postfix(factor: int) -> str:
    """``""`` at the training resolution (factor 1), ``"_{factor}x"`` above it."""
    return "" if factor == 1 else f"_{factor}x"


def samples_name(checkpoint: str, factor: int = 1) -> str:
    return f"samples{postfix(factor)}.{Path(checkpoint).name}.pkl"


def stats_name(checkpoint: str, factor: int = 1) -> str:
    return f"stats{postfix(factor)}.{Path(checkpoint).name}.pkl"


def metrics_name(checkpoint: str, factor: int = 1) -> str:
    return f"metrics{postfix(factor)}.{Path(checkpoint).name}.json"


def gt_stats_name(factor: int) -> str:
    """Ground-truth statistics at ``factor`` x the training resolution (kept in the savedir)."""
    return f"gt_stats_{factor}x.pkl"


def figure_stem(kind: str, checkpoint: str, factor: int = 1) -> str:
    """``{kind}{postfix}.{ckpt}``; a figure is this plus ``.png`` / ``.pdf``."""
    return f"{kind}{postfix(factor)}.{Path(checkpoint).name}"


def find_sample_factors(savedir: Path, checkpoint: str) -> list[int]:
    """Factors (1 for the plain samples) of the samples pickles of ``checkpoint`` in savedir, sorted."""
    pattern = re.compile(rf"samples(?:_(\d+)x)?\.{re.escape(Path(checkpoint).name)}\.pkl")
    factors = []
    for path in Path(savedir).glob("samples*.pkl"):
        match = pattern.fullmatch(path.name)
        if match:
            factors.append(int(match.group(1)) if match.group(1) else 1)
    return sorted(factors)


# ---------------------------------------------------------------------------
# The experiment directory

def list_checkpoints(exp_dir: Path) -> list[str]:
    """Names of the checkpoint files (``*.pt``) in an experiment directory, sorted."""
    exp_dir = Path(exp_dir)
    return sorted(path.name for path in exp_dir.glob("*.pt") if path.is_file()) if exp_dir.is_dir() else []


def check_experiment(exp_dir: Path, checkpoint: Optional[str] = None) -> None:
    """Raise `EvaluationError` unless exp_dir holds config.json (and ``checkpoint``, if given).

    The messages say what is there instead: the checkpoints of the directory, or the
    experiments beside a directory that does not exist (a wrong ``<name>/<id>``).
    """
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        message = f"experiment directory {exp_dir} does not exist"
        parent = exp_dir.parent
        if parent.is_dir():
            siblings = sorted(p.name for p in parent.iterdir() if (p / "config.json").is_file())
            message += (f"; experiments in {parent}: {', '.join(siblings[:20])}" if siblings
                        else f"; {parent} holds no experiment (no subdirectory with a config.json)")
        raise EvaluationError(message)
    available = list_checkpoints(exp_dir)
    listing = f"checkpoints in {exp_dir}: {', '.join(available) if available else 'none'}"
    if not (exp_dir / "config.json").is_file():
        raise EvaluationError(f"{exp_dir} has no config.json, so it is not an experiment directory; {listing}")
    if checkpoint is not None and not (exp_dir / checkpoint).is_file():
        raise EvaluationError(f"checkpoint {exp_dir / checkpoint} not found; {listing}")


def read_pickle(path: Path, keys: Sequence[str] = ()):
    """Unpickle ``path``; `EvaluationError` if it is missing, unreadable or lacks ``keys``."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"{path} not found")
    try:
        with open(path, "rb") as f:
            value = pickle.load(f)
    except Exception as error:  # unpickling fails in many ways
        raise EvaluationError(f"{path} is not a readable pickle: {error}") from None
    missing = [key for key in keys if not isinstance(value, dict) or key not in value]
    if missing:
        raise EvaluationError(f"{path} lacks the keys {missing}")
    return value


def read_stats(path: Path) -> dict:
    """Per-function statistics from a gt_stats / stats pickle, float64 arrays: circular {'var',
    'skew'} (N,), or field {'mean', 'std' (N, C), 'spectrum' (N, C, K), 'quantiles' (N, C, Q)}."""
    stats = read_pickle(path)
    try:
        keys = STATS_KEYS[kind_of(stats)]
    except ValueError:
        present = sorted(stats) if isinstance(stats, dict) else type(stats).__name__
        raise EvaluationError(f"{path} lacks the keys {list(STATS_KEYS['circular'])} (Volcano) or "
                              f"{list(STATS_KEYS['field'])} (array data); it holds {present}") from None
    stats = {key: np.asarray(stats[key], dtype=np.float64) for key in keys}
    if "var" in stats:
        stats = {key: values.ravel() for key, values in stats.items()}
    lengths = [len(values) if values.ndim else 0 for values in stats.values()]
    if lengths[0] == 0 or len(set(lengths)) != 1:
        raise EvaluationError(f"{path}: {', '.join(repr(k) for k in keys)} must be non-empty and of equal length, got "
                              f"{' and '.join(map(str, lengths))}")
    return stats


def same_stats(a: dict, b: dict) -> bool:
    """Whether two sets of statistics are those of the same functions (to float32 round-off)."""
    return kind_of(a) == kind_of(b) and all(
        np.shape(a[key]) == np.shape(b[key]) and np.allclose(a[key], b[key], rtol=1e-4, atol=1e-4)
        for key in STATS_KEYS[kind_of(a)])


# ---------------------------------------------------------------------------
# The model and its samples

def load_model(args: CommonArguments, checkpoint_path: Path, device) -> tuple[torch.nn.Module, dict]:
    """The experiment's sampling network (the score network, GANO's generator) with the
    checkpoint's EMA weights (raw weights if it has none).

    Returns
    -------
    (model, state): the model in eval mode on ``device``, and the checkpoint dict.
    """
    state = load_checkpoint(checkpoint_path, device, method=method_of(args))  # ValueError: not this method's
    model = build_model(args)
    try:
        model.load_state_dict(model_weights(state))
    except RuntimeError as error:
        raise EvaluationError(f"{checkpoint_path} does not fit the experiment's config.json: "
                              f"{str(error).splitlines()[0]}") from None
    return model.to(device).eval(), state


def evaluate_samples(generated: torch.Tensor, real_stats: dict,
                     real: Optional[torch.Tensor] = None) -> tuple[dict, dict]:
    """Metrics of generated functions against the ground truth, and their statistics.

    The metrics of the kind of ``real_stats`` (src/metrics.py): always `wasserstein_metrics`
    (w_var, w_skew and w_total for Volcano); the mean-image metrics (and w_rough for Volcano)
    too when the real functions (N, res, res, C) are given.
    """
    if real is not None:
        return validation_metrics(real, real_stats, generated)
    stats = function_stats(generated, kind_of(real_stats))
    return wasserstein_metrics(real_stats, stats), stats


def samples_record(samples: torch.Tensor, stats: dict, metrics: dict, data_mean: Optional[torch.Tensor],
                   checkpoint: str, epoch: int, factor: int, seed: int, n_requested: int) -> dict:
    """The content of a samples pickle.

    ``samples`` (N, res, res, C) float32 ((cos, sin) for Volcano); their statistics under their
    own keys (``var``, ``skew`` (N,) for Volcano; see `read_stats`); ``data_mean`` (res, res, C)
    the mean training function at this resolution, or
    None when the data was not available; ``metrics``; and where they come from:
    ``checkpoint``, ``epoch``, ``factor``, ``resolution``, ``seed``, ``n_requested``.
    """
    return {"samples": samples.float().numpy(), **stats,
            "data_mean": None if data_mean is None else data_mean.float().numpy(), "metrics": metrics,
            "checkpoint": Path(checkpoint).name, "epoch": epoch, "factor": factor,
            "resolution": samples.shape[1], "seed": seed, "n_requested": n_requested}


def format_metrics(metrics: dict, indent: str = "  ") -> str:
    """One ``name = value`` line per metric, values with 8 significant digits."""
    return "\n".join(f"{indent}{name} = {value:.8g}" for name, value in metrics.items())
