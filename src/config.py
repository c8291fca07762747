"""Experiment configuration: the dataclasses of the two methods and their type-checked loading.

Every hyperparameter of a run is a field of its method's dataclass, with the original code's
names and defaults: `Arguments` for the diffusion operator ('sbgm'), `GANOArguments` for the
GANO baseline ('gan'), both extending `CommonArguments` (data, noise, optimiser, bookkeeping).
A run's resolved configuration is written as ``config.json`` beside its results, so these
are also what `eval.py` reads back.

Loading goes through OmegaConf's structured configs, so that an unknown key (a typo such
as ``"epoch"``), a value of the wrong type or an impossible value stops with a
`ConfigError` that names the key, before anything is written anywhere. Types are JSON's, strictly:
a number in quotes (``"rbf_scale": "0.1"``), which OmegaConf would convert, is refused; an integer
where a float belongs is a float. Values typed on a command line (``KEY=VALUE``) are read as JSON
first (`from_command_line`).
"""

import argparse
import json
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import List, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from src.data import DATA_GRIDS
from src.diffusion import LOSS_WEIGHTINGS, SAMPLERS, SCHEDULES, STEP_RULES, TRAINING_LEVELS
from src.noise import GANO_KERNEL, NOISE_KERNELS, NOISE_METHODS

FACTORIZATIONS = (None, "tucker", "cp", "tt", "dense")
DATA_FORMATS = (None, "volcano", "array")
VOLCANO_CHANNELS = 2  # (cos, sin) of the phase
LR_SCHEDULES = ("constant", "cosine")
# The keys of how a diffusion operator samples, which eval.py --sampler may change for one evaluation.
SAMPLER_KEYS = ("sampler", "sampler_steps", "sampler_rho", "sampler_churn", "L", "T", "epsilon", "step_rule",
                "denoise_last", "schedule")


class ConfigError(ValueError):
    """A configuration that cannot be run; the message names the offending key."""


@dataclass
class CommonArguments:
    """What both methods' configs hold: the run, the data, the noise, the optimiser."""

    # --- optimisation and bookkeeping
    batch_size: int = 16                    # training batch size
    val_batch_size: int = 512               # batch size when sampling for validation metrics
    epochs: int = 100                       # train for this many epochs
    val_size: float = 0.1                   # fraction of the files held out as a validation split
    record_interval: int = 100              # sample and compute validation metrics every this many epochs
    white_noise: bool = False               # white noise instead of a Gaussian random field (rbf_* ignored)
    augment: bool = False                   # random horizontal and vertical flips of training examples

    # --- data
    ntrain: int = 4096                      # number of *.int files to load from $DATA_DIR, validation split included
    resolution: int = 128                   # resize the 128 px interferograms to this many pixels...
    npad: int = 8                           # ...then crop to resolution - npad; the network pads back by npad
    scale_factor: float = 1.0               # legacy: if < 1, resize to round(resolution * scale_factor) instead
    multilook: bool = False                 # downsample by averaging each pixel's footprint (InSAR multilooking); false = the original's bilinear sampling
    data_format: Optional[str] = None       # 'volcano' (DATA_DIR a folder of .int files) or 'array' (a .npy / .pt file); null = from DATA_DIR, written to config.json
    data_key: Optional[str] = None          # array: the tensor of a .pt file's dict; null = its only tensor
    channels_last: Optional[bool] = None    # array: (N, H, W, C) if true, (N, C, H, W) if false; null = the layout whose grid is square
    data_grid: str = "points"               # array: 'points' (a pixel is the value at (i / side, j / side), the noise's grid) or 'cells' (its cell's average: resized as an image); Volcano: the original's resize
    channels: Optional[int] = None          # channels of the functions and the networks (Volcano: 2); null = the data's, written to config.json

    # --- noise distribution (Gaussian random field)
    rbf_scale: float = 1.0                  # length scale l of noise_kernel (larger = smoother); not an RBF's: see noise_kernel
    rbf_eps: float = 0.01                   # std of white noise added to the field (the original's Cholesky jitter)
    noise_kernel: str = "exponential"       # covariance kernel (src/noise.py); the original's "rbf" is exponential, exp(-r / (2 l^2)); 'gano': GANO's
    noise_method: str = "fft"               # 'fft' (exact circulant embedding; the DCT for 'gano') or 'cholesky' (dense reference)
    grf_alpha: float = 1.5                  # noise_kernel 'gano': covariance (-Laplacian + grf_tau^2)^(-grf_alpha), Neumann
    grf_tau: float = 1.0                    # noise_kernel 'gano': see grf_alpha

    # --- network (U-shaped neural operator)
    d_co_domain: int = 32                   # channels after lifting; the U's widths are multiples of it
    fmult: float = 0.25                     # Fourier modes per block = int(side * fmult), in (0, 1]

    lr: float = 1e-3                        # Adam learning rate
    lr_schedule: str = "constant"           # 'constant' (the original) or 'cosine': lr decays to 0 over the epochs
    Ntest: int = 1024                       # samples generated for validation metrics
    num_workers: int = 2                    # unused (the data is in memory); kept so that the original's configs load
    ema_rate: Optional[float] = None        # EMA: shadow = (1 - ema_rate) * weights + ema_rate * shadow; null = off
    seed: int = 0                           # seed of the weights, the split and the training noise

    @property
    def data_resolution(self) -> int:
        """Side of the data the network sees, in pixels (after resizing and cropping)."""
        return self.resize_to - self.npad

    @property
    def function_channels(self) -> int:
        """Channels of the functions: the data's, recorded at training; 2 (cos, sin) in runs from before the key."""
        return self.channels if self.channels is not None else VOLCANO_CHANNELS

    @property
    def metric_kind(self) -> str:
        """The metrics of the data (src/metrics.py): 'circular' for Volcano phases, 'field' for array data."""
        return "field" if self.data_format == "array" else "circular"

    @property
    def resize_to(self) -> int:
        """Side to which the 128 px interferograms are resized before cropping."""
        return round(self.resolution * self.scale_factor)


@dataclass
class Arguments(CommonArguments):
    """A diffusion operator's config (method 'sbgm', train.py): the common keys and these."""

    schedule: str = "geometric"             # spacing of the noise levels: 'geometric' or 'linear'

    # --- annealed Langevin dynamics; sigmas are *variances*
    epsilon: float = 2e-5                   # Langevin step size at the last level (alpha_L); see step_rule
    step_rule: str = "sigma_squared"        # alpha_j = epsilon * (sigma_j / sigma_L)^2 (the original), or 'sigma': ^1
    sigma_1: float = 1.0                    # variance of the largest noise level
    sigma_L: float = 0.01                   # variance of the smallest noise level
    T: int = 100                            # Langevin steps per noise level
    L: int = 10                             # number of noise levels from sigma_1 to sigma_L
    denoise_last: bool = False              # end sampling with one denoising step x + sigma_L F(x, sigma_L)

    # --- the sampler (eval.py --sampler KEY=VALUE overrides these for one evaluation)
    sampler: str = "langevin"               # 'langevin' (annealed Langevin above, the original), or the ODE: 'euler', 'heun'
    sampler_steps: int = 18                 # euler, heun: levels sqrt(sigma_1)..sqrt(sigma_L); calls: steps, 2 steps - 1
    sampler_rho: float = 7.0                # euler, heun: spacing of the levels (EDM's rho; 1 linear in the std)
    sampler_churn: float = 0.0              # euler, heun: EDM's S_churn, noise added per step (0: deterministic)
    loss_weighting: str = "sigma"           # 'sigma': |noise + sigma F|^2 (the original); 'unit': that / sigma, levels alike
    training_levels: str = "discrete"       # levels trained on: the L of the schedule (the original) or 'log_uniform' in [sigma_L, sigma_1]

    # --- score network
    factorization: Optional[str] = None     # tensor factorization of the spectral weights: tucker, cp, tt, dense or null
    num_freqs_input: int = 0                # sinusoidal frequencies of the noise-level embedding for FiLM conditioning; 0 = off (the paper)
    mult_dims: List[int] = field(default_factory=lambda: [1, 2, 4, 4])  # width multipliers of the 4 levels
    rank: float = 1.0                       # rank of the factorized spectral weights (fraction of full)
    groups: int = 0                         # GroupNorm groups after each block; 0 = no normalisation


@dataclass
class GANOArguments(CommonArguments):
    """A GANO baseline's config (method 'gan', train_gano.py): the common keys and these.

    The U's widths are d_co_domain x (1.5, 3, 6, 12) down and back; fmult applies to the
    smaller of a block's input and output sides (GANO: 1/4).
    """

    n_critic: int = 10                      # discriminator steps per generator step
    lambda_grad: float = 10.0               # weight of the gradient penalty (target norm 1 / side: see src/gano.py)


# The configs of each method (the names of exps/main.sh), and the entry point that trains it.
METHODS = {"sbgm": Arguments, "gan": GANOArguments}
TRAINERS = {"sbgm": "train.py", "gan": "train_gano.py"}


def method_of(args: CommonArguments) -> str:
    """'sbgm' or 'gan': the method whose config ``args`` is."""
    return next(name for name, schema in METHODS.items() if type(args) is schema)


def _check_values(args: CommonArguments) -> None:
    """Reject values that type-check but cannot be run."""

    def require(ok: bool, key: str, why: str) -> None:
        if not ok:
            raise ConfigError(f"config key '{key}' = {getattr(args, key)!r}: {why}")

    for key in ("batch_size", "val_batch_size", "epochs", "record_interval", "ntrain", "resolution",
                "d_co_domain", "Ntest"):
        require(getattr(args, key) > 0, key, "must be positive")
    require(args.npad >= 0, "npad", "must be >= 0")
    require(args.num_workers >= 0, "num_workers", "must be >= 0")
    require(0.0 <= args.val_size < 1.0, "val_size", "must be in [0, 1)")
    require(args.lr > 0, "lr", "must be positive")
    require(args.lr_schedule in LR_SCHEDULES, "lr_schedule", f"must be one of {list(LR_SCHEDULES)}")
    require(0.0 < args.scale_factor <= 1.0, "scale_factor", "must be in (0, 1]")
    require(args.resize_to > args.npad, "resolution",
            f"must be larger than npad = {args.npad} (data is cropped to resolution - npad)")
    require(args.data_format in DATA_FORMATS, "data_format", f"must be one of {list(DATA_FORMATS)}")
    require(args.data_grid in DATA_GRIDS, "data_grid", f"must be one of {list(DATA_GRIDS)}")
    require(args.channels is None or args.channels >= 1, "channels", "must be null or positive")
    require(0.0 < args.fmult <= 1.0, "fmult", "must be in (0, 1]")
    require(args.rbf_scale > 0, "rbf_scale", "must be positive")
    require(args.rbf_eps >= 0, "rbf_eps", "must be >= 0")
    require(args.noise_kernel in NOISE_KERNELS, "noise_kernel", f"must be one of {list(NOISE_KERNELS)}")
    require(args.noise_method in NOISE_METHODS, "noise_method", f"must be one of {list(NOISE_METHODS)}")
    require(args.noise_kernel != GANO_KERNEL or args.noise_method == "fft", "noise_method",
            "must be 'fft' with noise_kernel 'gano' (drawn exactly by its DCT; no Cholesky reference)")
    require(args.grf_alpha > 1, "grf_alpha", "must be > 1 (else the field has no pointwise variance in 2-D)")
    require(args.grf_tau > 0, "grf_tau", "must be positive")
    require(args.ema_rate is None or 0.0 <= args.ema_rate < 1.0, "ema_rate", "must be null or in [0, 1)")

    if isinstance(args, GANOArguments):
        require(args.n_critic > 0, "n_critic", "must be positive")
        require(args.lambda_grad >= 0, "lambda_grad", "must be >= 0")
        return
    for key in ("T", "L"):
        require(getattr(args, key) > 0, key, "must be positive")
    require(args.num_freqs_input >= 0, "num_freqs_input", "must be >= 0")
    require(args.schedule in SCHEDULES, "schedule", f"must be one of {list(SCHEDULES)}")
    require(args.step_rule in STEP_RULES, "step_rule", f"must be one of {list(STEP_RULES)}")
    require(args.loss_weighting in LOSS_WEIGHTINGS, "loss_weighting", f"must be one of {list(LOSS_WEIGHTINGS)}")
    require(args.training_levels in TRAINING_LEVELS, "training_levels", f"must be one of {list(TRAINING_LEVELS)}")
    require(args.sigma_L > 0, "sigma_L", "must be positive (it is a variance)")
    require(args.sigma_1 >= args.sigma_L, "sigma_1",
            f"must be >= sigma_L = {args.sigma_L}: sigmas decrease from sigma_1 to sigma_L "
            "(did you swap them?)")
    require(args.L >= 2 or args.sigma_1 == args.sigma_L, "L", "needs at least 2 levels when sigma_1 != sigma_L")
    require(args.epsilon > 0, "epsilon", "must be positive")
    require(args.sampler in SAMPLERS, "sampler", f"must be one of {list(SAMPLERS)}")
    require(args.sampler_steps >= 1, "sampler_steps", "must be >= 1")
    require(args.sampler_rho > 0, "sampler_rho", "must be positive")
    require(args.sampler_churn >= 0, "sampler_churn", "must be >= 0")
    require(args.rank > 0, "rank", "must be positive")
    require(args.factorization in FACTORIZATIONS, "factorization", f"must be one of {list(FACTORIZATIONS)}")
    # OmegaConf lets nested lists through a List[int] field: check the type too.
    require(len(args.mult_dims) == 4 and all(type(m) is int and m > 0 for m in args.mult_dims), "mult_dims",
            "must be 4 positive integers (one per level of the U)")
    require(args.groups >= 0, "groups", "must be >= 0")
    if args.groups > 0:
        widths = [args.d_co_domain * m for m in args.mult_dims]
        require(all(w % args.groups == 0 for w in widths), "groups",
                f"must divide every block width {widths}")


def _other_method_key(values: dict, method: str) -> Optional[tuple[str, str]]:
    """(key, method) of the first key of ``values`` that only another method's config has, or None."""
    keys = {name: {f.name for f in fields(schema)} for name, schema in METHODS.items()}
    for key in values:
        if key not in keys[method]:
            other = next((name for name, known in keys.items() if key in known), None)
            if other:
                return key, other
    return None


def _declared_type(schema, key: str):
    """(the type of field ``key`` of ``schema`` without Optional, whether None is allowed), or None for no such field."""
    declared = typing.get_type_hints(schema).get(key)
    if declared is None:
        return None
    options = typing.get_args(declared) if typing.get_origin(declared) in (typing.Union, types.UnionType) else ()
    if type(None) in options:
        return next(option for option in options if option is not type(None)), True
    return declared, False


def _json_type_error(value, declared) -> Optional[str]:
    """Why ``value`` (read from JSON) is not of the field type ``declared``, or None if it is."""
    if declared is bool:
        ok, wanted = isinstance(value, bool), "true or false"
    elif declared is int:
        ok, wanted = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif declared is float:
        ok, wanted = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    elif declared is str:
        ok, wanted = isinstance(value, str), "a string"
    elif typing.get_origin(declared) is list:
        element = typing.get_args(declared)[0]
        if not isinstance(value, list):
            return "must be a list"
        return next((f"element {i}: {why}" for i, item in enumerate(value)
                     if (why := _json_type_error(item, element)) is not None), None)
    else:
        return None
    if ok:
        return None
    quoted = " (in quotes: write it without them)" if isinstance(value, str) and declared in (int, float, bool) else ""
    return f"must be {wanted}, not {json.dumps(value)}{quoted}"


def _check_types(values: dict, schema, source: str) -> None:
    """Refuse a value whose JSON type is not its field's (unknown keys are OmegaConf's to name)."""
    for key, value in values.items():
        found = _declared_type(schema, key) if isinstance(key, str) else None
        if found is None:
            continue
        declared, nullable = found
        if value is None and nullable:
            continue
        why = "must not be null" if value is None else _json_type_error(value, declared)
        if why is not None:
            raise ConfigError(f"{source}: bad config key '{key}': {why}")


def from_command_line(values: dict, method: str = "sbgm") -> dict:
    """``values`` of ``KEY=VALUE`` arguments (`parse_key_value`) with each text read as JSON, as a
    config file would hold it (``10``, ``false``, ``null``, ``1e-3``), but for string keys, whose
    text is the string (``sampler=heun``). Values that are not strings pass through."""
    schema = METHODS[method]

    def read(key, text):
        found = _declared_type(schema, key)
        if not isinstance(text, str) or found is None:
            return text
        declared, nullable = found
        if declared is str:
            return None if nullable and text == "null" else text
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text  # refused by name by the type check, as not a number (or bool)

    return {key: read(key, text) for key, text in values.items()}


def _fails(function, argument, exceptions) -> bool:
    try:
        function(argument)
    except exceptions:
        return True
    return False


def config_from_dict(values: dict, source: str = "config", method: str = "sbgm") -> CommonArguments:
    """Type-check ``values`` against the config of ``method`` (defaults fill what is missing):
    `Arguments` for 'sbgm', `GANOArguments` for 'gan'.

    Raises
    ------
    ConfigError
        naming the unknown key, the key of the wrong type or the impossible value; a key
        that only the other method knows is named with that method, so that a GANO config
        given to train.py (or a diffusion one to train_gano.py) says what it is.
    """
    foreign = _other_method_key(values, method)
    if foreign:
        key, other = foreign
        raise ConfigError(f"{source}: config key '{key}' belongs to method '{other}' ({TRAINERS[other]}), "
                          f"not to '{method}' ({TRAINERS[method]}): is this a {other} config? Give it to the "
                          f"{other} scripts (main.sh, launch_eval.py and resume.sh take the method first)")
    schema = METHODS[method]
    _check_types(values, schema, source)

    def typed(values: dict) -> CommonArguments:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))

    # OmegaConf raises TypeError, without the key, for a container where a list belongs.
    failures = (OmegaConfBaseException, TypeError, ValueError)
    try:
        args = typed(values)
    except failures as error:
        key = getattr(error, "full_key", None) or getattr(error, "key", None)
        if not key:  # find it: the first key that fails alone
            key = next((k for k in values if _fails(typed, {k: values[k]}, failures)), None)
        reason = str(error).splitlines()[0]
        raise ConfigError(f"{source}: bad config key '{key}': {reason}") from None
    try:
        _check_values(args)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    return args


def parse_key_value(item: str) -> tuple[str, str]:
    """``"KEY=VALUE"`` from a command line (an argparse ``type=``), as (key, value), both text.

    Only the form is checked here; `from_command_line` reads the value as its key's type, and
    `config_from_dict` type-checks it.
    """
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{item!r} is not KEY=VALUE (a config key, e.g. denoise_last=false)")
    return key, value


def with_sampler(args: CommonArguments, changes: dict, source: str = "--sampler") -> CommonArguments:
    """``args`` with the sampler keys in ``changes`` changed (type-checked): one trained model
    sampled another way. Any other key, or any change to a GANO config, is refused."""
    if not changes:
        return args
    if isinstance(args, GANOArguments):
        raise ConfigError(f"{source}: GANO draws with its generator, one network call a sample: no sampler to change")
    other = [key for key in changes if key not in SAMPLER_KEYS]
    if other:
        raise ConfigError(f"{source}: {', '.join(other)} is not a sampler key; these are: {', '.join(SAMPLER_KEYS)}")
    return config_from_dict(asdict(args) | from_command_line(changes), source=source)


def load_config(path: str | Path, method: str = "sbgm") -> CommonArguments:
    """Read a JSON config file and type-check it as ``method``'s (see `config_from_dict`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a JSON object of config keys, not {type(values).__name__}")
    return config_from_dict(values, source=str(path), method=method)
