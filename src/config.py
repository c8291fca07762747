"""Experiment configuration: the keys both methods share, and type-checked loading by method.

Every hyperparameter of a run is a field of its method's config dataclass, with the original
code's names and defaults: `CommonArguments` here (data, noise, optimiser, bookkeeping),
extended by each method's own (`src.methods.diffusion.Arguments` for 'sbgm',
`src.methods.gano.GANOArguments` for 'gan'), found by the method's name in the registry
(src/methods/__init__.py). A run's resolved configuration is written as ``config.json`` beside
its results, so these are also what `eval.py` reads back.

Loading goes through OmegaConf's structured configs, so that an unknown key (a typo such
as ``"epoch"``), a value of the wrong type or an impossible value stops with a
`ConfigError` that names the key, before anything is written anywhere. Types are JSON's, strictly:
a number in quotes (``"rbf_scale": "0.1"``), which OmegaConf would convert, is refused; an integer
where a float belongs is a float. Values typed on a command line (``KEY=VALUE``) are read as JSON
first (`from_command_line`).

An experiment directory the original code wrote has its own ``config.json``: the original's 29
keys (``json.dumps(asdict(args))``), ``"resolution": null`` meaning 128, none of the keys the
original lacked. `load_original_config` reads it as a config of this project, those keys at
the original's values (``ORIGINAL_VALUES`` and the method's ``original_values``).
"""

import json
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from src import methods
from src.data import DATA_GRIDS
from src.errors import KnownError
from src.noise import GANO_KERNEL, NOISE_KERNELS, NOISE_METHODS

DATA_FORMATS = (None, "volcano", "array")
VOLCANO_CHANNELS = 2  # (cos, sin) of the phase
LR_SCHEDULES = ("constant", "cosine")

# The keys of the original code's config.json (its `Arguments`), and what its null resolution meant.
ORIGINAL_CONFIG_KEYS = ("batch_size", "val_batch_size", "epochs", "val_size", "record_interval", "white_noise",
                        "augment", "schedule", "resolution", "npad", "epsilon", "sigma_1", "sigma_L", "T", "L",
                        "rbf_scale", "rbf_eps", "factorization", "num_freqs_input", "scale_factor", "d_co_domain",
                        "mult_dims", "fmult", "rank", "groups", "lr", "Ntest", "num_workers", "ema_rate")
ORIGINAL_RESOLUTION = 128
# Keys shared by both methods that the original lacks, at what its runs did: Volcano's phases
# resized bilinearly, its "RBF" noise (our exponential kernel), a constant learning rate.
ORIGINAL_VALUES = {"data_format": "volcano", "channels": VOLCANO_CHANNELS, "multilook": False,
                   "noise_kernel": "exponential", "lr_schedule": "constant"}


class ConfigError(KnownError, ValueError):
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
        """Channels of the functions: the data's, recorded at training; 2 (cos, sin) in the original's runs,
        whose config.json has no such key."""
        return self.channels if self.channels is not None else VOLCANO_CHANNELS

    @property
    def metric_kind(self) -> str:
        """The metrics of the data (src/metrics.py): 'circular' for Volcano phases, 'field' for array data."""
        return "field" if self.data_format == "array" else "circular"

    @property
    def resize_to(self) -> int:
        """Side to which the 128 px interferograms are resized before cropping."""
        return round(self.resolution * self.scale_factor)

    def require(self, ok: bool, key: str, why: str) -> None:
        """`ConfigError` naming ``key`` and its value unless ``ok``."""
        if not ok:
            raise ConfigError(f"config key '{key}' = {getattr(self, key)!r}: {why}")

    def check(self) -> None:
        """Refuse values that type-check but cannot be run; a method's config adds its own keys' checks."""
        require = self.require
        for key in ("batch_size", "val_batch_size", "epochs", "record_interval", "ntrain", "resolution",
                    "d_co_domain", "Ntest"):
            require(getattr(self, key) > 0, key, "must be positive")
        require(self.npad >= 0, "npad", "must be >= 0")
        require(self.num_workers >= 0, "num_workers", "must be >= 0")
        require(0.0 <= self.val_size < 1.0, "val_size", "must be in [0, 1)")
        require(self.lr > 0, "lr", "must be positive")
        require(self.lr_schedule in LR_SCHEDULES, "lr_schedule", f"must be one of {list(LR_SCHEDULES)}")
        require(0.0 < self.scale_factor <= 1.0, "scale_factor", "must be in (0, 1]")
        require(self.resize_to > self.npad, "resolution",
                f"must be larger than npad = {self.npad} (data is cropped to resolution - npad)")
        require(self.data_format in DATA_FORMATS, "data_format", f"must be one of {list(DATA_FORMATS)}")
        require(self.data_grid in DATA_GRIDS, "data_grid", f"must be one of {list(DATA_GRIDS)}")
        require(self.channels is None or self.channels >= 1, "channels", "must be null or positive")
        require(0.0 < self.fmult <= 1.0, "fmult", "must be in (0, 1]")
        require(self.rbf_scale > 0, "rbf_scale", "must be positive")
        require(self.rbf_eps >= 0, "rbf_eps", "must be >= 0")
        require(self.noise_kernel in NOISE_KERNELS, "noise_kernel", f"must be one of {list(NOISE_KERNELS)}")
        require(self.noise_method in NOISE_METHODS, "noise_method", f"must be one of {list(NOISE_METHODS)}")
        require(self.noise_kernel != GANO_KERNEL or self.noise_method == "fft", "noise_method",
                "must be 'fft' with noise_kernel 'gano' (drawn exactly by its DCT; no Cholesky reference)")
        require(self.grf_alpha > 1, "grf_alpha", "must be > 1 (else the field has no pointwise variance in 2-D)")
        require(self.grf_tau > 0, "grf_tau", "must be positive")
        require(self.ema_rate is None or 0.0 <= self.ema_rate < 1.0, "ema_rate", "must be null or in [0, 1)")


def _other_method_key(values: dict, method: str) -> Optional[tuple[str, str]]:
    """(key, method) of the first key of ``values`` that only another method's config has, or None."""
    keys = {name: {f.name for f in fields(methods.get(name).schema)} for name in methods.REGISTRY}
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
    schema = methods.get(method).schema

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
    """Type-check ``values`` against the config dataclass of ``method`` (a name of the registry,
    by default the original's one method, 'sbgm'; defaults fill what is missing), then its values
    (the dataclass's ``check``).

    Raises
    ------
    ConfigError
        naming the unknown key, the key of the wrong type or the impossible value; a key
        that only the other method knows is named with that method, so that a GANO config
        given to train.py (or a diffusion one to train_gano.py) says what it is.
    """
    method = methods.canonical(method)
    foreign = _other_method_key(values, method)
    if foreign:
        key, other = foreign
        raise ConfigError(f"{source}: config key '{key}' belongs to method '{other}' ({methods.entry(other).train}), "
                          f"not to '{method}' ({methods.entry(method).train}): is this a {other} config? Give it to "
                          f"the {other} scripts (main.sh, launch_eval.py and resume.sh take the method first)")
    schema = methods.get(method).schema
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
        args.check()
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    return args


def load_config(path: str | Path, method: str = "sbgm") -> CommonArguments:
    """Read a JSON config file and type-check it as ``method``'s (see `config_from_dict`)."""
    path = Path(path)
    return config_from_dict(_read_json_object(path), source=str(path), method=method)


def _read_json_object(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a JSON object of config keys, not {type(values).__name__}")
    return values


def load_original_config(path: str | Path, method: str = "sbgm") -> CommonArguments:
    """Read the config.json of an experiment directory the original code wrote as ``method``'s
    config (see the module docstring). A key the original did not have is refused, named."""
    values = _read_json_object(Path(path))
    unknown = [key for key in values if key not in ORIGINAL_CONFIG_KEYS]
    if unknown:
        raise ConfigError(f"{path}: config key '{unknown[0]}' is not one of the original code's, whose checkpoints "
                          f"this directory holds; its config.json has only {', '.join(ORIGINAL_CONFIG_KEYS)}")
    if "resolution" in values and values["resolution"] is None:
        values["resolution"] = ORIGINAL_RESOLUTION
    pinned = {**ORIGINAL_VALUES, **methods.get(method).original_values}
    return config_from_dict({**pinned, **values}, source=str(path), method=method)
