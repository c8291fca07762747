"""Every figure of the project: sample grids, noise fields, covariance blocks, mean images,
statistics histograms, and the overview a training run draws before it starts.

Each function writes one figure to each path it is given (``.png``, and ``.pdf`` where the
original wrote one: see `figure_paths`), atomically (a temporary file, then a rename), and
keeps no state around: figures are plain `matplotlib.figure.Figure` objects, never pyplot's
(whose import costs every command that trains or evaluates half a second). Phases are drawn with the cyclic ``twilight`` colour map over
[-pi, pi], so that a wrap is no edge. Functions are ``(N, res, res, C)`` tensors, channels
last: (cos, sin) of the phase for Volcano (metric kind 'circular'), any real fields for array
data ('field'), of which `plot_functions` draws channel 0 in one colour scale.
"""

import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from src.diffusion import expand_like
from src.files import atomic_paths
from src.metrics import kind_of, to_phase

PHASE_STYLE = dict(cmap="twilight", vmin=-np.pi, vmax=np.pi)
FIGURE_FORMATS = ("png", "pdf")
# Sample grids drawn by `plot_sample_pages`: name -> (rows, columns).
GRID_PRESETS = {"4x4": (4, 4), "4x5": (4, 5), "4x3": (4, 3)}
GRID_PAGES = 4


def figure_paths(directory: Path, stem: str) -> list[Path]:
    """``directory/stem.png`` and ``directory/stem.pdf``."""
    return [Path(directory) / f"{stem}.{ext}" for ext in FIGURE_FORMATS]


def _save(fig, paths) -> None:
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    with atomic_paths(paths) as temporaries:
        for temporary in temporaries:  # each keeps its target's suffix, which picks the format
            fig.savefig(temporary, bbox_inches="tight", dpi=100)
            if temporary.suffix == ".png":
                # Noisy phase maps compress badly in true colour; a 256-colour palette (a colour
                # map has 256 entries) keeps them a third of the size and looks the same.
                with Image.open(temporary) as image:
                    palette = image.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
                palette.save(temporary, optimize=True)


def plot_fields(fields: np.ndarray, paths, ncols: int, titles: Optional[Sequence[str]] = None,
                suptitle: Optional[str] = None, colorbar: bool = False, **imshow) -> None:
    """A grid of scalar fields (N, H, W), ncols per row."""
    fields = np.asarray(fields)
    nrows = max(1, math.ceil(len(fields) / ncols))
    fig = Figure(figsize=(2.2 * ncols, 2.2 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
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


def plot_functions(u: torch.Tensor, paths, ncols: int, kind: str, titles: Optional[Sequence[str]] = None,
                   suptitle: Optional[str] = None) -> None:
    """Functions u (N, H, W, C) in a grid: phase maps for the 'circular' kind, else channel 0 with
    one colour scale for all (its 0.5 to 99.5 percentiles), so that the panels compare."""
    if kind == "circular":
        plot_phase_grid(u, paths, ncols, titles, suptitle)
        return
    fields = u[..., 0].detach().float().cpu().numpy()
    low, high = np.percentile(fields, [0.5, 99.5]) if fields.size else (0.0, 1.0)
    channel = "channel 0" if u.shape[-1] > 1 else ""
    plot_fields(fields, paths, ncols, titles, " ".join(filter(None, [suptitle, f"({channel})" if channel else ""])),
                cmap="viridis", vmin=low, vmax=high if high > low else low + 1.0)


def plot_noise(noise: torch.Tensor, paths, title: str = "noise samples (channel 0)") -> None:
    """Raw values of the first channel of noise draws (N, H, W, C), one per column."""
    plot_fields(noise[..., 0].cpu().numpy(), paths, ncols=len(noise), suptitle=title, colorbar=True, cmap="RdBu_r")


def plot_matrix(matrix: torch.Tensor, paths, title: str) -> None:
    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    image = ax.imshow(matrix.cpu().numpy(), cmap="viridis")
    fig.colorbar(image, ax=ax)
    ax.set_title(title)
    _save(fig, paths)


def plot_mean_images(real: torch.Tensor, generated: torch.Tensor, paths, title: Optional[str] = None,
                     kind: str = "circular") -> None:
    """The mean real function beside the mean generated one (`plot_functions`)."""
    means = torch.stack([real.float().mean(0), generated.float().mean(0)])
    plot_functions(means, paths, ncols=2, kind=kind, titles=["data mean", "generated mean"], suptitle=title)


def plot_stats_histograms(real_stats: dict, generated_stats: dict, metrics: dict, paths,
                          figsize=(10, 4), label: str = "model") -> None:
    """The per-function statistics, ground truth against the model, with their distances in the
    titles: histograms of circular variance and skewness (``w_var``, ``w_skew``); for the field
    kind, histograms of channel 0's mean, standard deviation and pixel values (``w_mean``,
    ``w_std``, ``w_marginal``, all channels') and the mean radial spectra (``log_spectrum_rms``)."""
    if kind_of(real_stats) == "circular":
        panels = [("var", "circular variance", "w_var"), ("skew", "circular skewness", "w_skew")]
    else:
        panels = [("mean", "spatial mean", "w_mean"), ("std", "standard deviation", "w_std"),
                  ("quantiles", "pixel values", "w_marginal"), ("spectrum", "power spectrum", "log_spectrum_rms")]
    width, height = figsize
    fig = Figure(figsize=(width * len(panels) / 2, height))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (key, name, metric) in zip(axes[0], panels):
        if key == "spectrum":
            for stats, legend in ((real_stats, "ground truth"), (generated_stats, label)):
                spectrum = np.asarray(stats[key])[:, 0].mean(0)
                ax.loglog(np.arange(1, len(spectrum)), spectrum[1:], linewidth=2, label=legend)
            ax.set_xlabel("|k|")
        else:
            real, generated = (np.asarray(stats[key]) for stats in (real_stats, generated_stats))
            if real.ndim > 1:  # field statistics: channel 0's
                real, generated = real[:, 0].ravel(), generated[:, 0].ravel()
            values = np.concatenate([real, generated])
            bins = np.linspace(np.nanpercentile(values, 0.5), np.nanpercentile(values, 99.5), 40)
            ax.hist(real, bins=bins, density=True, histtype="step", linewidth=2, label="ground truth")
            ax.hist(generated, bins=bins, density=True, histtype="step", linewidth=2, label=label)
        ax.set_title(f"{name}: {'W' if metric.startswith('w_') else 'RMS log'} = {metrics[metric]:.4f}")
        ax.legend()
    _save(fig, paths)


def page_indices(n: int, per_page: int, page: int) -> list[int]:
    """Indices of the samples on a page of a grid: pages hold distinct samples while enough
    exist, then wrap around; a page shows all n when n < per_page."""
    if n <= per_page:
        return list(range(n))
    start = (page * per_page) % n
    return [(start + i) % n for i in range(min(per_page, n))]


def plot_sample_pages(samples: torch.Tensor, directory: Path, stem: str, pages: int = GRID_PAGES,
                      kind: str = "circular") -> list[Path]:
    """Grids ``{stem}.{preset}.{page}.{png,pdf}`` (`plot_functions`) for every preset of `GRID_PRESETS`."""
    written = []
    for preset, (rows, cols) in GRID_PRESETS.items():
        for page in range(pages):
            paths = figure_paths(directory, f"{stem}.{preset}.{page}")
            plot_functions(samples[page_indices(len(samples), rows * cols, page)], paths, ncols=cols, kind=kind)
            written += paths
    return written


def plot_run_overview(savedir: Path, train: torch.Tensor, noise_sampler, sigmas: torch.Tensor | None, n_mean: int,
                      seed: int, shown: int = 16, kind: str = "circular", initial_states=None,
                      start: str = "z") -> None:
    """What a training run draws before it starts: the noise, the data perturbed by it at the
    noise levels ``sigmas`` (None for GANO, which has none) and the sampler's initial states
    (with ``sigmas``), ``initial_states(noise, generator)`` of a batch of noise draws, which
    ``start`` describes (e.g. '4.47 z'), mean images.

    Every draw comes from generators of its own seeded with ``seed``, so the figures never
    change the global random state, and so never the training.
    """
    savedir = Path(savedir)
    generator = torch.Generator(device=noise_sampler.device).manual_seed(seed)
    plot_noise(noise_sampler.sample(5, generator).cpu(), figure_paths(savedir / "noise", "noise_samples"))
    if sigmas is not None:
        plot_noise(initial_states(noise_sampler.sample(5, generator), generator).cpu(),
                   figure_paths(savedir / "noise", "init_samples"), title=f"initial states of the sampler, {start} (channel 0)")
    covariance = noise_sampler.covariance_block(min(200, noise_sampler.res ** 2))
    if covariance is not None:
        plot_matrix(covariance, figure_paths(savedir / "noise", "noise_sampler_C"),
                    title="noise_sampler.C[0:200, 0:200]")
    if sigmas is not None:
        # u + sqrt(sigma) z from the largest to the smallest noise level: sigma_1 must hide the data.
        levels = torch.linspace(0, len(sigmas) - 1, 8).round().long()
        u = train[:1].to(sigmas.device)
        noised = u + expand_like(sigmas[levels].sqrt(), u) * noise_sampler.sample(len(levels), generator)
        plot_functions(noised, savedir / "u_noised.png", ncols=len(levels), kind=kind,
                       titles=[f"sigma={s:.3g}" for s in sigmas[levels].tolist()])
        plot_functions(initial_states(noise_sampler.sample(shown, generator), generator), savedir / "u_prior.png",
                       ncols=4, kind=kind,
                       suptitle=f"initial states of the sampler, {start}" + (" (phase)" if kind == "circular" else ""))
    # Mean images of random subsets of n_mean training functions: how much a mean varies by chance.
    cpu_generator = torch.Generator().manual_seed(seed)
    subsets = [train[torch.randperm(len(train), generator=cpu_generator)[:n_mean]].mean(0) for _ in range(8)]
    plot_functions(torch.stack(subsets), savedir / "mean_subsamples.png", ncols=4, kind=kind,
                   suptitle=f"means of random subsets of {min(n_mean, len(train))} training functions")


def plot_posterior(observed: torch.Tensor, samples: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                   truth: Optional[torch.Tensor], paths, kind: str) -> None:
    """A row an observation: the observation (NaN where unobserved: blank), samples (N, S, res,
    res, C), the posterior mean and standard deviation (N, res, res, C) and the truth if given.
    Phases (the circular kind) as phase maps, the standard deviation as its norm over (cos, sin);
    fields as channel 0 on one colour scale."""
    columns = [("observation", observed)] + [(f"sample {s + 1}", samples[:, s]) for s in range(samples.shape[1])]
    columns += [("posterior mean", mean)] + ([("truth", truth)] if truth is not None else [])
    if kind == "circular":
        def shown(u):
            return to_phase(u.float()).numpy()
        style = PHASE_STYLE
        spread = std.float().norm(dim=-1).numpy()
    else:
        def shown(u):
            return u[..., 0].float().numpy()
        values = np.concatenate([shown(u)[np.isfinite(shown(u))] for _, u in columns])
        low, high = np.percentile(values, [0.5, 99.5]) if values.size else (0.0, 1.0)
        style = dict(cmap="viridis", vmin=low, vmax=max(high, low + 1e-12))
        spread = std[..., 0].float().numpy()
    rows = len(observed)
    fig = Figure(figsize=(1.9 * (len(columns) + 1), 1.9 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, len(columns) + 1, squeeze=False)
    for row in range(rows):
        for column, (title, u) in enumerate(columns):
            axes[row, column].imshow(shown(u[row]), **style)
        image = axes[row, -1].imshow(spread[row], cmap="magma", vmin=0)
        fig.colorbar(image, ax=axes[row, -1], fraction=0.046)
    for column, title in enumerate([title for title, _ in columns] + ["posterior std"]):
        axes[0, column].set_title(title, fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    _save(fig, paths)
