"""Evaluate a trained GANO experiment: generate samples, super-resolve, plot.

    DATA_DIR=/path/to/volcano python eval_gano.py --exp_name=$SAVEDIR/<name>/<id> \\
        --savedir=$SAVEDIR/<name>/<id>/eval --mode=generate|superres|plot [--checkpoint=model.w_total.pt]

or, from ``exps/``: ``bash launch_eval.py gan <name>/<id> --mode=generate``. The flags, modes
and output files are eval.py's (see there), for method 'gan': the generator, with the EMA of
its weights, maps noise on the training grid (generate) or on a grid --factor times as fine,
its padding scaled (superres).
"""

# First, before anything imports torch: libgomp reads the number of threads and how idle threads
# wait once, when torch loads it, so src/threads.py sets them up here (a run started as a script).
if __name__ == "__main__":
    from src.threads import configure
    configure()

import sys

from src import cli


def main(argv=None) -> int:
    return cli.evaluate("gan", argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
