"""One half-step of implicit-feedback ALS for a block of rows, in numpy (the Spark ALS's
per-partition work, :func:`agora.models.spark_training.fit_als`).

The objective is the one :class:`agora.models.implicit_mf.ALSModel` hands to ``implicit``
(Hu, Koren & Volinsky 2008): confidence ``c`` on the row's observed entries (preference 1),
confidence 1 and preference 0 elsewhere, a constant ridge ``reg``. For the fixed side ``Y``
each row solves::

    (Y^T Y + reg I + Y_u^T diag(c - 1) Y_u) x_u = Y_u^T c

- ``cg``: what ``implicit`` 0.7's CPU ALS does by default (``least_squares_cg``): conjugate
  gradient of ``cg_steps`` steps (3) warm-started from the row's previous factors, a row whose
  squared residual falls below 1e-20 left as it is; vectorised over the block's rows.
- ``cholesky``: the exact solve, ``np.linalg.solve`` on the stacked systems.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

#: ``implicit``'s CPU ALS default: conjugate-gradient steps per row and half-iteration.
CG_STEPS = 3
#: The solvers of :func:`solve_rows`.
SOLVERS = ("cg", "cholesky")
#: ``implicit``'s stopping threshold on a row's squared residual.
_TINY = 1e-20
#: Rows are solved in chunks of about this many observed entries: bounds the nnz x f gather
#: (a users half-step on ml1m-general, 64 factors: 0.6-1.4 s at 20k, 3.4 s at 100k).
_CHUNK_NNZ = 20_000


def initial_factors(n_users: int, n_items: int, factors: int, seed: int | None) -> tuple:
    """``implicit``'s starting point: ``rng.random(...) * 0.01`` in float32, users first."""
    rng = np.random.default_rng(seed)
    users = rng.random((n_users, factors), dtype=np.float32) * 0.01
    items = rng.random((n_items, factors), dtype=np.float32) * 0.01
    return users, items


def regularised_gram(fixed: np.ndarray, reg: float) -> np.ndarray:
    """``Y^T Y + reg I`` in float64 (computed once per half-step, on the driver)."""
    y = np.asarray(fixed, dtype=np.float64)
    return y.T @ y + reg * np.eye(y.shape[1])


def solve_rows(
    indptr: np.ndarray,
    indices: np.ndarray,
    confidence: np.ndarray,
    fixed: np.ndarray,
    gram: np.ndarray,
    previous: np.ndarray | None,
    solver: str = "cg",
    cg_steps: int = CG_STEPS,
) -> np.ndarray:
    """New factors (float32) of the rows whose observed entries are the csr triple
    (``indptr``, ``indices`` into ``fixed``, ``confidence``); ``gram``:
    :func:`regularised_gram` of ``fixed``; ``previous``: the rows' current factors (the
    warm start of ``cg``, unused by ``cholesky``)."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    n_rows = len(indptr) - 1
    out = np.zeros((n_rows, gram.shape[0]), dtype=np.float32)
    start = 0
    while start < n_rows:
        stop = start + 1
        while stop < n_rows and indptr[stop + 1] - indptr[start] <= _CHUNK_NNZ:
            stop += 1
        lo, hi = indptr[start], indptr[stop]
        part = (indptr[start : stop + 1] - lo, indices[lo:hi], confidence[lo:hi])
        if solver == "cg":
            assert previous is not None, "cg warm-starts from the previous factors"
            out[start:stop] = _conjugate_gradient(
                *part, fixed, gram, previous[start:stop], cg_steps
            )
        else:
            out[start:stop] = _cholesky(*part, fixed, gram)
        start = stop
    return out


def _conjugate_gradient(
    indptr: np.ndarray,
    indices: np.ndarray,
    confidence: np.ndarray,
    fixed: np.ndarray,
    gram: np.ndarray,
    previous: np.ndarray,
    steps: int,
) -> np.ndarray:
    """``implicit``'s ``least_squares_cg`` for every row at once."""
    n_rows = len(indptr) - 1
    y = np.asarray(fixed[indices], dtype=np.float64)
    c = np.asarray(confidence, dtype=np.float64)
    row_of = np.repeat(np.arange(n_rows), np.diff(indptr))
    summed = sp.csr_matrix(
        (np.ones(len(indices)), np.arange(len(indices)), indptr), shape=(n_rows, len(indices))
    )

    def weighted(vectors: np.ndarray, per_entry: np.ndarray) -> np.ndarray:
        """``sum_i per_entry_i y_i`` per row."""
        return summed @ (per_entry[:, None] * y) if len(y) else np.zeros_like(vectors)

    def dots(vectors: np.ndarray) -> np.ndarray:
        """``y_i . v_row(i)`` per observed entry."""
        return np.einsum("nf,nf->n", y, vectors[row_of])

    x = np.asarray(previous, dtype=np.float64).copy()
    r = -x @ gram + weighted(x, c - (c - 1.0) * dots(x))
    p = r.copy()
    rs_old = np.einsum("nf,nf->n", r, r)
    active = rs_old >= _TINY
    for _ in range(steps):
        if not active.any():
            break
        ap = p @ gram + weighted(p, (c - 1.0) * dots(p))
        curvature = np.einsum("nf,nf->n", p, ap)
        step = np.where(active, rs_old / np.where(active, curvature, 1.0), 0.0)
        x += step[:, None] * p
        r -= step[:, None] * ap
        rs_new = np.einsum("nf,nf->n", r, r)
        active &= rs_new >= _TINY
        p = r + np.where(active, rs_new / np.where(rs_old > 0, rs_old, 1.0), 0.0)[:, None] * p
        rs_old = rs_new
    return x.astype(np.float32)


def _cholesky(
    indptr: np.ndarray,
    indices: np.ndarray,
    confidence: np.ndarray,
    fixed: np.ndarray,
    gram: np.ndarray,
) -> np.ndarray:
    """The exact least-squares solution of every row (stacked ``np.linalg.solve``)."""
    n_rows, k = len(indptr) - 1, gram.shape[0]
    systems = np.broadcast_to(gram, (n_rows, k, k)).copy()
    rhs = np.zeros((n_rows, k))
    for row in range(n_rows):
        lo, hi = indptr[row], indptr[row + 1]
        if lo == hi:
            continue
        y = np.asarray(fixed[indices[lo:hi]], dtype=np.float64)
        c = np.asarray(confidence[lo:hi], dtype=np.float64)
        systems[row] += (y.T * (c - 1.0)) @ y
        rhs[row] = y.T @ c
    return np.linalg.solve(systems, rhs[:, :, None])[:, :, 0].astype(np.float32)


def implicit_objective(
    confidence: sp.csr_matrix, users: np.ndarray, items: np.ndarray, reg: float
) -> float:
    """The loss both engines minimise, in float64: ``sum_ui c_ui (p_ui - x_u.y_i)^2 +
    reg (|X|^2 + |Y|^2)`` with ``c`` 1 and ``p`` 0 off the observed entries of
    ``confidence``, computed without the dense users x items matrix."""
    x = np.asarray(users, dtype=np.float64)
    y = np.asarray(items, dtype=np.float64)
    conf = sp.csr_matrix(confidence, dtype=np.float64)
    rows = np.repeat(np.arange(conf.shape[0]), np.diff(conf.indptr))
    predicted = np.einsum("nf,nf->n", x[rows], y[conf.indices])
    everywhere = float(np.sum((x.T @ x) * (y.T @ y)))  # sum_ui (x_u.y_i)^2
    observed = conf.data * (1.0 - predicted) ** 2 - predicted**2
    return everywhere + float(observed.sum()) + reg * float((x**2).sum() + (y**2).sum())
