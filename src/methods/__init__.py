"""The methods, found by name, and how the modules of src/ are layered.

Two methods learn a law of functions here: 'sbgm', the diffusion operator (score-based model in
function space, Lim et al. 2023; src/methods/diffusion.py), and 'gan', the GANO baseline
(Rahman et al. 2022; src/methods/gano.py). Everything that differs between them lives in the
method's module, as a `src.experiment.Method`: its config dataclass and the checks of its own
keys, its networks, its trainer, how it draws a batch of samples, and its network evaluations a
sample. Shared code never asks which config it holds; it asks this registry, by name:

    get("gan")             the method (its module is imported then)
    entry("gan").train     train_gano.py: the root scripts of the original's commands, by method

The shell scripts of exps/ ask it without importing torch::

    python -m src.methods <method> <train|resume|eval>    # prints the script, or exits 2 naming the methods

Layers, lowest first; a module imports from its own layer or below, never from above:

    0  errors, threads, methods (this registry: names and scripts only)
    1  files, progress
    2  data, noise, distributed, metrics, uno, synthetic
    3  diffusion (the equations), gaussian_fit (where the ODE starts), posterior (conditional sampling),
       score_network, legacy_uno (the original code's network), plotting
    4  checkpoint
    5  config (the keys both methods share, and loading a method's config by name)
    6  experiment (the Method interface, the noise of a config, sampling)
    7  training (the loop), evaluation
    8  methods.diffusion, methods.gano, conditional (eval.py's posterior mode: the diffusion operator's)
    9  cli (argv, environment, signals), and the command lines src/methods/__main__.py,
       src/synthetic/__main__.py and array_config; the root scripts (train.py, eval.py, ...) above all

The one reference upward is by name: `get` imports a method's module when asked (config loading
asks it for the method's dataclass), so that this module stays free of torch.
"""

import importlib
from dataclasses import dataclass

from src.errors import KnownError


@dataclass(frozen=True)
class Entry:
    """Where a method lives: its module (whose ``METHOD`` it is) and its root scripts."""

    module: str
    train: str
    resume: str
    eval: str


REGISTRY = {
    "sbgm": Entry("src.methods.diffusion", train="train.py", resume="resume.py", eval="eval.py"),
    "gan": Entry("src.methods.gano", train="train_gano.py", resume="resume_gano.py", eval="eval_gano.py"),
}
ALIASES = {"gano": "gan"}  # the original README's word for the GANO baseline
SCRIPT_KINDS = ("train", "resume", "eval")


class UnknownMethodError(KnownError, ValueError):
    """A method name that is not in the registry."""


def canonical(name: str) -> str:
    """The registry's name for ``name`` ('gano' is 'gan'); `UnknownMethodError` naming the methods."""
    name = ALIASES.get(name, name)
    if name not in REGISTRY:
        raise UnknownMethodError(f"unknown method {name!r}; the methods: {', '.join(REGISTRY)}")
    return name


def entry(name: str) -> Entry:
    return REGISTRY[canonical(name)]


def get(name: str):
    """The `src.experiment.Method` of ``name``."""
    return importlib.import_module(entry(name).module).METHOD
