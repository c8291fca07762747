"""Training a config into a run directory, as the benchmarks that train their own runs do it."""

import json
import sys
from dataclasses import asdict
from pathlib import Path

import train


def train_run(args, run_dir: Path, config_name: str) -> None:
    """train.py on the config ``args``, written as ``run_dir / config_name``, into the new folder
    ``run_dir``; exits if training fails."""
    run_dir.mkdir(parents=True)
    cfg = run_dir / config_name
    cfg.write_text(json.dumps(asdict(args)))
    if train.main(["--cfg", str(cfg), "--savedir", str(run_dir)]) != 0:
        sys.exit(f"error: training {run_dir} failed")
