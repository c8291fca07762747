"""Train the GANO baseline (Rahman et al. 2022, "Generative adversarial neural operators",
arXiv 2205.03017) on the same data, split, noise samplers and metrics as the diffusion operator.

    DATA_DIR=/path/to/volcano python train_gano.py --cfg exps/json/gano-quickstart.json --savedir results/gano

From ``exps/`` (as the original README): ``RUN_LOCAL=1 bash main.sh gan <name> json/gano-<...>.json``
or ``sbatch launch_exp.sh gan <name> json/gano-<...>.json``; ``python resume_gano.py <run dir>``
continues a stopped run. train.py's flags; the config is `GANOArguments`: the common keys and
``n_critic``, ``lambda_grad``. The method (its config, networks, objective and trainer) is
src/methods/gano.py.
"""

# First, before anything imports torch: libgomp reads the number of threads and how idle threads
# wait once, when torch loads it, so src/threads.py sets them up here (a run started as a script).
if __name__ == "__main__":
    from src.threads import configure
    configure()

import sys

from src import cli


def main(argv=None) -> int:
    return cli.train("gan", argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
