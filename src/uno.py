"""The U-shaped neural operator (U-NO, Rahman et al. 2022, arXiv 2204.11127) that both methods
are built of: the score network (src/score_network.py) and GANO's generator and discriminator
(src/methods/gano.py). Fourier layers (FNO, Li et al. 2021, arXiv 2010.08895) come from
neuraloperator's `FNOBlocks`.

A U is four blocks down and four back up. Block sizes are fractions (``scales``) of the padded
input side ``s``, so the same weights run at any resolution; the number of Fourier modes of
each block is fixed at construction. Up block 0 takes the last down block's output; up block
``k > 0`` takes the previous output concatenated with down block ``3 - k``'s::

    down:  x -> d0 -> d1 -> d2 -> d3
    up:    d3 -> u0;  [u0, d2] -> u1;  [u1, d1] -> u2;  [u2, d0] -> u3

Each block resamples its input to the block's output size (bilinear) and applies one Fourier
layer there. Why resample before the spectral convolution instead of passing ``output_shape``
to it: neuraloperator 2.0.0's `SpectralConv` crops the non-last FFT axis from its end when
``output_shape`` differs from the input, which drops the negative frequencies (a sinusoid
comes out at half its amplitude). Resampling first keeps every block exact.
"""

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def grid_channels(batch: int, res: int, device) -> torch.Tensor:
    """Coordinates (row, column) in [0, 1] as two channels, shape (batch, 2, res, res)."""
    axis = torch.linspace(0.0, 1.0, res, device=device)
    rows, cols = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([rows, cols]).expand(batch, 2, res, res)


class UNOBlock(nn.Module):
    """Resample to ``scale`` x the padded input side, one Fourier layer, GELU; optional norm and FiLM.

    The Fourier layer is a spectral convolution plus a 1x1 convolution, followed by a
    channel MLP when ``channel_mlp`` (the score network's; GANO's layers have none).
    """

    def __init__(self, in_channels: int, out_channels: int, scale: float, n_modes: int,
                 factorization: Optional[str] = None, rank: float = 1.0, groups: int = 0,
                 embedding_width: int = 0, channel_mlp: bool = True):
        # Imported when a network is built: neuraloperator (with tensorly) takes 1.7 s to import,
        # which a command that only checks a config, refuses bad input or plots would pay for nothing.
        from neuralop.layers.fno_block import FNOBlocks

        super().__init__()
        self.scale = scale
        self.fourier = FNOBlocks(in_channels, out_channels, n_modes=(n_modes, n_modes),
                                 factorization=factorization, rank=rank, n_layers=1,
                                 use_channel_mlp=channel_mlp, channel_mlp_skip="linear")
        self.norm = nn.GroupNorm(groups, out_channels) if groups > 0 else nn.Identity()
        # FiLM: per-example scale and shift of every channel, from the noise-level embedding.
        self.film = nn.Linear(embedding_width, 2 * out_channels) if embedding_width > 0 else None

    def forward(self, x: torch.Tensor, padded_side: int, embedding: Optional[torch.Tensor] = None) -> torch.Tensor:
        side = max(1, round(padded_side * self.scale))
        if x.shape[-1] != side:
            x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=True)
        x = F.gelu(self.norm(self.fourier(x)))
        if self.film is not None:
            gain, shift = self.film(embedding)[:, :, None, None].chunk(2, dim=1)
            x = x * (1.0 + gain) + shift
        return x


class UShape(nn.Module):
    """The blocks of a U and its pass (see the module docstring); subclasses add lift and head,
    and call `make_blocks` where the blocks' parameters are to be drawn (the order of
    creation is the order of the random initial weights)."""

    def __init__(self, res: int, npad: int):
        super().__init__()
        self.res, self.npad = res, npad

    def make_blocks(self, in_width: int, down_widths: Sequence[int], up_widths: Sequence[int],
                    down_scales: Sequence[float], up_scales: Sequence[float], n_modes, **block_options) -> None:
        """Create ``self.down`` and ``self.up``.

        Parameters
        ----------
        in_width : int
            Channels entering the first down block.
        down_widths, up_widths : 4 ints each
            Output channels of the down blocks and of the up blocks.
        down_scales, up_scales : 4 floats each
            Output side of each block as a fraction of the padded side.
        n_modes : function (input scale, output scale) -> Fourier modes of that block
        block_options
            Passed to every `UNOBlock`.
        """
        down_in = [in_width, *down_widths[:3]]
        up_in = [down_widths[3]] + [up_widths[k - 1] + down_widths[3 - k] for k in (1, 2, 3)]
        in_scales = [1.0, *down_scales, *up_scales[:3]]
        out_scales = [*down_scales, *up_scales]
        modes = [n_modes(a, b) for a, b in zip(in_scales, out_scales)]
        self.down = nn.ModuleList(UNOBlock(c_in, c_out, scale, m, **block_options)
                                  for c_in, c_out, scale, m in zip(down_in, down_widths, down_scales, modes[:4]))
        self.up = nn.ModuleList(UNOBlock(c_in, c_out, scale, m, **block_options)
                                for c_in, c_out, scale, m in zip(up_in, up_widths, up_scales, modes[4:]))

    def padding_for(self, res: int) -> int:
        """Padding at resolution ``res``: npad scaled with the grid (doubled at 2x)."""
        return round(self.npad * res / self.res)

    def through_u(self, x: torch.Tensor, padded_side: int, embedding: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The down and up blocks with their skip connections, on padded ``x`` (batch, c, s, s)."""
        skips = []
        for down_block in self.down:
            x = down_block(x, padded_side, embedding)
            skips.append(x)
        x = self.up[0](x, padded_side, embedding)
        for up_block, skip in zip(self.up[1:], reversed(skips[:3])):
            x = up_block(torch.cat([x, skip], dim=1), padded_side, embedding)
        return x
