"""Train a diffusion operator (score-based model in function space) on Volcano InSAR data.

    DATA_DIR=/path/to/volcano python train.py --cfg exps/json/quickstart.json --savedir results/quick

From ``exps/`` (as the original README): ``RUN_LOCAL=1 bash main.sh sbgm <name> json/<file>.json``
or ``sbatch launch_exp.sh sbgm <name> json/<file>.json`` on a Slurm cluster; ``python resume.py
<run dir>`` continues a stopped run. Runs on CUDA when present, else on the CPU.

The loop, the run directory and exact resumption are src/training.py's, shared with
train_gano.py; this file is the diffusion operator's step: denoising score matching
(src/diffusion.py) of the UNO score network, with an EMA of its weights. Its results.json
lines hold the mean training loss, ``loss_valid`` (the validation split's loss with the raw
weights, the same weights as ``loss``) and ``loss_valid_ema`` (with the EMA, which samples).
"""

# First, before anything imports torch: libgomp reads the number of threads and how idle threads
# wait once, when torch loads it, so src/threads.py sets them up here (a run started as a script).
if __name__ == "__main__":
    from src.threads import configure
    configure()

import sys

import torch

from src import training
from src.checkpoint import EMA
from src.diffusion import score_matching_loss
from src.experiment import build_model, build_noise, build_sigmas, describe, initial_scale


class DiffusionTrainer(training.Trainer):
    method = "sbgm"
    resume_script = "resume.py"

    def __init__(self, args, valid, world):
        self.args, self.valid, self.device = args, valid, world.device
        self.model = build_model(args).to(self.device)
        self.trained_model = world.wrap(self.model)
        self.noise_sampler = build_noise(args, args.data_resolution, self.device)
        self.sigmas = build_sigmas(args, self.device)
        self.initial_scale = initial_scale(args)
        self.ema = EMA(self.model, args.ema_rate) if args.ema_rate is not None else None
        self.networks = {"weights": self.model}
        self.optimizers = {"optimizer": torch.optim.Adam(self.model.parameters(), lr=args.lr)}

    def describe(self) -> str:
        return describe(self.model, self.args)

    def train_step(self, u, generator, step, shard):
        loss = score_matching_loss(self.trained_model, u, self.sigmas, self.noise_sampler, generator=generator,
                                   weighting=self.args.loss_weighting, shard=shard,
                                   levels=self.args.training_levels)
        optimizer = self.optimizers["optimizer"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return {"loss": loss.detach()}

    def epoch_summary(self) -> dict:
        # The same weights as `loss`, so the two compare; the EMA's, which sample, beside them.
        summary = {"loss_valid": self.validation_loss()}
        if self.ema is not None:
            with self.ema.applied_to(self.model):
                summary["loss_valid_ema"] = self.validation_loss()
        return summary

    @torch.no_grad()
    def validation_loss(self) -> float | None:
        """Score-matching loss on the validation split with fixed noise, so epochs compare; None if no split."""
        if len(self.valid) == 0:
            return None
        generator = torch.Generator(device=self.device).manual_seed(self.args.seed)
        self.model.eval()
        total = 0.0
        for batch in self.valid.split(self.args.val_batch_size):
            total += score_matching_loss(self.model, batch.to(self.device), self.sigmas, self.noise_sampler,
                                         generator=generator, weighting=self.args.loss_weighting,
                                         levels=self.args.training_levels).item() * len(batch)
        return total / len(self.valid)


def main(argv=None) -> int:
    return training.main(DiffusionTrainer, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
