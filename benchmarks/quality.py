"""Sample quality of a trained experiment against its references, side by side in one run.

    DATA_DIR=... python -m benchmarks.quality --exp_name results/quickstart/<id> [--Ntest 256] [--factor 1]
        [--also_sampler step_rule=sigma_squared epsilon=4e-4 denoise_last=false]

Rows, all scored against the training split at the same resolution:

untrained      the experiment's network at initialisation (the seed training starts from),
               sampled with the config's sampler and noise: what training must beat
checkpoint     the checkpoint's EMA weights (default model.w_total.pt)
--also_sampler the same weights sampled with these config keys changed (an ablation of the sampler)
held-out data  the validation split itself: the metrics' floor for this many functions
               (a perfect model scores about this)

Same sampler seed for both models. Prints a markdown table.
"""

import argparse
import os
from pathlib import Path

import torch

from src.cli import parse_key_value
from src.config import ConfigError, load_config
from src.data import load_data
from src.evaluation import held_out_floor, load_model, score_samples
from src.distributed import default_device
from src.experiment import build_noise, sample
from src.methods.diffusion import METHOD as DIFFUSION
from benchmarks.seed_spread import table_header

COLUMNS = ("w_var", "w_skew", "w_total", "w_rough", "mean_image_l2", "mean_image_phase_l2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_name", required=True)
    parser.add_argument("--checkpoint", default="model.w_total.pt")
    parser.add_argument("--Ntest", type=int, default=256)
    parser.add_argument("--val_batch_size", type=int, default=128)
    parser.add_argument("--factor", type=int, default=1, help="sample and score at this multiple of the resolution")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--also_sampler", nargs="+", default=[], type=parse_key_value, metavar="KEY=VALUE",
                        help="one more row: the checkpoint sampled with these config keys changed")
    cli = parser.parse_args()

    exp_dir, device = Path(cli.exp_name), default_device()
    args = load_config(exp_dir / "config.json")
    changed = dict(cli.also_sampler)
    try:
        other_args = DIFFUSION.with_sampler(args, changed, source="--also_sampler")
    except ConfigError as error:
        parser.error(str(error))
    train, valid = load_data(args, os.environ["DATA_DIR"], cli.factor)

    torch.manual_seed(args.seed)  # the initialisation train.py starts from
    untrained = DIFFUSION.build_model(args).to(device).eval()
    trained, state = load_model(DIFFUSION, args, exp_dir / cli.checkpoint, device)
    checkpoint = f"{cli.checkpoint} (epoch {state['last_epoch'] + 1})"
    runs = [("untrained", untrained, args), (checkpoint, trained, args)]
    if changed:
        runs.append((f"{checkpoint}, " + " ".join(f"{k}={v}" for k, v in changed.items()), trained, other_args))
    rows = {}
    for name, model, sampler_args in runs:
        noise_sampler = build_noise(sampler_args, cli.factor * sampler_args.data_resolution, device)
        samples = sample(DIFFUSION, model, sampler_args, noise_sampler, cli.Ntest, cli.val_batch_size, seed=cli.seed)
        rows[name] = score_samples(samples, train, args.metric_kind) | {"n": len(samples)}
    rows["held-out data"] = (held_out_floor(valid, train, args.metric_kind, cli.Ntest)
                             | {"n": min(cli.Ntest, len(valid))})

    res = train.shape[1]
    print(f"{exp_dir}: {res} x {res} px (factor {cli.factor}), scored against {len(train)} training functions\n")
    print(table_header(["samples", "n", *COLUMNS]))
    for name, metrics in rows.items():
        print(f"| {name} | {metrics['n']} | " + " | ".join(f"{metrics[c]:.4f}" for c in COLUMNS) + " |")


if __name__ == "__main__":
    main()
