"""The GANO baseline, method 'gan' (Rahman et al. 2022, "Generative adversarial neural
operators", arXiv 2205.03017), trained on the same data, split, noise samplers, metrics and
checkpoints as the diffusion operator: everything of it that differs.

The config, `GANOArguments`: the common keys (src/config.py) and ``n_critic``, ``lambda_grad``.

The objective: a Wasserstein GAN with gradient penalty (WGAN-GP, Gulrajani et al. 2017) in
function space. The discriminator D is trained to maximise ``E D(u) - E D(G(z))`` (the
Wasserstein estimate), the generator G to maximise ``E D(G(z))``, with a penalty that keeps D
close to 1-Lipschitz in L2:

    loss_D = -mean D(u) + mean D(G(z)) + lambda_grad * GP
    GP     = mean over the batch of (||grad D(x_hat)||_2 - 1 / H)^2
    x_hat  = a u + (1 - a) G(z),   a ~ N(0, 1) per function

Why 1 / H, H the side of the grid: D averages over H^2 points, so for D(f) = mean(w f) the
discrete gradient is w / H^2 with norm ||w||_2 / H^2, while its L2 (function-space) gradient
w has norm ||w||_2 / H; a discrete norm of 1 / H is an L2 norm of 1, at any resolution.
The original port computed 1 / (u.size(-1) - npad) on channels-last u, i.e. 1 / (2 - npad),
a negative target (and a division by zero at npad = 2): its penalty pushed gradients to 0.
``a ~ N(0, 1)`` rather than the usual U(0, 1) follows GANO's notebook and both later
codebases: interpolates then also fall outside the segment between u and G(z).

The networks: a generator and a discriminator, each a U-shaped neural operator (src/uno.py).
Shape of the U, with ``s = res + npad`` the padded side and ``d = d_co_domain``::

    lift (pointwise: C + 2 grid channels -> d, GELU), pad by npad
    down: s -> 3s/4 -> s/2 -> s/4 -> s/8          widths 1.5d, 3d, 6d, 12d
    up:   s/8 -> s/4 -> s/2 -> 3s/4 -> s          widths 6d, 3d, 1.5d, d, each concatenating the
                                                  matching down block's output
    concatenate the lifted input, crop the padding,
    project (pointwise: 2d -> 4d, GELU, -> out channels)

Each block is a spectral convolution and a 1x1 convolution at the block's output size, then
GELU, keeping the frequencies below ``int(fmult x the smaller of its input and output sides)``
on each axis (GANO's 24, 16, 8, 4 at s = 128 for fmult 1/4). The generator maps a noise function
of C channels (the data's: 2 for Volcano) to a function of C channels, through tanh for Volcano,
so values lie in [-1, 1] as (cos, sin) do, and unbounded for array data. The discriminator is the
functional ``D(f) = mean over the grid of k(x) h(x)``, ``h`` the U's one output channel and
``k`` a small MLP of the coordinates: an integral over the domain, so its value does not
depend on the resolution. Both pad by npad scaled with the grid, as the score network does, so
the same weights run on a finer grid (super-resolution: the generator maps noise on that grid).

Training (`GANOTrainer`): on every batch one discriminator step, and on every ``n_critic``-th
step of the run one generator step with fresh noise, each with its own Adam at the same lr; the
EMA of the generator's weights follows its steps and is what validation and evaluation sample
with. results.json lines hold the epoch means of ``loss_D``, ``wasserstein`` (the
discriminator's estimate E D(u) - E D(G(z))), ``gradient_penalty`` and ``loss_G``. A batch of
samples is the generator applied to a batch of noise: one network call a sample.

Launched by train_gano.py, resume_gano.py and eval_gano.py (src/cli.py).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from src.checkpoint import EMA
from src.config import CommonArguments
from src.distributed import Shard
from src.experiment import Method, build_noise, count_parameters
from src.training import Trainer
from src.uno import UShape, grid_channels


@dataclass
class GANOArguments(CommonArguments):
    """A GANO baseline's config (method 'gan', train_gano.py): the common keys and these.

    The U's widths are d_co_domain x (1.5, 3, 6, 12) down and back; fmult applies to the
    smaller of a block's input and output sides (GANO: 1/4).
    """

    n_critic: int = 10                      # discriminator steps per generator step
    lambda_grad: float = 10.0               # weight of the gradient penalty (target norm 1 / side: see gradient_penalty)

    def check(self) -> None:
        super().check()
        self.require(self.n_critic > 0, "n_critic", "must be positive")
        self.require(self.lambda_grad >= 0, "lambda_grad", "must be >= 0")


# ---------------------------------------------------------------------------
# The objective

def gradient_penalty(discriminator, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None, shard: Shard | None = None) -> torch.Tensor:
    """GP of ``discriminator`` at interpolates of ``real`` and ``fake`` (batch, H, H, channels);
    ``shard``: their rows of a larger batch, for which the weights are drawn (src/distributed.py)."""
    shard = shard or Shard.whole(len(real))
    weight = shard.of(torch.randn(shard.size, 1, 1, 1, generator=generator, device=real.device))
    mixed = (weight * real + (1 - weight) * fake).requires_grad_(True)
    (gradient,) = torch.autograd.grad(discriminator(mixed).sum(), mixed, create_graph=True)
    target = 1.0 / real.shape[1]
    return (gradient.flatten(1).norm(dim=1) - target).square().mean()


def discriminator_loss(discriminator, real: torch.Tensor, fake: torch.Tensor, lambda_grad: float,
                       generator: torch.Generator | None = None, shard: Shard | None = None) -> tuple[torch.Tensor, dict]:
    """(loss_D, {'wasserstein': the estimate E D(u) - E D(G(z)), 'gradient_penalty': GP}), detached in the dict."""
    wasserstein = discriminator(real).mean() - discriminator(fake).mean()
    penalty = gradient_penalty(discriminator, real, fake, generator, shard)
    loss = -wasserstein + lambda_grad * penalty
    return loss, {"wasserstein": wasserstein.detach(), "gradient_penalty": penalty.detach()}


def generator_loss(discriminator, fake: torch.Tensor) -> torch.Tensor:
    """loss_G = -mean D(G(z))."""
    return -discriminator(fake).mean()


# ---------------------------------------------------------------------------
# The networks

DOWN_SCALES = (0.75, 0.5, 0.25, 0.125)
UP_SCALES = (0.25, 0.5, 0.75, 1.0)
WIDTH_MULTIPLIERS = (1.5, 3, 6, 12)
KERNEL_WIDTH = 16  # hidden width of the discriminator's k(x)


class GANOOperator(UShape):
    """GANO's U-shaped operator: (batch, res, res, in_channels) -> (batch, res, res, out_channels)."""

    def __init__(self, res: int, npad: int, in_channels: int, out_channels: int, d_co_domain: int = 32,
                 fmult: float = 0.25):
        super().__init__(res, npad)
        padded = res + npad
        d = d_co_domain
        widths = [round(d * m) for m in WIDTH_MULTIPLIERS]

        def n_modes(in_scale, out_scale):
            # Frequencies |k| < int(side * fmult) on each axis, as GANO's layers keep; neuraloperator
            # counts the positive and negative ones of an axis together, hence 2 x.
            return 2 * max(1, int(round(padded * min(in_scale, out_scale)) * fmult))

        self.lift = nn.Sequential(nn.Conv2d(in_channels + 2, d, kernel_size=1), nn.GELU())
        self.make_blocks(d, down_widths=widths, up_widths=[widths[2], widths[1], widths[0], d],
                         down_scales=DOWN_SCALES, up_scales=UP_SCALES, n_modes=n_modes, channel_mlp=False)
        self.project = nn.Sequential(nn.Conv2d(2 * d, 4 * d, kernel_size=1), nn.GELU(),
                                     nn.Conv2d(4 * d, out_channels, kernel_size=1))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        batch, res = u.shape[0], u.shape[1]
        x = self.lift(torch.cat([u.permute(0, 3, 1, 2), grid_channels(batch, res, u.device)], dim=1))
        pad = self.padding_for(res)
        lifted = F.pad(x, (0, pad, 0, pad))
        x = torch.cat([self.through_u(lifted, res + pad), lifted], dim=1)
        return self.project(x[..., :res, :res]).permute(0, 2, 3, 1)


class Generator(GANOOperator):
    """G: noise function z (batch, res, res, C) -> function (batch, res, res, C), in [-1, 1] if ``bounded``."""

    def __init__(self, res: int, npad: int, d_co_domain: int = 32, fmult: float = 0.25, channels: int = 2,
                 bounded: bool = True):
        super().__init__(res, npad, channels, channels, d_co_domain, fmult)
        self.bounded = bounded

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        u = super().forward(z)
        return torch.tanh(u) if self.bounded else u


class Discriminator(GANOOperator):
    """D: function (batch, res, res, C) -> (batch,), ``mean_x k(x) h(x)``."""

    def __init__(self, res: int, npad: int, d_co_domain: int = 32, fmult: float = 0.25, channels: int = 2):
        super().__init__(res, npad, channels, 1, d_co_domain, fmult)
        self.kernel = nn.Sequential(nn.Linear(2, KERNEL_WIDTH), nn.GELU(), nn.Linear(KERNEL_WIDTH, KERNEL_WIDTH),
                                    nn.GELU(), nn.Linear(KERNEL_WIDTH, 1, bias=False))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        h = super().forward(u)[..., 0]
        k = self.kernel(grid_channels(1, u.shape[1], u.device)[0].permute(1, 2, 0))[..., 0]
        return (k * h).mean(dim=(1, 2))


def build_generator(args: GANOArguments) -> Generator:
    # tanh keeps (cos, sin) in [-1, 1]; array data may take any value.
    return Generator(args.data_resolution, args.npad, args.d_co_domain, args.fmult, channels=args.function_channels,
                     bounded=args.metric_kind == "circular")


def build_discriminator(args: GANOArguments) -> Discriminator:
    return Discriminator(args.data_resolution, args.npad, args.d_co_domain, args.fmult, channels=args.function_channels)


# ---------------------------------------------------------------------------
# Training and sampling

class GANOTrainer(Trainer):
    """WGAN-GP: a discriminator step every batch, a generator step every n_critic (see the module docstring)."""

    def __init__(self, args: GANOArguments, valid, world):
        self.args = args
        self.model = build_generator(args).to(world.device)
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


class GANO(Method):
    name = "gan"
    schema = GANOArguments
    trainer = GANOTrainer
    build_model = staticmethod(build_generator)

    def drawer(self, model, args, noise_sampler, progress, data_fit=None):
        def draw(noise, generator):
            return model(noise)
        return draw

    def network_evaluations(self, args) -> int:
        return 1  # the generator, once


METHOD = GANO()
