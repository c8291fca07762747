"""Darcy flow: the pressure of a flow through a porous medium of random two-phase permeability.

Each function is the solution u of

    -div(a grad u) = f  in the unit square (0, 1)^2,    u = 0 on its boundary,

with f = 1 and a piecewise-constant coefficient: a = 12 where a Gaussian random field g >= 0
and a = 3 where g < 0, g ~ N(0, (-Laplacian + 9)^(-2)) with zero Neumann conditions and the
mean removed. These are the data of the Fourier neural operator paper (Li et al. 2021,
"Fourier neural operator for parametric partial differential equations", arXiv:2010.08895,
section 5.2); g is `src.noise.NeumannGRF` with alpha 2 and tau 3 (GANO's noise, of the same
family). u is smooth where a is constant, with kinks of its gradient along the interfaces
(the flux a du/dn is continuous across them), and positive inside.

The grid, as everywhere in the project, has its points at (i / R, j / R), i, j = 0 .. R - 1:

- u is solved at the nodes (i / R, j / R), i, j = 0 .. R, of spacing h = 1 / R. Rows and
  columns 0 and R are the boundary (u = 0); the dataset keeps the nodes 0 .. R - 1, so its
  first row and column are the boundary x = 0, y = 0, and the boundary x = 1, y = 1 is the row
  and the column after its last. `solve_darcy` returns all R + 1 nodes per axis.
- a is constant on each cell [i / R, (i + 1) / R] x [j / R, (j + 1) / R], i, j = 0 .. R - 1,
  and takes the sign of g at the cell's centre ((i + 1/2) / R, (j + 1/2) / R): the points of
  NeumannGRF(R).

The scheme is the 5-point stencil of finite volumes: around each interior node, the square of
side h centred on it (its dual cell); through each of its four faces, which join the centres
of the two cells on either side of an edge of the grid, the flux is a_face (u - u_neighbour) / h.
The face lies half in each of those two cells, so its a_face is their arithmetic mean (the
fluxes through the halves add). Summing the four fluxes, per interior node,

    sum over its 4 neighbours of a_face (u - u_neighbour) = h^2 f.

The matrix is symmetric positive definite and an M-matrix (positive diagonal, off-diagonals
<= 0, weakly diagonally dominant, irreducible), so u > 0 at every interior node for f > 0 (the
discrete maximum principle), and for a constant a = c it is 1 / c times the 5-point Laplacian's
solution, second-order accurate. It is solved by a sparse LU factorisation
(`scipy.sparse.linalg.spsolve`, SuperLU) of the (R - 1)^2 unknowns: with the coefficient's
draw, about 4 ms a function at 32 px and 20 ms at 64 px on one busy CPU core.

Written by ``python -m src.synthetic --kind darcy --outdir DIR`` as ``DIR/darcy.npy`` (N, R, R)
float32, with the problem's parameters, n and seed in ``DIR/darcy.json`` (`read_problem`
rebuilds the `DarcyProblem`). Function i depends only on (seed, i): the first n of a seed are
the same for any --n.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from src.data import keyed_generator
from src.noise import NeumannGRF
from src.progress import progress_bar
from src.synthetic import array_dataset_paths, write_array_dataset

DATASET_NAME = "darcy"
# Below this many functions the progress bar is noise rather than information.
_PROGRESS_BAR_MIN_FUNCTIONS = 256


@dataclass(frozen=True)
class DarcyProblem:
    """How the dataset is made (see the module docstring)."""

    resolution: int = 64        # R: cells per side; the functions are R x R nodes
    high: float = 12.0          # a where g >= 0
    low: float = 3.0            # a where g < 0
    grf_alpha: float = 2.0      # g ~ N(0, (-Laplacian + grf_tau^2)^(-grf_alpha)), Neumann, mean removed
    grf_tau: float = 3.0
    forcing: float = 1.0        # f, constant (FNO's 1); u is proportional to it

    def __post_init__(self):
        if self.resolution < 2:
            raise ValueError(f"need resolution >= 2 (an interior node), got {self.resolution}")
        if not (self.high > 0 and self.low > 0):
            raise ValueError(f"the coefficient must be positive: got high={self.high}, low={self.low}")
        if not (math.isfinite(self.forcing) and self.forcing > 0):
            raise ValueError(f"the forcing must be positive and finite, got {self.forcing}")
        if not (self.grf_alpha > 1 and self.grf_tau > 0):
            raise ValueError(f"need grf_alpha > 1 and grf_tau > 0, got {self.grf_alpha} and {self.grf_tau}")

    def coefficients(self, n: int, seed: int = 0) -> np.ndarray:
        """a on the cells, (n, R, R) float64: coefficient i is thresholded from a draw of g with
        the generator keyed by (seed, i), so it depends on (seed, i) alone."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        field = NeumannGRF(self.resolution, alpha=self.grf_alpha, tau=self.grf_tau)
        out = np.empty((n, self.resolution, self.resolution))
        for index in range(n):
            g = field.sample(1, generator=keyed_generator(seed, index))[0, :, :, 0].numpy()
            out[index] = np.where(g >= 0, self.high, self.low)
        return out

    def sample(self, n: int, seed: int = 0, progress: bool = True) -> np.ndarray:
        """n solutions on the nodes (i / R, j / R), i, j = 0 .. R - 1: (n, R, R) float32."""
        coefficients = self.coefficients(n, seed)
        out = np.empty((n, self.resolution, self.resolution), dtype=np.float32)
        shown = progress and n >= _PROGRESS_BAR_MIN_FUNCTIONS
        for index in progress_bar(range(n), desc="solving Darcy flow", unit="function", shown=shown):
            out[index] = solve_darcy(coefficients[index], self.forcing)[:-1, :-1]
        return out


def darcy_matrix(coefficient: np.ndarray) -> scipy.sparse.csr_array:
    """The finite-volume matrix A of the module docstring: A u = h^2 f at the interior nodes.

    Parameters
    ----------
    coefficient : np.ndarray, shape (R, R)
        a on the cells; cell (i, j) lies between the nodes i, i + 1 and j, j + 1.

    Returns
    -------
    scipy.sparse.csr_array, shape ((R - 1)^2, (R - 1)^2)
        Over the interior nodes (i, j), i, j = 1 .. R - 1, in the row-major order
        (i - 1) (R - 1) + (j - 1).
    """
    a = np.asarray(coefficient, dtype=np.float64)
    side = a.shape[0] - 1  # interior nodes per axis
    # Faces between the nodes (i, j) and (i + 1, j), i = 0 .. R - 1, at the columns j = 1 .. R - 1:
    # the mean of the cells (i, j - 1) and (i, j) on either side.
    down = (a[:, :-1] + a[:, 1:]) / 2          # (R, R - 1)
    # Faces between (i, j) and (i, j + 1), j = 0 .. R - 1, at the rows i = 1 .. R - 1.
    right = (a[:-1, :] + a[1:, :]) / 2         # (R - 1, R)
    diagonal = down[:-1] + down[1:] + right[:, :-1] + right[:, 1:]
    # The coupling of (i, j) to (i + 1, j): offset R - 1 in the flat order.
    vertical = -down[1:-1].ravel()
    # The coupling of (i, j) to (i, j + 1): offset 1, and none from the last column to the next row.
    horizontal = -np.concatenate([right[:, 1:-1], np.zeros((side, 1))], axis=1).ravel()[:-1]
    return scipy.sparse.diags_array([diagonal.ravel(), horizontal, horizontal, vertical, vertical],
                                    offsets=[0, 1, -1, side, -side], format="csr")


def solve_darcy(coefficient: np.ndarray, forcing: float = 1.0) -> np.ndarray:
    """u solving -div(a grad u) = forcing, u = 0 on the boundary, by `darcy_matrix`.

    Parameters
    ----------
    coefficient : np.ndarray, shape (R, R)
        a > 0 on the cells (see the module docstring), R >= 2.
    forcing : float
        f, constant.

    Returns
    -------
    np.ndarray, shape (R + 1, R + 1), float64
        u at the nodes (i / R, j / R), i, j = 0 .. R, the boundary (first and last rows and
        columns) included, where it is 0.
    """
    a = np.asarray(coefficient, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 2:
        raise ValueError(f"the coefficient must be a square array of side >= 2, got shape {a.shape}")
    if not (a > 0).all():
        raise ValueError("the coefficient must be positive everywhere")
    cells = a.shape[0]
    side = cells - 1
    right_hand_side = np.full(side * side, forcing / cells ** 2)  # h^2 f
    u = np.zeros((cells + 1, cells + 1))
    u[1:-1, 1:-1] = scipy.sparse.linalg.spsolve(darcy_matrix(a).tocsc(), right_hand_side).reshape(side, side)
    return u


def dataset_paths(outdir: str | Path) -> tuple[Path, Path]:
    """(DIR/darcy.npy, DIR/darcy.json): the solutions and how they were made."""
    return array_dataset_paths(outdir, DATASET_NAME)


def write_darcy_dataset(outdir: str | Path, n: int, seed: int = 0, problem: DarcyProblem = DarcyProblem(),
                        overwrite: bool = False) -> Path:
    """Write ``problem.sample(n, seed)`` to DIR/darcy.npy and the problem, n and seed to DIR/darcy.json.

    Returns the .npy path, which is what DATA_DIR points at. Raises `FileExistsError` naming
    the file if either exists and ``overwrite`` is False (nothing is written, nothing solved).
    """
    description = {**asdict(problem), "n": n, "seed": seed,
                   "equation": "-div(a grad u) = forcing on (0, 1)^2, u = 0 on the boundary; "
                               "a = high where g >= 0, low where g < 0",
                   "grid": "u at the nodes (i / R, j / R), i, j = 0 .. R - 1 (row and column 0: the boundary)"}
    return write_array_dataset(outdir, DATASET_NAME, lambda: problem.sample(n, seed), description, overwrite)


def read_problem(path: str | Path) -> DarcyProblem:
    """The problem of a dataset from its darcy.json (or from the directory or .npy beside it)."""
    path = Path(path)
    if path.is_dir() or path.suffix == ".npy":
        path = dataset_paths(path if path.is_dir() else path.parent)[1]
    values = json.loads(path.read_text())
    return DarcyProblem(**{key: values[key] for key in DarcyProblem.__dataclass_fields__})
