"""The score network: a U-shaped neural operator (U-NO, Rahman et al. 2022, arXiv 2204.11127)
of Fourier layers (FNO, Li et al. 2021, arXiv 2010.08895), built on neuraloperator's `FNOBlocks`.

Functions enter and leave in the project's layout ``(batch, res, res, C)`` (channels last; C = 2,
(cos, sin), for Volcano);
`UNOScoreNetwork.forward` is the one place where they are moved to the network's
``(batch, channels, res, res)``.

Shape of the U, with ``s = res + npad`` the padded side at the training resolution::

    lift (1x1 conv: C + 2 grid channels -> d)
    pad by npad
    down: s -> s, s -> 3s/4, 3s/4 -> s/2, s/2 -> s/4         widths d*m0, d*m1, d*m2, d*m3
    up:   s/4 -> s/2, s/2 -> 3s/4, 3s/4 -> s, s -> s           each concatenates the
                                                              matching down block's output
    crop the padding, project (1x1 conv -> C channels), divide by sigma

The division by sigma is the original's only conditioning on the noise level (NCSNv2's
parametrization, Song & Ermon 2020); ``num_freqs_input > 0`` adds FiLM conditioning.

The U's blocks and their pass are src/uno.py's, shared with GANO's networks.
"""

import math
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from src.diffusion import expand_like
from src.uno import UShape, grid_channels

# Output side of each block as a fraction of the padded input side s, down then up.
DOWN_SCALES = (1.0, 0.75, 0.5, 0.25)
UP_SCALES = (0.5, 0.75, 1.0, 1.0)


class NoiseLevelEmbedding(nn.Module):
    """Sinusoidal features of log(sigma), mapped by an MLP to one vector per example."""

    def __init__(self, num_freqs: int, width: int):
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(1000.0), num_freqs)))
        self.mlp = nn.Sequential(nn.Linear(2 * num_freqs, width), nn.GELU(), nn.Linear(width, width))

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        angles = 0.25 * torch.log(sigma)[:, None] * self.freqs[None, :]
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=1))


class UNOScoreNetwork(UShape):
    """Score model F(u, sigma) ~ C * grad log p_sigma(u), for u of shape (batch, res, res, channels).

    Parameters
    ----------
    res : int
        Training resolution (side of the data, without padding); fixes the Fourier modes.
    npad : int
        Padding added on the bottom and right edges at the training resolution.
    d_co_domain, mult_dims, fmult, factorization, rank, groups, num_freqs_input
        As in `src.methods.diffusion.Arguments`.
    channels : int
        Channels of the functions, in and out (2 for Volcano's (cos, sin)).
    """

    def __init__(self, res: int, npad: int, d_co_domain: int = 32, mult_dims: List[int] = (1, 2, 4, 4),
                 fmult: float = 0.25, factorization: Optional[str] = None, rank: float = 1.0,
                 groups: int = 0, num_freqs_input: int = 0, channels: int = 2):
        padded = res + npad
        widths = [d_co_domain * m for m in mult_dims]
        embedding_width = 4 * d_co_domain if num_freqs_input > 0 else 0

        def n_modes(in_scale, out_scale):
            # int(side * fmult), the side being where the block's convolution runs.
            return max(1, int(round(padded * out_scale) * fmult))

        super().__init__(res, npad)
        self.noise_embedding = NoiseLevelEmbedding(num_freqs_input, embedding_width) if num_freqs_input > 0 else None
        self.lift = nn.Conv2d(channels + 2, d_co_domain, kernel_size=1)
        self.make_blocks(d_co_domain, down_widths=widths, up_widths=[widths[2], widths[1], widths[0], widths[0]],
                         down_scales=DOWN_SCALES, up_scales=UP_SCALES, n_modes=n_modes,
                         factorization=factorization, rank=rank, groups=groups, embedding_width=embedding_width)
        self.project = nn.Conv2d(widths[0], channels, kernel_size=1)

    def forward(self, u: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Score of ``u`` (batch, res, res, channels) at noise variances ``sigma`` (batch,); same shape out."""
        batch, res = u.shape[0], u.shape[1]
        x = u.permute(0, 3, 1, 2)
        x = self.lift(torch.cat([x, grid_channels(batch, res, u.device)], dim=1))
        pad = self.padding_for(res)
        x = F.pad(x, (0, pad, 0, pad))
        padded_side = res + pad
        embedding = self.noise_embedding(sigma) if self.noise_embedding is not None else None

        x = self.through_u(x, padded_side, embedding)
        x = self.project(x[..., :res, :res])
        return x.permute(0, 2, 3, 1) / expand_like(sigma, u)
