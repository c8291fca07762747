"""Resume a stopped training run of the GANO baseline exactly where it stopped.

    DATA_DIR=/path/to/volcano python resume_gano.py $SAVEDIR/<experiment name>/<id>

As resume.py does for the diffusion operator (see there and src/training.py): the run goes
on with its own config.json from its model.pt, generator, discriminator, both optimizers and
the EMA. From ``exps/``: ``bash resume.sh gan <experiment name> <id>``.
"""

# First, before anything imports torch: libgomp reads the number of threads and how idle threads
# wait once, when torch loads it, so src/threads.py sets them up here (a run started as a script).
if __name__ == "__main__":
    from src.threads import configure
    configure()

import sys

from src import cli


def main(argv=None) -> int:
    return cli.resume("gan", argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
