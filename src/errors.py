"""What our own errors share: `KnownError`.

An error of ours says, in one line, what the user must change: a config key, a file, a flag. The
entry points (src/cli.py) print such an error as ``error: <message>`` and exit with status 2;
any other exception is a bug (ours or a library's) and keeps its traceback (status 1). Each
module raises its own kinds, all subclasses of `KnownError`: `src.config.ConfigError`,
`src.data.DataError`, `src.noise.NoiseError`, `src.checkpoint.CheckpointError`,
`src.files.WriteError`, `src.distributed.DistributedError`, `src.training.TrainingError`,
`src.evaluation.EvaluationError`, `src.methods.UnknownMethodError`, `src.posterior.PosteriorError`.
"""


class KnownError(Exception):
    """A failure the user can act on, said in one line (see the module docstring)."""
