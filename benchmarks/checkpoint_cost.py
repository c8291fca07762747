"""What exact resumption costs a checkpoint: bytes and seconds, against the same training state without it.

    python -m benchmarks.checkpoint_cost [--cfg exps/json/quickstart.json exps/json/rbf-copied.json] [--repeats 5]

For each config: the network after one Adam step, with EMA if the config has one, saved
(a) as the reference, the training state alone: weights, EMA, optimizer, metrics and last
epoch, written to a temporary file and renamed; and (b) as src.checkpoint.save_checkpoint
writes model.pt: the same plus the position, the epoch's losses (a full epoch's worth, the
most it holds) and the global random states, with the file and its folder fsynced. Prints a
markdown table; the time is the median of --repeats saves.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from src.checkpoint import EMA, save_checkpoint
from src.config import load_config
from src.data import steps_per_epoch, validation_count
from src.methods.diffusion import build_score_network


def training_state_alone(path: Path, model, ema, optimizer) -> None:
    """The reference: the training state without what exact resumption adds (no position, no RNG, no fsync)."""
    state = {"weights": model.state_dict(), "ema": ema.state_dict() if ema else None,
             "optimizer": optimizer.state_dict(), "metrics": {"w_total": 0.1}, "last_epoch": 0}
    temporary = path.with_name(f".{path.name}.tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


def median_seconds(save, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        save()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", nargs="+", default=["exps/json/quickstart.json", "exps/json/rbf-copied.json"])
    parser.add_argument("--repeats", type=int, default=5)
    cli = parser.parse_args()
    print("| config | parameters | checkpoint | bytes | extra bytes | seconds (median) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for cfg in cli.cfg:
            args = load_config(cfg)
            torch.manual_seed(0)
            model = build_score_network(args)
            ema = EMA(model, args.ema_rate) if args.ema_rate is not None else None
            optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
            u = torch.randn(2, args.data_resolution, args.data_resolution, 2)
            model(u, torch.ones(2)).square().mean().backward()
            optimizer.step()
            n_train = args.ntrain - validation_count(args.ntrain, args.val_size)
            losses = [torch.tensor(0.5)] * steps_per_epoch(n_train, args.batch_size)
            old, new = Path(folder) / "state.pt", Path(folder) / "model.pt"
            rows = [("training state alone (no position, RNG or fsync)", old,
                     lambda: training_state_alone(old, model, ema, optimizer)),
                    ("now, a full epoch of losses", new,
                     lambda: save_checkpoint(new, {"weights": model}, {"optimizer": optimizer}, ema,
                                             {"w_total": 0.1}, epoch=1, step=len(losses),
                                             epoch_losses={"loss": losses}, method="sbgm"))]
            sizes = {}
            for name, path, save in rows:
                seconds = median_seconds(save, cli.repeats)
                sizes[name] = path.stat().st_size
                extra = sizes[name] - sizes[rows[0][0]]
                print(f"| {Path(cfg).name} | {sum(p.numel() for p in model.parameters()):,} | {name} | "
                      f"{sizes[name]:,} | {extra:+,} | {seconds:.3f} |")


if __name__ == "__main__":
    main()
