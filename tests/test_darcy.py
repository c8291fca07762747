"""Tests of the Darcy-flow dataset (src/synthetic/darcy.py): the solver, the coefficient, the files, the command line."""

import json

import numpy as np
import pytest

import src.synthetic.__main__ as command_line
from src.data import load_functions
from src.synthetic.darcy import DarcyProblem, read_problem, solve_darcy, write_darcy_dataset

PROBLEM = DarcyProblem(resolution=16)


def divergence_form_residual(u, a, forcing):
    """-div(a grad u) - forcing at the interior nodes, (R - 1, R - 1), computed as fluxes through
    the faces of the dual cells (an independent implementation of the module's scheme, not its matrix).

    u (R + 1, R + 1) on the nodes, a (R, R) on the cells; cell (i, j) lies between nodes i, i + 1
    and j, j + 1, and a face's coefficient is the mean of the two cells it crosses."""
    side = a.shape[0]
    h = 1.0 / side
    flux_down = (a[:, :-1] + a[:, 1:]) / 2 * (u[1:, 1:-1] - u[:-1, 1:-1]) / h      # (R, R - 1)
    flux_right = (a[:-1, :] + a[1:, :]) / 2 * (u[1:-1, 1:] - u[1:-1, :-1]) / h     # (R - 1, R)
    divergence = (flux_down[1:] - flux_down[:-1]) / h + (flux_right[:, 1:] - flux_right[:, :-1]) / h
    return -divergence - forcing


def poisson_series(points, terms=199):
    """u solving -Laplacian u = 1 on the unit square, u = 0 on the boundary, at ``points`` (P, 2):
    the sine series over odd m, n of 16 / (pi^4 m n (m^2 + n^2)) sin(m pi x) sin(n pi y)."""
    odd = np.arange(1, terms + 1, 2)
    m, n = odd[:, None], odd[None, :]
    weights = 16 / (np.pi ** 4 * m * n * (m ** 2 + n ** 2))
    sin_x = np.sin(np.pi * points[:, 0, None] * odd)  # (P, terms)
    sin_y = np.sin(np.pi * points[:, 1, None] * odd)
    return np.einsum("pm,mn,pn->p", sin_x, weights, sin_y)


@pytest.fixture(scope="module")
def coefficients():
    return PROBLEM.coefficients(8, seed=1)


def test_the_solution_satisfies_the_discrete_equation_and_vanishes_on_the_boundary(coefficients):
    for a in coefficients:
        u = solve_darcy(a, forcing=2.0)
        residual = divergence_form_residual(u, a, forcing=2.0)
        assert np.abs(residual).max() < 1e-9 * 2.0
        assert not u[0].any() and not u[-1].any() and not u[:, 0].any() and not u[:, -1].any()


def test_the_solution_is_positive_inside_and_its_energy_is_between_the_constant_phases(coefficients):
    """The maximum principle (f > 0, u = 0 on the boundary), and the compliance sum(u) = f . A^-1 f,
    which falls as a grows: between that of a = high everywhere and a = low everywhere."""
    poisson = solve_darcy(np.ones((16, 16)))
    for a in coefficients:
        u = solve_darcy(a)
        assert (u[1:-1, 1:-1] > 0).all()
        assert poisson.sum() / PROBLEM.high < u.sum() < poisson.sum() / PROBLEM.low


def test_a_constant_coefficient_scales_the_poisson_solution_which_converges_to_the_series():
    poisson = solve_darcy(np.ones((32, 32)))
    for c in (0.5, 3.0, 12.0):
        np.testing.assert_allclose(solve_darcy(np.full((32, 32), c)), poisson / c, rtol=1e-10, atol=1e-15)
    errors = []
    for side in (16, 32):
        nodes = np.arange(side + 1) / side
        points = np.stack(np.meshgrid(nodes, nodes, indexing="ij"), axis=-1).reshape(-1, 2)
        exact = poisson_series(points).reshape(side + 1, side + 1)
        errors.append(np.abs(solve_darcy(np.ones((side, side))) - exact).max())
    assert errors[1] < 1e-3 * 0.0737  # relative to the centre value, 0.0737; h^2 = 1e-3
    assert 3.5 < errors[0] / errors[1] < 4.5  # second order: the error falls 4x when h halves


def test_the_coefficient_takes_two_values_in_comparable_parts(coefficients):
    assert set(np.unique(coefficients)) == {PROBLEM.low, PROBLEM.high}
    high_fraction = (coefficients == PROBLEM.high).mean(axis=(1, 2))
    assert 0.3 < high_fraction.mean() < 0.7  # g has mean 0: each phase about half the square
    assert len({a.tobytes() for a in coefficients}) == len(coefficients)


def test_the_file_round_trips_through_the_array_loader_and_a_shorter_set_is_a_prefix(tmp_path):
    path = write_darcy_dataset(tmp_path, n=5, seed=3, problem=PROBLEM)
    assert path == tmp_path / "darcy.npy"
    written = np.load(path)
    assert written.shape == (5, 16, 16) and written.dtype == np.float32
    loaded = load_functions(path, ntrain=5, resolution=16, npad=0)
    assert loaded.shape == (5, 16, 16, 1)
    np.testing.assert_array_equal(loaded[..., 0].numpy(), written)
    np.testing.assert_array_equal(written[:3], PROBLEM.sample(3, seed=3))
    # The first row and column are the boundary x = 0, y = 0; the other two are beyond the grid.
    assert not written[:, 0].any() and not written[:, :, 0].any() and (written[:, 1:, 1:] > 0).all()
    assert read_problem(path) == PROBLEM and json.loads((tmp_path / "darcy.json").read_text())["seed"] == 3


def test_the_command_line_writes_the_dataset_and_refuses_to_overwrite_it(tmp_path, capsys):
    arguments = ["--kind", "darcy", "--outdir", str(tmp_path), "--n", "4", "--resolution", "16", "--seed", "2"]
    assert command_line.main(arguments) == 0
    assert f"wrote 4 functions of shape (16, 16) (seed 2) to {tmp_path / 'darcy.npy'}" in capsys.readouterr().out
    before = (tmp_path / "darcy.npy").read_bytes()
    np.testing.assert_array_equal(np.load(tmp_path / "darcy.npy"), PROBLEM.sample(4, seed=2))

    assert command_line.main([*arguments[:-1], "5"]) == 2
    assert f"refusing to overwrite {tmp_path / 'darcy.npy'}" in capsys.readouterr().err
    assert (tmp_path / "darcy.npy").read_bytes() == before
    assert command_line.main([*arguments[:-1], "5", "--overwrite"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "darcy.npy"), PROBLEM.sample(4, seed=5))


def test_the_solution_is_proportional_to_the_forcing(tmp_path):
    assert command_line.main(["--kind", "darcy", "--outdir", str(tmp_path), "--n", "3", "--resolution", "16",
                              "--forcing", "150"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "darcy.npy"), 150 * PROBLEM.sample(3), rtol=1e-5)
    assert read_problem(tmp_path) == DarcyProblem(resolution=16, forcing=150.0)


@pytest.mark.parametrize("arguments, message", [
    (["--kind", "darcy", "--outdir", "x", "--resolution", "1"], "need resolution >= 2"),
    (["--kind", "darcy", "--outdir", "x", "--channels", "2"], "--channels is for --kind grf"),
    (["--kind", "grf", "--outdir", "x", "--forcing", "2"], "--forcing is for --kind darcy"),
    (["--kind", "darcy", "--outdir", "x", "--forcing", "0"], "the forcing must be positive"),
])
def test_the_command_line_rejects_bad_arguments(arguments, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        command_line.main(arguments)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_the_solver_names_a_bad_coefficient():
    with pytest.raises(ValueError, match="positive"):
        solve_darcy(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="square"):
        solve_darcy(np.ones((4, 5)))
