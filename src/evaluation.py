"""Evaluation of a trained experiment: its modes (`generate`, `superres`, `plot`), output names,
reading its files, metrics of samples.

eval.py and eval_gano.py (their command line is src/cli.py's) run the modes, and `plot_stats.py`
reads with these functions; sampling is `src.experiment.sample`, figures `src.plotting`. The
benchmarks score samples with the same code: `score_samples` against the training split, and
`held_out_floor`, the score of the validation split. Nothing here reads the environment or argv;
paths and values come in as arguments.

Files of an evaluation, all in its ``savedir`` (``ckpt`` is the checkpoint's file name,
``postfix`` is ``""`` at the training resolution and ``"_{factor}x"`` for super-resolution)::

    samples{postfix}.{ckpt}.pkl   dict, see `samples_record`
    stats{postfix}.{ckpt}.pkl     per-function statistics, the format of gt_stats.pkl: for Volcano
                                  {'var': (N,), 'skew': (N,)} numpy, for array data
                                  src.metrics.field_stats
    metrics{postfix}.{ckpt}.json  the metrics of those samples against the ground truth
    gt_stats_{factor}x.pkl        ground-truth statistics at factor x the training resolution

The ground truth at the training resolution is the experiment's own ``gt_stats.pkl``.

An experiment directory is this project's or one the original code wrote (its published
checkpoints), told apart by its checkpoint (`src.checkpoint.is_original`); the modes read both
alike, the original's with the original's network and config (`load_experiment`, the one
public entry point to a trained model, returns either).
"""

import math
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from src import methods
from src.checkpoint import is_original, load_sampling_checkpoint, model_weights, read_checkpoint
from src.config import CommonArguments, load_config, load_original_config
from src.data import load_data, native_side
from src.errors import KnownError
from src.experiment import Method, build_noise, data_fit_of, sample
from src.gaussian_fit import DATA_FIT, GaussianFit
from src.files import write_outputs
from src.metrics import STATS_KEYS, function_stats, kind_of, mean_image_metrics, validation_metrics, wasserstein_metrics
from src.plotting import (FIGURE_FORMATS, GRID_PAGES, GRID_PRESETS, figure_paths, plot_mean_images,
                          plot_sample_pages, plot_stats_histograms)

GT_STATS = "gt_stats.pkl"


class EvaluationError(KnownError, ValueError):
    """An evaluation that cannot run: a missing file, a checkpoint that does not fit, ..."""


@dataclass(frozen=True)
class Request:
    """What an evaluation samples and how its outputs are named (eval.py's flags).

    ``checkpoint``: the checkpoint file of the experiment directory; ``outputs_of``: what the
    output files are named after, the checkpoint and any change of its sampler; ``n`` functions
    sampled ``batch_size`` at a time with ``seed``; ``factor``: superres's grid, this many times
    as fine as the training one.
    """

    checkpoint: str
    outputs_of: str
    n: int
    batch_size: int
    seed: int
    factor: int = 2


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


def written_by_original(exp_dir: Path, checkpoint: Optional[str] = None) -> bool:
    """Whether the original code wrote ``exp_dir``, as its checkpoint says: ``checkpoint``, or,
    where that is not there (--mode=plot needs none), the first of the directory's."""
    exp_dir = Path(exp_dir)
    names = ([checkpoint] if checkpoint else []) + list_checkpoints(exp_dir)
    for name in names:
        if (exp_dir / name).is_file():
            return is_original(read_checkpoint(exp_dir / name, "cpu", mmap=True))  # mapped: nothing read twice
    return False


def experiment_config(exp_dir: Path, method: str, original: bool) -> CommonArguments:
    """The config.json of ``exp_dir`` as ``method``'s config; read as the original code's
    (`src.config.load_original_config`) if ``original``, the original wrote the directory."""
    return (load_original_config if original else load_config)(Path(exp_dir) / "config.json", method)


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

def load_experiment(exp_dir: str | Path, checkpoint: str = "model.w_total.pt", device="cpu",
                    use_ema: bool = True) -> tuple[torch.nn.Module, CommonArguments]:
    """The trained network of an experiment directory, this project's or the original code's,
    and its config: the entry point for notebooks and scripts, and what eval.py samples.

    Parameters
    ----------
    exp_dir : the experiment directory (it holds config.json and ``checkpoint``)
    checkpoint : the checkpoint file in it
    device : where the network goes
    use_ema : the checkpoint's EMA weights when it has them (what evaluation samples), else its raw ones

    Returns
    -------
    (network, config): the network in eval mode on ``device`` and the experiment's config
    dataclass. A diffusion operator's network (``UNOScoreNetwork``, or ``LegacyUNO`` for the
    original's directories) is called as every score network here, ``network(x, sigma)`` with
    ``x`` (batch, res, res, channels) and ``sigma`` the noise variances (batch,), and returns
    the score, shaped as ``x``; GANO's is its generator, ``network(z)``.
    """
    network, args, _ = load_trained(exp_dir, checkpoint, device, use_ema)
    return network, args


def load_trained(exp_dir: str | Path, checkpoint: str, device, use_ema: bool = True,
                 method: Optional[str] = None) -> tuple[torch.nn.Module, CommonArguments, dict]:
    """`load_experiment`'s network and config, and the checkpoint as
    `src.checkpoint.load_sampling_checkpoint` reads it (its epoch, whether it has an EMA, ...);
    ``method``, if given, must be the checkpoint's."""
    exp_dir = Path(exp_dir)
    check_experiment(exp_dir, checkpoint)
    state = load_sampling_checkpoint(exp_dir / checkpoint, device, method)
    chosen = methods.get(state["method"])
    args = experiment_config(exp_dir, chosen.name, state["original"])
    return network_of(chosen, args, state, exp_dir / checkpoint, device, use_ema), args, state


def load_model(method: Method, args: CommonArguments, checkpoint_path: Path, device,
               use_ema: bool = True) -> tuple[torch.nn.Module, dict]:
    """The experiment's sampling network (the score network, GANO's generator) with the
    checkpoint's EMA weights (raw weights if it has none, or without ``use_ema``); the
    original's network for a checkpoint the original code wrote.

    Returns
    -------
    (model, state): the model in eval mode on ``device``, and the checkpoint as
    `src.checkpoint.load_sampling_checkpoint` reads it.
    """
    state = load_sampling_checkpoint(checkpoint_path, device, method.name)  # CheckpointError: not this method's
    return network_of(method, args, state, checkpoint_path, device, use_ema), state


def network_of(method: Method, args: CommonArguments, state: dict, checkpoint_path: Path, device,
               use_ema: bool) -> torch.nn.Module:
    """``method``'s network for ``args`` (the original's for an original checkpoint) with the
    weights of ``state``, loaded strictly."""
    model = method.build_original_model(args) if state["original"] else method.build_model(args)
    try:
        model.load_state_dict(model_weights(state, use_ema))
    except RuntimeError as error:
        raise EvaluationError(f"{checkpoint_path} does not fit the experiment's config.json: "
                              f"{str(error).splitlines()[0]}") from None
    return model.to(device).eval()


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


def score_samples(samples: torch.Tensor, train: torch.Tensor, kind: str) -> dict:
    """The metrics of ``samples`` (N, res, res, C) against the training split ``train`` (M, res,
    res, C) at the same resolution, of the metric ``kind`` (``args.metric_kind``).

    `evaluate_samples` against the training functions and their own statistics: for 'circular'
    w_var, w_skew, their sum w_total, w_rough, mean_image_l2 and mean_image_phase_l2; for
    'field' w_mean, w_std, w_marginal, log_spectrum_rms, their sum w_total and mean_image_l2.
    The numbers training's validation records and eval.py writes (--mode=generate with DATA_DIR,
    gt_stats.pkl being the training split's statistics; --mode=superres with the split at its
    resolution), so that a benchmark's row and an evaluation of the same samples agree.
    """
    return evaluate_samples(samples, function_stats(train, kind), train)[0]


def held_out_floor(valid: torch.Tensor, train: torch.Tensor, kind: str, n: int) -> dict:
    """`score_samples` of the first ``n`` functions of the validation split ``valid`` (all of
    them if it holds fewer) against the training split ``train``.

    Real functions that training never saw, scored as a model's n samples are: what a perfect
    model scores at this sample size (the metrics' sampling error), the floor beside which a
    model's score reads.
    """
    return score_samples(valid[:n], train, kind)


def samples_record(samples: torch.Tensor, stats: dict, metrics: dict, data_mean: Optional[torch.Tensor],
                   checkpoint: str, epoch: Optional[int], factor: int, seed: int, n_requested: int) -> dict:
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


# ---------------------------------------------------------------------------
# The modes

def generate(method: Method, args: CommonArguments, exp_dir: Path, savedir: Path, request: Request,
             data_dir: Optional[str], device) -> list[str]:
    """Sample at the training resolution and score against the experiment's gt_stats.pkl (and,
    with ``data_dir``, the data's mean image); the names of the files written to ``savedir``."""
    real_stats = read_stats(exp_dir / GT_STATS)
    real = None
    if data_dir:
        real = load_data(args, data_dir)[0]
        if not same_stats(function_stats(real, args.metric_kind), real_stats):
            print(f"warning: the training data under DATA_DIR={data_dir} differs from the data of "
                  f"{exp_dir / GT_STATS}; the mean image compares against DATA_DIR")
    else:
        print("note: DATA_DIR is not set, so there is no data mean: no mean-image metrics, and "
              "--mode=plot will draw no mean image")
    samples, epoch = sample_checkpoint(method, args, exp_dir, request, 1, data_dir, device)
    metrics, stats = evaluate_samples(samples, real_stats, real)
    print(f"{len(samples)} samples against the training data ({exp_dir / GT_STATS}):")
    print(format_metrics(metrics))
    files = outputs(method, args, savedir, request, 1, samples, stats, metrics,
                    None if real is None else real.mean(0), epoch)
    write_outputs(files)
    return [path.name for path in files]


def superres(method: Method, args: CommonArguments, exp_dir: Path, savedir: Path, request: Request,
             data_dir: Optional[str], device) -> list[str]:
    """Sample on a grid ``request.factor`` times as fine and score against the data resized to it."""
    factor = request.factor
    if factor < 2:
        raise EvaluationError("--mode=superres needs --factor >= 2 (use --mode=generate at the training resolution)")
    if not data_dir:
        raise EvaluationError("--mode=superres needs the environment variable DATA_DIR (the ground truth at "
                              f"{factor} x the resolution comes from the data)")
    real = load_data(args, data_dir, factor)[0]
    native = native_side(args, data_dir)
    if factor * args.resize_to > native:
        print(f"note: the ground truth at {factor * args.resize_to} px is interpolated from the data's "
              f"{native} px grid, so it has no detail finer than that grid's")
    real_stats = function_stats(real, args.metric_kind)
    samples, epoch = sample_checkpoint(method, args, exp_dir, request, factor, data_dir, device)
    metrics, stats = evaluate_samples(samples, real_stats, real)
    print(f"{len(samples)} samples against the training data at {factor} x the resolution "
          f"({real.shape[1]} x {real.shape[2]} px, {len(real)} functions):")
    print(format_metrics(metrics))
    files = {savedir / gt_stats_name(factor): real_stats,
             **outputs(method, args, savedir, request, factor, samples, stats, metrics, real.mean(0), epoch)}
    write_outputs(files)
    return [path.name for path in files]


def sample_checkpoint(method: Method, args: CommonArguments, exp_dir: Path, request: Request, factor: int,
                      data_dir: Optional[str], device) -> tuple[torch.Tensor, Optional[int]]:
    """(the samples of the checkpoint on a grid ``factor`` times the training one, its epoch or None)."""
    data_fit = data_fit_for(method, args, exp_dir, data_dir)
    # The network as load_experiment gives it; ``args`` (the sampler eval.py was asked for) draws.
    model, _, state = load_trained(exp_dir, request.checkpoint, device, method=method.name)
    epoch = None if state["last_epoch"] is None else state["last_epoch"] + 1  # the oldest original's have none
    res = factor * args.data_resolution
    made_by = ", written by the original code: its network" if state["original"] else ""
    print(f"Sampling {request.n} functions of {res} x {res} px ({factor} x the training resolution) "
          f"with {request.checkpoint} (epoch {'unknown' if epoch is None else epoch}{made_by}, "
          f"{'EMA' if state['ema'] is not None else 'raw'} weights), seed {request.seed}, device {device}")
    evaluations = method.network_evaluations(args)
    batches = math.ceil(request.n / request.batch_size)
    print(f"{evaluations} network evaluations a function: {evaluations * request.n} in all, in {batches} batch(es) "
          f"of {min(request.batch_size, request.n)} functions (--Ntest and --val_batch_size set them)")
    samples = sample(method, model, args, build_noise(args, res, device), request.n, request.batch_size,
                     seed=request.seed, estimate=True, data_fit=data_fit)
    if len(samples) == 0:
        raise EvaluationError(f"all {request.n} samples diverged (NaN or inf){method.divergence_hint}; "
                              "nothing was written")
    if len(samples) < request.n:
        print(f"warning: {request.n - len(samples)} of {request.n} samples diverged and were dropped")
    return samples, epoch


def data_fit_for(method: Method, args: CommonArguments, exp_dir: Path, data_dir: Optional[str]) -> Optional[GaussianFit]:
    """The Gaussian fit of the training functions when ``args``' sampler starts from it: the run's
    gaussian_fit.pkl, else (a run of the original code, or one trained before runs recorded it)
    the fit of DATA_DIR's training split; None for a sampler that does not start from it."""
    if not method.needs_data_fit(args):
        return None
    path = exp_dir / DATA_FIT
    if path.is_file():
        fit = GaussianFit.from_record(read_pickle(path), str(path))
        fit.check_fits(args.data_resolution, args.function_channels, str(path))
        return fit
    if not data_dir:
        raise EvaluationError(f"sampler_start 'data_fit' starts from the Gaussian fit of the training functions, and "
                              f"{exp_dir} has no {DATA_FIT}: set DATA_DIR to fit the data, or sample from the prior "
                              "with --sampler sampler_start=prior; nothing was written")
    print(f"note: {exp_dir} has no {DATA_FIT}: fitting the training split of DATA_DIR={data_dir}")
    return data_fit_of(args, load_data(args, data_dir)[0])


def outputs(method: Method, args: CommonArguments, savedir: Path, request: Request, factor: int, samples,
            stats: dict, metrics: dict, data_mean, epoch: Optional[int]) -> dict:
    """{path: value} of the samples pickle, the stats pickle and the metrics JSON of one set of samples."""
    name = request.outputs_of
    record = samples_record(samples, stats, metrics, data_mean, name, epoch, factor, request.seed, request.n)
    summary = {**metrics, "checkpoint": record["checkpoint"], "epoch": epoch, "factor": factor,
               "resolution": record["resolution"], "n_samples": len(samples), "n_requested": request.n,
               "seed": request.seed, "network_evaluations": method.network_evaluations(args),
               "sampler": {key: getattr(args, key) for key in method.sampler_keys}}
    return {savedir / samples_name(name, factor): record, savedir / stats_name(name, factor): stats,
            savedir / metrics_name(name, factor): summary}


def plot(args: CommonArguments, exp_dir: Path, savedir: Path, outputs_of: str) -> list[str]:
    """Figures of every samples[_<f>x].<outputs_of>.pkl in ``savedir``: sample grids, mean images,
    statistics histograms; the names (patterns) of the files written."""
    factors = find_sample_factors(savedir, outputs_of)
    if not factors:
        present = sorted(p.name for p in savedir.glob("samples*.pkl")) if savedir.is_dir() else []
        raise EvaluationError(f"no {samples_name(outputs_of)} nor samples_<factor>x.{Path(outputs_of).name}.pkl in "
                              f"{savedir} (run --mode=generate or --mode=superres first); samples there: "
                              f"{', '.join(present) if present else 'none'}")
    # Read and check every input before drawing anything.
    inputs = []
    for factor in factors:
        record = read_pickle(savedir / samples_name(outputs_of, factor), keys=("samples",))
        shape = np.shape(record["samples"])
        channels = args.function_channels
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != channels or shape[0] == 0:
            raise EvaluationError(f"{savedir / samples_name(outputs_of, factor)}: samples of shape {shape}, "
                                  f"expected (N, res, res, {channels})")
        gt_path = exp_dir / GT_STATS if factor == 1 else savedir / gt_stats_name(factor)
        stats = read_stats(savedir / stats_name(outputs_of, factor))
        inputs.append((factor, record, gt_path, read_stats(gt_path), stats))

    extensions = "{" + ",".join(FIGURE_FORMATS) + "}"
    written = []
    for factor, record, gt_path, real_stats, stats in inputs:
        samples = torch.from_numpy(np.asarray(record["samples"]))
        print(f"{samples_name(outputs_of, factor)}: {len(samples)} samples of "
              f"{samples.shape[1]} x {samples.shape[2]} px")
        stem = figure_stem("samples", outputs_of, factor)
        plot_sample_pages(samples, savedir, stem, kind=args.metric_kind)
        written.append(f"{stem}.{{{','.join(GRID_PRESETS)}}}.{{0..{GRID_PAGES - 1}}}.{extensions}")

        stem = figure_stem("mean_sample", outputs_of, factor)
        if record.get("data_mean") is not None:
            data_mean = torch.from_numpy(np.asarray(record["data_mean"]))[None]
            # No suptitle: it would sit over the panel titles; the metrics are printed instead.
            plot_mean_images(data_mean, samples, figure_paths(savedir, stem), kind=args.metric_kind)
            print(format_metrics(mean_image_metrics(data_mean, samples, args.metric_kind)))
            written.append(f"{stem}.{extensions}")
        else:
            print(f"note: {samples_name(outputs_of, factor)} holds no data mean (DATA_DIR was not set when it "
                  f"was generated), so {stem}.png is not drawn")

        stem = figure_stem("stats", outputs_of, factor)
        metrics = wasserstein_metrics(real_stats, stats)
        plot_stats_histograms(real_stats, stats, metrics, figure_paths(savedir, stem))
        print(f"{stats_name(outputs_of, factor)} against {gt_path}:")
        print(format_metrics(metrics))
        written.append(f"{stem}.{extensions}")
    return written
