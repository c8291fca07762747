"""What the benchmarks' tables and figures share: a markdown table's header, the cell of the mean
and the spread over seeds, and the figure's line with error bars."""

import statistics


def table_header(names: list[str]) -> str:
    """The two lines that start a markdown table of these columns: their names, then one ``---``
    a column (so that the two always have as many columns)."""
    return "| " + " | ".join(names) + " |\n" + "|" + "---|" * len(names)


def mean_spread(values: list, digits: int = 4) -> str:
    """'mean +- sample standard deviation' of the seeds' values; one value alone; '-' if any is missing."""
    if not values or any(value is None for value in values):
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} +- {statistics.stdev(values):.{digits}f}"


def errorbar_line(axis, xs: list, values_per_x: list[list[float]], **style) -> None:
    """One line through the means of each x's values, with their standard deviation as error bars."""
    means = [statistics.mean(values) for values in values_per_x]
    errors = [statistics.stdev(values) if len(values) > 1 else 0.0 for values in values_per_x]
    axis.errorbar(xs, means, yerr=errors, capsize=3, **style)


def w_total_figure(panels: int, panel_size: tuple[float, float]):
    """(figure, axes): a row of ``panels`` empty panels of w_total against something."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, panels, figsize=(panel_size[0] * panels, panel_size[1]), squeeze=False)
    return figure, list(axes[0])


def save_w_total_figure(figure, axes, path, xlabel: str) -> None:
    """Label, grid and legend every panel, then write the figure to ``path`` and close it."""
    import matplotlib.pyplot as plt

    for axis in axes:
        axis.set_xlabel(xlabel)
        axis.set_ylabel("w_total (lower is better)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
