"""The four hypotheses fitted to a trajectory, in the normalised space the fits run in.

Every fit normalises the data first (both procedures; the paper says it normalises but not
how (Section 5; the book's page "Reading the paper"), so this is our choice): steps ``u = t / t_scale`` with ``t_scale``
the last step of the series, values ``z = (y - y_min) / y_scale`` with min-max scaling over
the fitted window.  Each hypothesis keeps its functional form under this affine change, so
the normalised parameters ``p`` map back *exactly* to the original ones by an affine map
``p_orig = M @ p + c`` (:meth:`Hypothesis.back_transform`):

======  ==============================================================================
eq9     ``A = s A~, lam = lam~, gam = gam~ / T, t0 = t0~, K = y_min + s K~``
eq14    ``b = b~ / T, tau0 = T tau0~, A1 = s A1~, A2 = s (A2~ - A1~ log T),
        K = y_min + s K~``
step1   ``K = y_min + s K~, A = s A~, tau = T tau~``
step2   ``K = y_min + s K~, A = s A~, w = w~ / T, zeta = zeta~``
======  ==============================================================================

with ``T = t_scale`` and ``s = y_scale``.  Covariances map as ``M C M^T``.

Eq. 9 and Eq. 14 are :mod:`massive_activations.curve`'s functions, the step responses are
:mod:`massive_activations.fitting.alternatives`' (our reading of the paper's Eqs. 15-18).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from massive_activations import curve
from massive_activations.fitting import alternatives

__all__ = ["HYPOTHESES", "Hypothesis", "get_hypothesis"]

_INF = np.inf
#: Smallest value of a parameter that must stay > 0 in the "ours" procedure (normalised).
POSITIVE = 1e-9


@dataclass(frozen=True)
class Hypothesis:
    """A curve family with what the fitting procedures need to know about it.

    Attributes
    ----------
    name : str
        Key (``"eq9"``, ``"eq14"``, ``"step1"``, ``"step2"``).
    label : str
        Human-readable name (as in paper Table 5).
    names : tuple of str
        Parameter names, in the order of ``func``'s arguments.
    func, jac : callable
        ``func(t, *p)`` and its Jacobian ``jac(t, *p) -> (..., k)``; both broadcast over
        parameter arrays.
    linear : tuple of str
        Parameters the curve is linear in (with no constant term): used to seed the
        multi-start by solving for them on a grid of the others.
    grid : dict
        Values of the non-linear parameters (normalised units) for that grid.
    paper_bounds, ours_bounds : dict
        ``{name: (lower, upper)}`` in normalised units; missing names are unbounded.
    profile : tuple of str
        Parameters that get profile confidence intervals by default.
    log_names : tuple of str
        Positive scale parameters that the ``"ours"`` procedure fits on a log scale.
    func_unchecked, jac_unchecked : callable, optional
        ``func`` and ``jac`` without their domain checks, for a solver that checks the
        domain once per step (:meth:`valid_point`); the same values inside the domain.
        Default: ``func`` and ``jac``.
    """

    name: str
    label: str
    names: tuple[str, ...]
    func: Callable
    jac: Callable
    linear: tuple[str, ...]
    grid: dict = field(repr=False)
    paper_bounds: dict = field(repr=False)
    ours_bounds: dict = field(repr=False)
    profile: tuple[str, ...] = ()
    log_names: tuple[str, ...] = ()
    func_unchecked: Callable | None = field(default=None, repr=False)
    jac_unchecked: Callable | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.func_unchecked is None:
            object.__setattr__(self, "func_unchecked", self.func)
        if self.jac_unchecked is None:
            object.__setattr__(self, "jac_unchecked", self.jac)

    @property
    def k(self) -> int:
        """Number of parameters."""
        return len(self.names)

    def bounds(self, procedure: str) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds (normalised units) of ``"paper"`` or ``"ours"``."""
        table = self.paper_bounds if procedure == "paper" else self.ours_bounds
        lo = np.array([table.get(n, (-_INF, _INF))[0] for n in self.names], dtype=float)
        hi = np.array([table.get(n, (-_INF, _INF))[1] for n in self.names], dtype=float)
        return lo, hi

    def valid(self, P, u) -> np.ndarray:
        """Whether each row of ``P`` (shape ``(B, k)``) is in the curve's domain on ``u``.

        For Eq. 9 and Eq. 14 this is "the logarithm's argument is > 0 at every step";
        for the step responses ``tau, w > 0`` and ``zeta >= 0``.
        """
        P = np.atleast_2d(np.asarray(P, dtype=float))
        ok = np.all(np.isfinite(P), axis=1)
        lo, hi = float(np.min(u)), float(np.max(u))
        p = dict(zip(self.names, P.T, strict=True))
        with np.errstate(invalid="ignore"):
            if self.name == "eq9":
                ok &= (p["gam"] > 0) & (p["gam"] * lo + p["t0"] > 0) & (p["gam"] * hi + p["t0"] > 0)
            elif self.name == "eq14":
                ok &= lo + p["tau0"] > 0
            elif self.name == "step1":
                ok &= p["tau"] > 0
            elif self.name == "step2":
                ok &= (p["w"] > 0) & (p["zeta"] >= 0)
        return ok

    def valid_point(self, p, u_lo: float, u_hi: float) -> bool:
        """:meth:`valid` for one parameter vector ``p`` on steps spanning ``[u_lo, u_hi]``.

        The same answer as ``valid(p[None], u)[0]`` for any ``u`` with that minimum and
        maximum (every domain condition is monotone in the step), in plain floats: a
        solver calls it at every evaluation.
        """
        v = [float(x) for x in p]
        if not all(math.isfinite(x) for x in v):
            return False
        q = dict(zip(self.names, v, strict=True))
        if self.name == "eq9":
            g, t0 = q["gam"], q["t0"]
            return g > 0 and g * u_lo + t0 > 0 and g * u_hi + t0 > 0
        if self.name == "eq14":
            return u_lo + q["tau0"] > 0
        if self.name == "step1":
            return q["tau"] > 0
        if self.name == "step2":
            return q["w"] > 0 and q["zeta"] >= 0
        return True

    def back_transform(self, t_scale: float, y_min: float, y_scale: float):
        """``(M, c)`` with ``p_orig = M @ p_norm + c`` (see the module docstring)."""
        T, s = float(t_scale), float(y_scale)
        M = np.eye(self.k)
        c = np.zeros(self.k)
        i = {n: j for j, n in enumerate(self.names)}
        for n in self.names:
            j = i[n]
            if n in ("A", "A1"):
                M[j, j] = s
            elif n == "K":
                M[j, j], c[j] = s, y_min
            elif n in ("gam", "b", "w"):
                M[j, j] = 1.0 / T
            elif n in ("tau0", "tau"):
                M[j, j] = T
            elif n == "A2":
                M[j, j], M[j, i["A1"]] = s, -s * np.log(T)
        return M, c

    def paper_guess(self, u, z) -> np.ndarray:
        """The paper's initial guess (Eq. 9 and Section 5) in normalised units.

        ``A0 = max(z) - min(z)``, ``K0 = min(z) + A0/2``, ``lam0 = 1/std(u)``,
        ``gam0 = 1/range(u)``, ``t0_0 = 1``.  Eq. 14 starts from the same curve
        (:func:`~massive_activations.curve.eq9_to_eq14`).  The paper gives no guess for the
        step responses; ours follows its spirit: ``K0 = z[-1]``, ``A0 = z[-1] - z[0]``,
        ``tau0 = std(u)``, ``w0 = 1/std(u)``, ``zeta0 = 1``.
        """
        u, z = np.asarray(u, float), np.asarray(z, float)
        A0 = float(np.max(z) - np.min(z))
        sd = float(np.std(u)) or 1.0
        rng = float(np.ptp(u)) or 1.0
        eq9 = (A0, 1.0 / sd, 1.0 / rng, 1.0, float(np.min(z)) + A0 / 2)
        if self.name == "eq9":
            return np.array(eq9)
        if self.name == "eq14":
            return np.array(curve.eq9_to_eq14(*eq9), dtype=float)
        K0, A0s = float(z[-1]), float(z[-1] - z[0])
        if self.name == "step1":
            return np.array([K0, A0s, sd])
        return np.array([K0, A0s, 1.0 / sd, 1.0])

    def seeds(self, u, z, weights=None, n: int = 4) -> np.ndarray:
        """The ``n`` best starting points of a grid search (normalised units).

        The non-linear parameters run over :attr:`grid`; for each grid point the linear
        ones are solved by weighted linear least squares (variable projection).

        Returns
        -------
        numpy.ndarray
            Shape ``(m, k)`` with ``m <= n``, best first.
        """
        u, z = np.asarray(u, float), np.asarray(z, float)
        w = np.ones_like(z) if weights is None else np.asarray(weights, float)
        nl = [n_ for n_ in self.names if n_ not in self.linear]
        mesh = np.meshgrid(*(np.asarray(self.grid[n_], float) for n_ in nl), indexing="ij")
        flat = {n_: m.reshape(-1, 1) for n_, m in zip(nl, mesh, strict=True)}
        cols = []
        for lin in self.linear:  # the columns are finite on the grid; guard all the same
            args = {n_: (1.0 if n_ == lin else 0.0) for n_ in self.linear} | flat
            cols.append(self.func(u, *(args[n_] for n_ in self.names)))
        X = np.stack(np.broadcast_arrays(*cols), axis=-1) * w[:, None]  # (G, n, m)
        X = np.where(np.isfinite(X), X, 0.0)
        yw = z * w
        A = np.einsum("gni,gnj->gij", X, X)
        A += 1e-12 * np.trace(A, axis1=1, axis2=2)[:, None, None] * np.eye(A.shape[-1])
        beta = np.linalg.solve(A, np.einsum("gni,n->gi", X, yw)[..., None])[..., 0]
        cost = np.sum((np.einsum("gni,gi->gn", X, beta) - yw) ** 2, axis=1)
        order = np.argsort(np.where(np.isfinite(cost), cost, np.inf), kind="stable")[:n]
        out = np.empty((order.size, self.k))
        for j, n_ in enumerate(self.names):
            out[:, j] = (
                beta[order, self.linear.index(n_)] if n_ in self.linear else flat[n_][order, 0]
            )
        return out

    def t_peak(self, P) -> np.ndarray:
        """Training step of the extremum (original units), per row of ``P``; NaN if none.

        Eq. 9: :func:`~massive_activations.curve.t_peak`; Eq. 14 through
        :func:`~massive_activations.curve.eq14_to_eq9`.  The step responses have no
        ``t_peak`` in the paper's sense (NaN).
        """
        P = np.atleast_2d(np.asarray(P, dtype=float))
        out = np.full(P.shape[0], np.nan)
        if self.name not in ("eq9", "eq14"):
            return out
        ok = np.all(np.isfinite(P), axis=1)
        if self.name == "eq14":
            ok &= P[:, 2] != 0
        if not ok.any():
            return out
        Q = P[ok]
        if self.name == "eq14":
            with np.errstate(all="ignore"):  # gam = exp(A2/A1) may overflow: no t_peak then
                Q = np.column_stack(curve.eq14_to_eq9(*Q.T))
        good = np.isfinite(Q).all(axis=1) & (Q[:, 2] > 0)
        tp = np.full(Q.shape[0], np.nan)
        if good.any():
            tp[good] = curve.t_peak(Q[good, 1], Q[good, 2], Q[good, 3])
        out[ok] = tp
        return out

    def amplitude_sign(self, p) -> float:
        """Sign of the Eq. 9 amplitude ``A`` (``A1`` for Eq. 14); NaN for step responses."""
        p = dict(zip(self.names, np.asarray(p, float), strict=True))
        if self.name == "eq9":
            return float(np.sign(p["A"]))
        if self.name == "eq14":
            return float(np.sign(p["A1"]))
        return np.nan


_EQ9 = Hypothesis(
    name="eq9",
    label="Eq. 9 (original)",
    names=curve.EQ9_NAMES,
    func=curve.eq9,
    jac=curve.eq9_jacobian,
    func_unchecked=curve.eq9_unchecked,
    jac_unchecked=curve.eq9_jacobian_unchecked,
    linear=("A", "K"),
    grid={
        "lam": np.array([1e-6, 1e-4, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]),
        "gam": np.geomspace(0.1, 1e6, 22),
        "t0": np.array([0.5, 1.0, 2.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 1e4]),
    },
    paper_bounds={"lam": (0.0, _INF)},
    ours_bounds={"lam": (POSITIVE, _INF), "gam": (POSITIVE, 1e6), "t0": (POSITIVE, 1e4)},
    profile=("K", "lam"),
    log_names=("lam", "gam", "t0"),
)
_EQ14 = Hypothesis(
    name="eq14",
    label="Eq. 14 (reparametrised)",
    names=curve.EQ14_NAMES,
    func=curve.eq14,
    jac=curve.eq14_jacobian,
    func_unchecked=curve.eq14_unchecked,
    jac_unchecked=curve.eq14_jacobian_unchecked,
    linear=("A1", "A2", "K"),
    grid={
        "b": np.array([0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0]),
        "tau0": np.geomspace(1e-4, 10.0, 16),
    },
    paper_bounds={"b": (0.0, _INF)},
    ours_bounds={"b": (0.0, _INF), "tau0": (POSITIVE, _INF)},
    profile=("K", "b"),
    log_names=("tau0",),
)
_STEP1 = Hypothesis(
    name="step1",
    label="first-order step response",
    names=alternatives.STEP1_NAMES,
    func=alternatives.step1,
    jac=alternatives.step1_jacobian,
    linear=("K", "A"),
    grid={"tau": np.geomspace(1e-4, 10.0, 30)},
    paper_bounds={"tau": (0.0, _INF)},
    ours_bounds={"tau": (POSITIVE, _INF)},
    profile=("K", "tau"),
    log_names=("tau",),
)
_STEP2 = Hypothesis(
    name="step2",
    label="second-order step response",
    names=alternatives.STEP2_NAMES,
    func=alternatives.step2,
    jac=alternatives.step2_jacobian,
    linear=("K", "A"),
    grid={
        "w": np.geomspace(0.1, 1e4, 20),
        "zeta": np.array([0.1, 0.3, 0.7, 1.0, 1.5, 3.0, 10.0]),
    },
    paper_bounds={"w": (0.0, _INF), "zeta": (0.0, _INF)},
    ours_bounds={"w": (POSITIVE, _INF), "zeta": (0.0, _INF)},
    profile=("K", "w"),
    log_names=("w",),
)

#: The hypotheses of paper Table 5, by key.
HYPOTHESES = {h.name: h for h in (_EQ9, _EQ14, _STEP1, _STEP2)}


def get_hypothesis(name: str | Hypothesis) -> Hypothesis:
    """Look a hypothesis up by key (``"eq9"``, ``"eq14"``, ``"step1"``, ``"step2"``)."""
    if isinstance(name, Hypothesis):
        return name
    try:
        return HYPOTHESES[name]
    except KeyError:
        raise ValueError(
            f"Unknown hypothesis {name!r}; choose one of {list(HYPOTHESES)}."
        ) from None
