"""Train the GANO baseline (Rahman et al. 2022, "Generative adversarial neural operators",
arXiv 2205.03017) on the same data, split, noise samplers and metrics as the diffusion operator.

    DATA_DIR=/path/to/volcano python train_gano.py --cfg exps/json/gano-quickstart.json --savedir results/gano

From ``exps/`` (as the original README): ``RUN_LOCAL=1 bash main.sh gan <name> json/gano-<...>.json``
or ``sbatch launch_exp.sh gan <name> json/gano-<...>.json``; ``python resume_gano.py <run dir>``
continues a stopped run. The config is `GANOArguments` (src/config.py): the common keys and
``n_critic``, ``lambda_grad``.

The loop, the run directory, validation, checkpoints and exact resumption are src/training.py's,
shared with train.py; this file is GANO's step (WGAN-GP, src/gano.py): on every batch one
discriminator step, and on every ``n_critic``-th step of the run one generator step with fresh
noise, each with its own Adam at the same lr; the EMA of the generator's weights follows its
steps and is what validation and evaluation sample with. results.json lines hold the epoch means
of ``loss_D``, ``wasserstein`` (the discriminator's estimate E D(u) - E D(G(z))),
``gradient_penalty`` and ``loss_G``.
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
from src.experiment import build_discriminator, build_model, build_noise, count_parameters
from src.gano import discriminator_loss, generator_loss


class GANOTrainer(training.Trainer):
    method = "gan"
    resume_script = "resume_gano.py"

    def __init__(self, args, valid, world):
        self.args = args
        self.model = build_model(args).to(world.device)
        self.discriminator = build_discriminator(args).to(world.device)
        self.trained_model, self.trained_discriminator = world.wrap(self.model), world.wrap(self.discriminator)
        self.noise_sampler = build_noise(args, args.data_resolution, world.device)
        self.ema = EMA(self.model, args.ema_rate) if args.ema_rate is not None else None
        self.networks = {"weights": self.model, "discriminator": self.discriminator}
        self.optimizers = {"optimizer": torch.optim.Adam(self.model.parameters(), lr=args.lr),
                           "optimizer_discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=args.lr)}

    def describe(self) -> str:
        args = self.args
        noise = "white" if args.white_noise else f"{args.noise_kernel} GRF"
        return (f"GANO: generator {count_parameters(self.model) / 1e6:.2f} M and discriminator "
                f"{count_parameters(self.discriminator) / 1e6:.2f} M parameters, resolution {args.data_resolution} px "
                f"(+{args.npad} padding), {noise} noise, a generator step every {args.n_critic} discriminator "
                f"steps, gradient penalty x {args.lambda_grad}")

    def train_step(self, u, generator, step, shard):
        def noise():
            return shard.of(self.noise_sampler.sample(shard.size, generator))

        with torch.no_grad():
            fake = self.model(noise())
        loss_d, parts = discriminator_loss(self.trained_discriminator, u, fake, self.args.lambda_grad, generator, shard)
        self.update("optimizer_discriminator", loss_d)
        losses = {"loss_D": loss_d.detach(), **parts}
        if (step + 1) % self.args.n_critic == 0:
            # D's weights are constants of G's step: no gradient is kept for them (and D is called
            # outside DDP, which would otherwise wait for gradients of D that never come).
            self.discriminator.requires_grad_(False)
            loss_g = generator_loss(self.discriminator, self.trained_model(noise()))
            self.update("optimizer", loss_g)
            self.discriminator.requires_grad_(True)
            if self.ema is not None:
                self.ema.update(self.model)
            losses["loss_G"] = loss_g.detach()
        return losses

    def update(self, optimizer_key: str, loss: torch.Tensor) -> None:
        optimizer = self.optimizers[optimizer_key]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def main(argv=None) -> int:
    return training.main(GANOTrainer, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
