"""The explorer's tables: points with their spread over sequences, curves with their band."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from massive_activations import curve
from massive_activations.fitting.bands import (
    curve_band,
    fit_covariance,
    fit_curves,
    trajectory_points,
)
from massive_activations.fitting.fit_all import fit_all, fit_row
from massive_activations.fitting.procedures import fit_series
from massive_activations.fitting.synthetic import simulate_table
from massive_activations.fitting.uncertainty import covariance_band
from massive_activations.interactive import trajectory_explorer
from massive_activations.schedule import pythia_steps

Z95 = float(stats.norm.ppf(0.975))  # sigma of a two-sided 95 % band


def _table() -> pd.DataFrame:
    rows = []
    for step, top1s, meds in (
        (0, [2.0, 3.0, 4.0], [1.0, 1.0, 2.0]),
        (10, [10.0, 20.0, 60.0], [1.0, 2.0, 3.0]),
    ):
        for seq, (t, m) in enumerate(zip(top1s, meds, strict=True)):
            rows.append(("m", step, 1, seq, t, t, t, m, "ok"))
    rows.append(("m", 10, 1, 3, 1e6, 1e6, 1e6, 1.0, "overflow"))  # excluded
    cols = ["model", "step", "layer", "sequence", "top1", "top2", "top3", "median", "status"]
    return pd.DataFrame(rows, columns=cols)


def test_points_are_the_ratio_of_means_with_the_range_of_sequence_ratios():
    pts = trajectory_points(_table())
    assert list(pts.columns) == ["model", "layer", "step", "value", "lo", "hi", "n_sequences"]
    last = pts[pts.step == 10].iloc[0]
    assert last.value == pytest.approx(90.0 / 6.0)  # excluded row left out
    r = np.array([10.0, 10.0, 20.0])
    assert last.lo == pytest.approx(np.percentile(r, 2.5))
    assert last.hi == pytest.approx(np.percentile(r, 97.5))
    assert last.n_sequences == 3
    sd = trajectory_points(_table(), spread="sd").iloc[1]
    assert sd.lo == pytest.approx(r.mean() - r.std(ddof=1))
    assert sd.hi == pytest.approx(r.mean() + r.std(ddof=1))
    with pytest.raises(ValueError, match="spread"):
        trajectory_points(_table(), spread="iqr")


def _eq9_row(seed: int = 1):
    steps = np.array(pythia_steps(), dtype=float)
    truth = {"A": 40.0, "lam": 0.02, "gam": 0.003, "t0": 2.0, "K": 30.0}
    rng = np.random.default_rng(seed)
    y = curve.eq9(steps, **truth) * (1 + 0.03 * rng.standard_normal(steps.size))
    fit = fit_series(steps, y, hypothesis="eq9", procedure="ours", window="full")
    assert fit.status == "ok"
    return fit, fit_row(fit, model="m", layer=1)


def test_band_agrees_with_the_live_fits_analytic_covariance_band():
    fit, row = _eq9_row()
    grid = np.geomspace(1, row["t_max"], 80)
    f, lo, hi = curve_band(row, grid)
    f_ref, lo_ref, hi_ref = covariance_band(fit, grid, sigma=Z95)
    np.testing.assert_allclose(f, f_ref, rtol=1e-9)
    np.testing.assert_allclose(hi - f, hi_ref - f_ref, rtol=2e-3)
    np.testing.assert_allclose(f - lo, f_ref - lo_ref, rtol=2e-3)


def test_band_is_exact_where_the_curve_is_linear_in_the_uncertain_parameters():
    # step1 = K - A exp(-t / tau): with tau known (tiny stderr, uncorrelated) the curve
    # is linear in (K, A) and the delta method is exact.
    se = {"K": 0.5, "A": 2.0, "tau": 1e-12}
    rho = 0.3
    corr = np.array([[1, rho, 0], [rho, 1, 0], [0, 0, 1]], dtype=float)
    row = {"hypothesis": "step1", "status": "ok", "n_points": 23, "K": 3.0, "A": 10.0,
           "tau": 50.0, "param_names": ["K", "A", "tau"], "correlation": corr.ravel().tolist(),
           **{f"{k}_stderr": v for k, v in se.items()}}  # fmt: skip
    t = np.geomspace(1, 1000, 60)
    f, lo, hi = curve_band(row, t)
    g = -np.exp(-t / 50.0)  # d f / d A; d f / d K = 1
    var = se["K"] ** 2 + g**2 * se["A"] ** 2 + 2 * g * rho * se["K"] * se["A"]
    q = stats.t.ppf(0.975, 20)
    np.testing.assert_allclose(f, 3.0 + 10.0 * g)  # K + A g
    np.testing.assert_allclose(hi - f, q * np.sqrt(var), rtol=1e-6)
    np.testing.assert_allclose(f - lo, q * np.sqrt(var), rtol=1e-6)


def test_band_matches_monte_carlo_for_a_small_covariance():
    _, row = _eq9_row(seed=2)
    cov = fit_covariance(row)
    names = list(row["param_names"])
    p = np.array([row[n] for n in names])
    small = dict(row)  # shrink the covariance so that the curve is locally linear
    for n in names:
        small[f"{n}_stderr"] = row[f"{n}_stderr"] * 1e-3
    grid = np.geomspace(1, row["t_max"], 40)
    _, lo, hi = curve_band(small, grid)
    draws = np.random.default_rng(0).multivariate_normal(p, cov * 1e-6, size=4000)
    curves = np.array([curve.eq9(grid, *d) for d in draws])
    q = stats.t.ppf(0.975, row["n_points"] - len(names))
    np.testing.assert_allclose((hi - lo) / (2 * q), curves.std(axis=0), rtol=0.06)


def test_no_band_without_covariance_or_convergence_and_no_curve_for_failed_fits():
    _, row = _eq9_row()
    grid = np.geomspace(1, 1000, 10)
    f, lo, hi = curve_band({**row, "correlation": []}, grid)
    assert np.isfinite(f).all() and np.isnan(lo).all() and np.isnan(hi).all()
    f, lo, _ = curve_band({**row, "status": "not_converged"}, grid)
    assert np.isfinite(f).all() and np.isnan(lo).all()
    fits = pd.DataFrame([row, {**row, "layer": 2, "status": "failed"}]).assign(procedure="ours")
    curves = fit_curves(fits, n_grid=70)
    assert set(curves.layer) == {1}
    assert len(curves) == 70
    assert curves.step.min() == pytest.approx(max(row["window_start"], 1.0))
    assert curves.step.max() == pytest.approx(row["t_max"])
    np.testing.assert_allclose(
        np.diff(np.log(curves.step)), np.log(row["t_max"] / curves.step.min()) / 69
    )


def test_curves_from_a_fits_table_go_into_the_explorer():
    truth = {"A": 40.0, "lam": 0.02, "gam": 0.003, "t0": 2.0, "K": 30.0}
    table = simulate_table({"m": {1: truth, 2: truth}}, pythia_steps(), seed=0)
    fits = fit_all(table, hypotheses=("eq9", "step1"), procedures=("ours", "paper"),
                   n_bootstrap=0, profile=(), seed=0, progress=False, n_jobs=1)  # fmt: skip
    curves = fit_curves(fits)
    assert set(curves.hypothesis) == {"eq9", "step1"}
    ok = curves[curves.status == "ok"]
    assert (ok.lo <= ok.value).all() and (ok.value <= ok.hi).all()
    with pytest.raises(ValueError, match="more than once"):
        fit_curves(fits, procedure=None)
    pts = trajectory_points(table)
    fig = trajectory_explorer(pts, curves, log_x=True)
    assert fig.data_bytes > 0 and "eq9" in fig.html
