"""One trajectory, normalised, as a least-squares problem of one hypothesis.

:class:`Problem` holds the data of one fit in the normalised space both procedures fit in
(see :mod:`~massive_activations.fitting.hypotheses` for the normalisation and the exact map back),
the residuals and analytic Jacobian that lmfit and the batched solver use, and the
conversions between the solver's vector ``theta``, the normalised parameters and the
original ones.
"""

from __future__ import annotations

import numpy as np

from massive_activations.fitting.hypotheses import get_hypothesis

__all__ = ["WALL", "Problem"]

#: Residual given to points outside the curve's domain, so every solver rejects the step.
WALL = 1e8


class Problem:
    """One trajectory, normalised, with the residual and Jacobian of one hypothesis.

    The solvers see an internal vector ``theta``: the normalised parameters, with those in
    ``hypothesis.log_names`` replaced by their logarithms when ``log_scale`` is set (the
    ``"ours"`` procedure).  On a log scale the long curved valleys of Eq. 9 (``t0`` and
    ``gam`` growing together while ``lam -> 0``) become nearly straight, so the solvers
    follow them to their end in a few steps instead of crawling.

    Parameters
    ----------
    hypothesis : Hypothesis or str
    steps, y : array_like
        The points to fit (original units).
    sigma : array_like, optional
        Standard errors of ``y``; ``None`` fits unweighted.
    bounds : {"paper", "ours"}
    t_scale : float, optional
        Defaults to ``max(steps)``.
    log_scale : bool
        Fit ``hypothesis.log_names`` on a log scale.

    Attributes
    ----------
    u, z, wn : numpy.ndarray
        Normalised steps and values, and the weights of the normalised residuals
        ``wn * (f(u) - z)``: ``y_scale / sigma`` (1 unweighted).
    names : tuple of str
        Names of ``theta``'s entries (``log_gam`` for a log-scaled ``gam``).
    lower, upper : numpy.ndarray
        Bounds on ``theta``.
    """

    def __init__(
        self, hypothesis, steps, y, sigma=None, bounds="ours", t_scale=None, log_scale=False
    ):
        h = self.hypothesis = get_hypothesis(hypothesis)
        self.steps = np.asarray(steps, dtype=float)
        self.y = np.asarray(y, dtype=float)
        self.sigma = None if sigma is None else np.asarray(sigma, dtype=float)
        self.t_scale = float(t_scale or np.max(self.steps))
        self.y_min = float(np.min(self.y))
        self.y_scale = float(np.ptp(self.y)) or 1.0
        self.u = self.steps / self.t_scale
        self._u_span = (float(np.min(self.u)), float(np.max(self.u))) if self.u.size else (0, 0)
        self.z = (self.y - self.y_min) / self.y_scale
        self.wn = np.ones_like(self.y) if sigma is None else self.y_scale / self.sigma
        self.log = np.array([bool(log_scale) and n in h.log_names for n in h.names])
        self.names = tuple(f"log_{n}" if lg else n for n, lg in zip(h.names, self.log, strict=True))
        lo, hi = h.bounds(bounds)
        if np.any(self.log & (lo <= 0)):
            raise ValueError(f"{h.name}: a log-scaled parameter needs a lower bound > 0.")
        with np.errstate(divide="ignore"):
            self.lower = np.where(self.log, np.log(np.where(self.log, lo, 1.0)), lo)
            self.upper = np.where(self.log, np.log(np.where(self.log, hi, 1.0)), hi)
        self.M, self.c = h.back_transform(self.t_scale, self.y_min, self.y_scale)

    @property
    def n(self) -> int:
        """Number of points."""
        return self.y.size

    def p_norm(self, theta) -> np.ndarray:
        """Normalised parameters from ``theta`` (``(k,)`` or ``(B, k)``)."""
        p = np.array(theta, dtype=float)
        with np.errstate(over="ignore"):
            p[..., self.log] = np.exp(p[..., self.log])
        return p

    def theta(self, p_norm) -> np.ndarray:
        """``theta`` from normalised parameters (inverse of :meth:`p_norm`)."""
        t = np.array(p_norm, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            t[..., self.log] = np.log(t[..., self.log])
        return t

    def _dp(self, theta) -> np.ndarray:
        """``d p_norm / d theta`` (diagonal), shaped like ``theta``."""
        return np.where(self.log, self.p_norm(theta), 1.0)

    def to_original(self, theta) -> np.ndarray:
        """``theta`` (``(k,)`` or ``(B, k)``) to original units."""
        return self.p_norm(theta) @ self.M.T + self.c

    def to_theta(self, p_orig) -> np.ndarray:
        """Original parameters to ``theta`` (inverse of :meth:`to_original`)."""
        return self.theta(np.linalg.solve(self.M, (np.asarray(p_orig, float) - self.c).T).T)

    def curve(self, theta, steps=None) -> np.ndarray:
        """The curve in original units at ``steps`` (default: the fitted steps).

        ``theta`` may be ``(k,)`` or ``(B, k)`` (then the result is ``(B, n)``).
        """
        u = self.u if steps is None else np.asarray(steps, float) / self.t_scale
        P = self.p_norm(theta)
        cols = [P[..., j, None] if P.ndim == 2 else P[j] for j in range(P.shape[-1])]
        return self.y_min + self.y_scale * self.hypothesis.func(u, *cols)

    def residual(self, theta) -> np.ndarray:
        """Normalised weighted residuals ``wn * (f(u) - z)``; ``WALL`` outside the domain."""
        p = self.p_norm(theta)
        if not self.hypothesis.valid_point(p, *self._u_span):
            return np.full(self.n, WALL)
        return self.wn * (self.hypothesis.func_unchecked(self.u, *p) - self.z)

    def jacobian(self, theta) -> np.ndarray:
        """Jacobian of :meth:`residual` in ``theta``, ``(n, k)`` (zeros outside the domain)."""
        p = self.p_norm(theta)
        if not self.hypothesis.valid_point(p, *self._u_span):
            return np.zeros((self.n, p.size))
        dp = np.where(self.log, p, 1.0)  # = self._dp(theta)
        return self.wn[:, None] * self.hypothesis.jac_unchecked(self.u, *p) * dp

    def chisqr(self, p_orig) -> float:
        """Weighted chi-square (``sigma = 1`` unweighted) at *original* parameters."""
        r = self.residual(self.to_theta(p_orig))
        scale = self.y_scale**2 if self.sigma is None else 1.0
        return float(np.sum(r * r) * scale)

    def batch(self, Z, W=None):
        """``(fun, jac)`` in ``theta`` for :func:`~.batch_lsq.batch_least_squares`.

        ``Z`` holds one normalised data set per problem (``(B, n)``) or one shared by all
        (``(n,)``, a multi-start); ``W`` the weights, shaped alike (default: this
        problem's).
        """
        Z = np.asarray(Z, float)
        W = np.broadcast_to(self.wn if W is None else np.asarray(W, float), Z.shape)
        h, u = self.hypothesis, self.u

        def data(a, rows):
            return a if a.ndim == 1 else a[rows]

        def fun(X, rows):
            P = self.p_norm(X)
            cols = [P[:, j, None] for j in range(P.shape[1])]
            return data(W, rows) * (h.func(u, *cols) - data(Z, rows))

        def jac(X, rows):
            P = self.p_norm(X)
            cols = [P[:, j, None] for j in range(P.shape[1])]
            J = data(W, rows)[..., None] * h.jac(u, *cols)
            return J * self._dp(X)[:, None, :]

        return fun, jac

    def valid(self, X) -> np.ndarray:
        """Rows of ``theta`` values ``X`` inside the curve's domain on the fitted steps."""
        return self.hypothesis.valid(self.p_norm(np.atleast_2d(X)), self.u)
