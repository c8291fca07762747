"""Evaluate a trained experiment: generate samples, super-resolve, plot.

eval.py evaluates the diffusion operator's experiments (method 'sbgm'); eval_gano.py, the
same code, GANO's (method 'gan'): the same flags, modes and output files, so plot_stats.py and
every comparison read both. From ``exps/`` (the original README), with SAVEDIR and DATA_DIR set in ``exps/env.sh``::

    bash launch_eval.py sbgm <name>/<id> --checkpoint=model.w_total.pt --mode=generate
    bash launch_eval.py sbgm <name>/<id> --checkpoint=model.w_total.pt --mode=superres
    bash launch_eval.py sbgm <name>/<id> --checkpoint=model.w_total.pt --mode=plot

which run, from the repository root::

    DATA_DIR=/path/to/volcano python eval.py --exp_name=$SAVEDIR/<name>/<id> \\
        --savedir=$SAVEDIR/<name>/<id>/eval --mode=generate

Modes:

generate  Ntest samples at the training resolution with the checkpoint's EMA weights
          (the config's sampler with the score network; the generator applied to noise for GANO):
          samples.<ckpt>.pkl, stats.<ckpt>.pkl, metrics.<ckpt>.json; w_var, w_skew and
          w_total (array data: w_mean, w_std, w_marginal, log_spectrum_rms, w_total; see
          src/metrics.py) against the experiment's gt_stats.pkl. With DATA_DIR set, also the
          mean-image metrics and the data's mean function (for the mean image figure).
superres  the same weights on a grid --factor times as fine: gt_stats_<f>x.pkl (from
          DATA_DIR at factor x the resolution), samples_<f>x.<ckpt>.pkl, stats_<f>x.<ckpt>.pkl,
          metrics_<f>x.<ckpt>.json.
posterior K completions of observations (--observations FILE, or DATA_DIR's held-out functions)
          by --operator mask (inpainting: --mask FILE|blobs|coherence), average (conditional
          super-resolution, --factor) or identity (denoising, --noise_variance), with
          src/posterior.py: posterior_<what>.<ckpt>.pkl, metrics_posterior_<what>.<ckpt>.json and a
          figure (src/conditional.py).
plot      for every samples[_<f>x].<ckpt>.pkl in savedir: sample grids (presets 4x4, 4x5,
          4x3, four pages each), the mean images and the statistics histograms, PNG and PDF.

--sampler KEY=VALUE ... samples with the sampler keys of the config changed (sbgm only), e.g.
``--sampler sampler=heun sampler_steps=10``: one checkpoint sampled several ways. The outputs
are then named after the change, <ckpt>.sampler=heun.sampler_steps=10 for <ckpt>, so they never
overwrite the config's; pass the same flags to --mode=plot. metrics*.json records the sampler
keys used and the network evaluations per sample.

The experiment directories the original code wrote (its published checkpoints, e.g.
tmp2000_rbf_pred-noise-b_repeat/3307092) evaluate the same way, with the original's network and
config (README.org, Reproducing evaluation); the network comes from
`src.evaluation.load_experiment` for both kinds.

The experiment directory is only read; everything is written into --savedir, each file
atomically (a temporary file, then a rename), so a failed run leaves earlier results whole.
Runs on CUDA when present, else on the CPU. The modes are src/evaluation.py's, the command line
src/cli.py's.
"""

# First, before anything imports torch: libgomp reads the number of threads and how idle threads
# wait once, when torch loads it, so src/threads.py sets them up here (a run started as a script).
if __name__ == "__main__":
    from src.threads import configure
    configure()

import sys

from src import cli


def main(argv=None) -> int:
    return cli.evaluate("sbgm", argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
