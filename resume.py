"""Resume a stopped training run exactly where it stopped.

    DATA_DIR=/path/to/volcano python resume.py $SAVEDIR/<experiment name>/<id>

The run goes on with its own config.json from its model.pt, as `train.py --cfg <dir>/config.json
--savedir <dir>` would: the same results.json lines and the same final weights as if it had
never stopped (see train.py). From ``exps/``: ``bash resume.sh sbgm <experiment name> <id>``,
or ``sbatch resume_exp.sh sbgm <experiment name> <id>`` on a Slurm cluster.
"""

import argparse
import sys
from pathlib import Path

import train


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp_dir", type=Path, help="the run directory, which holds config.json and model.pt")
    exp_dir = parser.parse_args(argv).exp_dir
    for name, why in (("config.json", "not a run directory"), ("model.pt", "nothing to resume: train.py starts a run")):
        if not (exp_dir / name).is_file():
            print(f"error: {exp_dir} has no {name} ({why})", file=sys.stderr)
            return 2
    return train.main(["--cfg", str(exp_dir / "config.json"), "--savedir", str(exp_dir)])


if __name__ == "__main__":
    sys.exit(main())
