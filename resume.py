"""Resume a stopped training run of the diffusion operator exactly where it stopped.

    DATA_DIR=/path/to/volcano python resume.py $SAVEDIR/<experiment name>/<id>

The run goes on with its own config.json from its model.pt, as `train.py --cfg <dir>/config.json
--savedir <dir>` would: the same results.json lines and the same final weights as if it had
never stopped (see src/training.py). From ``exps/``: ``bash resume.sh sbgm <experiment name>
<id>``, or ``sbatch resume_exp.sh sbgm <experiment name> <id>`` on a Slurm cluster.
"""

# First, before anything imports torch: libgomp reads the number of threads and how idle threads
# wait once, when torch loads it, so src/threads.py sets them up here (a run started as a script).
if __name__ == "__main__":
    from src.threads import configure
    configure()

import sys

from src import cli


def main(argv=None) -> int:
    return cli.resume("sbgm", argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
