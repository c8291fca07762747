"""GANO's networks (Rahman et al. 2022, "Generative adversarial neural operators", arXiv
2205.03017): a generator and a discriminator, each a U-shaped neural operator (src/uno.py).

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
depend on the resolution.

Both pad by npad scaled with the grid, as the score network does, so the same weights run
on a finer grid (super-resolution: the generator maps noise on that grid).
"""

import torch
import torch.nn.functional as F
from torch import nn

from src.uno import UShape, grid_channels

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
