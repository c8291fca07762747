"""The GANO baseline's objective: a Wasserstein GAN with gradient penalty (WGAN-GP, Gulrajani
et al. 2017) in function space, as in Rahman et al. 2022 (arXiv 2205.03017).

The discriminator D is trained to maximise ``E D(u) - E D(G(z))`` (the Wasserstein
estimate), the generator G to maximise ``E D(G(z))``, with a penalty that keeps D close to
1-Lipschitz in L2:

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
"""

import torch

from src.distributed import Shard


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
