"""eval.py's ``--mode=posterior``: a trained score network completes given observations
(inpainting, conditional super-resolution, denoising) with `src.posterior.posterior_langevin`.

    python eval.py --exp_name <run> --savedir <run>/eval --mode=posterior [--operator mask|average|identity]
        [--observations FILE] [--n_observations 4] [--K 16] [--mask blobs|coherence|FILE]
        [--unobserved 0.3] [--noise_variance 0] [--factor 2] [--seed 0] [--sampler KEY=VALUE ...]

Observations come from ``--observations`` (.npy / .pt, functions (N, res, res, C) or one (res,
res, C)), or else from the experiment's held-out functions (the validation split of DATA_DIR),
whose truth gives the metrics. The operator:

- ``mask``: the observed pixels of each function are those of its mask: a file ((res, res) or
  one a function, (N, res, res), nonzero = observed), or a generator: ``blobs``, random smooth
  blobs unobserved; ``coherence`` (Volcano), the pixels where the phase decorrelates, those of
  lowest local coherence |mean of exp(i phase)| over a 5 x 5 window (the synthetic data's
  decorrelation noise and dense fringes). Both leave ``--unobserved`` of the pixels unobserved.
- ``average``: an observation is a coarse function; the samples lie on a grid ``--factor``
  times as fine, and their factor x factor block means are the observation. Held-out
  observations are the block means of the validation split loaded at factor x the resolution.
- ``identity``: every pixel observed with noise of ``--noise_variance`` (denoising).

The grid sampled must be the training one or a multiple of it, as for --mode=superres. Files,
in --savedir, named after the operator (``<what>``: ``mask-blobs``, ``average-2x``, ...) and the
checkpoint: ``posterior_<what>.<ckpt>.pkl`` (`posterior_record`), ``metrics_posterior_<what>.<ckpt>.json``
and the figure ``posterior_<what>.<ckpt>.{png,pdf}``: a row an observation (up to 4), its
observation, 3 samples, the posterior mean, standard deviation and the truth.
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from src.data import keyed_generator, load_data, read_array
from src.evaluation import EvaluationError, load_trained, score_samples
from src.experiment import Method, build_noise
from src.methods.diffusion import METHOD as DIFFUSION, build_sigmas, network_evaluations
from src.files import write_outputs
from src.metrics import to_phase
from src.plotting import figure_paths, plot_posterior
from src.posterior import BlockAverage, Identity, Mask, ObservationProjection, posterior_langevin
from src.progress import progress_bar

OPERATORS = ("mask", "average", "identity")
MASK_GENERATORS = ("blobs", "coherence")
COHERENCE_WINDOW = 5
FIGURE_ROWS, FIGURE_SAMPLES = 4, 3
CENTRAL = 0.9  # the calibration's interval: the samples' central 90 %


@dataclass(frozen=True)
class PosteriorRequest:
    """What --mode=posterior conditions on (eval.py's flags): ``operator`` of `OPERATORS`;
    ``observations`` a file or None (held-out functions); ``n_observations`` of them at most;
    ``samples`` (K) an observation; ``mask`` a file or one of `MASK_GENERATORS`; ``unobserved`` the
    generators' fraction; ``variance`` of the observation noise."""

    operator: str = "mask"
    observations: Optional[str] = None
    n_observations: int = 4
    samples: int = 16
    mask: str = "blobs"
    unobserved: float = 0.3
    variance: float = 0.0

    def what(self, factor: int) -> str:
        """The outputs' name for the operator: mask-<generator or file>, average-<f>x, identity."""
        name = {"mask": f"mask-{Path(self.mask).stem}", "average": f"average-{factor}x"}.get(self.operator, "identity")
        return name + (f"-var{self.variance:g}" if self.variance > 0 else "")


@dataclass
class Observations:
    """Observed functions ``observed`` (N, r, r, C), on the sampled grid (or coarse for ``average``),
    their ``truth`` on the sampled grid (None for a file), ``masks`` (N, res, res) bool or None."""

    observed: torch.Tensor
    truth: Optional[torch.Tensor]
    masks: Optional[torch.Tensor]
    res: int

    def operator(self, i: int, request: PosteriorRequest, factor: int):
        if request.operator == "mask":
            return Mask(self.masks[i])
        return BlockAverage(self.res, factor) if request.operator == "average" else Identity(self.res)


# ---------------------------------------------------------------------------
# Masks

def blob_mask(res: int, unobserved: float, generator: torch.Generator) -> torch.Tensor:
    """(res, res) bool, True where observed: the complement of the ``unobserved`` fraction of
    highest values of a sum of a few random Gaussian bumps (smooth holes of several sizes)."""
    grid = (torch.arange(res, dtype=torch.float64) + 0.5) / res
    field = torch.zeros(res, res, dtype=torch.float64)
    for centre_x, centre_y, width in torch.rand(6, 3, generator=generator, dtype=torch.float64):
        width = 0.05 + 0.15 * width
        field += torch.exp(-((grid[:, None] - centre_y) ** 2 + (grid[None, :] - centre_x) ** 2) / (2 * width**2))
    return lowest_fraction_observed(-field, unobserved)


def local_coherence(u: torch.Tensor) -> torch.Tensor:
    """|mean of (cos, sin)| over a `COHERENCE_WINDOW` square around each pixel of phase functions
    u (N, res, res, 2) (cos, sin): (N, res, res), 1 where the phase is locally constant, near 0
    where it is noise or fringes denser than the window (the InSAR coherence estimator)."""
    unit = torch.stack([torch.cos(to_phase(u)), torch.sin(to_phase(u))], dim=1).double()
    mean = torch.nn.functional.avg_pool2d(unit, COHERENCE_WINDOW, stride=1, padding=COHERENCE_WINDOW // 2,
                                          count_include_pad=False)
    return mean.norm(dim=1)


def lowest_fraction_observed(values: torch.Tensor, unobserved: float) -> torch.Tensor:
    """True (observed) but at the ``unobserved`` fraction of lowest ``values`` (res, res)."""
    count = round(unobserved * values.numel())
    observed = torch.ones(values.numel(), dtype=torch.bool)
    observed[values.flatten().argsort()[:count]] = False
    return observed.reshape(values.shape)


def make_masks(request: PosteriorRequest, observed: torch.Tensor, kind: str, seed: int) -> torch.Tensor:
    """(N, res, res) bool of the observations (N, res, res, C): from the mask file or a generator."""
    n, res = observed.shape[:2]
    if request.mask == "blobs":
        return torch.stack([blob_mask(res, request.unobserved, keyed_generator(seed, i)) for i in range(n)])
    if request.mask == "coherence":
        if kind != "circular":
            raise EvaluationError("--mask coherence is for phase data (Volcano): this experiment's functions are "
                                  "real fields; use --mask blobs or a file")
        return torch.stack([lowest_fraction_observed(c, request.unobserved) for c in local_coherence(observed)])
    masks = torch.tensor(np.array(read_array(request.mask))) != 0
    if masks.shape not in ((res, res), (n, res, res)):
        raise EvaluationError(f"--mask {request.mask}: shape {tuple(masks.shape)}, expected ({res}, {res}) or "
                              f"({n}, {res}, {res}), the grid of the {n} observations")
    return masks.expand(n, res, res)


# ---------------------------------------------------------------------------
# Observations

def load_observations(args, request: PosteriorRequest, data_dir: Optional[str], factor: int, seed: int):
    """`Observations` and the training split on the sampled grid (None without DATA_DIR), checked:
    `EvaluationError` naming the culprit before anything is sampled or written."""
    if not request.variance >= 0:
        raise EvaluationError(f"--noise_variance must be >= 0 (a variance), got {request.variance}")
    if request.operator == "mask" and request.mask in MASK_GENERATORS and not 0 < request.unobserved < 1:
        raise EvaluationError(f"--unobserved must lie in (0, 1), a fraction of the pixels, got {request.unobserved}")
    if request.operator != "average":
        factor = 1
    train, truth = None, None
    if request.observations is None:
        if not data_dir:
            raise EvaluationError("--mode=posterior needs --observations FILE or DATA_DIR (its held-out functions)")
        train, valid = load_data(args, data_dir, factor)
        if len(valid) == 0:
            raise EvaluationError("the experiment holds out no functions (val_size 0): give --observations FILE")
        truth = valid[: request.n_observations]
        coarsen = BlockAverage(truth.shape[1], factor)
        observed = coarsen.as_function(coarsen(truth)) if factor > 1 else truth
    else:
        observed = torch.tensor(np.array(read_array(request.observations)), dtype=torch.float32)
        if observed.dim() == 3:
            observed = observed[None]
        channels = args.function_channels
        if observed.dim() != 4 or observed.shape[1] != observed.shape[2] or observed.shape[3] != channels:
            raise EvaluationError(f"--observations {request.observations}: shape {tuple(observed.shape)}, expected "
                                  f"functions (N, res, res, {channels}) or one (res, res, {channels}): the "
                                  f"experiment's functions have {channels} channel(s), channels last")
        observed = observed[: request.n_observations]
    res = factor * observed.shape[1]
    if res % args.data_resolution:
        raise EvaluationError(f"--observations {request.observations}: a {observed.shape[1]} px grid"
                              f"{f' x --factor {factor}' if factor > 1 else ''} = {res} px to sample, neither the "
                              f"training grid ({args.data_resolution} px) nor a multiple of it")
    if request.observations is not None and data_dir:
        train = load_data(args, data_dir, res // args.data_resolution)[0]
    masks = make_masks(request, observed, args.metric_kind, seed) if request.operator == "mask" else None
    return Observations(observed, truth, masks, res), train


# ---------------------------------------------------------------------------
# Metrics

def completion_metrics(samples: torch.Tensor, truth: torch.Tensor, unobserved: torch.Tensor, kind: str) -> dict:
    """How K completions (K, res, res, C) of one function ``truth`` (res, res, C) fare on its
    ``unobserved`` pixels (res, res): ``error`` of their mean (circular kind: the mean absolute
    wrapped phase difference of their circular mean, radians; else the RMS difference),
    ``sample_error`` the same for each completion on average, and (K > 1) ``calibration``, the
    fraction of the truth's values inside the completions' central 90 % (phases: within the
    90 % quantile of the completions' distance to their circular mean)."""
    if kind == "circular":
        def distance(a, b):
            return torch.remainder(to_phase(a) - to_phase(b) + math.pi, 2 * math.pi) - math.pi
        centre = samples.mean(0)
        metrics = {"error": distance(centre, truth)[unobserved].abs().mean().item(),
                   "sample_error": distance(samples, truth)[:, unobserved].abs().mean().item()}
        if len(samples) > 1:
            spread = distance(samples, centre).abs().quantile(CENTRAL, dim=0)
            metrics["calibration"] = (distance(truth, centre).abs() <= spread)[unobserved].float().mean().item()
        return metrics
    metrics = {"error": (samples.mean(0) - truth)[unobserved].square().mean().sqrt().item(),
               "sample_error": (samples - truth)[:, unobserved].square().mean(dim=(1, 2)).sqrt().mean().item()}
    if len(samples) > 1:
        low, high = samples.quantile(torch.tensor([(1 - CENTRAL) / 2, (1 + CENTRAL) / 2]), dim=0)
        metrics["calibration"] = ((low <= truth) & (truth <= high))[unobserved].float().mean().item()
    return metrics


def observation_misfit(samples: torch.Tensor, y: torch.Tensor, operator) -> float:
    """RMS of A u - y over K completions u (K, res, res, C) of one observation y (1, m, C)."""
    return (operator(samples) - y).square().mean().sqrt().item()


def unobserved_pixels(operator) -> torch.Tensor:
    """(res, res) bool: what the operator does not see pixel by pixel (all of them but a mask's)."""
    if isinstance(operator, Mask) and not isinstance(operator, Identity):
        return ~operator.observed
    return torch.ones(operator.res, operator.res, dtype=torch.bool)


def mean_over(rows: list[dict]) -> dict:
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]} if rows else {}


# ---------------------------------------------------------------------------
# The mode

def posterior(method: Method, args, exp_dir: Path, savedir: Path, request, conditioning: PosteriorRequest,
              data_dir: Optional[str], device) -> list[str]:
    """Sample K completions of each observation and write them (see the module docstring); the
    names of the files written to ``savedir``."""
    if method is not DIFFUSION:
        raise EvaluationError(f"--mode=posterior needs a score network (method 'sbgm'), not method '{method.name}'")
    factor = request.factor
    observations, train = load_observations(args, conditioning, data_dir, factor, request.seed)
    if args.sampler != "langevin":
        print(f"note: posterior sampling runs annealed Langevin dynamics with the config's L={args.L}, T={args.T}, "
              f"epsilon={args.epsilon:g}, step_rule={args.step_rule}, not its sampler '{args.sampler}' (the "
              "probability-flow ODE has no conditional version here); --sampler L=... T=... changes them")
    model, _, state = load_trained(exp_dir, request.checkpoint, device, method=method.name)
    res, k = observations.res, conditioning.samples
    noise_sampler = build_noise(args, res, device)
    sigmas = build_sigmas(args, device)
    evaluations = network_evaluations(DIFFUSION.with_sampler(args, {"sampler": "langevin"}))
    n = len(observations.observed)
    print(f"Completing {n} observation(s) ({conditioning.operator}, noise variance {conditioning.variance:g}) "
          f"with {k} samples each on a {res} x {res} px grid: {evaluations} network evaluations a sample, "
          f"{evaluations * k * n} in all, seed {request.seed}, device {device}")
    completed, records = [], []
    bar = progress_bar(total=n * math.ceil(k / request.batch_size), desc="Posterior")
    for i in range(n):
        operator = observations.operator(i, conditioning, factor)
        projection = ObservationProjection(noise_sampler, operator, conditioning.variance)
        y = operator.as_observation(observations.observed[i: i + 1]).to(device)
        samples = complete(model, args, noise_sampler, sigmas, y, projection, k, request.batch_size,
                           (request.seed, i), bar)
        row = {"observation_misfit": observation_misfit(samples, y.cpu(), operator)}
        if observations.truth is not None:
            row |= completion_metrics(samples, observations.truth[i], unobserved_pixels(operator), args.metric_kind)
        records.append(row)
        completed.append(samples)
    bar.close()
    samples = torch.stack(completed)  # (N, K, res, res, C)
    metrics = mean_over(records)
    if train is not None:
        metrics |= score_samples(samples.flatten(0, 1), train, args.metric_kind)
    print(f"{n * k} completions" + (" against the truth and the training data:" if observations.truth is not None
                                     else ":"))
    for name, value in metrics.items():
        print(f"  {name} = {value:.6g}")
    what = conditioning.what(factor)
    name = f"{what}.{Path(request.outputs_of).name}"
    masks = observations.masks
    record = posterior_record(samples, observations, conditioning, metrics, records, request, state, evaluations)
    summary = {**metrics, "per_observation": records, "operator": conditioning.operator,
               "noise_variance": conditioning.variance, "n_observations": n, "samples_per_observation": k,
               "resolution": res, "seed": request.seed, "network_evaluations": evaluations,
               "sampler": {key: getattr(args, key) for key in method.sampler_keys}}
    files = {savedir / f"posterior_{name}.pkl": record, savedir / f"metrics_posterior_{name}.json": summary}
    write_outputs(files)
    shown = observations.observed if masks is None else torch.where(masks[..., None], observations.observed, math.nan)
    plot_posterior(shown[:FIGURE_ROWS], samples[:FIGURE_ROWS, :FIGURE_SAMPLES], samples[:FIGURE_ROWS].mean(1),
                   samples[:FIGURE_ROWS].std(1),
                   None if observations.truth is None else observations.truth[:FIGURE_ROWS],
                   figure_paths(savedir, f"posterior_{name}"), args.metric_kind)
    return [path.name for path in files] + [path.name for path in figure_paths(savedir, f"posterior_{name}")]


def complete(model, args, noise_sampler, sigmas: torch.Tensor, y: torch.Tensor, projection: ObservationProjection,
             k: int, batch_size: int, key: tuple, bar=None) -> torch.Tensor:
    """K completions (K, res, res, C) on the CPU of one observation y (1, m, C) by
    `posterior_langevin` with the config's Langevin keys, in batches keyed by (``key``, batch)."""
    samples = []
    for b, start in enumerate(range(0, k, batch_size)):
        generator = keyed_generator(*key, b, device=noise_sampler.device)
        x = noise_sampler.sample(min(batch_size, k - start), generator)
        samples.append(posterior_langevin(model, noise_sampler, sigmas, x, y, projection, args.epsilon, args.T,
                                          generator, step_rule=args.step_rule, denoise_last=args.denoise_last).cpu())
        if bar is not None:
            bar.update(1)
    return torch.cat(samples)


def posterior_record(samples, observations: Observations, conditioning: PosteriorRequest, metrics: dict,
                     per_observation: list, request, state: dict, evaluations: int) -> dict:
    """The posterior pickle: ``samples`` (N, K, res, res, C), their per-pixel ``mean`` and ``std``
    (N, res, res, C), ``observation`` (N, r, r, C; the coarse functions for ``average``), ``mask``
    (N, res, res) bool or None, ``truth`` (N, res, res, C) or None, ``metrics`` (the mean over the
    observations, and the scores of all samples against the training split when DATA_DIR is
    set), ``per_observation``, and where they come from."""
    def array(tensor):
        return None if tensor is None else tensor.float().numpy()
    return {"samples": array(samples), "mean": array(samples.mean(1)), "std": array(samples.std(1)),
            "observation": array(observations.observed), "mask": None if observations.masks is None
            else observations.masks.numpy(), "truth": array(observations.truth), "metrics": metrics,
            "per_observation": per_observation, "operator": conditioning.operator,
            "noise_variance": conditioning.variance, "factor": request.factor if conditioning.operator == "average"
            else 1, "checkpoint": Path(request.checkpoint).name, "epoch": None if state["last_epoch"] is None
            else state["last_epoch"] + 1, "seed": request.seed, "network_evaluations": evaluations}
