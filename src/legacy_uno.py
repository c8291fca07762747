"""The original code's score network, exactly: its U-NO (the original's src/models.py `UNO` on
neuraloperator's 2023 layers, commit 8a0f526), with its parameter names, so that the weights of an
experiment directory the original code wrote load strictly and give the original's outputs.

It is used only for such directories (src/evaluation.py, `load_experiment`); every new run
trains `src.score_network.UNOScoreNetwork`, a different function (it resamples bilinearly
before each spectral convolution instead of cropping in ``irfft2``, takes its modes from the
output side, adds a channel MLP to every block and projects the last block's output alone), so
no renaming of keys could load these weights into it. Plain torch, on purpose: the spectral
layers of neuraloperator and tensorly-torch changed their conventions between releases, and
this network must compute what the 2023 ones did (tests/test_legacy.py checks it against the
original code's own outputs).

Shape, with ``p = res + npad`` the padded side at the training resolution (``res`` the side of
the data); the block sides are fixed at construction as the original's are, and a block maps
an input of side ``n`` to ``round(n * out / in)``, so the same weights run on finer grids::

    u (batch, res, res, 2) ++ grid (2 channels)  -> init_conv (1x1) -> x_fc0, padded right and bottom
    block1 p -> p,  block2 p -> int(3p/4),  block3 int(3p/4) -> p//2,  block4 p//2 -> p//4
    inv2_9 p//4 -> p//2;  [., block3] inv3 -> int(3p/4);  [., block2] inv4 -> p;  [., block1] inv5 -> p
    [inv5, x_fc0] cropped -> final_conv (1x1) -> / sigma

One block (``FourierLayer``): gelu(spectral(x) + resample(skip(x))), where

- spectral: the input's ``rfft2``; two corners of modes, rows ``[:h]`` and ``[-h:]``, columns
  ``[:h]``, each multiplied over the channels by its own complex Tucker weight; set into a
  zero spectrum of the *input's* shape and inverted by ``irfft2(s=(m, m))``, which crops or
  zero-pads the row axis at its end (in a block that shrinks the grid the negative row
  frequencies are lost; in one that grows it they land at high positive ones: the original's
  arithmetic, kept). ``h = int(in * fmult) // 2`` from the block's training input side.
- skip: a 1x1 convolution without bias, then an antialiased bicubic resize to ``m``.

``time_mlp`` and every block's ``mlp`` are parameters of the original that never change its
output; they are kept (unused) so that its state dict loads strictly.
"""

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import brentq
from torch import nn

BLOCK_NAMES = ("block1", "block2", "block3", "block4", "inv2_9", "inv3", "inv4", "inv5")


def tucker_rank(shape: Sequence[int], rank: float) -> list[int]:
    """The Tucker rank tensorly gives a tensor of ``shape`` for a fractional ``rank`` (tensorly's
    ``validate_tucker_rank``, as the original's factorized weights were made): ranks c * shape,
    rounded, with c such that the core and factors hold ``rank`` times the tensor's parameters."""
    size = float(np.prod(shape))
    squares = float(sum(s * s for s in shape))
    fraction = brentq(lambda c: size * c ** len(shape) + squares * c - rank * size, 0.0, max(rank, 1.0))
    return [max(int(np.round(s * fraction)), 1) for s in shape]


class TuckerWeight(nn.Module):
    """A complex tensor of ``shape`` in Tucker form, ``core`` and ``factors.factor_k``, each stored
    as a real view (last axis: real, imaginary), as tensorly-torch stored the original's."""

    def __init__(self, shape: Sequence[int], rank: float):
        super().__init__()
        ranks = tucker_rank(shape, rank)
        self.core = nn.Parameter(torch.randn(*ranks, 2) / np.sqrt(np.prod(ranks)))
        self.factors = nn.ParameterDict({f"factor_{k}": nn.Parameter(torch.randn(n, r, 2) / np.sqrt(r))
                                         for k, (n, r) in enumerate(zip(shape, ranks))})

    def contract(self, x: torch.Tensor) -> torch.Tensor:
        """sum_i x[n, i, u, v] W[i, o, u, v] for complex x (batch, C_in, h, h): (batch, C_out, h, h).

        Through the factors, never the dense W, whose size (C_in C_out h^2) reaches GBs in the
        paper's network: project the input channels onto the core's, apply the core at each
        mode (u, v), expand to the output channels.
        """
        core = torch.view_as_complex(self.core)
        to_core, from_core, rows, cols = (torch.view_as_complex(self.factors[f"factor_{k}"]) for k in range(4))
        core_at_modes = torch.einsum("abcd,uc,vd->abuv", core, rows, cols)
        x = torch.einsum("niuv,ia->nauv", x, to_core)
        x = torch.einsum("nauv,abuv->nbuv", x, core_at_modes)
        return torch.einsum("nbuv,ob->nouv", x, from_core)


class SpectralConvolution(nn.Module):
    """The original's two-corner spectral convolution (see the module docstring), bias included."""

    def __init__(self, in_channels: int, out_channels: int, half_modes: int, rank: float):
        super().__init__()
        self.half_modes = half_modes
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        shape = (in_channels, out_channels, half_modes, half_modes)
        self.weight = nn.ModuleList([TuckerWeight(shape, rank), TuckerWeight(shape, rank)])  # rows [:h], [-h:]

    def forward(self, x: torch.Tensor, out_side: int) -> torch.Tensor:
        h = self.half_modes
        spectrum = torch.fft.rfft2(x.float(), norm="forward")
        out = torch.zeros(x.shape[0], self.bias.shape[1], x.shape[-2], x.shape[-1] // 2 + 1,
                          dtype=torch.cfloat, device=x.device)
        first, last = self.weight
        out[:, :, :h, :h] = first.contract(spectrum[:, :, :h, :h])
        out[:, :, -h:, :h] = last.contract(spectrum[:, :, -h:, :h])
        return torch.fft.irfft2(out, s=(out_side, out_side), norm="forward") + self.bias


class FourierLayer(nn.Module):
    """gelu(spectral(x) + resample(skip(x))): the original's one-layer ``FNOBlocks``."""

    def __init__(self, in_channels: int, out_channels: int, half_modes: int, rank: float):
        super().__init__()
        self.convs = SpectralConvolution(in_channels, out_channels, half_modes, rank)
        self.fno_skips = nn.ModuleList([nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)])

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        side = int(round(x.shape[-1] * scale))
        skip = F.interpolate(self.fno_skips[0](x), size=(side, side), mode="bicubic", align_corners=True,
                             antialias=True)
        return F.gelu(self.convs(x, side) + skip)


class LegacyBlock(nn.Module):
    """One block of the U: a `FourierLayer` from side ``in_side`` to ``out_side`` (at the training
    resolution; in proportion on other grids), and the original's unused noise-level ``mlp``."""

    def __init__(self, in_channels: int, out_channels: int, in_side: int, out_side: int, fmult: float,
                 rank: float, time_dim: int):
        super().__init__()
        self.scale = out_side / in_side
        self.block1 = FourierLayer(in_channels, out_channels, int(in_side * fmult) // 2, rank)
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, 2 * out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block1(x, self.scale)


def block_sides(padded: int) -> list[tuple[int, int]]:
    """(input side, output side) of each block at the training resolution, as the original sets them."""
    three_quarters, half, quarter = int(padded * 0.75), padded // 2, padded // 4
    sides = [padded, padded, three_quarters, half, quarter, half, three_quarters, padded, padded]
    return list(zip(sides[:-1], sides[1:]))


def original_grid(batch: int, side: int, device) -> torch.Tensor:
    """The original's coordinates, (row, column) in [0, 1] as numpy's float64 linspace cast to
    float32, channels last: (batch, side, side, 2)."""
    axis = torch.from_numpy(np.linspace(0, 1, side).astype(np.float32)).to(device)
    rows, cols = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([rows, cols], dim=-1).expand(batch, side, side, 2)


class LegacyUNO(nn.Module):
    """The original's score network F(u, sigma), for u of shape (batch, res, res, channels) and
    sigma the noise variances (batch,), called as every score network here.

    Parameters
    ----------
    res : int
        Training resolution (side of the data, without padding): fixes the block sides and modes.
    npad : int
        Padding at the training resolution, on the bottom and right; scaled with the grid (the
        original doubled it at 2x super-resolution).
    d_co_domain, mult_dims, fmult, rank
        As in the original's config.json (the Tucker rank a fraction of the weights' parameters).
    channels : int
        Channels of the functions (2, the (cos, sin) of the phase, in the original's runs).
    """

    def __init__(self, res: int, npad: int, d_co_domain: int, mult_dims: Sequence[int], fmult: float,
                 rank: float, channels: int = 2):
        super().__init__()
        self.res, self.npad = res, npad
        d, widths = d_co_domain, [d_co_domain * m for m in mult_dims]
        time_dim = 4 * d_co_domain
        in_channels = [d, widths[0], widths[1], widths[2], widths[3], 2 * widths[2], 2 * widths[1], 2 * widths[0]]
        out_channels = [widths[0], widths[1], widths[2], widths[3], widths[2], widths[1], widths[0], d]
        self.init_conv = nn.Conv2d(channels + 2, d, kernel_size=1)
        # The original embeds the level index t through this MLP; no block uses the result.
        self.time_mlp = nn.Sequential(nn.Identity(), nn.Linear(time_dim, time_dim), nn.GELU(),
                                      nn.Linear(time_dim, time_dim))
        for name, c_in, c_out, (in_side, out_side) in zip(BLOCK_NAMES, in_channels, out_channels,
                                                           block_sides(res + npad)):
            self.add_module(name, LegacyBlock(c_in, c_out, in_side, out_side, fmult, rank, time_dim))
        self.final_conv = nn.Conv2d(2 * d, channels, kernel_size=1)

    def padding_for(self, res: int) -> int:
        """Padding at resolution ``res``: npad scaled with the grid (doubled at 2x)."""
        return round(self.npad * res / self.res)

    def forward(self, u: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Score of ``u`` (batch, res, res, channels) at noise variances ``sigma`` (batch,); same shape out."""
        batch, res = u.shape[0], u.shape[1]
        x = torch.cat([u, original_grid(batch, res, u.device)], dim=-1).permute(0, 3, 1, 2)
        pad = self.padding_for(res)
        x_fc0 = F.pad(self.init_conv(x), [0, pad, 0, pad])

        down1 = self.block1(x_fc0)
        down2 = self.block2(down1)
        down3 = self.block3(down2)
        x = self.inv2_9(self.block4(down3))
        x = self.inv3(torch.cat([x, down3], dim=1))
        x = self.inv4(torch.cat([x, down2], dim=1))
        x = self.inv5(torch.cat([x, down1], dim=1))
        x = torch.cat([x, x_fc0], dim=1)[..., :res, :res]
        return self.final_conv(x).permute(0, 2, 3, 1) / sigma.reshape(-1, 1, 1, 1)
