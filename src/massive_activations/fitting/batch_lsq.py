"""Many small bounded least-squares problems solved at once (the bootstrap's fast path).

A bootstrap refits the same curve to hundreds of resampled trajectories, and a multi-start
fits it from several starting points.  Each problem has ~50 residuals and <= 5 parameters,
so a call to :func:`scipy.optimize.least_squares` per problem spends most of its time in
Python overhead.  :func:`batch_least_squares` runs a Levenberg-Marquardt iteration on all
problems together with NumPy (one batched ``5 x 5`` solve per iteration), which is about two
orders of magnitude faster and reaches the same minima (``tests/test_fitting.py`` checks it
against ``least_squares``).

Algorithm (per problem): Marquardt-scaled damped Gauss-Newton steps
``(J^T J + mu diag(J^T J)) d = -J^T r``; box bounds by projection, with parameters that sit
on a bound and whose gradient points outwards held fixed for the step (an active set);
a step is accepted when it lowers the cost and stays in the curve's domain, and the damping
follows Nielsen's rule (Madsen, Nielsen & Tingleff, *Methods for non-linear least squares
problems*, 2004): after an accepted step with gain ratio ``rho``,
``mu *= max(1/3, 1 - (2 rho - 1)^3)``; after a rejected one ``mu *= nu, nu *= 2``.
A problem converges when an accepted step lowers the cost by less than ``ftol``
relatively or moves the parameters by less than ``xtol``
relatively, or when no step of any length lowers the cost (``mu`` beyond ``1e16``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

__all__ = ["BatchResult", "batch_least_squares"]


class BatchResult(NamedTuple):
    """Solutions of :func:`batch_least_squares`.

    Attributes
    ----------
    x : numpy.ndarray
        Parameters, shape ``(B, k)``.
    cost : numpy.ndarray
        ``0.5 * sum(residual**2)`` at ``x``, shape ``(B,)`` (``inf`` if the start was invalid).
    success : numpy.ndarray of bool
        Converged (``False``: invalid start or ``max_iter`` reached).
    n_iter : int
        Iterations run.
    """

    x: np.ndarray
    cost: np.ndarray
    success: np.ndarray
    n_iter: int


def batch_least_squares(
    fun: Callable[[np.ndarray, np.ndarray], np.ndarray],
    jac: Callable[[np.ndarray, np.ndarray], np.ndarray],
    x0,
    lower,
    upper,
    *,
    valid: Callable[[np.ndarray], np.ndarray] | None = None,
    max_iter: int = 300,
    ftol: float = 1e-12,
    xtol: float = 1e-10,
) -> BatchResult:
    """Minimise ``0.5 * ||fun(x_b)||^2`` for every row ``b`` of ``x0`` within bounds.

    Parameters
    ----------
    fun : callable
        ``fun(X, rows) -> R``: residuals ``(m, n)`` of parameter rows ``X`` (``(m, k)``)
        that belong to problems ``rows`` (indices into the batch).
    jac : callable
        ``jac(X, rows) -> J`` of shape ``(m, n, k)``.
    x0 : array_like
        Starting points, ``(B, k)``; projected onto the bounds.
    lower, upper : array_like
        Bounds, shape ``(k,)`` (``-inf``/``inf`` for none).
    valid : callable, optional
        ``valid(X) -> bool (m,)``: rows where ``fun`` and ``jac`` may be evaluated; other
        trial points are rejected like a step that raises the cost.
    max_iter : int
    ftol, xtol : float
        Relative tolerances on the cost reduction and on the step.

    Returns
    -------
    BatchResult
    """
    with np.errstate(all="ignore"):  # non-finite trial points are rejected, not reported
        return _solve(fun, jac, x0, lower, upper, valid, max_iter, ftol, xtol)


def _solve(fun, jac, x0, lower, upper, valid, max_iter, ftol, xtol) -> BatchResult:
    lower = np.asarray(lower, float)
    upper = np.asarray(upper, float)
    x = np.clip(np.array(x0, dtype=float, ndmin=2), lower, upper)
    B, k = x.shape
    valid = valid or (lambda X: np.all(np.isfinite(X), axis=1))
    cost = np.full(B, np.inf)
    success = np.zeros(B, dtype=bool)
    active = valid(x)
    rows = np.flatnonzero(active)
    r = fun(x[rows], rows)
    J = np.zeros((B, r.shape[1], k))
    cost[rows] = 0.5 * np.sum(r * r, axis=1)
    finite = np.isfinite(cost)
    active &= finite
    J[rows] = jac(x[rows], rows)
    R = np.zeros((B, r.shape[1]))
    R[rows] = r
    mu = np.full(B, 1e-3)
    nu = np.full(B, 2.0)
    eye = np.eye(k)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        Ja, ra, xa = J[idx], R[idx], x[idx]
        A = np.einsum("bni,bnj->bij", Ja, Ja)
        g = np.einsum("bni,bn->bi", Ja, ra)
        held = ((xa <= lower) & (g > 0)) | ((xa >= upper) & (g < 0))
        free = ~held
        d = np.einsum("bii->bi", A).copy()
        d = np.maximum(d, 1e-12 * np.maximum(d.max(axis=1, keepdims=True), 1e-300))
        A = A * (free[:, :, None] & free[:, None, :]) + eye * (~free)[:, :, None]
        g = np.where(free, g, 0.0)
        lhs = A + (mu[idx, None] * np.where(free, d, 0.0))[:, :, None] * eye
        try:
            step = -np.linalg.solve(lhs, g[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = -np.stack(
                [np.linalg.lstsq(a, b_, rcond=None)[0] for a, b_ in zip(lhs, g, strict=True)]
            )
        xn = np.clip(xa + step, lower, upper)
        ok = valid(xn) & np.all(np.isfinite(xn), axis=1)
        cn = np.full(idx.size, np.inf)
        rn = np.zeros_like(ra)
        if ok.any():
            rn[ok] = fun(xn[ok], idx[ok])
            cn[ok] = 0.5 * np.sum(rn[ok] * rn[ok], axis=1)
        # gain ratio: actual over predicted (Gauss-Newton model) reduction of the taken step
        d = xn - xa
        pred = -np.einsum("bi,bi->b", d, g) - 0.5 * np.einsum("bi,bij,bj->b", d, A, d)
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = (cost[idx] - cn) / pred
        acc = ok & (cn < cost[idx])
        rejected = idx[~acc]
        mu[rejected] *= nu[rejected]
        nu[rejected] *= 2.0
        stalled = rejected[mu[rejected] > 1e16]
        success[stalled] = True
        active[stalled] = False
        if acc.any():
            a = idx[acc]
            small_f = (cost[a] - cn[acc]) <= ftol * cost[a]
            dx = np.linalg.norm(d[acc], axis=1)
            small_x = dx <= xtol * (np.linalg.norm(xa[acc], axis=1) + xtol)
            x[a], R[a], cost[a] = xn[acc], rn[acc], cn[acc]
            J[a] = jac(xn[acc], a)
            r_acc = np.nan_to_num(rho[acc], nan=0.0, posinf=1.0, neginf=0.0)
            factor = np.maximum(1.0 / 3.0, 1.0 - (2.0 * np.clip(r_acc, 0, 1) - 1.0) ** 3)
            mu[a] = np.maximum(mu[a] * factor, 1e-15)
            nu[a] = 2.0
            done = a[small_f | small_x]
            success[done] = True
            active[done] = False
    return BatchResult(x, cost, success, it)
