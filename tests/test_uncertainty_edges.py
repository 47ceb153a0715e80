"""Edge cases of the uncertainty module, each checked against a value worked out by hand.

The boundaries of the regime calls, the delta method on parameters of any scale (and on one
that is exactly 0), percentiles next to infinities, fits without their problem (read back
from a file), Eq. 14 fits, and the levels and seeds that :func:`assess` passes on.  Fast:
``make mutation`` runs them for every mutant of the module.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings

import numpy as np
import pytest
from scipy import special, stats
from test_uncertainty import _fit, _seqs

from massive_activations import curve
from massive_activations.fitting import uncertainty as unc
from massive_activations.fitting.intervals import expanded_tail, reported_intervals
from massive_activations.fitting.procedures import fit_series
from massive_activations.fitting.uncertainty import (
    Bootstrap,
    assess,
    bootstrap,
    bootstrap_band,
    classify,
    covariance_band,
    identifiability,
    percentile_ci,
    profile_ci,
    regime_confirmed,
    t_peak_delta,
    t_peak_identified,
)


@pytest.fixture(scope="module")
def peak():
    seqs = _seqs(7)
    return seqs, _fit(seqs)


def _params(fit) -> np.ndarray:
    return np.array([fit.params[n] for n in fit.names])


# ---- classify: each boundary of the documented rules, on both sides ----


@pytest.mark.parametrize(
    ("lo", "hi", "sign", "expected"),
    [
        # positive amplitude: early peak needs 0 < lo and hi <= t_max (t_max = 100)
        (0.0, 50.0, 1.0, "undetermined"),
        (0.5, 50.0, 1.0, "early_peak"),
        (10.0, 100.0, 1.0, "early_peak"),
        (10.0, 100.5, 1.0, "undetermined"),
        (100.0, np.inf, 1.0, "undetermined"),  # log rise needs lo > t_max
        (100.5, np.inf, 1.0, "log_rise"),
        (-5.0, 0.0, 1.0, "decay"),  # decay: hi <= 0
        (-5.0, 0.5, 1.0, "undetermined"),
        (0.5, 50.0, 0.5, "early_peak"),  # any positive sign, not only 1
        (150.0, np.inf, 0.5, "log_rise"),
        # negative amplitude: a minimum
        (-5.0, 0.0, -1.0, "log_rise"),
        (-5.0, 0.5, -1.0, "undetermined"),
        (0.0, 50.0, -1.0, "undetermined"),
        (0.5, 50.0, -1.0, "inverted"),
        (10.0, 100.0, -1.0, "inverted"),
        (10.0, 100.5, -1.0, "undetermined"),
        (150.0, np.inf, -1.0, "undetermined"),
        (0.5, 50.0, -0.5, "inverted"),
        # no amplitude, or no sign: a flat curve has no extremum
        (10.0, 50.0, 0.0, "undetermined"),
        (-5.0, -1.0, 0.0, "undetermined"),
        (150.0, np.inf, 0.0, "undetermined"),
        (10.0, 50.0, np.nan, "undetermined"),
        # one end missing
        (np.nan, -5.0, 1.0, "undetermined"),
        (150.0, np.nan, 1.0, "undetermined"),
        (np.nan, 50.0, -1.0, "undetermined"),
        (-50.0, np.nan, -1.0, "undetermined"),
    ],
)
def test_classify_at_its_boundaries(lo, hi, sign, expected):
    assert classify(lo, hi, t_max=100.0, sign=sign) == expected


def test_classify_treats_a_missing_sign_as_positive():
    assert classify(10.0, 50.0, 100.0) == "early_peak"
    assert classify(-5.0, -1.0, 100.0) == "decay"


# ---- percentile_ci: numpy's linear quantile, exact next to infinities ----


def test_percentile_ci_is_numpys_linear_quantile_on_finite_values():
    rng = np.random.default_rng(3)
    for size in (1, 2, 7, 40, 1001):
        v = rng.lognormal(0.0, 2.0, size) * rng.choice([-1.0, 1.0], size)
        for level, clusters in ((0.95, None), (0.8, None), (0.5, None), (0.95, 10), (0.9, 4)):
            a = expanded_tail(level, clusters)
            want = np.quantile(v, [a, 1 - a])
            got = percentile_ci(list(v), level, n_clusters=clusters)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    v = np.arange(10_001)
    assert percentile_ci(v) == pytest.approx((250.0, 9750.0))  # 95 % by default
    assert percentile_ci([3, 1, 2], 0.5) == pytest.approx((1.5, 2.5))  # unsorted integers


def test_percentile_ci_next_to_infinities():
    # a quantile that takes any weight from an infinite neighbour is that infinity
    assert percentile_ci([1.0, np.inf], 0.98) == (np.inf, np.inf)
    assert percentile_ci([-np.inf, 1.0], 0.98) == (-np.inf, -np.inf)
    assert percentile_ci([0.0, 1.0, 2.0, np.inf], 0.5) == (0.75, np.inf)
    assert percentile_ci([-np.inf, 0.0, 1.0, 2.0], 0.5) == (-np.inf, 1.25)
    assert percentile_ci([np.inf, np.inf, np.inf], 0.5) == (np.inf, np.inf)
    assert percentile_ci([-np.inf] * 4, 0.9) == (-np.inf, -np.inf)
    # exactly on a finite order statistic: no weight from the infinite one
    assert percentile_ci([0.0, 1.0, 2.0, np.inf, np.inf], 0.5) == (1.0, np.inf)
    assert percentile_ci([-np.inf, 0.0, 1.0, 2.0, 3.0], 0.5) == (0.0, 2.0)
    assert percentile_ci([0.0, 1.0, 2.0, 3.0, np.inf], 0.5) == (1.0, 3.0)
    assert percentile_ci([1e300, 1.7e308], 0.5) == pytest.approx((4.25e307, 1.2750e308))
    assert percentile_ci([None, 1.0, 3.0], 0.5) == pytest.approx((1.5, 2.5))  # None: missing


# ---- t_peak_delta: the delta method whatever the scale of a parameter ----


def _one_variance(fit, name, var, **params):
    """A copy of ``fit`` with ``params`` changed and a covariance only on ``name``."""
    f = copy.copy(fit)
    f.params = {**fit.params, **params}
    j = fit.names.index(name)
    f.covar = np.zeros((len(fit.names), len(fit.names)))
    f.covar[j, j] = var
    return f


@pytest.mark.parametrize("t0", [0.0, 1.2, 1e8])
def test_t_peak_delta_on_t0_is_exact_at_any_scale(peak, t0):
    # t_peak = (x*(lam) - t0) / gam (Eq. 13): its slope in t0 is -1/gam exactly
    _, fit = peak
    # A and K at exactly 0 with no variance: t_peak does not depend on them
    f = _one_variance(fit, "t0", 4.0, t0=t0, A=0.0, K=0.0)
    gam = fit.params["gam"]
    tp = float(curve.t_peak(fit.params["lam"], gam, t0))
    for nfree, level in ((fit.nfree, 0.95), (1, 0.95), (fit.nfree, 0.5)):
        f.n_points = nfree + len(fit.names)
        q = stats.t.ppf(0.5 + level / 2, nfree) * 2.0 / gam
        got = t_peak_delta(f, level)
        assert got[0] == pytest.approx(tp, rel=1e-12)
        assert got[1] == pytest.approx(tp - q, rel=1e-6, abs=1e-6 * q)
        assert got[2] == pytest.approx(tp + q, rel=1e-6, abs=1e-6 * q)


def test_t_peak_delta_with_no_or_a_tiny_variance(peak):
    _, fit = peak
    tp = t_peak_delta(fit)[0]
    assert t_peak_delta(_one_variance(fit, "t0", 0.0)) == (tp, tp, tp)
    gam, q = fit.params["gam"], stats.t.ppf(0.975, fit.nfree)
    # a variance of t_peak far below 1 (step^2) is still a variance
    lo, hi = t_peak_delta(_one_variance(fit, "t0", 1e-16))[1:]
    assert hi - lo == pytest.approx(2 * q * 1e-8 / gam, rel=1e-4)


def test_t_peak_delta_without_a_variance_is_nan_without_a_warning(peak):
    _, fit = peak
    # negative, infinite, overflowing (1e305 / gam^2), and inf * 0 (A: no slope, no bound)
    for name, var in (("t0", -1.0), ("t0", np.inf), ("t0", 1e305), ("A", np.inf)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tp, lo, hi = t_peak_delta(_one_variance(fit, name, var))
        assert np.isfinite(tp) and np.isnan(lo) and np.isnan(hi)
    # an infinite covariance of t0 with A (on which t_peak does not depend): 0 * inf
    f = _one_variance(fit, "t0", 1.0)
    f.covar[0, 0] = 1.0
    f.covar[0, 3] = f.covar[3, 0] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(t_peak_delta(f)[1:]).all()


def test_t_peak_delta_on_eq14s_a2_at_zero(peak):
    # Eq. 14: t_peak depends on A2 nonlinearly; at A2 = 0 the step is absolute
    from massive_activations.fitting.hypotheses import get_hypothesis

    eq14 = get_hypothesis("eq14")
    p = np.array(curve.eq9_to_eq14(200.0, 0.3, 1e-4, 1.2, 4.7), float)
    p[3] = 0.0  # A2
    j = eq14.names.index("A2")

    def tp(a2):
        q = p.copy()
        q[j] = a2
        return float(eq14.t_peak(q)[0])

    slope = (tp(1e-5) - tp(-1e-5)) / 2e-5
    fit = _eq14_like(peak[1], p, j, var=9.0)
    got = t_peak_delta(fit, 0.95)
    half = stats.t.ppf(0.975, fit.nfree) * 3.0 * abs(slope)
    assert got[0] == pytest.approx(tp(0.0), rel=1e-12)
    assert got[2] - got[0] == pytest.approx(half, rel=1e-5)


def _eq14_like(fit, p, j, var):
    """A copy of an Eq. 9 fit turned into an Eq. 14 one with parameters ``p``."""
    from massive_activations.fitting.hypotheses import get_hypothesis

    eq14 = get_hypothesis("eq14")

    class Problem:
        hypothesis = eq14

    f = copy.copy(fit)
    f.problem = Problem()
    f.names = eq14.names
    f.params = dict(zip(eq14.names, p, strict=True))
    f.covar = np.zeros((5, 5))
    f.covar[j, j] = var
    f.n_points = 35
    return f


# ---- fits without their problem (as read back from a file) ----


def test_a_fit_without_its_problem(peak):
    _, fit = peak
    f = copy.copy(fit)
    f.problem = None
    assert all(np.isnan(t_peak_delta(f)))
    assert not unc._asymptote_unseen(f)
    assert t_peak_identified(f) is None
    f.intervals = {n: (v - abs(v), v + abs(v)) for n, v in fit.params.items()}
    f.intervals["t_peak"] = (np.nan, np.nan)
    flags = identifiability(f)
    # without the problem no parameter is known to be a positive scale: the width rule
    # is "wider than |estimate|", and these are exactly twice as wide
    assert all("wide" in flags[n] for n in fit.names)
    assert all("unconfirmed" in flags[n] for n in fit.names)  # eq9 by its name
    assert "uncalibrated" in flags["A"]


def test_identifiability_without_standard_errors_or_with_exact_widths(peak):
    _, fit = peak
    f = copy.copy(fit)
    f.stderr = {}
    assert all("no_stderr" in fl for fl in identifiability(f).values())
    g = copy.copy(fit)
    g.problem = None
    g.intervals = {n: (v, v + abs(v)) for n, v in fit.params.items()}  # width == |estimate|
    assert not any("wide" in fl for fl in identifiability(g).values())


def test_regime_confirmed_needs_a_t_peak_interval(peak):
    _, fit = peak
    f = copy.copy(fit)
    f.status, f.regime = "ok", "early_peak"
    f.model_free = {"regime": "early_peak", "peak_lo": 0.0, "peak_hi": 1e9}
    f.intervals = {"t_peak": (1.0, 10.0)}
    assert regime_confirmed(f)
    f.intervals = {}
    assert not regime_confirmed(f)


# ---- the asymptote: the share of the way back to K, worked out by hand ----


def test_asymptote_seen_share_by_hand(peak, monkeypatch):
    _, fit = peak
    p = _params(fit)
    for t_max in (fit.t_max, 3e5, 1e6):
        f = copy.copy(fit)
        f.t_max = t_max
        tp = float(curve.t_peak(*p[1:4]))
        f_peak, f_end = curve.eq9(np.array([tp, t_max]), *p)
        share = (f_peak - f_end) / (f_peak - p[4])
        for s, unseen in ((share * (1 + 1e-6), True), (share * (1 - 1e-6), False)):
            monkeypatch.setattr(unc, "SEEN_SHARE", s)
            assert unc._asymptote_unseen(f) is unseen
        # exactly that share of the way back counts as seen ("at least")
        f_peak, f_end = fit.problem.curve(fit.theta, np.array([tp, t_max]))
        monkeypatch.setattr(unc, "SEEN_SHARE", (f_peak - f_end) / (f_peak - fit.params["K"]))
        assert not unc._asymptote_unseen(f)


def test_asymptote_with_the_extremum_at_step_0_or_flat(peak):
    _, fit = peak
    lam, gam = fit.params["lam"], fit.params["gam"]
    x_peak = float(curve.t_peak(lam, 1.0, 0.0))  # the peak's log argument (Eq. 13)
    at0 = copy.copy(fit)
    at0.params = {**fit.params, "t0": x_peak}
    assert float(curve.t_peak(lam, gam, x_peak)) == 0.0
    at0.t_max = 1e12  # long enough to have returned to K, but the peak is not inside training
    assert unc._asymptote_unseen(at0)
    flat = copy.copy(fit)
    flat.params = {**fit.params, "A": 0.0}
    flat.theta = fit.problem.to_theta(_params(flat))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert unc._asymptote_unseen(flat)  # no amplitude: nothing to return from


def test_asymptote_with_the_extremum_outside_training(peak):
    _, fit = peak
    p = _params(fit)
    tp = float(curve.t_peak(*p[1:4]))
    for lam_t0 in ({"t0": p[3] + 2 * tp * p[2]},):  # t_peak before step 0: a decay
        f = copy.copy(fit)
        f.params = {**fit.params, **lam_t0}
        assert float(curve.t_peak(*_params(f)[1:4])) < 0
        assert unc._asymptote_unseen(f)
    early = copy.copy(fit)
    early.params = {**fit.params, "t0": p[3] + (tp - 0.5) * p[2]}  # t_peak at step 0.5
    assert float(curve.t_peak(*_params(early)[1:4])) == pytest.approx(0.5, abs=1e-6)
    early.theta = early.problem.to_theta(_params(early))
    f_peak, f_end = curve.eq9(np.array([0.5, fit.t_max]), *_params(early))
    seen = (f_peak - f_end) / (f_peak - p[4]) >= unc.SEEN_SHARE
    assert unc._asymptote_unseen(early) is (not seen)


# ---- Eq. 14 fits are judged like Eq. 9 ----


@pytest.fixture(scope="module")
def eq14_fit():
    seqs = _seqs(7)
    return seqs, fit_series(
        seqs.steps, seqs.series(), hypothesis="eq14", procedure="ours", sem=seqs.sem()
    )


def test_eq14_fits_get_regimes_flags_and_t_peak_calls(eq14_fit):
    seqs, fit = eq14_fit
    assert fit.status in ("ok", "at_bound")
    p = _params(fit)
    tp = float(fit.problem.hypothesis.t_peak(p)[0])
    assert 0 < tp < fit.t_max
    for t_max in (tp * 1.01, fit.t_max, 1e9):
        f = copy.copy(fit)
        f.t_max = t_max
        f_peak, f_end = curve.eq14(np.array([tp, t_max]), *p)
        share = (f_peak - f_end) / (f_peak - fit.params["K"])
        assert unc._asymptote_unseen(f) is bool(share < unc.SEEN_SHARE)
    short = copy.copy(fit)
    short.t_max = tp * 1.01
    assert unc._asymptote_unseen(short)
    f = assess(copy.copy(fit), seqs, profile=False, model_free={"regime": "log_rise"})
    assert f.regime in ("early_peak", "undetermined") and t_peak_identified(f) is False
    assert all("unconfirmed" in fl for fl in f.flags.values())
    # an unconfirmed Eq. 14 fit is not profiled when asked to skip those
    g = assess(copy.copy(fit), seqs, model_free={"regime": "log_rise"}, profile_unconfirmed=False)
    assert g.profile == {}
    long = copy.copy(fit)
    long.t_max = 1e9  # the curve has long returned to K
    assert not unc._asymptote_unseen(long)


# ---- assess: what it passes on ----


def test_assess_defaults_draw_no_bootstrap_and_flag_at_099(peak):
    seqs, fit = peak
    f = assess(copy.copy(fit), seqs, profile=False)
    assert f.bootstrap is None and np.isnan(f.t_peak_boot).all()
    assert f.flags == identifiability(f, 0.99)
    strict = assess(copy.copy(fit), seqs, profile=False, corr_threshold=0.5)
    assert strict.flags == identifiability(strict, 0.5) != f.flags


def test_assess_passes_its_level_seed_and_quantity_on(peak):
    seqs, fit0 = peak
    fit = fit_series(
        seqs.steps, seqs.series("ratio_mean"), procedure="ours", sem=seqs.sem("ratio_mean")
    )
    f = assess(
        copy.copy(fit), seqs, quantity="ratio_mean", n_bootstrap=12, seed=5, level=0.8,
        profile=("K",),
    )  # fmt: skip
    assert f.t_peak_delta == t_peak_delta(fit, 0.8)[1:]
    want = bootstrap(fit, seqs, n=12, seed=5, quantity="ratio_mean")
    np.testing.assert_array_equal(f.bootstrap.params, want.params)
    assert f.bootstrap.seed == 5
    assert f.t_peak_boot == want.ci(None, 0.8)
    assert f.intervals == reported_intervals(f, 0.8)
    assert f.profile == profile_ci(f, ("K",), 0.8)
    d = assess(copy.copy(fit0), seqs, n_bootstrap=4, profile=False)
    assert d.bootstrap.seed == 0
    np.testing.assert_array_equal(d.bootstrap.params, bootstrap(fit0, seqs, n=4).params)


def test_assess_uses_the_bootstrap_t_peak_only_when_half_the_replicates_converged(
    peak, monkeypatch
):
    seqs, fit = peak
    full = bootstrap(fit, seqs, n=20, seed=2)

    def keep(n_ok):
        def fake(fit, seqs, *, n, seed, quantity):
            return Bootstrap(full.params[:n_ok], full.theta[:n_ok], full.t_peak[:n_ok], n, seed, 10)

        return fake

    for n_ok, used in ((10, True), (9, False), (5, False)):
        monkeypatch.setattr(unc, "bootstrap", keep(n_ok))
        f = assess(copy.copy(fit), seqs, n_bootstrap=20, profile=False)
        assert bool(np.isfinite(f.t_peak_boot).all()) is used


def test_assess_calls_a_negative_amplitude_by_its_sign(peak, monkeypatch):
    # the same t_peak interval inside training: a maximum is an early peak, a minimum inverted
    _, fit = peak

    def inside(fit, level):
        return {**{n: (v, v) for n, v in fit.params.items()}, "t_peak": (10.0, 20.0)}

    monkeypatch.setattr(unc, "reported_intervals", inside)
    for a, regime in ((1.0, "early_peak"), (-1.0, "inverted")):
        f = copy.copy(fit)
        f.params = {**fit.params, "A": a * fit.params["A"]}
        assert assess(f, profile=False).regime == regime


# ---- bootstrap ----


def test_bootstrap_needs_every_fitted_step_in_the_sequences(peak):
    seqs, fit = peak
    for keep in (
        np.arange(seqs.steps.size) != 20,
        np.arange(seqs.steps.size) < seqs.steps.size - 1,
    ):
        cut = dataclasses.replace(
            seqs, **{n: getattr(seqs, n)[keep] for n in ("steps", "top1", "top2", "top3", "median")}
        )
        with pytest.raises(ValueError, match=r"not all in seqs\.steps"):
            bootstrap(fit, cut, n=2)


def _varied_medians(seqs):
    rng = np.random.default_rng(1)
    return dataclasses.replace(seqs, median=rng.uniform(0.5, 2.0, seqs.median.shape))


def test_bootstrap_resamples_the_quantity_it_is_asked_for(peak):
    seqs, _ = peak
    seqs = _varied_medians(seqs)
    # the ratio of means and the mean of ratios differ when the medians do
    assert not np.allclose(seqs.series("ratio"), seqs.series("ratio_mean"))
    fits = {
        q: fit_series(seqs.steps, seqs.series(q), procedure="ours", sem=seqs.sem(q))
        for q in ("ratio", "ratio_mean")
    }
    b = {q: bootstrap(fits["ratio_mean"], seqs, n=3, seed=4, quantity=q) for q in fits}
    assert not np.allclose(b["ratio"].params, b["ratio_mean"].params, rtol=1e-6)
    f = assess(copy.copy(fits["ratio_mean"]), seqs, quantity="ratio_mean", n_bootstrap=3, seed=4,
               profile=False)  # fmt: skip
    np.testing.assert_array_equal(f.bootstrap.params, b["ratio_mean"].params)


def test_a_bootstrap_without_values_has_no_replicates(peak):
    seqs, fit = peak
    top = seqs.top1.copy()
    top[np.searchsorted(seqs.steps, fit.steps[3]), :] = np.nan  # a fitted step, every sequence
    b = bootstrap(fit, dataclasses.replace(seqs, top1=top), n=4)
    assert (b.n, b.n_ok) == (4, 0) and b.params.shape == (0, 5) and b.t_peak.shape == (0,)


def test_bootstrap_defaults_and_failed_replicates(peak, monkeypatch):
    seqs, fit = peak
    b = bootstrap(fit, seqs)
    assert (b.n, b.seed) == (200, 0) and b.n_ok > 150
    np.testing.assert_array_equal(b.params[:3], bootstrap(fit, seqs, n=200, seed=0).params[:3])
    # a replicate that has not converged within the budget is left out
    monkeypatch.setattr(unc, "REFIT", {"max_iter": 1, "ftol": 1e-15, "xtol": 1e-15})
    assert bootstrap(fit, seqs, n=6, seed=1).n_ok == 0


# ---- bands ----


def test_band_defaults_are_one_sigma(peak):
    seqs, fit = peak
    t = np.array([100.0, 5_000.0, 50_000.0])
    f, _, hi = covariance_band(fit, t)
    p = _params(fit)
    g = curve.eq9_jacobian(t, *p)
    sd = np.sqrt(np.einsum("ni,ij,nj->n", g, fit.covar, g))
    q = stats.t.ppf((special.erf(1 / np.sqrt(2)) + 1) / 2, fit.nfree)
    np.testing.assert_allclose(hi - f, q * sd, rtol=1e-6)
    one = copy.copy(fit)
    one.n_points = 1 + len(fit.names)
    f1, _, hi1 = covariance_band(one, t)
    np.testing.assert_allclose(hi1 - f1, stats.t.ppf(0.8413447460685429, 1) * sd, rtol=1e-6)
    flat = copy.copy(fit)
    flat.covar_norm = -np.eye(5)  # a variance that rounds below 0 is 0, not NaN
    f2, lo2, hi2 = covariance_band(flat, t)
    np.testing.assert_array_equal(lo2, f2)
    np.testing.assert_array_equal(hi2, f2)
    b = copy.copy(fit)
    b.bootstrap = bootstrap(fit, seqs, n=20, seed=1)
    curves = np.array([curve.eq9(t, *row) for row in b.bootstrap.params])
    a = expanded_tail(float(special.erf(1 / np.sqrt(2))), 10)
    np.testing.assert_allclose(bootstrap_band(b, t)[1], np.quantile(curves, a, axis=0))


def test_bootstrap_band_with_one_or_no_replicate(peak):
    seqs, fit = peak
    full = bootstrap(fit, seqs, n=3, seed=1)
    t = np.array([100.0, 5_000.0])
    one = copy.copy(fit)
    one.bootstrap = Bootstrap(full.params[:1], full.theta[:1], full.t_peak[:1], 3, 1, 10)
    _, lo, hi = bootstrap_band(one, t)
    np.testing.assert_allclose(lo, curve.eq9(t, *full.params[0]))
    np.testing.assert_allclose(hi, lo)
    none = copy.copy(fit)
    none.bootstrap = Bootstrap(full.params[:0], full.theta[:0], full.t_peak[:0], 3, 1, 10)
    with pytest.raises(ValueError, match="no bootstrap"):
        bootstrap_band(none, t)


def test_bootstrap_band_leaves_out_curves_outside_their_domain():
    # the paper's procedure leaves t0 free: a replicate whose log argument gam*t + t0 is
    # <= 0 at an asked step is left out of the band
    seqs = _seqs(7)
    fit = fit_series(seqs.steps, seqs.series(), procedure="paper")
    full = bootstrap(fit, seqs, n=4, seed=1)
    bad = full.params[:1].copy()
    bad[0, 3] = -bad[0, 2] * 50.0  # t0: the argument is negative below step 50
    params = np.vstack([full.params, bad])
    b = copy.copy(fit)
    theta = fit.problem.to_theta(params)
    b.bootstrap = Bootstrap(params, theta, curve.t_peak(*params[:, 1:4].T), 5, 1, 10)
    a = expanded_tail(float(special.erf(1 / np.sqrt(2))), 10)
    for t, rows in ((np.array([100.0, 5_000.0]), params), (np.array([10.0, 5e3]), full.params)):
        _, lo, hi = bootstrap_band(b, t)
        curves = np.array([curve.eq9(t, *row) for row in rows])
        np.testing.assert_allclose(lo, np.quantile(curves, a, axis=0), rtol=1e-9)
        np.testing.assert_allclose(hi, np.quantile(curves, 1 - a, axis=0), rtol=1e-9)


def test_bootstrap_refits_in_the_curves_domain_within_the_refit_budget(peak, monkeypatch):
    seqs, fit = peak
    seen = {}
    real = unc.batch_least_squares

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(unc, "batch_least_squares", spy)
    bootstrap(fit, seqs, n=2)
    assert seen["valid"] == fit.problem.valid
    assert {k: seen[k] for k in unc.REFIT} == unc.REFIT
