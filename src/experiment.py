"""Build the pieces of an experiment from its `Arguments`: data, model, noise, sigmas.

`train.py` and `eval.py` both go through these functions, so that an experiment directory's
``config.json`` rebuilds exactly the model that wrote its checkpoints.
"""

import math

import torch

from src.config import Arguments
from src.data import load_volcano, split_train_valid
from src.diffusion import generate, sigma_schedule
from src.noise import build_noise_sampler
from src.score_network import UNOScoreNetwork


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_data(args: Arguments, data_dir: str, factor: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Training and validation functions (N, res, res, 2), res = factor * args.data_resolution.

    ``factor`` > 1 gives the ground truth for super-resolution: the interferograms resized
    to factor x resolution and cropped by factor x npad, the same region at a finer grid.
    """
    x = load_volcano(data_dir, ntrain=args.ntrain, resolution=factor * args.resize_to, npad=factor * args.npad,
                     multilook=args.multilook)
    return split_train_valid(x, args.val_size, seed=args.seed)


def build_model(args: Arguments) -> UNOScoreNetwork:
    return UNOScoreNetwork(res=args.data_resolution, npad=args.npad, d_co_domain=args.d_co_domain,
                           mult_dims=list(args.mult_dims), fmult=args.fmult, factorization=args.factorization,
                           rank=args.rank, groups=args.groups, num_freqs_input=args.num_freqs_input)


def build_noise(args: Arguments, res: int, device):
    """The noise sampler of the experiment on a res x res grid (res may exceed the training one)."""
    return build_noise_sampler(res, white_noise=args.white_noise, rbf_scale=args.rbf_scale, rbf_eps=args.rbf_eps,
                               kernel=args.noise_kernel, method=args.noise_method, device=device)


def build_sigmas(args: Arguments, device) -> torch.Tensor:
    return sigma_schedule(args.sigma_1, args.sigma_L, args.L, args.schedule).to(device)


def sample(model, args: Arguments, noise_sampler, sigmas, n: int, batch_size: int,
           generator=None, progress: bool = True) -> torch.Tensor:
    """n functions from the model by annealed Langevin dynamics, (n_valid, res, res, 2) on the CPU."""
    model.eval()
    return generate(model, noise_sampler, sigmas, n, batch_size, args.epsilon, args.T,
                    generator=generator, progress=progress, step_rule=args.step_rule,
                    denoise_last=args.denoise_last)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def describe(model, args: Arguments) -> str:
    network_calls = args.L * args.T + (1 if args.denoise_last else 0)
    return (f"UNO score network, {count_parameters(model) / 1e6:.2f} M parameters, "
            f"resolution {args.data_resolution} px (+{args.npad} padding), "
            f"{'white' if args.white_noise else args.noise_kernel + ' GRF'} noise, "
            f"{args.L} levels x {args.T} Langevin steps{' + 1 denoising step' if args.denoise_last else ''} = "
            f"{network_calls} network calls per sample batch, "
            f"{math.ceil(args.Ntest / args.val_batch_size)} batch(es) per validation")
