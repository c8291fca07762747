"""The one layer that talks to the outside: the root scripts' command lines, the environment,
Slurm and the signals. Below it, src/ takes plain values.

    train.py, train_gano.py      `train`:    DATA_DIR=... python train.py --cfg <json> --savedir <run dir>
    resume.py, resume_gano.py    `resume`:   DATA_DIR=... python resume.py <run dir>
    eval.py, eval_gano.py        `evaluate`: python eval.py --exp_name <run dir> --savedir <dir> --mode <mode>

each for a method's name (src/methods/). What is read here, and handed down as values:

    argv                                   the flags; the config file (the run's own config.json wins)
    DATA_DIR                               the data: a folder of .int files, or an array file
    SLURM_JOB_ID with SLURM_JOB_NODELIST   the Slurm job this runs in (`slurm_job_of`), requeued on a stop
    RANK, WORLD_SIZE, LOCAL_RANK           torchrun's ranks; else srun's SLURM_PROCID, SLURM_STEP_NUM_TASKS,
                                           SLURM_LOCALID (`world_of`)
    MASTER_ADDR, MASTER_PORT               rank 0's address; under srun by default the step's first node
                                           (SLURM_STEP_NODELIST) and a port of the job id (`master_of`)
    SIGUSR1, SIGTERM                       a stop request (`StopRequest`): Slurm's warning before a time
                                           limit, or a preemption

A stopped run has written model.pt at its step. Inside a Slurm job it asks Slurm to requeue the
job and exits 0; anywhere else it prints how to resume (``python resume.py <run dir>``) and exits
with `STOPPED_EXIT`, so that a script that trains and then evaluates does not evaluate an
unfinished run.

Exit statuses: 0 done; 2 refused: one of our own errors (src/errors.py), said in one line, with
nothing written; `STOPPED_EXIT` (75) stopped outside Slurm; 1 a bug, with its traceback.
"""

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from src import conditional, methods, training
from src.config import ConfigError, load_config
from src.data import load_data
from src.distributed import DistributedError, World, default_device
from src.errors import KnownError
from src.evaluation import Request, check_experiment, experiment_config, generate, plot, superres, written_by_original

STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)
# The exit status of a run stopped by a signal outside Slurm: sysexits' EX_TEMPFAIL, "try again
# later", since the run resumes where it stopped. Refusals exit 2, crashes 1.
STOPPED_EXIT = 75
EVAL_MODES = ("generate", "plot", "superres", "posterior")


def refuse(error: KnownError, world: World | None = None) -> int:
    """Say ``error`` in one line on stderr (naming the rank of a world of several); exit status 2."""
    rank = f" (rank {world.rank})" if world is not None and world.size > 1 else ""
    print(f"error{rank}: {error}", file=sys.stderr)
    return 2


# ---------------------------------------------------------------------------
# Training

def train(method: str, argv=None, description=None) -> int:
    """The command line of ``method``'s training script (train.py, train_gano.py), as one process
    or as one rank of several (torchrun, srun: src/distributed.py)."""
    cli = train_arguments(argv, description)
    savedir = Path(cli.savedir)
    world = world_of(os.environ)
    slurm_job = slurm_job_of(os.environ)
    if not world.is_main:
        quiet_rank(world)
    stopped = False
    try:
        args = resolve_config(cli.cfg, savedir, cli.override_cfg, method)
        check_writable(savedir)
        data_dir = os.environ.get("DATA_DIR")
        if not data_dir:
            raise ConfigError("environment variable DATA_DIR is not set: point it at the folder of *.int "
                              "files (python -m src.synthetic --outdir DIR makes a synthetic one) or at an "
                              "array file of functions (.npy, .pt)")
        if cli.check:
            functions = load_data(args, data_dir)[0]
            print(f"{cli.cfg}: a {method} config; DATA_DIR={data_dir}: {len(functions)} training "
                  f"functions of shape {tuple(functions.shape[1:])}; {savedir} can be written")
            return 0
        with StopRequest() as stop:
            world.start(*master_of(os.environ, world))
            stopped = training.run(methods.get(method), args, savedir, data_dir, stop, world)
        if stopped and slurm_job:
            # Slurm's requeue (below) sends SIGTERM to the job at once: it must not turn the
            # clean exit of a finished process into a kill.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # Every rank is past its last write (and ignores SIGTERM) before rank 0 requeues.
        world.barrier()
    except KnownError as error:
        return refuse(error, world)
    finally:
        world.close()
    if not stopped:
        return 0
    if slurm_job:
        if world.is_main:
            requeue_slurm_job(slurm_job)
        return 0
    if world.is_main:
        print(f"The run is not finished; resume it with: python {methods.entry(method).resume} {savedir}")
    return STOPPED_EXIT


def train_arguments(argv=None, description=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, help="JSON file of config keys (see src/config.py)")
    parser.add_argument("--savedir", required=True, help="run directory (created if missing)")
    parser.add_argument("--override_cfg", action="store_true",
                        help="use --cfg even if savedir already has a config.json; without it the saved "
                             "config wins, so that a restarted Slurm job keeps its config")
    parser.add_argument("--check", action="store_true",
                        help="only check the config, DATA_DIR and its data, and that savedir can be made; "
                             "write nothing (exit status 0, or 2 with the culprit named)")
    return parser.parse_args(argv)


def resolve_config(cfg: str, savedir: Path, override: bool, method: str):
    """The config of the run: savedir's own config.json if there is one (a restarted job keeps its
    config), unless ``override``; else ``cfg``."""
    saved = savedir / "config.json"
    if saved.exists() and not override:
        if saved.resolve() == Path(cfg).resolve():
            print(f"Using the config saved in {saved}")
        else:
            print(f"Using the config saved in {saved}, not --cfg {cfg} (pass --override_cfg to use {cfg} instead)")
        return load_config(saved, method)
    return load_config(cfg, method)


def check_writable(savedir: Path) -> None:
    """Stop before any work if savedir cannot be written (a read-only or foreign folder)."""
    folder = savedir
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"cannot make --savedir {savedir}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write to {folder} (for --savedir {savedir}): permission denied")


def resume(method: str, argv=None, description=None) -> int:
    """The command line of resume.py and resume_gano.py: ``<run dir>``, trained on by ``method``'s
    training script with the run's own config."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp_dir", type=Path, help="the run directory, which holds config.json and model.pt")
    exp_dir = parser.parse_args(argv).exp_dir
    try:
        if written_by_original(exp_dir, "model.pt"):
            print(f"error: {exp_dir} was written by the original code: its checkpoints evaluate "
                  f"({methods.entry(method).eval}, launch_eval.py) but cannot be trained on here, since they hold no "
                  "optimizer state and its network is not this project's", file=sys.stderr)
            return 2
    except KnownError as error:
        return refuse(error)
    for name, why in (("config.json", "not a run directory"),
                      ("model.pt", f"nothing to resume: {methods.entry(method).train} starts a run")):
        if not (exp_dir / name).is_file():
            print(f"error: {exp_dir} has no {name} ({why})", file=sys.stderr)
            return 2
    return train(method, ["--cfg", str(exp_dir / "config.json"), "--savedir", str(exp_dir)])


class StopRequest:
    """While in use, remembers a stop signal (SIGUSR1, SIGTERM) in ``signal``, by name, so that
    the step in progress can finish first; the previous handlers come back afterwards."""

    def __init__(self):
        self.signal = None

    def __enter__(self):
        self.previous = {signum: signal.signal(signum, self.request) for signum in STOP_SIGNALS}
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def request(self, signum, frame) -> None:
        self.signal = signal.Signals(signum).name


def slurm_job_of(environ) -> str | None:
    """The id of the Slurm job this process runs in, or None outside one.

    A Slurm job (sbatch, salloc, srun) sets SLURM_JOB_NODELIST beside SLURM_JOB_ID; SLURM_JOB_ID
    alone is a user's name for a local run (the original README's recipe without Slurm), which
    has no job to requeue. exps/run_env.sh tells a job from a local run the same way.
    """
    job = environ.get("SLURM_JOB_ID")
    return job if job and environ.get("SLURM_JOB_NODELIST") else None


def requeue_slurm_job(job: str) -> None:
    """Put Slurm job ``job`` back in the queue: it restarts in the same savedir and resumes."""
    try:
        result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
        print(f"scontrol requeue {job}: {'done' if result.returncode == 0 else result.stderr.strip()}")
    except (OSError, subprocess.TimeoutExpired) as error:
        print(f"could not requeue Slurm job {job}: {error}")


def world_of(environ) -> World:
    """This process's place in the run: torchrun's variables first, else srun's; a process started
    plainly (or as the batch script of a Slurm job) is a world of 1."""
    if "WORLD_SIZE" in environ:
        return World(int(environ.get("RANK", 0)), int(environ["WORLD_SIZE"]), int(environ.get("LOCAL_RANK", 0)))
    # SLURM_STEP_NUM_TASKS is set in the tasks of an srun step, not in a batch script, whose
    # SLURM_NTASKS is the whole job's: a script run directly by sbatch is one process.
    if "SLURM_STEP_NUM_TASKS" in environ and "SLURM_PROCID" in environ:
        return World(int(environ["SLURM_PROCID"]), int(environ["SLURM_STEP_NUM_TASKS"]),
                     int(environ.get("SLURM_LOCALID", 0)))
    return World()


def master_of(environ, world: World) -> tuple[str | None, int | None]:
    """(address, port) of rank 0's process group store; (None, None) for a world of 1.

    MASTER_ADDR and MASTER_PORT when set (torchrun sets both); under srun the step's first node
    (rank 0 runs there: srun numbers tasks node by node) and a port derived from the job id (the
    same after a requeue, different for two jobs on one node)."""
    if world.size == 1:
        return None, None
    address = environ.get("MASTER_ADDR") or first_node(environ.get("SLURM_STEP_NODELIST")
                                                       or environ.get("SLURM_JOB_NODELIST"))
    port = int(environ.get("MASTER_PORT") or 10000 + int(environ.get("SLURM_JOB_ID", 0)) % 20000)
    return address, port


def first_node(nodes: str | None) -> str:
    """The first host of a Slurm node list (``node[01-04]``), by ``scontrol show hostnames``."""
    if not nodes:
        raise DistributedError("MASTER_ADDR is not set and Slurm gives no node list: set MASTER_ADDR to the "
                               "host of rank 0")
    try:
        hosts = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True,
                               check=True, timeout=60).stdout.split()
    except (OSError, subprocess.SubprocessError) as error:
        raise DistributedError(f"MASTER_ADDR is not set and `scontrol show hostnames {nodes}` failed ({error}): "
                               f"set MASTER_ADDR to the host of rank 0") from None
    return hosts[0]


def quiet_rank(world: World) -> None:
    """Ranks other than 0 print one line, then only warnings and errors (stderr): the run's
    progress is rank 0's, and N copies of it would bury it."""
    print(f"rank {world.rank} of {world.size} (local rank {world.local_rank}) on {world.device}: progress is "
          f"rank 0's; this rank prints only warnings and errors", flush=True)
    sys.stdout = open(os.devnull, "w")


# ---------------------------------------------------------------------------
# Evaluation

def evaluate(method: str, argv=None, description=None) -> int:
    """The command line of ``method``'s evaluation script (eval.py, eval_gano.py)."""
    chosen = methods.get(method)
    cli = eval_arguments(argv, description, chosen.sampler_keys)
    exp_dir, savedir = Path(cli.exp_name), Path(cli.savedir)
    # The outputs are named after the checkpoint, and the sampler if it is changed.
    outputs_of = cli.checkpoint + "".join(f".{key}={value}" for key, value in cli.sampler)
    request = Request(cli.checkpoint, outputs_of, n=cli.Ntest, batch_size=cli.val_batch_size, seed=cli.seed,
                      factor=cli.factor)
    try:
        check_experiment(exp_dir, None if cli.mode == "plot" else cli.checkpoint)
        original = written_by_original(exp_dir, cli.checkpoint)
        args = chosen.with_sampler(experiment_config(exp_dir, method, original), dict(cli.sampler))
        if cli.mode == "plot":
            written = plot(args, exp_dir, savedir, outputs_of)
        elif cli.mode == "posterior":
            written = conditional.posterior(chosen, args, exp_dir, savedir, request, posterior_request(cli),
                                            os.environ.get("DATA_DIR"), default_device())
        else:
            mode = generate if cli.mode == "generate" else superres
            written = mode(chosen, args, exp_dir, savedir, request, os.environ.get("DATA_DIR"), default_device())
    except KnownError as error:
        return refuse(error)
    print(f"Wrote to {savedir}:")
    for name in written:
        print(f"  {name}")
    return 0


def eval_arguments(argv, description, sampler_keys: tuple[str, ...]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_name", required=True,
                        help="the experiment directory (full path), e.g. $SAVEDIR/<name>/<id>")
    parser.add_argument("--savedir", required=True,
                        help="where outputs are written (created if missing), e.g. $SAVEDIR/<name>/<id>/eval")
    parser.add_argument("--checkpoint", default="model.w_total.pt",
                        help="checkpoint file in the experiment directory (default: %(default)s)")
    parser.add_argument("--mode", required=True, choices=EVAL_MODES)
    parser.add_argument("--val_batch_size", type=positive_int, default=512,
                        help="functions sampled at once (default: %(default)s)")
    parser.add_argument("--Ntest", type=positive_int, default=1024,
                        help="number of functions to sample (default: %(default)s)")
    parser.add_argument("--factor", type=positive_int, default=2,
                        help="superres: sample on a grid this many times as fine (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler's noise (default: %(default)s)")
    keys = f"of {', '.join(sampler_keys)}" if sampler_keys else "(this method has none)"
    parser.add_argument("--sampler", nargs="+", default=[], type=parse_key_value, metavar="KEY=VALUE",
                        help=f"sample with these config keys changed, {keys}; the outputs are named after them")
    posterior = parser.add_argument_group("--mode=posterior (src/conditional.py): complete observations")
    posterior.add_argument("--operator", choices=conditional.OPERATORS, default="mask",
                           help="mask: inpainting; average: block means, a grid --factor times as fine; identity: "
                                "denoising (default: %(default)s)")
    posterior.add_argument("--observations", default=None, metavar="FILE",
                           help=".npy/.pt functions (N, res, res, C) to complete (default: DATA_DIR's held-out ones)")
    posterior.add_argument("--n_observations", type=positive_int, default=4, help="at most this many (default: 4)")
    posterior.add_argument("--K", type=positive_int, default=16, help="samples per observation (default: 16)")
    posterior.add_argument("--mask", default="blobs",
                           help=f"a .npy/.pt file (nonzero = observed) or {' or '.join(conditional.MASK_GENERATORS)} "
                                "(default: %(default)s)")
    posterior.add_argument("--unobserved", type=float, default=0.3,
                           help="fraction of the pixels the mask generators leave unobserved (default: %(default)s)")
    posterior.add_argument("--noise_variance", type=float, default=0.0,
                           help="variance of the observation's white noise (default: %(default)s)")
    return parser.parse_args(argv)


def posterior_request(cli: argparse.Namespace):
    return conditional.PosteriorRequest(cli.operator, cli.observations, cli.n_observations, cli.K, cli.mask,
                                        cli.unobserved, cli.noise_variance)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def parse_key_value(item: str) -> tuple[str, str]:
    """``"KEY=VALUE"`` from a command line (an argparse ``type=``), as (key, value), both text.

    Only the form is checked here; `src.config.from_command_line` reads the value as its key's
    type, and `src.config.config_from_dict` type-checks it.
    """
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{item!r} is not KEY=VALUE (a config key, e.g. denoise_last=false)")
    return key, value
