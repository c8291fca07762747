"""The score network: a U-shaped neural operator (U-NO, Rahman et al. 2022, arXiv 2204.11127)
of Fourier layers (FNO, Li et al. 2021, arXiv 2010.08895), built on neuraloperator's `FNOBlocks`.

Functions enter and leave in the project's layout ``(batch, res, res, 2)`` (channels last);
`UNOScoreNetwork.forward` is the one place where they are moved to the network's
``(batch, channels, res, res)``.

Shape of the U, with ``s = res + npad`` the padded side at the training resolution::

    lift (1x1 conv: 2 + 2 grid channels -> d)
    pad by npad
    down: s -> s, s -> 3s/4, 3s/4 -> s/2, s/2 -> s/4         widths d*m0, d*m1, d*m2, d*m3
    up:   s/4 -> s/2, s/2 -> 3s/4, 3s/4 -> s, s -> s           each concatenates the
                                                              matching down block's output
    crop the padding, project (1x1 conv -> 2 channels), divide by sigma

The division by sigma is the original's only conditioning on the noise level (NCSNv2's
parametrization, Song & Ermon 2020); ``num_freqs_input > 0`` adds FiLM conditioning.

Each block resamples its input to the block's output size (bilinear) and applies one
Fourier layer there. Sizes are fractions of the input's padded side, and the number of
Fourier modes is fixed at construction, so the same weights run at any resolution:
super-resolution feeds a grid twice as fine with the padding doubled.

Why resample before the spectral convolution instead of passing ``output_shape`` to it:
neuraloperator 2.0.0's `SpectralConv` crops the non-last FFT axis from its end when
``output_shape`` differs from the input, which drops the negative frequencies (a
sinusoid comes out at half its amplitude). Resampling first keeps every block exact.
"""

import math
from typing import List, Optional

import torch
import torch.nn.functional as F
from neuralop.layers.fno_block import FNOBlocks
from torch import nn

from src.diffusion import expand_like

# Output side of each block as a fraction of the padded input side s, down then up.
DOWN_SCALES = (1.0, 0.75, 0.5, 0.25)
UP_SCALES = (0.5, 0.75, 1.0, 1.0)


def grid_channels(batch: int, res: int, device) -> torch.Tensor:
    """Coordinates (row, column) in [0, 1] as two channels, shape (batch, 2, res, res)."""
    axis = torch.linspace(0.0, 1.0, res, device=device)
    rows, cols = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([rows, cols]).expand(batch, 2, res, res)


class NoiseLevelEmbedding(nn.Module):
    """Sinusoidal features of log(sigma), mapped by an MLP to one vector per example."""

    def __init__(self, num_freqs: int, width: int):
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(1000.0), num_freqs)))
        self.mlp = nn.Sequential(nn.Linear(2 * num_freqs, width), nn.GELU(), nn.Linear(width, width))

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        angles = 0.25 * torch.log(sigma)[:, None] * self.freqs[None, :]
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=1))


class UNOBlock(nn.Module):
    """Resample to ``scale`` x the padded input side, one Fourier layer, optional norm and FiLM."""

    def __init__(self, in_channels: int, out_channels: int, scale: float, n_modes: int,
                 factorization: Optional[str], rank: float, groups: int, embedding_width: int):
        super().__init__()
        self.scale = scale
        self.fourier = FNOBlocks(in_channels, out_channels, n_modes=(n_modes, n_modes),
                                 factorization=factorization, rank=rank, n_layers=1,
                                 channel_mlp_skip="linear")
        self.norm = nn.GroupNorm(groups, out_channels) if groups > 0 else nn.Identity()
        # FiLM: per-example scale and shift of every channel, from the noise-level embedding.
        self.film = nn.Linear(embedding_width, 2 * out_channels) if embedding_width > 0 else None

    def forward(self, x: torch.Tensor, padded_side: int, embedding: Optional[torch.Tensor]) -> torch.Tensor:
        side = max(1, round(padded_side * self.scale))
        if x.shape[-1] != side:
            x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=True)
        x = F.gelu(self.norm(self.fourier(x)))
        if self.film is not None:
            gain, shift = self.film(embedding)[:, :, None, None].chunk(2, dim=1)
            x = x * (1.0 + gain) + shift
        return x


class UNOScoreNetwork(nn.Module):
    """Score model F(u, sigma) ~ C * grad log p_sigma(u), for u of shape (batch, res, res, 2).

    Parameters
    ----------
    res : int
        Training resolution (side of the data, without padding); fixes the Fourier modes.
    npad : int
        Padding added on the bottom and right edges at the training resolution.
    d_co_domain, mult_dims, fmult, factorization, rank, groups, num_freqs_input
        As in `src.config.Arguments`.
    """

    def __init__(self, res: int, npad: int, d_co_domain: int = 32, mult_dims: List[int] = (1, 2, 4, 4),
                 fmult: float = 0.25, factorization: Optional[str] = None, rank: float = 1.0,
                 groups: int = 0, num_freqs_input: int = 0):
        super().__init__()
        self.res, self.npad = res, npad
        padded = res + npad
        widths = [d_co_domain * m for m in mult_dims]
        embedding_width = 4 * d_co_domain if num_freqs_input > 0 else 0
        self.noise_embedding = NoiseLevelEmbedding(num_freqs_input, embedding_width) if num_freqs_input > 0 else None

        def block(c_in, c_out, scale):
            # Fourier modes = int(side * fmult), the side being where the block's convolution runs.
            n_modes = max(1, int(round(padded * scale) * fmult))
            return UNOBlock(c_in, c_out, scale, n_modes, factorization, rank, groups, embedding_width)

        self.lift = nn.Conv2d(2 + 2, d_co_domain, kernel_size=1)
        down_in = [d_co_domain] + widths[:3]
        self.down = nn.ModuleList(
            block(c_in, c_out, scale) for c_in, c_out, scale in zip(down_in, widths, DOWN_SCALES))
        # Up block k sees the previous output concatenated with down block (2 - k)'s output;
        # the last one concatenates the first down block's output.
        up_out = [widths[2], widths[1], widths[0], widths[0]]
        up_in = [widths[3], up_out[0] + widths[2], up_out[1] + widths[1], up_out[2] + widths[0]]
        self.up = nn.ModuleList(
            block(c_in, c_out, scale) for c_in, c_out, scale in zip(up_in, up_out, UP_SCALES))
        self.project = nn.Conv2d(widths[0], 2, kernel_size=1)

    def padding_for(self, res: int) -> int:
        """Padding at resolution ``res``: npad scaled with the grid (doubled at 2x)."""
        return round(self.npad * res / self.res)

    def forward(self, u: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Score of ``u`` (batch, res, res, 2) at noise variances ``sigma`` (batch,); same shape out."""
        batch, res = u.shape[0], u.shape[1]
        x = u.permute(0, 3, 1, 2)
        x = self.lift(torch.cat([x, grid_channels(batch, res, u.device)], dim=1))
        pad = self.padding_for(res)
        x = F.pad(x, (0, pad, 0, pad))
        padded_side = res + pad
        embedding = self.noise_embedding(sigma) if self.noise_embedding is not None else None

        skips = []
        for down_block in self.down:
            x = down_block(x, padded_side, embedding)
            skips.append(x)
        x = self.up[0](x, padded_side, embedding)
        for up_block, skip in zip(self.up[1:], reversed(skips[:3])):
            x = up_block(torch.cat([x, skip], dim=1), padded_side, embedding)

        x = self.project(x[..., :res, :res])
        return x.permute(0, 2, 3, 1) / expand_like(sigma, u)
