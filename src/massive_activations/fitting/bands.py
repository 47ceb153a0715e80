"""The interactive explorer's tables: measured points with their spread, fitted curves with bands.

:func:`~massive_activations.interactive.trajectory_explorer` draws two plain tables; this
module builds them from the package's data:

* :func:`trajectory_points`: from an activation table, one row per (model, layer, step) with
  ``value`` the trajectory (the ratio of means, paper Eq. 8, by default; computed by
  :func:`~massive_activations.measurement.trajectories.trajectories`) and ``lo, hi`` the
  spread of the per-sequence ratios ``top1 / median`` over the evaluation sequences: their
  2.5-97.5 % percentile range (``spread="range95"``, the default) or the mean of the
  per-sequence ratios +- one sample standard deviation (``spread="sd"``);
* :func:`fit_curves`: from the fits table (``fits.parquet``), each fit's curve on a grid of
  ``n_grid`` log-spaced steps over its window (``window_start`` to ``t_max``), with its
  pointwise 95 % band (:func:`curve_band`).

The band is the delta method in original units: with ``p`` the fitted parameters and ``C``
their covariance rebuilt from the stored table (``C = R * outer(se, se)``, ``R`` the
``correlation`` column in ``param_names`` order, ``se`` the ``<param>_stderr`` columns), the
curve's standard error at step ``t`` is ``sqrt(g C g^T)`` with ``g`` the gradient of the
curve in ``p`` by central differences, and the band is ``f +- t(0.975, n - k) * se_f``, the
quantile of the parameters' covariance intervals
(:meth:`~massive_activations.fitting.procedures.FitResult.covariance_ci`).  It is the band
:func:`~massive_activations.fitting.uncertainty.covariance_band` draws from a live fit (there
with the analytic Jacobian in normalised units; the two agree, the tests check it).  Fits
with status ``"failed"`` get no curve (their solution is outside the curve's domain); fits
that did not converge (``"not_converged"``) or have no covariance get the curve and no band
(``lo, hi`` NaN).  The band holds the covariance's uncertainty only: it sees neither the
noise shared across sequences nor the bootstrap's, as the reported parameter intervals do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from massive_activations.fitting.fit_all import CONVERGED
from massive_activations.fitting.hypotheses import get_hypothesis
from massive_activations.measurement.trajectories import trajectories

__all__ = [
    "SPREADS",
    "curve_band",
    "curve_values",
    "fit_covariance",
    "fit_curves",
    "trajectory_points",
]

#: How :func:`trajectory_points` measures the spread over sequences, and what it means.
SPREADS = {
    "range95": "the 2.5-97.5 % range of the per-sequence ratios top-1 / median",
    "sd": "the mean of the per-sequence ratios top-1 / median +- one standard deviation",
}
_KEYS = ("model", "layer", "step")


def trajectory_points(
    table: pd.DataFrame,
    *,
    quantity: str = "ratio",
    spread: str = "range95",
    dtype: str | None = None,
) -> pd.DataFrame:
    """The measured points of every (model, layer, step), with their spread over sequences.

    Parameters
    ----------
    table : pandas.DataFrame
        An activation table of one evaluation variant
        (:mod:`massive_activations.measurement.store`).
    quantity : {"ratio", "ratio_mean"}
        The trajectory: ratio of means (paper Eq. 8) or mean of per-sequence ratios.
    spread : {"range95", "sd"}
        The error bars (:data:`SPREADS`).
    dtype : str, optional
        The dtype to use when the table holds several.

    Returns
    -------
    pandas.DataFrame
        Columns ``model, layer, step, value, lo, hi, n_sequences``, sorted; ``lo, hi`` NaN
        where fewer than two sequences are usable.  Rows whose ``status`` is not ``"ok"`` or
        whose statistics are not finite are left out, as in the trajectories.
    """
    if spread not in SPREADS:
        raise ValueError(f"spread must be one of {list(SPREADS)}, got {spread!r}.")
    traj = trajectories(table, dtype=dtype)
    if quantity not in ("ratio", "ratio_mean"):
        raise ValueError(f"quantity must be 'ratio' or 'ratio_mean', got {quantity!r}.")
    rows = table
    if dtype is not None:
        rows = rows[rows["dtype"].astype(str) == dtype]
    ok = np.isfinite(rows[["top1", "median"]].to_numpy(float)).all(axis=1)
    ok &= rows["median"].to_numpy(float) > 0
    if "status" in rows.columns:
        ok &= (rows["status"].astype(str) == "ok").to_numpy()
    rows = rows.loc[ok, ["model", "layer", "step"]].assign(
        _r=rows.loc[ok, "top1"].to_numpy(float) / rows.loc[ok, "median"].to_numpy(float)
    )
    g = rows.groupby(list(_KEYS), sort=True)["_r"]
    if spread == "range95":
        lo, hi = g.quantile(0.025), g.quantile(0.975)
    else:
        mean, sd = g.mean(), g.std(ddof=1)
        lo, hi = mean - sd, mean + sd
    n = g.size()
    band = pd.DataFrame({"lo": lo.where(n >= 2), "hi": hi.where(n >= 2)}).reset_index()
    out = traj[[*_KEYS, quantity, "n_sequences"]].rename(columns={quantity: "value"})
    out = out.merge(band, on=list(_KEYS), how="left")
    out = out[["model", "layer", "step", "value", "lo", "hi", "n_sequences"]]
    return out.sort_values(list(_KEYS), kind="stable").reset_index(drop=True)


def _params(row, names) -> np.ndarray:
    return np.array([float(row[n]) for n in names], dtype=float)


def curve_values(row: pd.Series | dict, steps) -> np.ndarray:
    """A fitted curve (a row of the fits table) evaluated at ``steps`` (original units).

    The hypotheses keep their form under the fits' normalisation, so the stored original
    parameters go straight into the curve (:mod:`massive_activations.fitting.hypotheses`).
    """
    h = get_hypothesis(row["hypothesis"])
    return h.func(np.asarray(steps, dtype=float), *_params(row, h.names))


def fit_covariance(row: pd.Series | dict) -> np.ndarray | None:
    """The parameters' covariance of a fits-table row, in the hypothesis's parameter order.

    ``correlation`` (flattened, ``param_names`` order) times the outer product of the
    ``<param>_stderr`` columns; ``None`` when the row has no covariance (no correlation
    stored, or a standard error that is not finite and positive).
    """
    h = get_hypothesis(row["hypothesis"])
    stored = row.get("param_names")
    names = [str(n) for n in stored] if stored is not None and len(stored) else list(h.names)
    corr = np.asarray(row.get("correlation", []), dtype=float)
    if corr.size != len(names) ** 2 or sorted(names) != sorted(h.names):
        return None
    se = np.array([float(row.get(f"{n}_stderr", np.nan)) for n in names])
    if not (np.all(np.isfinite(se)) and np.all(se > 0) and np.all(np.isfinite(corr))):
        return None
    cov = corr.reshape(len(names), len(names)) * np.outer(se, se)
    order = [names.index(n) for n in h.names]
    return cov[np.ix_(order, order)]


def _gradient(func, steps, p, cov) -> np.ndarray | None:
    """``d f(steps) / d p`` by central differences (one-sided near a domain edge)."""
    grad = np.empty((steps.size, p.size))
    scale = np.sqrt(np.diag(cov))
    for j in range(p.size):
        h = 1e-6 * (abs(p[j]) if p[j] != 0 else scale[j])
        if not h > 0:
            return None
        e = np.zeros_like(p)
        e[j] = h
        with np.errstate(all="ignore"):
            for lo, hi, span in ((p - e, p + e, 2 * h), (p, p + e, h), (p - e, p, h)):
                try:
                    d = (func(steps, *hi) - func(steps, *lo)) / span
                except ValueError:  # outside the curve's domain
                    continue
                if np.all(np.isfinite(d)):
                    grad[:, j] = d
                    break
            else:
                return None
    return grad


def curve_band(row: pd.Series | dict, steps, level: float = 0.95):
    """``(f, lo, hi)``: a fit's curve at ``steps`` and its pointwise delta-method band.

    Parameters
    ----------
    row : pandas.Series or dict
        A row of the fits table (``fits.parquet``).
    steps : array_like
        Training steps.
    level : float
        Confidence level; the band is ``f +- t((1 + level)/2, n_points - k) * se_f``.

    Returns
    -------
    tuple of numpy.ndarray
        ``lo`` and ``hi`` are NaN when the fit has no covariance, did not converge, or its
        gradient cannot be taken; ``f`` is NaN where the curve cannot be evaluated.
    """
    h = get_hypothesis(row["hypothesis"])
    steps = np.asarray(steps, dtype=float)
    nan = np.full(steps.shape, np.nan)
    p = _params(row, h.names)
    if not np.all(np.isfinite(p)):
        return nan, nan, nan.copy()
    try:
        f = h.func(steps, *p)
    except ValueError:
        return nan, nan, nan.copy()
    cov = fit_covariance(row) if str(row.get("status")) in CONVERGED else None
    grad = None if cov is None else _gradient(h.func, steps, p, cov)
    if grad is None:
        return f, nan, nan.copy()
    se = np.sqrt(np.clip(np.einsum("ni,ij,nj->n", grad, cov, grad), 0, None))
    dof = max(int(row.get("n_points", h.k + 1)) - h.k, 1)
    q = stats.t.ppf(0.5 + level / 2, dof)
    return f, f - q * se, f + q * se


def fit_curves(
    fits: pd.DataFrame,
    *,
    procedure: str = "ours",
    quantity: str = "ratio",
    hypotheses=None,
    n_grid: int = 80,
    level: float = 0.95,
) -> pd.DataFrame:
    """Every fit's curve and band on a log-spaced grid over its window.

    Parameters
    ----------
    fits : pandas.DataFrame
        The fits table (``fits.parquet``, or chapter 9's ``regrowth_fits.parquet`` with
        ``run`` renamed to ``model``).
    procedure : str
        Only this procedure's fits (``"ours"`` by default; None keeps all, which then
        must not hold one (model, layer, hypothesis) twice).
    quantity : str
        Only fits of this trajectory (when the table has a ``quantity`` column).
    hypotheses : sequence of str, optional
        Only these hypotheses, in this order (default: the table's).
    n_grid : int
        Grid steps per curve, log-spaced from ``max(window_start, 1)`` to ``t_max``.
    level : float
        The band's confidence level.

    Returns
    -------
    pandas.DataFrame
        Columns ``model, layer, hypothesis, step, value, lo, hi, status``: ``n_grid`` rows
        per fit that did not fail (see the module docstring for which get a band).
    """
    if n_grid < 2:
        raise ValueError(f"n_grid must be at least 2, got {n_grid!r}.")
    needed = ["model", "layer", "hypothesis", "status", "window_start", "t_max"]
    missing = [c for c in needed if c not in fits.columns]
    if missing:
        raise ValueError(
            f"The fits table lacks columns {missing}: read it with registry.read(..., "
            "'fits.parquet') (regrowth fits: rename 'run' to 'model')."
        )
    sel = fits
    if procedure is not None and "procedure" in sel.columns:
        sel = sel[sel["procedure"] == procedure]
    if quantity is not None and "quantity" in sel.columns:
        sel = sel[sel["quantity"] == quantity]
    if hypotheses is not None:
        sel = sel[sel["hypothesis"].isin(list(hypotheses))]
        sel = sel.sort_values(
            "hypothesis", key=lambda s: s.map(list(hypotheses).index), kind="stable"
        )
    dup = sel.duplicated(["model", "layer", "hypothesis"])
    if dup.any():
        raise ValueError(
            f"The fits table holds {int(dup.sum())} (model, layer, hypothesis) more than once: "
            "choose one procedure and quantity (procedure=..., quantity=...)."
        )
    parts = []
    for row in sel[sel["status"] != "failed"].to_dict("records"):
        t_max = float(row["t_max"])
        start = max(float(row["window_start"]), 1.0)
        if not (np.isfinite(t_max) and t_max > start):
            continue
        grid = np.geomspace(start, t_max, n_grid)
        f, lo, hi = curve_band(row, grid, level=level)
        if not np.any(np.isfinite(f)):
            continue
        parts.append(
            pd.DataFrame(
                {
                    "model": row["model"],
                    "layer": row["layer"],
                    "hypothesis": row["hypothesis"],
                    "step": grid,
                    "value": f,
                    "lo": lo,
                    "hi": hi,
                    "status": row["status"],
                }
            )
        )
    columns = ["model", "layer", "hypothesis", "step", "value", "lo", "hi", "status"]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]
