"""Figures: sample grids, noise fields, covariance blocks, mean images, statistic histograms.

Every function writes one figure to each of the paths it is given (``.png`` and, where the
original wrote one, ``.pdf``), creating parent folders; none keeps pyplot state around.
Phases are drawn with a cyclic colour map over [-pi, pi], so that a wrap is no edge.
"""

import math
from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from src.metrics import to_phase  # noqa: E402

PHASE_STYLE = dict(cmap="twilight", vmin=-np.pi, vmax=np.pi)


def _save(fig, paths) -> None:
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, bbox_inches="tight", dpi=100)
    plt.close(fig)


def plot_fields(fields: np.ndarray, paths, ncols: int, titles: Optional[Sequence[str]] = None,
                suptitle: Optional[str] = None, colorbar: bool = False, **imshow) -> None:
    """A grid of scalar fields (N, H, W), ncols per row."""
    fields = np.asarray(fields)
    nrows = max(1, math.ceil(len(fields) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.2 * ncols, 2.2 * nrows), squeeze=False, layout="constrained")
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(fields):
            image = ax.imshow(fields[i], **imshow)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
            if colorbar:
                fig.colorbar(image, ax=ax, fraction=0.046)
    if suptitle:
        fig.suptitle(suptitle)
    _save(fig, paths)


def plot_phase_grid(u: torch.Tensor, paths, ncols: int, titles: Optional[Sequence[str]] = None,
                    suptitle: Optional[str] = None) -> None:
    """Phase maps of functions u (N, H, W, 2) in a grid."""
    plot_fields(to_phase(u.detach().float().cpu()).numpy(), paths, ncols, titles, suptitle, **PHASE_STYLE)


def plot_noise(noise: torch.Tensor, paths, title: str = "noise samples (channel 0)") -> None:
    """Raw values of the first channel of noise draws (N, H, W, 2), one per column."""
    plot_fields(noise[..., 0].cpu().numpy(), paths, ncols=len(noise), suptitle=title, colorbar=True, cmap="RdBu_r")


def plot_matrix(matrix: torch.Tensor, paths, title: str) -> None:
    fig, ax = plt.subplots(figsize=(5, 4.5))
    image = ax.imshow(matrix.cpu().numpy(), cmap="viridis")
    fig.colorbar(image, ax=ax)
    ax.set_title(title)
    _save(fig, paths)


def plot_mean_images(real: torch.Tensor, generated: torch.Tensor, paths, title: Optional[str] = None) -> None:
    """Phase of the mean real function beside that of the mean generated one."""
    means = torch.stack([real.float().mean(0), generated.float().mean(0)])
    plot_phase_grid(means, paths, ncols=2, titles=["data mean", "generated mean"], suptitle=title)


def plot_stats_histograms(real_stats: dict, generated_stats: dict, metrics: dict, paths,
                          figsize=(10, 4), label: str = "model") -> None:
    """Histograms of circular variance and skewness, ground truth against the model."""
    fig, axes = plt.subplots(1, 2, figsize=tuple(figsize))
    for ax, key, name, distance in ((axes[0], "var", "circular variance", metrics["w_var"]),
                                    (axes[1], "skew", "circular skewness", metrics["w_skew"])):
        values = np.concatenate([real_stats[key], generated_stats[key]])
        bins = np.linspace(np.nanpercentile(values, 0.5), np.nanpercentile(values, 99.5), 40)
        ax.hist(real_stats[key], bins=bins, density=True, histtype="step", linewidth=2, label="ground truth")
        ax.hist(generated_stats[key], bins=bins, density=True, histtype="step", linewidth=2, label=label)
        ax.set_title(f"{name}: W = {distance:.4f}")
        ax.legend()
    _save(fig, paths)
