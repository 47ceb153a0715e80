"""Honest fit failures, bound-pinned fits, intervals that see shared noise, model-free regimes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from massive_activations.fitting import intervals
from massive_activations.fitting.procedures import PAPER, _at_bound, fit_series
from massive_activations.fitting.regimes import checkpoint_noise, model_free_regime, peak_region
from massive_activations.fitting.synthetic import (
    EXAMPLE_CURVES,
    draw_family,
    shared_noise,
    simulate_layer,
)
from massive_activations.fitting.uncertainty import assess, is_identified
from massive_activations.measurement.trajectories import LayerSequences
from massive_activations.schedule import scaled_schedule

STEPS = np.array(scaled_schedule(8000, 32), float)


def _seqs(top) -> LayerSequences:
    return LayerSequences(
        "m", 1, STEPS.astype(np.int64), np.arange(top.shape[1]), top, top, top, np.ones_like(top)
    )


def test_a_paper_fit_that_runs_out_of_evaluations_is_a_failure_not_a_number():
    top, _ = simulate_layer(STEPS, EXAMPLE_CURVES["early_peak"] | {"gam": 2e-3}, rng=0)
    y = top.mean(axis=1)
    starved = dataclasses.replace(PAPER, max_nfev=1)
    fit = fit_series(STEPS, y, procedure=starved)
    assert fit.status == "failed"
    assert fit.message.startswith(
        "not converged within curve_fit's 5 evaluations, where curve_fit raises RuntimeError ("
    )
    assert fit.params == {} and np.isnan(fit.r2)  # nothing left to average
    # with curve_fit's own budget the same data converge
    assert fit_series(STEPS, y, procedure="paper").status != "not_converged"


def test_at_bound_is_judged_in_the_parameters_own_units():
    top, _ = simulate_layer(STEPS, EXAMPLE_CURVES["early_peak"] | {"gam": 2e-3}, rng=1)
    fit = fit_series(STEPS, top.mean(axis=1), procedure="ours")
    p = fit.problem
    j = p.hypothesis.names.index("t0")
    cap = np.exp(p.upper[j])  # t0's cap in normalised units (1e4)
    theta = fit.theta.copy()
    theta[j] = np.log(cap * (1 - 2.5e-5))  # t0 = 9999.75 against a cap of 1e4
    assert _at_bound(p, theta)[j]
    theta[j] = np.log(cap * 0.9)
    assert not _at_bound(p, theta)[j]


def test_a_fit_pinned_at_a_bound_or_not_converged_has_no_regime():
    top, _ = simulate_layer(STEPS, EXAMPLE_CURVES["early_peak"] | {"gam": 2e-3}, rng=2)
    seqs = _seqs(top)
    fit = fit_series(STEPS, seqs.series(), procedure="ours", sem=seqs.sem())
    assert fit.status == "ok"
    assert assess(fit, seqs, profile=False, n_bootstrap=50).regime == "early_peak"
    for status in ("at_bound", "not_converged"):
        fit.status = status
        assert assess(fit, seqs, profile=False, n_bootstrap=50).regime == "undetermined"
    assert all(not is_identified(f) for f in fit.flags.values())  # not_converged flags all


def test_a_pure_logarithmic_rise_pins_the_decay_rate_to_its_bound():
    y = 5.0 + 3.0 * np.log(STEPS / 10 + 1.5)
    fit = fit_series(STEPS, y * (1 + 1e-4 * np.sin(STEPS)), procedure="ours")
    assert fit.status in ("at_bound", "not_converged")
    assert fit.status != "at_bound" or "lam" in fit.at_bound


def test_failed_replicates_open_the_interval():
    values = np.linspace(0.0, 1.0, 197)
    lo, hi = intervals.open_percentile_ci(values, n_failed=0)
    assert np.isfinite(lo) and np.isfinite(hi)
    lo, hi = intervals.open_percentile_ci(values, n_failed=3)  # 1.5 % failed: ends stay
    assert np.isfinite(lo) and np.isfinite(hi)
    lo, hi = intervals.open_percentile_ci(values, n_failed=10)  # 5 % failed: both ends open
    assert lo == -np.inf and hi == np.inf
    assert np.isnan(intervals.open_percentile_ci([], n_failed=0)).all()


def test_expanded_tail_matches_hesterbergs_formula():
    from scipy import stats

    a = intervals.expanded_tail(0.95, 10)
    z = np.sqrt(10 / 9) * stats.t.isf(0.025, 9)
    assert a == pytest.approx(stats.norm.sf(z))
    assert a == pytest.approx(0.0085, abs=5e-4)
    assert intervals.expanded_tail(0.95, None) == pytest.approx(0.025)


def test_ar1_sandwich_with_rho_zero_is_the_scaled_covariance():
    top, _ = simulate_layer(STEPS, EXAMPLE_CURVES["early_peak"] | {"gam": 2e-3}, rng=3)
    fit = fit_series(STEPS, top.mean(axis=1), procedure="ours", sem=top.std(axis=1) / 3)
    p = fit.problem
    cov = intervals.hac_covariance(fit, rho=0.0)
    # lmfit's covariance of theta (scaled by the reduced chi-square), from the Jacobian
    J, r = p.jacobian(fit.theta), p.residual(fit.theta)
    expected = np.linalg.inv(J.T @ J) * np.sum(r**2) / (p.n - p.hypothesis.k)
    np.testing.assert_allclose(cov, expected, rtol=1e-8)
    # a positive residual autocorrelation widens every interval
    wide = intervals.hac_covariance(fit, rho=0.6)
    assert np.all(np.diag(wide) > np.diag(cov))


def test_theta_intervals_of_log_scale_parameters_are_positive_and_asymmetric():
    top, _ = simulate_layer(STEPS, EXAMPLE_CURVES["early_peak"] | {"gam": 2e-3}, rng=4)
    fit = fit_series(STEPS, top.mean(axis=1), procedure="ours", sem=top.std(axis=1) / 3)
    out = intervals.theta_intervals(fit, intervals.hac_covariance(fit))
    for name in ("lam", "gam", "t0"):
        lo, hi = out[name]
        est = fit.params[name]
        assert 0 < lo < est < hi
        assert hi / est == pytest.approx(est / lo, rel=1e-6)  # symmetric on the log scale
    lo, hi = out["K"]
    assert lo < fit.params["K"] < hi


def test_shared_noise_is_an_ar1_with_the_asked_sd_and_correlation():
    c = shared_noise(200_000, 0.05, 0.7, rng=0)
    assert c.std() == pytest.approx(0.05, rel=0.02)
    assert np.corrcoef(c[1:], c[:-1])[0, 1] == pytest.approx(0.7, abs=0.01)


def test_the_broad_family_covers_both_regimes_and_both_schedules():
    cases = draw_family(4, seed=0)
    assert {c.regime for c in cases} == {"early_peak", "log_rise"}
    assert {c.schedule for c in cases} == {"pythia", "suite"}
    for c in cases:
        inside = c.t_peak < c.steps.max()
        assert inside == (c.regime == "early_peak")
        assert c.top1.shape == (c.steps.size, 10) and np.all(c.top1 > 0)
    again = draw_family(4, seed=0)
    assert all(np.array_equal(a.top1, b.top1) for a, b in zip(cases, again, strict=True))


def test_checkpoint_noise_recovers_independent_noise():
    """Unbiased on average over draws (one draw of 20 late points is noisy)."""
    trend = np.log(50 + STEPS / 100)
    got = [
        checkpoint_noise(
            STEPS, np.exp(trend + 0.03 * np.random.default_rng(s).standard_normal(STEPS.size))
        )
        for s in range(100)
    ]
    assert np.mean(got) == pytest.approx(0.03, rel=0.1)


def test_a_fifteen_percent_drop_with_small_noise_is_an_early_peak_not_a_log_rise():
    rng = np.random.default_rng(1)
    t = STEPS
    peak = 40.0 * np.exp(-((np.log1p(t) - np.log(2000)) ** 2) / 8)
    base = np.maximum(peak, 0) + 20
    trend = np.where(t < 2000, base, base.max() * (1 - 0.15 * (t - 2000) / (t.max() - 2000)))
    y = trend * (1 + 0.023 * rng.standard_normal(t.size))
    out = model_free_regime(t, y)
    assert out["regime"] == "early_peak" and out["drop_z"] > 3
    lo, hi = peak_region(t, y)
    assert lo <= 2000 <= hi * 2  # the peak region contains (or neighbours) the true peak


def test_a_steady_logarithmic_rise_is_a_log_rise():
    rng = np.random.default_rng(2)
    y = (10 + 5 * np.log1p(STEPS)) * (1 + 0.01 * rng.standard_normal(STEPS.size))
    out = model_free_regime(STEPS, y)
    assert out["regime"] == "log_rise" and out["slope_z"] > 2


def test_flat_noise_is_undetermined():
    rng = np.random.default_rng(3)
    y = 20 * (1 + 0.02 * rng.standard_normal(STEPS.size))
    assert model_free_regime(STEPS, y)["regime"] == "undetermined"


# --- exact checks of intervals.py against independent computations -------------------------

EARLY = EXAMPLE_CURVES["early_peak"] | {"gam": 2e-3}


def _eq9(params=EARLY, steps=STEPS):
    from massive_activations.curve import eq9

    return eq9(steps, **params)


def _noisy_fit(seed=5, cv=0.03, procedure="ours", ar=None):
    rng = np.random.default_rng(seed)
    noise = (
        cv * rng.standard_normal(STEPS.size)
        if ar is None
        else shared_noise(STEPS.size, cv, ar, rng=seed)
    )
    return fit_series(STEPS, _eq9() * (1 + noise), procedure=procedure)


@pytest.mark.parametrize("n", [1, 2, 7, 9, 41, 100, 130, 1001])
def test_default_lag_is_the_ceiling_of_the_cube_root(n):
    import math

    assert intervals.default_lag(n) == max(1, math.ceil(n ** (1 / 3)))
    assert intervals.default_lag(41) == 4


def _lag1(r):
    r = np.asarray(r, float)
    rho = np.dot(r[1:], r[:-1]) / np.dot(r, r)
    return min(max(rho + (1 + 3 * rho) / r.size, 0.0), 0.98)


def test_residual_autocorrelation_is_the_bias_corrected_lag1_coefficient():
    rng = np.random.default_rng(0)
    white = rng.standard_normal(30)
    got = intervals.residual_autocorrelation(white)
    assert 0 < got < 0.98  # unclipped here
    assert got == pytest.approx(_lag1(white), rel=1e-12)
    # a hand case: r = (1, 2, 0, 1): rho = (2 + 0 + 0) / 6 = 1/3, + (1 + 1) / 4 = 5/6
    assert intervals.residual_autocorrelation([1.0, 2.0, 0.0, 1.0]) == pytest.approx(5 / 6)
    # n = 3: rho = (1*2 + 2*1) / 6 = 2/3, + (1 + 2) / 3 -> clipped to 0.98
    assert intervals.residual_autocorrelation([1.0, 2.0, 1.0]) == 0.98
    # n = 3 unclipped: (1, -1, 1): rho = -2/3, + (1 - 2) / 3 = -1 -> 0
    assert intervals.residual_autocorrelation([1.0, -1.0, 1.0]) == 0.0
    # n = 3 inside: (1, 0, -1)... rho = 0 - 0 = 0 / 2 = 0, + 1/3
    assert intervals.residual_autocorrelation([1.0, 0.0, -1.0]) == pytest.approx(1 / 3)
    # a slow wave is clipped at 0.98, an alternating sequence at 0
    assert intervals.residual_autocorrelation(np.sin(np.linspace(0, 3, 40))) == 0.98
    alt = (-1.0) ** np.arange(40) * (1 + 0.1 * rng.random(40))
    assert intervals.residual_autocorrelation(alt) == 0.0
    # too short or all zero: no autocorrelation
    assert intervals.residual_autocorrelation([1.0, 1.0]) == 0.0
    assert intervals.residual_autocorrelation(np.zeros(10)) == 0.0


def _sandwich(J, r, rho):
    n, k = J.shape
    i = np.arange(n)
    omega = np.sum(r**2) / (n - k) * rho ** np.abs(np.subtract.outer(i, i))
    bread = np.linalg.inv(J.T @ J)
    return bread @ J.T @ omega @ J @ bread


def test_hac_covariance_is_the_ar1_sandwich():
    for ar in (None, 0.9):
        fit = _noisy_fit(seed=7, ar=ar)
        p = fit.problem
        J, r = p.jacobian(fit.theta), p.residual(fit.theta)
        np.testing.assert_allclose(
            intervals.hac_covariance(fit, rho=0.3), _sandwich(J, r, 0.3), rtol=1e-9
        )
        # default: the residuals' own rho, but at least 0.5
        rho = max(_lag1(r), 0.5)
        assert (rho > 0.5) == (ar is not None)  # both branches are exercised
        np.testing.assert_allclose(intervals.hac_covariance(fit), _sandwich(J, r, rho), rtol=1e-9)
    assert intervals.RHO_FLOOR == 0.5
    # no covariance without a usable fit or with no residual degrees of freedom
    assert intervals.hac_covariance(dataclasses.replace(fit, status="failed")) is None
    assert intervals.hac_covariance(dataclasses.replace(fit, problem=None)) is None
    assert intervals.hac_covariance(dataclasses.replace(fit, theta=None)) is None
    fit = _noisy_fit(seed=7)
    for n_points, usable in ((6, True), (5, False), (4, False), (2, False)):  # k = 5
        short = dataclasses.replace(fit, problem=_last(fit.problem, n_points))
        assert (intervals.hac_covariance(short, rho=0.0) is not None) == usable


def _last(problem, n):
    """The same hypothesis and scales on the last ``n`` points (only its shape matters)."""
    from massive_activations.fitting.problem import Problem

    return Problem(
        problem.hypothesis,
        problem.steps[-n:],
        problem.y[-n:],
        problem.sigma[-n:],
        t_scale=problem.t_scale,
        log_scale=True,
    )


def _log_t_peak_gradient(fit, theta, step=1e-4):
    """Central differences of log t_peak in theta (a step unlike the package's)."""
    p = fit.problem

    def log_tp(th):
        return np.log(p.hypothesis.t_peak(p.to_original(th[None]))[0])

    g = np.zeros(theta.size)
    for j in range(theta.size):
        h = step * max(abs(theta[j]), 1.0)
        e = np.zeros(theta.size)
        e[j] = h
        g[j] = (log_tp(theta + e) - log_tp(theta - e)) / (2 * h)
    return g


@pytest.mark.parametrize("level", [0.95, 0.8])
def test_theta_intervals_match_a_delta_method_computed_here(level):
    from scipy import stats

    fit = _noisy_fit(seed=11)
    p, theta = fit.problem, fit.theta
    cov = intervals.hac_covariance(fit, rho=0.4)
    out = intervals.theta_intervals(fit, cov, level)
    assert set(out) == {*fit.names, "t_peak"}
    q = stats.t.isf((1 - level) / 2, STEPS.size - 5)
    se = np.sqrt(np.diag(cov))
    scale = {"A": p.y_scale, "K": p.y_scale}  # eq9: A = s A~, K = y_min + s K~
    for j, name in enumerate(fit.names):
        est = fit.params[name]
        if p.log[j]:  # lam, gam, t0: exp of theta +- q se, times the unit
            want = (est * np.exp(-q * se[j]), est * np.exp(q * se[j]))
        else:
            want = (est - q * se[j] * scale[name], est + q * se[j] * scale[name])
        assert out[name] == pytest.approx(want, rel=1e-9), name
    tp = p.hypothesis.t_peak(p.to_original(theta[None]))[0]
    assert 0 < tp < STEPS.max()
    g = _log_t_peak_gradient(fit, theta)
    half = q * np.sqrt(g @ cov @ g)
    assert out["t_peak"] == pytest.approx((tp * np.exp(-half), tp * np.exp(half)), rel=1e-5)
    # no covariance: NaN everywhere
    none = intervals.theta_intervals(fit, None)
    assert set(none) == set(out) and np.isnan(list(none.values())).all()


def test_theta_intervals_of_eq14_mix_parameters_by_the_delta_method():
    from scipy import stats

    y = _eq9() * (1 + 0.03 * np.random.default_rng(2).standard_normal(STEPS.size))
    fit = fit_series(STEPS, y, hypothesis="eq14", procedure="ours")
    p, theta = fit.problem, fit.theta
    cov = intervals.hac_covariance(fit, rho=0.0)
    out = intervals.theta_intervals(fit, cov)
    q = stats.t.isf(0.025, p.n - 5)
    # Jacobian of the original parameters in theta, by central differences
    D = np.zeros((5, 5))
    for j in range(5):
        e = np.zeros(5)
        e[j] = 1e-6
        D[:, j] = (p.to_original(theta + e) - p.to_original(theta - e)) / 2e-6
    cov_orig = D @ cov @ D.T
    j = fit.names.index("A2")  # A2 = s (A2~ - A1~ log T) mixes A1 and A2
    half = q * np.sqrt(cov_orig[j, j])
    assert out["A2"] == pytest.approx((fit.params["A2"] - half, fit.params["A2"] + half), rel=1e-5)
    g = _log_t_peak_gradient(fit, theta)
    tp = p.hypothesis.t_peak(p.to_original(theta[None]))[0]
    half = q * np.sqrt(g @ cov @ g)
    assert out["t_peak"] == pytest.approx((tp * np.exp(-half), tp * np.exp(half)), rel=1e-4)
    # a tiny covariance: the delta method still (no floor on the variance)
    small = intervals.theta_intervals(fit, cov * 1e-12)["A2"]
    half = q * np.sqrt(cov_orig[j, j] * 1e-12)
    assert small == pytest.approx((fit.params["A2"] - half, fit.params["A2"] + half), rel=1e-9)


def test_open_percentile_ci_on_hand_counted_samples():
    v = np.arange(1.0, 11.0)  # 1..10; level 0.8: tails of 10 %
    # inverted CDF: the smallest value whose share of the sample reaches the tail
    assert intervals.open_percentile_ci(v, 0, 0.8) == (1.0, 9.0)
    assert intervals.open_percentile_ci([*v, np.nan], 0, 0.8) == (1.0, 9.0)  # NaN dropped
    # one failure: lower over (-inf, 1..10): 2/11 >= 0.1 -> 1; upper over (1..10, inf): 10
    assert intervals.open_percentile_ci(v, 1, 0.8) == (1.0, 10.0)
    # two failures: 2/12 >= 0.1 -> the second -inf; 11/12 >= 0.9 -> the first +inf
    assert intervals.open_percentile_ci(v, 2, 0.8) == (-np.inf, np.inf)
    assert intervals.open_percentile_ci([], 3) == (-np.inf, np.inf)
    # 198 values 0..197: plain 2.5 % tails: ceil(4.95) = 5th and ceil(193.05) = 194th value;
    # Hesterberg's for 10 clusters, 0.85 %: ceil(1.69) = 2nd and ceil(196.3) = 197th
    w = np.arange(198.0)
    assert intervals.open_percentile_ci(w, 0) == (4.0, 193.0)
    assert intervals.open_percentile_ci(w, 0, n_clusters=10) == (1.0, 196.0)
    assert intervals.open_percentile_ci(w, 0, level=0.9) == (9.0, 188.0)  # 9.9, 188.1


def test_expanded_tail_for_few_clusters_and_other_levels():
    from scipy import stats

    assert intervals.expanded_tail(0.95, 2) == pytest.approx(0.025)  # too few: plain
    assert intervals.expanded_tail(0.9, None) == pytest.approx(0.05)
    z = np.sqrt(3 / 2) * stats.t.isf(0.05, 2)
    assert intervals.expanded_tail(0.9, 3) == pytest.approx(stats.norm.sf(z))


def test_union_is_the_smallest_interval_holding_all():
    assert intervals.union((1.0, 2.0), (0.0, 1.5)) == (0.0, 2.0)
    assert intervals.union((1.0, 2.0), (1.2, 3.0), (0.5, 1.0)) == (0.5, 3.0)
    assert intervals.union((1.0, 2.0)) == (1.0, 2.0)
    assert intervals.union((-np.inf, 2.0), (0.0, 3.0)) == (-np.inf, 3.0)
    assert np.isnan(intervals.union((1.0, np.nan), (0.0, 1.0))).all()
    assert np.isnan(intervals.union()).all()


def _resampled(fit, n, seed, block):
    """The data sets of a moving-block bootstrap, built here: (Y, normalised Z, weights W)."""
    p = fit.problem
    f = p.curve(fit.theta)
    m, k = p.n, 5
    relative = p.sigma is not None
    e = p.y / f - 1 if relative else p.y - f
    e = (e - np.mean(e)) * np.sqrt(m / (m - k))
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, m, size=(n, -(-m // block)))
    Y = np.empty((n, m))
    for i in range(n):
        idx = [(s + d) % m for s in starts[i] for d in range(block)][:m]
        Y[i] = f * (1 + e[idx]) if relative else f + e[idx]
    Z = (Y - p.y_min) / p.y_scale
    W = p.y_scale / (np.median(p.sigma / np.abs(p.y)) * np.abs(Y)) if relative else np.ones_like(Y)
    return Y, Z, W


@pytest.mark.parametrize("procedure", ["ours", "paper"])
def test_block_bootstrap_resamples_blocks_of_the_inflated_residuals(procedure, monkeypatch):
    fit = _noisy_fit(seed=3, procedure=procedure)
    assert (fit.problem.sigma is not None) == (procedure == "ours")  # both residual kinds
    seen = {}
    batch = fit.problem.batch

    def spy(Z, W=None):
        seen["Z"], seen["W"] = np.array(Z), np.array(W)
        return batch(Z, W)

    monkeypatch.setattr(fit.problem, "batch", spy)
    for block, used in ((None, intervals.default_lag(STEPS.size) + 1), (3, 3), (0, 1)):
        boot = intervals.block_bootstrap(fit, n=7, seed=4, block=block)
        assert (boot.n, boot.block, boot.seed) == (7, used, 4)
        _, Z, W = _resampled(fit, 7, 4, used)
        np.testing.assert_allclose(seen["Z"], Z, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(seen["W"], W, rtol=1e-12)
        assert boot.n_ok == 7 and boot.params.shape == (7, 5) and boot.t_peak.shape == (7,)


def test_block_bootstrap_replicates_of_exact_data_return_the_estimate():
    for procedure in ("ours", "paper"):
        fit = fit_series(STEPS, _eq9(), procedure=procedure)
        boot = intervals.block_bootstrap(fit, n=20, seed=1)
        assert boot.n_ok == 20
        truth = np.array([EARLY[n] for n in fit.names])
        np.testing.assert_allclose(boot.params, np.tile(truth, (20, 1)), rtol=1e-5)
        tp = fit.problem.hypothesis.t_peak(truth[None])[0]
        np.testing.assert_allclose(boot.t_peak, tp, rtol=1e-5)
        assert boot.ci(0) == pytest.approx((EARLY["A"], EARLY["A"]), rel=1e-5)
        assert boot.ci() == pytest.approx((tp, tp), rel=1e-5)


def test_block_bootstrap_spread_is_the_standard_error_and_depends_on_the_seed():
    fit = _noisy_fit(seed=5)
    boot = intervals.block_bootstrap(fit, n=200, seed=0, block=1)
    again = intervals.block_bootstrap(fit, n=200, seed=0, block=1)
    other = intervals.block_bootstrap(fit, n=200, seed=1, block=1)
    np.testing.assert_array_equal(boot.params, again.params)
    assert not np.array_equal(boot.params, other.params)
    # independent noise, blocks of one: the spread of each parameter is of the order of the
    # (independent-residual) covariance standard error
    ratio = boot.params.std(axis=0) / np.array([fit.stderr[n] for n in fit.names])
    assert np.all((ratio > 0.7) & (ratio < 1.5)), ratio
    # a failed fit has no bootstrap
    assert intervals.block_bootstrap(dataclasses.replace(fit, status="failed")) is None
    assert intervals.block_bootstrap(dataclasses.replace(fit, problem=None)) is None
    assert intervals.block_bootstrap(dataclasses.replace(fit, theta=None)) is None


def test_failed_block_bootstrap_replicates_open_its_interval():
    values = np.arange(1.0, 11.0)
    boot = intervals.BlockBootstrap(
        np.column_stack([values, -values]), values * 2, n=12, block=3, seed=9
    )
    assert (boot.n, boot.n_ok, boot.block, boot.seed) == (12, 10, 3, 9)
    assert boot.ci(0, level=0.8) == (-np.inf, np.inf)  # 2 of 12 failed: both ends open
    boot.n = 11  # one failed: 2/11 and 10/11 of the sample
    assert boot.ci(0, level=0.8) == (1.0, 10.0)
    assert boot.ci(1, level=0.8) == (-10.0, -1.0)
    assert boot.ci(None, level=0.8) == (2.0, 20.0)
    boot.n = 10
    assert boot.ci(0, level=0.8) == (1.0, 9.0)
    assert boot.ci(0) == (1.0, 10.0)  # 95 %


def _seq_bootstrap(fit, n, n_ok, seed=0):
    from massive_activations.fitting.uncertainty import Bootstrap

    rng = np.random.default_rng(seed)
    est = np.array([fit.params[n] for n in fit.names])
    P = est * (1 + 0.2 * rng.standard_normal((n_ok, est.size)))
    tp = fit.problem.hypothesis.t_peak(P)
    return Bootstrap(P, fit.problem.to_theta(P), tp, n, seed, 10)


def test_reported_intervals_are_the_union_of_hac_and_sequence_bootstrap():
    fit = _noisy_fit(seed=8)
    for level in (None, 0.8):  # None: the default, 95 %
        args = () if level is None else (level,)
        level = level or 0.95
        hac = intervals.theta_intervals(fit, intervals.hac_covariance(fit), level)
        for n_ok, n in ((100, 100), (90, 100), (50, 100)):
            fit.bootstrap = _seq_bootstrap(fit, n, n_ok)
            got = intervals.reported_intervals(fit, *args)
            for name in (*fit.names, "t_peak"):
                j = None if name == "t_peak" else fit.names.index(name)
                sample = fit.bootstrap.t_peak if j is None else fit.bootstrap.params[:, j]
                lo, hi = intervals.open_percentile_ci(sample, n - n_ok, level, n_clusters=10)
                want = (min(lo, hac[name][0]), max(hi, hac[name][1]))
                assert got[name] == want, (name, n_ok, level)
            assert np.isinf(got["A"]).all() == (n_ok < n)  # 10 % failed > 0.85 % tail: open
    # a bootstrap with more than half failed, or none: not identified
    fit.bootstrap = _seq_bootstrap(fit, 100, 49)
    assert np.isnan(list(intervals.reported_intervals(fit).values())).all()
    fit.bootstrap = None
    out = intervals.reported_intervals(fit)
    assert set(out) == {*fit.names, "t_peak"} and np.isnan(list(out.values())).all()


def test_theta_intervals_of_a_negative_t_peak_zero_and_huge_covariances():
    import warnings

    from scipy import stats

    fit = _noisy_fit(seed=11)
    p = fit.problem
    cov = intervals.hac_covariance(fit, rho=0.4)
    q = stats.t.isf(0.025, STEPS.size - 5)
    # t0 = 10 puts Eq. 9's peak before step 0: the delta method on t_peak itself
    late = dataclasses.replace(fit, theta=p.to_theta(np.array([200.0, 0.3, 2e-3, 10.0, 5.0])))

    def tp(th):
        return p.hypothesis.t_peak(p.to_original(th[None]))[0]

    theta = late.theta
    g = np.array([(tp(theta + 1e-5 * e) - tp(theta - 1e-5 * e)) / 2e-5 for e in np.eye(5)])
    t = tp(theta)
    assert t < 0
    half = q * np.sqrt(g @ cov @ g)
    got = intervals.theta_intervals(late, cov)["t_peak"]
    assert got == pytest.approx((t - half, t + half), rel=1e-5)
    # a zero covariance: every interval is the estimate itself
    zero = intervals.theta_intervals(fit, np.zeros((5, 5)))
    t = tp(fit.theta)
    assert zero["t_peak"] == pytest.approx((t, t), rel=1e-12)
    assert zero["lam"] == pytest.approx((fit.params["lam"],) * 2, rel=1e-12)
    # an enormous one: the log-scale ends overflow to 0 and inf, quietly
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        huge = intervals.theta_intervals(fit, np.eye(5) * 1e8)
    assert huge["lam"] == (0.0, np.inf) and huge["t_peak"] == (0.0, np.inf)


def test_a_sandwich_with_a_negative_variance_is_refused():
    fit = _noisy_fit(seed=5)
    p = fit.problem
    J, r = p.jacobian(fit.theta), p.residual(fit.theta)
    assert np.any(np.diag(_sandwich(J, r, -2.0)) <= 0)  # rho = -2 is no covariance
    assert intervals.hac_covariance(fit, rho=-2.0) is None


def test_open_percentile_ci_of_one_value():
    assert intervals.open_percentile_ci([3.0], 0) == (3.0, 3.0)
    assert intervals.open_percentile_ci([np.nan, 3.0], 0) == (3.0, 3.0)


def test_block_bootstrap_defaults_small_samples_and_impossible_replicates(monkeypatch):
    from massive_activations.fitting.problem import Problem

    fit = _noisy_fit(seed=3)
    boot = intervals.block_bootstrap(fit)
    assert (boot.n, boot.seed, boot.block) == (200, 0, 5)
    np.testing.assert_array_equal(
        boot.params, intervals.block_bootstrap(fit, n=200, seed=0, block=5).params
    )
    truth = np.array([EARLY[n] for n in fit.names])
    seen = {}

    def spying(problem):
        batch = problem.batch

        def spy(Z, W=None):
            seen["Z"] = np.array(Z)
            return batch(Z, W)

        monkeypatch.setattr(problem, "batch", spy)
        return problem

    # six points, k = 5: the residuals are inflated by sqrt(6 / 1)
    steps6, y6 = STEPS[-6:], _eq9(steps=STEPS[-6:]) * (1 + 0.01 * np.array([1, -1, 2, 0, -2, 1]))
    p6 = spying(Problem("eq9", steps6, y6, 0.01 * y6, log_scale=True))
    six = dataclasses.replace(fit, problem=p6, theta=p6.to_theta(truth))
    intervals.block_bootstrap(six, n=4, seed=2, block=2)
    np.testing.assert_allclose(seen["Z"], _resampled(six, 4, 2, 2)[1], rtol=1e-10, atol=1e-12)
    # curve values below 1 are fine; a non-positive curve has no relative residuals
    small = _eq9() / 100
    ps = Problem("eq9", STEPS, small, 0.01 * small, log_scale=True)
    tiny = dataclasses.replace(fit, problem=ps, theta=ps.to_theta(truth / [100, 1, 1, 1, 100]))
    assert np.min(ps.curve(tiny.theta)) < 1
    assert intervals.block_bootstrap(tiny, n=10).n_ok == 10
    below = dataclasses.replace(
        tiny, theta=ps.to_theta(truth / [100, 1, 1, 1, 100] - [0, 0, 0, 0, 1])
    )
    assert np.min(ps.curve(below.theta)) <= 0
    assert intervals.block_bootstrap(below, n=10) is None
    # one point at 2 % of the curve: replicates that draw it go negative and count as failed
    y = _eq9() * (1 + 0.01 * np.random.default_rng(0).standard_normal(STEPS.size))
    y[20] = 0.02 * _eq9()[20]
    po = spying(Problem("eq9", STEPS, y, 0.01 * y, log_scale=True))
    out = dataclasses.replace(fit, problem=po, theta=po.to_theta(truth))
    boot = intervals.block_bootstrap(out, n=40, seed=3)
    Y = _resampled(out, 40, 3, 5)[0]
    positive = np.all(Y > 0, axis=1)
    assert 0 < positive.sum() < 40
    assert 0 < boot.n_ok <= positive.sum()


def test_theta_intervals_of_a_t_peak_below_one_step_use_the_log_scale():
    from scipy import stats

    fit = _noisy_fit(seed=11)
    p = fit.problem
    cov = intervals.hac_covariance(fit, rho=0.4)
    # Eq. 9's t_peak falls by 1 / gam per unit of t0: t0 here puts it at half a step
    tp0 = p.hypothesis.t_peak(np.array([[200.0, 0.3, 2e-3, 1.2, 5.0]]))[0]
    early = np.array([200.0, 0.3, 2e-3, 1.2 + (tp0 - 0.5) * 2e-3, 5.0])
    soon = dataclasses.replace(fit, theta=p.to_theta(early))
    t = p.hypothesis.t_peak(early[None])[0]
    assert 0 < t < 1
    g = _log_t_peak_gradient(soon, soon.theta, step=1e-7)
    half = stats.t.isf(0.025, STEPS.size - 5) * np.sqrt(g @ cov @ g)
    got = intervals.theta_intervals(soon, cov)["t_peak"]
    assert got == pytest.approx((t * np.exp(-half), t * np.exp(half)), rel=1e-3)


def test_theta_intervals_without_a_finite_t_peak():
    fit = _noisy_fit(seed=11)
    p = fit.problem
    # lam = 0: Eq. 9 rises logarithmically for ever, t_peak is infinite
    flat = dataclasses.replace(fit, theta=p.to_theta(np.array([200.0, 0.0, 2e-3, 1.2, 5.0])))
    assert p.hypothesis.t_peak(p.to_original(flat.theta[None]))[0] == np.inf
    out = intervals.theta_intervals(flat, intervals.hac_covariance(fit, rho=0.4))
    assert set(out) == {*fit.names, "t_peak"}
    assert np.isnan(out["t_peak"]).all()
    assert np.isfinite(out["A"]).all()


def test_theta_intervals_use_the_t_quantile_of_the_residual_degrees_of_freedom():
    from scipy import stats

    fit = _noisy_fit(seed=11)
    cov = intervals.hac_covariance(fit, rho=0.4)
    se_k = np.sqrt(cov[4, 4]) * fit.problem.y_scale  # K = y_min + s K~
    for n_points, dof in ((41, 36), (7, 2), (6, 1), (5, 1)):  # at least one
        out = intervals.theta_intervals(dataclasses.replace(fit, n_points=n_points), cov)
        half = stats.t.isf(0.025, dof) * se_k
        assert out["K"] == pytest.approx((fit.params["K"] - half, fit.params["K"] + half))


def test_theta_intervals_give_no_t_peak_interval_without_a_finite_variance():
    fit = _noisy_fit(seed=11)
    # a negative and an infinite variance of log t_peak (lam moves t_peak)
    for cov in (-1e-6 * np.eye(5), np.diag([0.0, np.inf, 0.0, 0.0, 0.0])):
        g = _log_t_peak_gradient(fit, fit.theta)
        assert np.isinf(g @ cov @ g) or g @ cov @ g < 0
        with np.errstate(invalid="ignore"):
            out = intervals.theta_intervals(fit, cov)
        assert set(out) == {*fit.names, "t_peak"}
        assert np.isnan(out["t_peak"]).all()


def test_block_bootstrap_refuses_a_curve_that_touches_zero_under_relative_weights(monkeypatch):
    # relative residuals y / f - 1 do not exist where the fitted curve is exactly 0
    fit = _noisy_fit(seed=3)
    assert fit.problem.sigma is not None
    curve = fit.problem.curve

    def touching_zero(theta):
        f = np.array(curve(theta), float)
        f[7] = 0.0
        return f

    monkeypatch.setattr(fit.problem, "curve", touching_zero)
    assert intervals.block_bootstrap(fit, n=5, seed=1) is None


def test_block_bootstrap_of_an_absolute_fit_keeps_replicates_that_go_negative(monkeypatch):
    # absolute residuals: y* = f + e* may be <= 0 and is refitted as it is (only relative
    # replicates need y* > 0)
    from massive_activations.fitting.problem import Problem

    fit = _noisy_fit(seed=3, procedure="paper")
    truth = np.array([EARLY[n] for n in fit.names])
    y = _eq9() * (1 + 0.01 * np.random.default_rng(0).standard_normal(STEPS.size))
    y[20] -= 3 * y.max()  # a residual that drives every replicate point it lands on below 0
    p = Problem("eq9", STEPS, y, None, bounds="paper")
    seen = {}
    batch = p.batch

    def spy(Z, W=None):
        seen["Z"], seen["W"] = np.array(Z), np.array(W)
        return batch(Z, W)

    monkeypatch.setattr(p, "batch", spy)
    absolute = dataclasses.replace(fit, problem=p, theta=p.to_theta(truth))
    boot = intervals.block_bootstrap(absolute, n=30, seed=2)
    Y, Z, _ = _resampled(absolute, 30, 2, intervals.default_lag(STEPS.size) + 1)
    assert 0 < np.any(Y <= 0, axis=1).sum() < 30
    np.testing.assert_allclose(seen["Z"], Z, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(seen["W"], np.ones_like(Z))
    assert boot.n == 30


def test_block_bootstrap_refits_with_the_problems_validity_and_the_refit_settings(monkeypatch):
    fit = _noisy_fit(seed=3)
    seen = {}
    solver = intervals.batch_least_squares

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return solver(*args, **kwargs)

    monkeypatch.setattr(intervals, "batch_least_squares", spy)
    intervals.block_bootstrap(fit, n=4, seed=0)
    assert seen.pop("valid") == fit.problem.valid
    assert seen == intervals.REFIT


@pytest.mark.parametrize("t_peak", [1e-6, 0.0, -1e-6])
def test_theta_intervals_of_a_t_peak_at_zero_use_t_peak_itself(t_peak):
    # within a finite-difference step of 0 the perturbed t_peak changes sign: no log scale,
    # the delta method on t_peak (a log-scale interval would need every neighbour > 0)
    from scipy import stats

    fit = _noisy_fit(seed=11)
    p = fit.problem
    cov = intervals.hac_covariance(fit, rho=0.4)
    tp0 = p.hypothesis.t_peak(np.array([[200.0, 0.3, 2e-3, 1.2, 5.0]]))[0]
    at = np.array([200.0, 0.3, 2e-3, 1.2 + (tp0 - t_peak) * 2e-3, 5.0])  # 1 / gam per t0
    zero = dataclasses.replace(fit, theta=p.to_theta(at))

    def tp(th):
        return p.hypothesis.t_peak(p.to_original(th[None]))[0]

    t = tp(zero.theta)
    assert abs(t - t_peak) < 1e-9
    g = np.array(
        [(tp(zero.theta + 1e-6 * e) - tp(zero.theta - 1e-6 * e)) / 2e-6 for e in np.eye(5)]
    )
    assert g @ cov @ g > 0
    half = stats.t.isf(0.025, STEPS.size - 5) * np.sqrt(g @ cov @ g)
    lo, hi = intervals.theta_intervals(zero, cov)["t_peak"]
    assert lo == pytest.approx(t - half, rel=1e-4) and hi == pytest.approx(t + half, rel=1e-4)
    assert lo < 0 < hi


def _with(problem, **methods):
    """A copy of ``problem`` whose named methods are replaced (a stand-in, not a refit)."""
    import copy

    q = copy.copy(problem)
    for name, fn in methods.items():
        object.__setattr__(q, name, fn)
    return q


def test_hac_covariance_needs_finite_residuals_and_jacobian():
    fit = _noisy_fit(seed=7)
    p = fit.problem
    r = p.residual(fit.theta)
    J = p.jacobian(fit.theta)
    for bad_r, bad_J in ((True, False), (False, True)):
        rr, JJ = r.copy(), J.copy()
        if bad_r:
            rr[3] = np.nan
        if bad_J:
            JJ[3, 1] = np.inf
        q = _with(p, residual=lambda theta, rr=rr: rr, jacobian=lambda theta, JJ=JJ: JJ)
        assert intervals.hac_covariance(dataclasses.replace(fit, problem=q)) is None


def test_block_bootstrap_needs_a_positive_curve_for_relative_residuals():
    fit = _noisy_fit(seed=7)
    p = fit.problem
    f = p.curve(fit.theta)
    for value, usable in ((0.0, False), (-1.0, False), (1e-9, True)):
        g = f.copy()
        g[5] = value
        q = _with(
            p, curve=lambda theta, steps=None, g=g: g if steps is None else p.curve(theta, steps)
        )
        got = intervals.block_bootstrap(dataclasses.replace(fit, problem=q), n=3)
        assert (got is not None) is usable


def test_block_bootstrap_keeps_negative_values_of_an_absolute_fit():
    # the paper's unweighted fit of a trajectory that crosses zero: replicates with
    # negative values are as good as any (only relative residuals need y > 0)
    y = _eq9() - 20.0
    assert np.any(y < 0)
    fit = fit_series(STEPS, y, procedure="paper", start=EARLY | {"K": EARLY["K"] - 20.0})
    assert fit.status == "ok" and fit.problem.sigma is None
    boot = intervals.block_bootstrap(fit, n=8, seed=1)
    assert boot.n_ok == 8


def test_block_bootstrap_refits_in_the_curves_domain_within_the_refit_budget(monkeypatch):
    fit = _noisy_fit(seed=7)
    seen = {}
    real = intervals.batch_least_squares

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(intervals, "batch_least_squares", spy)
    intervals.block_bootstrap(fit, n=2)
    assert seen["valid"] == fit.problem.valid
    assert {k: seen[k] for k in intervals.REFIT} == intervals.REFIT
    # a replicate that has not converged within the budget fails
    monkeypatch.setattr(intervals, "REFIT", {"max_iter": 1, "ftol": 1e-15, "xtol": 1e-15})
    assert intervals.block_bootstrap(fit, n=4).n_ok == 0
