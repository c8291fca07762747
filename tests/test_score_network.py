"""The UNO score network (src/score_network.py): shapes, gradients, resolution and noise conditioning."""

import math

import pytest
import torch
import torch.nn.functional as F

from src.score_network import UNOScoreNetwork

SMALL = dict(res=14, npad=2, d_co_domain=4, fmult=0.5)


def smooth_functions(n, res):
    """(n, res, res, 2) phase fields (cos, sin) of a smooth phase defined on [0, 1]^2."""
    axis = torch.linspace(0, 1, res)
    rows, cols = torch.meshgrid(axis, axis, indexing="ij")
    phase = torch.stack([k * (2 * rows + torch.sin(3 * cols)) for k in range(1, n + 1)])
    return torch.stack([phase.cos(), phase.sin()], dim=-1)


@pytest.mark.parametrize("options", [
    {},
    {"groups": 2},
    {"num_freqs_input": 8},
    {"factorization": "tucker", "rank": 0.5},
], ids=["plain", "groupnorm", "film", "tucker"])
def test_shapes_and_every_parameter_gets_a_gradient(options):
    net = UNOScoreNetwork(**SMALL, **options)
    u = torch.randn(3, 14, 14, 2)
    out = net(u, torch.tensor([0.1, 1.0, 10.0]))
    assert out.shape == u.shape
    out.square().mean().backward()
    unused = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert unused == []


@pytest.mark.parametrize("factor", [2, 3])
def test_runs_at_finer_grids_with_the_same_weights(factor):
    net = UNOScoreNetwork(**SMALL)
    out = net(torch.randn(2, 14 * factor, 14 * factor, 2), torch.ones(2))
    assert out.shape == (2, 14 * factor, 14 * factor, 2)
    assert net.padding_for(14 * factor) == 2 * factor


def test_output_at_twice_the_resolution_approximates_the_same_function():
    """Discretisation invariance: on smooth inputs, the 2x output brought back to 1x is close to the 1x output.

    Close means: much closer than the outputs for two different inputs are to each other
    (at initialisation the output is dominated by biases, so a plain relative error says little).
    """
    net = UNOScoreNetwork(res=16, npad=2, d_co_domain=8, fmult=0.5).eval()
    with torch.no_grad():
        coarse = net(smooth_functions(2, 16), torch.ones(2))
        fine = net(smooth_functions(2, 32), torch.ones(2))
    fine_on_coarse = F.interpolate(fine.permute(0, 3, 1, 2), size=(16, 16), mode="bilinear",
                                   align_corners=True).permute(0, 2, 3, 1)
    discretisation_gap = (fine_on_coarse - coarse).norm()
    input_effect = (coarse[0] - coarse[1]).norm()
    assert discretisation_gap < 0.25 * input_effect


def test_output_is_divided_by_sigma_without_conditioning():
    net = UNOScoreNetwork(**SMALL)
    u = torch.randn(2, 14, 14, 2)
    with torch.no_grad():
        assert torch.allclose(net(u, torch.full((2,), 0.5)) * 0.5, net(u, torch.full((2,), 4.0)) * 4.0, atol=1e-5)


def test_film_conditioning_depends_on_each_examples_noise_level():
    net = UNOScoreNetwork(**SMALL, num_freqs_input=8)
    with torch.no_grad():  # random FiLM weights are small: make them matter
        for block in [*net.down, *net.up]:
            block.film.weight.mul_(20)
    u = torch.randn(1, 14, 14, 2).expand(2, -1, -1, -1)
    sigma = torch.tensor([0.5, 4.0])
    with torch.no_grad():
        scaled = net(u, sigma) * sigma[:, None, None, None]
    assert not torch.allclose(scaled[0], scaled[1], atol=1e-3)


def test_tucker_factorization_shrinks_the_network():
    """The paper factorizes the spectral weights (tucker, rank 0.1)."""
    dense = UNOScoreNetwork(res=24, npad=8, d_co_domain=8, fmult=0.5)
    tucker = UNOScoreNetwork(res=24, npad=8, d_co_domain=8, fmult=0.5, factorization="tucker", rank=0.1)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(tucker) < count(dense)
    with torch.no_grad():
        assert math.isfinite(float(tucker(torch.randn(1, 24, 24, 2), torch.ones(1)).sum()))
