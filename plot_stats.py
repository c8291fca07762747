"""Histograms of circular variance and skewness, ground truth against a model (final_stats.png);
for array data, of the field statistics (spatial mean, standard deviation, pixel values, spectrum).

    python plot_stats.py --exp_name $SAVEDIR/<name>/<id> --stats_filename eval/stats.model.w_total.pt.pkl \\
        --out_filename final_stats.png
    python plot_stats.py --exp_name $SAVEDIR/<name>/<id> --stats_filename eval/stats_2x.model.w_total.pt.pkl \\
        --gt_stats_filename eval/gt_stats_2x.pkl --out_filename final_stats_2x.png

--stats_filename and --gt_stats_filename are relative to --exp_name (or absolute);
--out_filename is relative to the current directory (or absolute), its extension picks the
format. Prints the distances drawn in the titles (w_var, w_skew and w_total for Volcano).
"""

import argparse
import sys
from pathlib import Path

from src.evaluation import GT_STATS, EvaluationError, format_metrics, read_stats
from src.metrics import wasserstein_metrics
from src.plotting import plot_stats_histograms


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_name", required=True, help="the experiment directory")
    parser.add_argument("--stats_filename", required=True,
                        help="stats pickle of the model, e.g. eval/stats.model.w_total.pt.pkl")
    parser.add_argument("--gt_stats_filename", default=GT_STATS,
                        help="stats pickle of the ground truth (default: %(default)s)")
    parser.add_argument("--out_filename", required=True, help="the figure to write, e.g. final_stats.png")
    parser.add_argument("--figsize", type=float, nargs=2, default=(10.0, 4.0), metavar=("W", "H"),
                        help="figure size in inches (default: 10 4)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    cli = parse_args(argv)
    exp_dir, out = Path(cli.exp_name), Path(cli.out_filename)
    try:
        if not exp_dir.is_dir():
            raise EvaluationError(f"experiment directory {exp_dir} does not exist")
        if not out.suffix:
            raise EvaluationError(f"--out_filename {out} needs an extension (.png, .pdf, ...) for its format")
        # Path / absolute path = the absolute path.
        real, generated = read_stats(exp_dir / cli.gt_stats_filename), read_stats(exp_dir / cli.stats_filename)
        metrics = wasserstein_metrics(real, generated)
        plot_stats_histograms(real, generated, metrics, [out], figsize=cli.figsize)
    except (EvaluationError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{exp_dir / cli.stats_filename} against {exp_dir / cli.gt_stats_filename}:")
    print(format_metrics(metrics))
    print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
