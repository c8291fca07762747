"""Train a diffusion operator (score-based model in function space) on Volcano InSAR data.

    DATA_DIR=/path/to/volcano python train.py --cfg exps/json/quickstart.json --savedir results/quick

From ``exps/`` (as the original README): ``RUN_LOCAL=1 bash main.sh sbgm <name> json/<file>.json``
or ``sbatch launch_exp.sh sbgm <name> json/<file>.json`` on a Slurm cluster; ``python resume.py
<run dir>`` continues a stopped run. Runs on CUDA when present, else on the CPU; as one process,
or as one rank of several under torchrun or srun.

The hyperparameters are the fields of the `Arguments` dataclass, in src/methods/diffusion.py
(the method: its trainer, score network and samplers); the command line is src/cli.py's, the
loop src/training.py's.
"""

# First, before anything imports torch: libgomp reads the number of threads and how idle threads
# wait once, when torch loads it, so src/threads.py sets them up here (a run started as a script).
if __name__ == "__main__":
    from src.threads import configure
    configure()

import sys

from src import cli


def main(argv=None) -> int:
    return cli.train("sbgm", argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
