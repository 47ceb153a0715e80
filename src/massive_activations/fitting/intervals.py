"""Intervals that see the noise every sequence shares at a checkpoint.

The covariance of :mod:`~massive_activations.fitting.procedures` assumes independent
residuals, and the bootstrap over sequences of :mod:`~massive_activations.fitting.uncertainty`
sees only the sampling of sequences.  Real trajectories also move together at each
checkpoint (all sequences are measured on the same weights, one draw of training), and
neighbouring checkpoints move alike (:func:`massive_activations.fitting.synthetic.
shared_noise`).  Two intervals account for that:

* :func:`hac_covariance`: the sandwich covariance under residuals that follow an AR(1)
  over the checkpoint index (its coefficient from the residuals), in the solver's
  parametrisation ``theta`` (positive scale parameters on a log scale);
  :func:`theta_intervals` turns a ``theta`` covariance into intervals in
  original units, exponentiating the log-scale ends (so ``lam``, ``gam``, ``t0`` get
  asymmetric, positive intervals), and ``t_peak``'s from the delta method on
  ``log t_peak``.
* :func:`block_bootstrap`: a moving-block bootstrap of the fit's residuals over checkpoints
  (relative residuals for relatively weighted fits, inflated by ``sqrt(n / (n - k))``),
  refitted warm-started, all replicates at once.  Failed replicates are not dropped: they
  count as open ends (:func:`open_percentile_ci`).

:func:`reported_intervals` is the one interval per parameter the package stands behind
(``<name>_lo``, ``<name>_hi`` in ``fits.parquet``): the union of the HAC interval and the
sequence-bootstrap interval, the choice that ``benchmarks/coverage.py`` supports on the broad
family of :func:`~massive_activations.fitting.synthetic.draw_family`.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from massive_activations.fitting.batch_lsq import batch_least_squares
from massive_activations.fitting.procedures import FitResult

__all__ = [
    "REFIT",
    "RHO_FLOOR",
    "block_bootstrap",
    "default_lag",
    "expanded_tail",
    "hac_covariance",
    "open_percentile_ci",
    "reported_intervals",
    "residual_autocorrelation",
    "theta_intervals",
    "union",
]


#: Settings of every batched refit (bootstrap replicates): warm-started replicates that have
#: not met SciPy's default tolerances after 300 iterations count as failed.
REFIT = {"max_iter": 300, "ftol": 1e-8, "xtol": 1e-8}


#: The least lag-1 autocorrelation :func:`hac_covariance` assumes for the residuals.
RHO_FLOOR = 0.5


def default_lag(n: int) -> int:
    """Newey-West truncation lag for ``n`` checkpoints: ``ceil(n ** (1/3))`` (n = 41: 4)."""
    return max(1, int(np.ceil(n ** (1 / 3))))


def residual_autocorrelation(r) -> float:
    """Lag-1 autocorrelation of residuals ``r``, with the first-order bias correction
    ``(1 + 3 rho) / n`` (Marriott & Pope 1954), clipped to [0, 0.98]."""
    r = np.asarray(r, float)
    n = r.size
    if n < 3 or not np.any(r):
        return 0.0
    rho = float(np.sum(r[1:] * r[:-1]) / np.sum(r * r))
    return float(np.clip(rho + (1 + 3 * rho) / n, 0.0, 0.98))


def hac_covariance(fit: FitResult, rho: float | None = None) -> np.ndarray | None:
    """Sandwich covariance of ``theta`` under AR(1) residuals (None when it cannot be computed).

    ``(J^T J)^-1 J^T Omega J (J^T J)^-1`` with ``J`` the Jacobian of the weighted,
    normalised residuals ``r`` at the estimate and ``Omega_ij = s^2 rho^|i - j|`` over the
    checkpoint index, ``s^2 = sum r^2 / (n - k)``.  Unless given, ``rho`` is the residuals'
    lag-1 autocorrelation (:func:`residual_autocorrelation`) but at least :data:`RHO_FLOOR`:
    a five-parameter curve absorbs part of a slow, shared wiggle, so the residuals
    understate its autocorrelation (on the broad family of ``benchmarks/coverage.py`` their
    estimate averages 0.2 where the truth spans 0-0.9).  With ``rho = 0`` it is the scaled
    covariance of the fit.
    """
    p = fit.problem
    if p is None or fit.theta is None or fit.status == "failed":
        return None
    J = p.jacobian(fit.theta)
    r = p.residual(fit.theta)
    n, k = J.shape
    if n <= k or not np.all(np.isfinite(J)) or not np.all(np.isfinite(r)):
        return None
    rho = max(residual_autocorrelation(r), RHO_FLOOR) if rho is None else float(rho)
    idx = np.arange(n)
    omega = (np.sum(r * r) / (n - k)) * rho ** np.abs(idx[:, None] - idx[None, :])
    try:
        bread = np.linalg.inv(J.T @ J)
    except np.linalg.LinAlgError:
        return None
    cov = bread @ (J.T @ omega @ J) @ bread
    if not np.all(np.isfinite(cov)) or np.any(np.diag(cov) <= 0):
        return None
    return cov


def _t_peak_of_theta(fit: FitResult, theta) -> np.ndarray:
    p = fit.problem
    return p.hypothesis.t_peak(p.to_original(np.atleast_2d(theta)))


def theta_intervals(fit: FitResult, cov: np.ndarray | None, level: float = 0.95) -> dict:
    """Intervals in original units from a covariance of ``theta``.

    Each parameter whose map back to original units involves only itself gets
    ``theta_j +- q se_j`` mapped through that map (``exp`` for log-scale parameters, so the
    interval is positive and asymmetric); one that mixes parameters (Eq. 14's ``A2``) gets
    the delta-method interval in original units.  ``t_peak`` gets the delta method on
    ``log t_peak`` when ``t_peak > 0`` (on ``t_peak`` otherwise).  ``q = t(0.5 + level / 2,
    n - k)``.  Returns ``{name: (lo, hi)}`` with ``"t_peak"`` included; NaN without ``cov``.
    """
    names = (*fit.names, "t_peak")
    if cov is None or fit.theta is None:
        return dict.fromkeys(names, (np.nan, np.nan))
    p = fit.problem
    theta = fit.theta
    q = stats.t.ppf(0.5 + level / 2, max(fit.nfree, 1))
    se = np.sqrt(np.diag(cov))
    out = {}
    dp = p._dp(theta)
    cov_orig = p.M @ (cov * np.outer(dp, dp)) @ p.M.T
    for j, name in enumerate(fit.names):
        row = p.M[j]
        if np.count_nonzero(row) == 1 and row[j] != 0:
            ends = np.array([theta[j] - q * se[j], theta[j] + q * se[j]])
            if p.log[j]:
                with np.errstate(over="ignore"):
                    ends = np.exp(ends)
            vals = np.sort(row[j] * ends + p.c[j])
        else:
            mid = fit.params[name]
            half = q * np.sqrt(max(cov_orig[j, j], 0.0))
            vals = np.array([mid - half, mid + half])
        out[name] = (float(vals[0]), float(vals[1]))
    tp = float(_t_peak_of_theta(fit, theta)[0])
    if not np.isfinite(tp):
        out["t_peak"] = (np.nan, np.nan)
        return out
    ends = np.empty((theta.size, 2))  # t_peak at theta_j + h_j and theta_j - h_j
    width = np.empty(theta.size)
    for j in range(theta.size):
        h = 1e-6 * max(abs(theta[j]), 1e-3)
        up, dn = theta.copy(), theta.copy()
        up[j] += h
        dn[j] -= h
        ends[j] = _t_peak_of_theta(fit, up)[0], _t_peak_of_theta(fit, dn)[0]
        width[j] = 2 * h
    # the log scale only where t_peak and every perturbed t_peak are positive; a
    # neighbourhood that reaches 0 gets the delta method on t_peak itself
    log_scale = tp > 0 and bool(np.all(ends > 0))
    with np.errstate(invalid="ignore"):
        g = np.log(ends[:, 0]) - np.log(ends[:, 1]) if log_scale else ends[:, 0] - ends[:, 1]
        g = g / width
        var = float(g @ cov @ g)
    if not np.isfinite(var) or var < 0:
        out["t_peak"] = (np.nan, np.nan)
        return out
    half = q * np.sqrt(var)
    if log_scale:
        with np.errstate(over="ignore"):
            out["t_peak"] = (float(tp * np.exp(-half)), float(tp * np.exp(half)))
    else:
        out["t_peak"] = (tp - half, tp + half)
    return out


def expanded_tail(level: float, n_clusters: int | None) -> float:
    """Lower tail probability of a central ``level`` interval, expanded for few clusters.

    Hesterberg's expanded percentile interval (*What teachers should know about the
    bootstrap*, The American Statistician 69, 2015): with ``n`` resampled units, use the
    percentiles at ``Phi(-sqrt(n / (n - 1)) * t(1 - a, n - 1))`` instead of ``a``; it
    corrects the bootstrap's ``(n - 1) / n`` variance bias and the t-quantile of a small
    sample (10 sequences: 0.85 % instead of 2.5 % for a 95 % interval).  ``n_clusters``
    None (or < 3): the plain ``a = (1 - level) / 2``.
    """
    a = 0.5 - level / 2
    if n_clusters is None or n_clusters < 3:
        return a
    z = np.sqrt(n_clusters / (n_clusters - 1)) * stats.t.isf(a, n_clusters - 1)
    return float(stats.norm.sf(z))


def open_percentile_ci(
    values, n_failed: int, level: float = 0.95, n_clusters: int | None = None
) -> tuple[float, float]:
    """Percentile interval where each failed replicate counts as an open end.

    The lower end is taken over ``values`` plus ``n_failed`` copies of ``-inf``, the upper
    over ``values`` plus ``n_failed`` copies of ``+inf``: when more failed than the tail
    holds, that end is infinite (the data cannot bound it).  With ``n_clusters`` the tails
    are Hesterberg's expanded ones (:func:`expanded_tail`).
    """
    v = np.asarray(values, float)
    v = v[~np.isnan(v)]
    a = expanded_tail(level, n_clusters)
    n = v.size + int(n_failed)
    if n == 0:
        return (np.nan, np.nan)
    low = np.concatenate([np.full(int(n_failed), -np.inf), v])
    high = np.concatenate([v, np.full(int(n_failed), np.inf)])
    lo = np.quantile(low, a, method="inverted_cdf") if low.size else np.nan
    hi = np.quantile(high, 1 - a, method="inverted_cdf") if high.size else np.nan
    return (float(lo), float(hi))


class BlockBootstrap:
    """Replicates of :func:`block_bootstrap`: parameters (original units) and ``t_peak``.

    ``params`` is ``(n_ok, k)``; ``n`` replicates were drawn, ``n - n_ok`` failed.
    """

    def __init__(self, params, t_peak, n: int, block: int, seed: int) -> None:
        self.params = np.asarray(params, float)
        self.t_peak = np.asarray(t_peak, float)
        self.n = int(n)
        self.block = int(block)
        self.seed = int(seed)

    @property
    def n_ok(self) -> int:
        """Replicates whose refit converged."""
        return int(self.params.shape[0])

    def ci(self, j: int | None = None, level: float = 0.95) -> tuple[float, float]:
        """Open percentile interval of parameter ``j`` (``None``: ``t_peak``)."""
        sample = self.t_peak if j is None else self.params[:, j]
        return open_percentile_ci(sample, self.n - self.n_ok, level)


def block_bootstrap(
    fit: FitResult, *, n: int = 200, seed: int = 0, block: int | None = None
) -> BlockBootstrap | None:
    """Moving-block residual bootstrap over checkpoints (None for a failed fit).

    Residuals ``e_t`` (relative, ``y_t / f_t - 1``, for relatively weighted fits; absolute
    otherwise) are centred, inflated by ``sqrt(n / (n - k))``, and resampled in circular
    blocks of ``block`` consecutive checkpoints (default :func:`default_lag` + 1), so their
    autocorrelation survives; ``y* = f (1 + e*)`` (or ``f + e*``) is refitted from the
    estimate with the fit's own problem (bounds, weights, normalisation).
    """
    p = fit.problem
    if p is None or fit.theta is None or fit.status == "failed":
        return None
    f = p.curve(fit.theta)
    m, k = p.n, p.hypothesis.k
    relative = p.sigma is not None
    if relative and np.any(f <= 0):
        return None
    e = p.y / f - 1.0 if relative else p.y - f
    e = (e - e.mean()) * np.sqrt(m / max(m - k, 1))
    b = (default_lag(m) + 1) if block is None else max(1, int(block))
    rng = np.random.default_rng(seed)
    n_blocks = int(np.ceil(m / b))
    starts = rng.integers(0, m, size=(n, n_blocks))
    idx = (starts[:, :, None] + np.arange(b)[None, None, :]).reshape(n, -1)[:, :m] % m
    E = e[idx]
    Y = f * (1.0 + E) if relative else f + E
    Z = (Y - p.y_min) / p.y_scale
    if relative:
        W = p.y_scale / (np.median(p.sigma / np.abs(p.y)) * np.abs(Y))
    else:
        W = np.ones_like(Z)
    good = np.all(np.isfinite(Z) & np.isfinite(W) & (Y > 0 if relative else True), axis=1)
    Z, W = np.where(good[:, None], Z, 0.0), np.where(good[:, None], W, 1.0)
    fun, jac = p.batch(Z, W)
    res = batch_least_squares(
        fun, jac, np.tile(fit.theta, (n, 1)), p.lower, p.upper, valid=p.valid, **REFIT
    )
    ok = good & res.success & np.isfinite(res.cost)
    P = p.to_original(res.x[ok])
    return BlockBootstrap(P, p.hypothesis.t_peak(P), n, b, seed)


def union(*intervals) -> tuple[float, float]:
    """The smallest interval containing every given one; NaN when any is missing (NaN)."""
    ends = np.array(intervals, float).reshape(-1, 2)
    if ends.size == 0 or np.isnan(ends).any():
        return (np.nan, np.nan)
    return (float(ends[:, 0].min()), float(ends[:, 1].max()))


def reported_intervals(fit: FitResult, level: float = 0.95) -> dict:
    """The interval the package reports for each parameter and ``t_peak``.

    The union of the HAC interval (:func:`hac_covariance`, :func:`theta_intervals`) and the
    expanded-percentile bootstrap over sequences (``fit.bootstrap``, when at least half its
    replicates converged; failed replicates make its ends open).  Either missing: NaN (the
    parameter is then not identified).  ``{name: (lo, hi)}`` with ``"t_peak"``.
    """
    hac = theta_intervals(fit, hac_covariance(fit), level)
    boot = fit.bootstrap
    out = {}
    for name in (*fit.names, "t_peak"):
        if boot is None or boot.n_ok < 0.5 * boot.n:
            out[name] = (np.nan, np.nan)
            continue
        j = None if name == "t_peak" else fit.names.index(name)
        sample = boot.t_peak if j is None else boot.params[:, j]
        seq = open_percentile_ci(sample, boot.n - boot.n_ok, level, boot.n_sequences)
        out[name] = union(hac[name], seq)
    return out
