"""Certified-value tests of the fits (as lmfit tests itself against NIST StRD), and the parts.

Certified values are synthetic: Eq. 9 curves with known parameters in both regimes
(:data:`~massive_activations.fitting.synthetic.EXAMPLE_CURVES`) on Pythia's 154-checkpoint schedule
and a scaled one (53 checkpoints).  Tolerances:

* noise-free data: every parameter within a relative ``5e-5`` of the truth (>= 4 significant
  digits), from at least one of two starting points (the procedure's own, and the truth
  scaled by 1.1, as NIST's "start 2");
* the chi-square at the true parameters equals the injected noise's sum of squares to a
  relative ``1e-10``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal
from scipy.optimize import least_squares

from massive_activations import curve
from massive_activations.fitting import alternatives
from massive_activations.fitting.batch_lsq import batch_least_squares
from massive_activations.fitting.hypotheses import HYPOTHESES, get_hypothesis
from massive_activations.fitting.problem import Problem
from massive_activations.fitting.procedures import OURS, fit_series, fit_window, get_procedure
from massive_activations.fitting.synthetic import EXAMPLE_CURVES, simulate_layer
from massive_activations.schedule import pythia_steps, scaled_schedule

SCHEDULES = {
    "pythia": np.array(pythia_steps(), float),
    "scaled": np.array(scaled_schedule(143_000, 40), float),
}
DIGITS_RTOL = 5e-5


def _truth(hypothesis: str, regime: str) -> dict:
    p = EXAMPLE_CURVES[regime]
    if hypothesis == "eq9":
        return dict(p)
    return dict(zip(curve.EQ14_NAMES, map(float, curve.eq9_to_eq14(**p)), strict=True))


@pytest.mark.parametrize("procedure", ["paper", "ours"])
@pytest.mark.parametrize("hypothesis", ["eq9", "eq14"])
@pytest.mark.parametrize("regime", list(EXAMPLE_CURVES))
@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_noise_free_fit_recovers_certified_parameters(schedule, regime, hypothesis, procedure):
    steps = SCHEDULES[schedule]
    y = curve.eq9(steps, **EXAMPLE_CURVES[regime])
    truth = _truth(hypothesis, regime)
    errors = []
    for start in (None, {k: 1.1 * v for k, v in truth.items()}):
        fit = fit_series(
            steps, y, hypothesis=hypothesis, procedure=procedure, start=start, window="full"
        )
        if fit.params:
            errors.append(max(abs(fit.params[k] / v - 1) for k, v in truth.items()))
    assert min(errors) < DIGITS_RTOL, errors


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("hypothesis", ["eq9", "eq14"])
@pytest.mark.parametrize("regime", list(EXAMPLE_CURVES))
def test_chisqr_at_true_parameters_equals_injected_noise(regime, hypothesis, weighted):
    steps = SCHEDULES["pythia"]
    top, truth_curve = simulate_layer(steps, EXAMPLE_CURVES[regime], rng=3)
    y = top.mean(axis=1)
    noise = y - truth_curve
    sigma = 0.02 * y if weighted else None
    problem = Problem(hypothesis, steps, y, sigma, "ours", log_scale=weighted)
    truth = _truth(hypothesis, regime)
    expected = np.sum((noise / sigma) ** 2) if weighted else np.sum(noise**2)
    got = problem.chisqr([truth[n] for n in problem.hypothesis.names])
    assert got == pytest.approx(expected, rel=1e-10)


CASES = {
    "eq9": EXAMPLE_CURVES["early_peak"],
    "eq14": _truth("eq14", "early_peak"),
    "step1": {"K": 50.0, "A": 40.0, "tau": 20_000.0},
    "step2": {"K": 50.0, "A": 40.0, "w": 1e-4, "zeta": 0.4},
}


@pytest.mark.parametrize("log_scale", [False, True])
@pytest.mark.parametrize("name", list(HYPOTHESES))
def test_normalisation_maps_every_parameter_back_exactly(name, log_scale):
    h = get_hypothesis(name)
    steps = SCHEDULES["scaled"]
    p = [CASES[name][n] for n in h.names]
    y = h.func(steps, *p)
    problem = Problem(h, steps, y, None, "ours", log_scale=log_scale)
    theta = problem.to_theta(p)
    assert np.allclose(problem.to_original(theta), p, rtol=1e-12)
    # the normalised curve, mapped back, is the original-unit curve
    assert np.allclose(problem.curve(theta), y, rtol=1e-10)
    assert np.allclose(problem.residual(theta), 0, atol=1e-9)


def test_covariance_matches_an_independent_original_unit_computation():
    steps = SCHEDULES["scaled"]
    top, _ = simulate_layer(steps, EXAMPLE_CURVES["early_peak"], rng=1)
    y = top.mean(axis=1)
    fit = fit_series(steps, y, hypothesis="eq9", procedure="paper")
    p = [fit.params[n] for n in curve.EQ9_NAMES]
    J = curve.eq9_jacobian(steps, *p)
    resid = y - curve.eq9(steps, *p)
    cov = np.linalg.inv(J.T @ J) * np.sum(resid**2) / (steps.size - 5)  # scale_covar=True
    assert np.allclose(fit.covar, cov, rtol=1e-4)
    assert fit.redchi == pytest.approx(np.sum(resid**2) / (steps.size - 5))


def test_lmfit_runs_least_squares_on_the_parameters_with_our_jacobian():
    steps = SCHEDULES["scaled"]
    fit = fit_series(steps, curve.eq9(steps, **EXAMPLE_CURVES["early_peak"]), procedure="ours")
    kws = fit.lmfit_result.call_kws
    assert fit.lmfit_result.method == "least_squares"
    assert kws["kwargs"] == {"apply_bounds_transformation": False}
    assert callable(kws["jac"]) and kws["x_scale"] == "jac"
    assert fit.minimizer.scale_covar is True


def test_batch_solver_reaches_the_least_squares_minima():
    steps = SCHEDULES["scaled"]
    h = get_hypothesis("eq9")
    rng = np.random.default_rng(0)
    Z, X0 = [], []
    for i in range(6):
        top, _ = simulate_layer(steps, EXAMPLE_CURVES["early_peak"], rng=i)
        Z.append(top.mean(axis=1))
    problem = Problem(h, steps, Z[0], None, "ours", log_scale=True)
    Zn = (np.array(Z) - problem.y_min) / problem.y_scale
    truth = problem.to_theta([EXAMPLE_CURVES["early_peak"][n] for n in h.names])
    X0 = truth + 0.05 * rng.standard_normal((6, 5))
    fun, jac = problem.batch(Zn)
    res = batch_least_squares(fun, jac, X0, problem.lower, problem.upper, valid=problem.valid)
    assert res.success.all()
    for b in range(6):
        ref = least_squares(
            lambda x, b=b: fun(x[None], np.array([b]))[0],
            X0[b],
            jac=lambda x, b=b: jac(x[None], np.array([b]))[0],
            bounds=(problem.lower, problem.upper),
            xtol=1e-14,
            ftol=1e-14,
        )
        assert res.cost[b] == pytest.approx(ref.cost, rel=1e-8)
        assert np.allclose(problem.to_original(res.x[b]), problem.to_original(ref.x), rtol=1e-5)


def test_batch_solver_holds_a_bound_and_rejects_invalid_starts():
    # minimise (x0 - 1)^2 + (x1 + 2)^2 with x1 >= 0: the solution sits on the bound x1 = 0
    target = np.array([1.0, -2.0])

    def fun(X, rows):
        return X - target

    def jac(X, rows):
        return np.broadcast_to(np.eye(2), (X.shape[0], 2, 2)).copy()

    X0 = np.array([[5.0, 5.0], [np.nan, 1.0]])
    res = batch_least_squares(fun, jac, X0, [-np.inf, 0.0], [np.inf, np.inf])
    assert np.allclose(res.x[0], [1.0, 0.0]) and res.success[0]
    assert not res.success[1] and np.isinf(res.cost[1])


@pytest.mark.parametrize("zeta", [0.2, 0.7, 1.0, 1.0 + 1e-9, 1.3, 4.0])
def test_second_order_step_response_matches_scipy_signal(zeta):
    w = 3.0
    t = np.linspace(0, 10, 200)
    _, ref = signal.step(signal.lti([w * w], [1.0, 2 * zeta * w, w * w]), T=t)
    # step2 = K - A * (1 - unit step response)
    got = alternatives.step2(t, K=1.0, A=1.0, w=w, zeta=zeta)
    assert np.allclose(got, ref, atol=1e-7)


def test_step_response_jacobians_match_finite_differences():
    t = np.linspace(0, 5, 30)
    for func, jac, p in [
        (alternatives.step1, alternatives.step1_jacobian, [2.0, 1.5, 0.7]),
        (alternatives.step2, alternatives.step2_jacobian, [2.0, 1.5, 1.3, 0.5]),
        (alternatives.step2, alternatives.step2_jacobian, [2.0, 1.5, 1.3, 2.5]),
    ]:
        J = jac(t, *p)
        for j in range(len(p)):
            hi, lo = list(p), list(p)
            hi[j] += 1e-6
            lo[j] -= 1e-6
            assert np.allclose(J[:, j], (func(t, *hi) - func(t, *lo)) / 2e-6, atol=1e-6)


def test_step_responses_reject_bad_parameters():
    with pytest.raises(ValueError, match="tau must be > 0"):
        alternatives.step1([0.0, 1.0], 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="zeta >= 0"):
        alternatives.step2([0.0, 1.0], 1.0, 1.0, 1.0, -0.1)


def test_fit_window_choices_and_refusals():
    steps = np.array([0, 8, 16, 32, 1000, 50_000, 100_000], float)
    y = np.array([5.0, 3.0, 2.0, 4.0, 20.0, 60.0, 1.0])  # dip at 16, low value at the end
    assert fit_window(steps, y, "full").all()
    # the early minimum, not the global one at the end, starts the window
    assert list(steps[fit_window(steps, y, "from_min")]) == [16, 32, 1000, 50_000, 100_000]
    assert list(steps[fit_window(steps, y, 1000)]) == [1000, 50_000, 100_000]
    with pytest.raises(ValueError, match="window must be"):
        fit_window(steps, y, "auto")
    with pytest.raises(ValueError, match="window must be"):
        get_procedure("ours", window="middle")
    assert get_procedure("ours", window=32).window == 32 and OURS.window == "from_min"
    assert get_procedure("paper", window="from_min").window == "from_min"
    np.testing.assert_array_equal(fit_window(steps, y, np.int64(1000)), fit_window(steps, y, 1000))
    for bad in (True, 1000.0, "FULL", None):  # a bool is no step, nor is a float
        with pytest.raises(ValueError, match="window must be 'full', 'from_min' or a step"):
            fit_window(steps, y, bad)
    with pytest.raises(ValueError, match=r"got True\."):
        get_procedure("ours", window=True)


def test_the_fit_window_removes_the_early_dip():
    steps = SCHEDULES["scaled"]
    top, truth = simulate_layer(steps, EXAMPLE_CURVES["early_peak"], cv=0.0, dip=0.3)
    full = fit_series(steps, top.mean(axis=1), procedure="ours", window="full")
    cut = fit_series(steps, top.mean(axis=1), procedure="ours", window="from_min")
    assert cut.window_start == 16 and full.window_start == 0
    assert cut.r2 > full.r2
    # from step 15 on the synthetic curve is exactly Eq. 9: the cut fit finds the truth
    truth = EXAMPLE_CURVES["early_peak"]
    assert max(abs(cut.params[k] / v - 1) for k, v in truth.items()) < DIGITS_RTOL
    assert max(abs(full.params[k] / v - 1) for k, v in truth.items()) > 0.01


def test_failed_fits_are_kept_with_a_reason():
    fit = fit_series([0, 1, 2, 3], [1.0, 2.0, 3.0, 4.0], hypothesis="eq9", procedure="paper")
    assert fit.status == "failed" and "need at least" in fit.message and fit.n_points == 4
    bad = fit_series(
        [0, 10, 20, 30, 40, 50, 60], [1, 2, -3, 4, 5, 6, 7], procedure="ours", window="full"
    )
    assert bad.status == "failed" and "y > 0" in bad.message


def test_a_pure_logarithmic_rise_ends_on_a_bound_and_says_so():
    steps = SCHEDULES["scaled"]
    y = 100 * np.log(steps / 500 + 1) + 5  # lam = 0: Eq. 9's limit, not a member
    fit = fit_series(steps, y, hypothesis="eq9", procedure="ours", window="full")
    assert fit.status == "at_bound" and fit.at_bound
    assert "at a bound" in fit.message
    assert fit.r2 > 0.9999


def test_unknown_names_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="eq9"):
        get_hypothesis("eq10")
    with pytest.raises(ValueError, match="paper"):
        get_procedure("mine")
    with pytest.raises(ValueError, match="needs exactly"):
        fit_series(SCHEDULES["scaled"], SCHEDULES["scaled"] + 1, start={"A": 1.0})


@pytest.mark.parametrize("name", list(HYPOTHESES))
def test_valid_point_agrees_with_valid(name):
    # Problem.residual checks the domain with valid_point at every evaluation
    h = get_hypothesis(name)
    rng = np.random.default_rng(3)
    u = np.sort(rng.uniform(0.0, 1.0, 40))
    for _ in range(2000):
        p = rng.normal(0, 1, h.k) * 10.0 ** rng.integers(-3, 3, h.k)
        p[rng.random(h.k) < 0.05] = rng.choice([np.nan, np.inf, -np.inf, 0.0])
        assert h.valid_point(p, u.min(), u.max()) == h.valid(p[None], u)[0], p


def test_relative_sigma_pools_the_relative_sem():
    from massive_activations.fitting.procedures import _relative_sigma

    y = np.array([1.0, 2.0, 4.0, 8.0, 0.0, 5.0])
    # relative SEMs 0.1, 0.1, 0.3, 0 (left out: not > 0), inf at y = 0 and NaN (left out:
    # not finite); the pooled value is the root mean square of the kept ones
    sem = [0.1, 0.2, 1.2, 0.0, 0.1, None]
    s = np.sqrt(np.mean([0.1**2, 0.1**2, 0.3**2]))
    np.testing.assert_allclose(_relative_sigma(y, sem), s * np.abs(y), rtol=1e-12)
    # no usable SEM: s = 1, sigma = |y|; no SEM at all: the same
    np.testing.assert_allclose(_relative_sigma(y, [0.0] * 6), np.abs(y))
    np.testing.assert_allclose(_relative_sigma(-y, None), np.abs(y))


def test_fit_series_refuses_and_fails_with_its_reasons():
    steps = np.asarray(pythia_steps(), float)
    y = curve.eq9(steps, **EXAMPLE_CURVES["early_peak"])
    with pytest.raises(ValueError, match="1-d of one length"):
        fit_series(steps, y[:-1])
    # k + 1 = 6 points for Eq. 9's five parameters: failed, with the count; k + 2 = 7: fitted
    six = fit_series(steps[-6:], y[-6:], procedure="ours", window="full")
    assert (
        six.status == "failed" and six.message == "6 points for 5 parameters: need at least k + 2."
    )
    assert six.n_points == 6 and six.procedure == "ours" and six.hypothesis == "eq9"
    assert six.t_max == steps[-1] and six.window_start == steps[-6]
    seven = fit_series(steps[-7:], y[-7:], procedure="ours", window="full")
    assert "points for" not in seven.message and seven.n_points == 7
    # a window past the last step: no point, no window start
    empty = fit_series(steps, y, procedure="ours", window=int(steps[-1]) + 1)
    assert empty.status == "failed" and empty.n_points == 0 and np.isnan(empty.window_start)
    # relative weights need y > 0 (a zero in the window); values below 1 are fine
    zero = y.copy()
    zero[-1] = 0.0
    failed = fit_series(steps, zero, procedure="ours", window="full")
    assert failed.status == "failed" and failed.message == "relative weights need y > 0."
    small = fit_series(steps, y / 1000.0, procedure="ours", window="full")
    assert small.status != "failed" and small.r2 > 0.99


def test_lmfit_gets_the_problems_bounds_and_budget():
    import dataclasses

    steps = np.asarray(pythia_steps(), float)
    y = curve.eq9(steps, **EXAMPLE_CURVES["log_rise"]) * (1 + 0.02 * np.sin(steps))
    fit = fit_series(steps, y, procedure="ours")
    params = fit.lmfit_result.params
    # our bounds (in the fitted, log-scaled units): rates and times above 1e-9, gam and t0
    # capped; A and K free
    floor = np.log(1e-9)
    for name in ("log_lam", "log_gam", "log_t0"):
        assert params[name].min == pytest.approx(floor)
    assert np.isfinite(params["log_gam"].max) and np.isfinite(params["log_t0"].max)
    assert np.isinf(params["A"].min) and np.isinf(params["K"].max)
    # the budget is max_nfev per parameter: 2 x 5 evaluations, then not converged, with the
    # covariance at the last point
    tiny = dataclasses.replace(OURS, max_nfev=2, multistart=0)
    stopped = fit_series(steps, y, procedure=tiny)
    assert stopped.status == "not_converged" and stopped.lmfit_result.nfev <= 10
    assert stopped.covar is not None


def test_an_aborted_fit_gets_lmfits_covariance_at_its_last_point():
    import dataclasses

    steps = np.asarray(pythia_steps(), float)
    y = curve.eq9(steps, **EXAMPLE_CURVES["log_rise"]) * (1 + 0.02 * np.sin(steps))
    fit = fit_series(steps, y, procedure=dataclasses.replace(OURS, max_nfev=2, multistart=0))
    assert fit.lmfit_result.aborted and "covariance at the last point" in fit.message
    problem, theta = fit.problem, fit.theta
    J = problem.jacobian(theta)
    redchi = np.sum(problem.residual(theta) ** 2) / (problem.n - 5)
    cov = np.linalg.inv(J.T @ J) * redchi  # lmfit's covariance, scale_covar=True
    for j, name in enumerate(problem.names):
        assert fit.lmfit_result.params[name].stderr == pytest.approx(np.sqrt(cov[j, j]))
    assert np.all(np.isfinite(list(fit.stderr.values())))


def test_r2_on_every_checkpoint_skips_missing_values_outside_the_window():
    steps = np.asarray(pythia_steps(), float)
    y = curve.eq9(steps, **EXAMPLE_CURVES["early_peak"])
    y[0] = np.nan  # step 0 unmeasured; the window starts at step 1
    fit = fit_series(steps, y, procedure="ours", window=1)
    assert fit.n_points == steps.size - 1
    assert np.isfinite(fit.r2_all) and fit.r2_all > 0.999


def test_relative_sigma_leaves_out_zero_values_and_missing_sems_without_warnings():
    import warnings

    from massive_activations.fitting.procedures import _relative_sigma

    y = np.array([2.0, 0.0, 0.0, 4.0, 5.0, 8.0])
    sem = np.array([0.2, 0.1, 0.0, np.nan, 0.0, 1.6])  # x/0, 0/0, missing, 0: left out
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = _relative_sigma(y, sem)
    s = np.sqrt((0.1**2 + 0.2**2) / 2)  # pooled over the two usable relative SEMs
    np.testing.assert_allclose(got, s * np.abs(y), rtol=1e-12)
    np.testing.assert_array_equal(_relative_sigma([3.0, -2.0], None), [3.0, 2.0])


def test_starts_clips_the_guess_and_ranks_the_refined_grid_seeds(monkeypatch):
    """``_starts`` on a stand-in problem whose every call is recorded."""
    import dataclasses
    from types import SimpleNamespace

    from massive_activations.fitting import procedures

    calls = {}

    def seeds(u, z, w=None, n=4):
        calls["seeds"] = (u, z, w, n)
        return np.arange(n * 2, dtype=float).reshape(n, 2) / 10

    problem = SimpleNamespace(
        hypothesis=SimpleNamespace(paper_guess=lambda u, z: np.array([-5.0, 5.0]), seeds=seeds),
        theta=lambda p: np.asarray(p, float),
        u=np.array([0.1, 0.5, 1.0]),
        z=np.array([0.0, 0.4, 1.0]),
        wn=np.array([1.0, 2.0, 3.0]),
        lower=np.array([0.0, -1.0]),
        upper=np.array([0.5, 1.0]),
        valid=lambda X: np.ones(len(X), bool),
        batch=lambda z: (("fun", z), "jac"),
    )

    def batch(fun, jac, X0, lower, upper, **kwargs):
        calls["batch"] = (fun, jac, X0, lower, upper, kwargs)
        # NaN (a failed start) ranks last; of the equally good starts the first is kept
        return SimpleNamespace(x=X0 + 100, cost=np.array([np.nan, 2.0, 1.0, 1.0, 1.0][: len(X0)]))

    monkeypatch.setattr(procedures, "batch_least_squares", batch)
    # no multi-start: the paper's guess alone, clipped into the bounds from both sides
    only = procedures._starts(problem, dataclasses.replace(OURS, multistart=0))
    np.testing.assert_array_equal(only, [[0.0, 1.0]])
    assert "batch" not in calls and "seeds" not in calls
    # one grid seed is already a multi-start
    procedures._starts(problem, dataclasses.replace(OURS, multistart=1))
    assert calls["seeds"][3] == 1 and len(calls["batch"][2]) == 2
    best = procedures._starts(problem, dataclasses.replace(OURS, multistart=4))
    u, z, w, n = calls["seeds"]
    assert u is problem.u and z is problem.z and w is problem.wn and n == 4
    fun, jac, X0, lower, upper, kwargs = calls["batch"]
    assert fun == ("fun", problem.z) and jac == "jac"
    np.testing.assert_array_equal(X0, np.vstack([[[0.0, 1.0]], seeds(u, z, w, 4)]))
    assert lower is problem.lower and upper is problem.upper
    assert kwargs == dict(valid=problem.valid, max_iter=40, ftol=1e-6, xtol=1e-6)
    assert best.shape == (1, 2)
    np.testing.assert_array_equal(best, X0[2:3] + 100)


@pytest.mark.parametrize("hypothesis", sorted(HYPOTHESES))
def test_fits_do_not_depend_on_the_callers_floating_point_settings(hypothesis):
    # exp(-lam t) underflows at fast rates (grid search, solver, statistics) and lmfit takes
    # the square root of covariances that may be indefinite: under np.seterr(all="raise") the
    # fits must come out the same, not fail
    steps = np.asarray(pythia_steps(), float)
    converged = 0
    for name, seed in (("early_peak", 4), ("early_peak", 5), ("log_rise", 2), ("log_rise", 4)):
        noise = np.random.default_rng(seed).standard_normal(steps.size)
        y = curve.eq9(steps, **EXAMPLE_CURVES[name]) * np.exp(0.05 * noise)
        for procedure in ("ours", "paper"):
            ref = fit_series(steps, y, hypothesis=hypothesis, procedure=procedure)
            with np.errstate(all="raise"):
                got = fit_series(steps, y, hypothesis=hypothesis, procedure=procedure)
            converged += ref.status != "failed"  # the paper's procedure gives up on some
            assert (got.status, got.message, got.params, got.nfev) == (
                ref.status,
                ref.message,
                ref.params,
                ref.nfev,
            ), (name, seed, procedure)
    assert converged >= 6


def test_only_runtime_warnings_are_silenced_in_the_fit(monkeypatch):
    import warnings

    steps = np.asarray(pythia_steps(), float)
    y = curve.eq9(steps, **EXAMPLE_CURVES["log_rise"]) * (1 + 0.02 * np.sin(steps))
    residual = Problem.residual

    def noisy(self, theta):
        warnings.warn("a numerical detail", RuntimeWarning, stacklevel=2)
        warnings.warn("something the user should see", UserWarning, stacklevel=2)
        return residual(self, theta)

    monkeypatch.setattr(Problem, "residual", noisy)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fit = fit_series(steps, y, procedure="ours")
    assert fit.status == "ok", fit.message
    assert {str(w.message) for w in seen} == {"something the user should see"}


def _collect_case():
    """A converged Eq. 14 fit, and a stand-in for lmfit's result to hand to ``_collect``."""
    from types import SimpleNamespace

    steps = np.asarray(pythia_steps(), float)
    y = curve.eq9(steps, **EXAMPLE_CURVES["early_peak"]) * (1 + 0.02 * np.sin(steps))
    fit = fit_series(steps, y, hypothesis="eq14", procedure="ours", window="full")
    assert fit.status == "ok", fit.message
    problem = fit.problem
    base = {
        k: getattr(fit, k)
        for k in ("hypothesis", "procedure", "names", "n_points", "window_start", "t_max")
    }

    def result(theta=fit.theta, covar=None, aborted=False):
        params = {
            n: SimpleNamespace(value=float(v), stderr=None)
            for n, v in zip(problem.names, theta, strict=True)
        }
        return SimpleNamespace(
            params=params, message="m", success=True, covar=covar, aborted=aborted, nfev=7
        )

    return steps, y, fit, problem, base, result


def test_collect_builds_the_covariance_only_where_it_exists(monkeypatch):
    import warnings

    from massive_activations.fitting.procedures import _collect

    steps, y, fit, problem, base, result = _collect_case()
    singular = "no covariance (J^T J singular)"
    # lmfit found no covariance for a fit it did not abort: none is made up
    got = _collect(problem, result(), None, steps, y, base)
    assert got.message == f"m; {singular}" and got.covar is None and got.status == "ok"
    # an aborted fit whose J^T J is singular (a zero Jacobian) has none either
    monkeypatch.setattr(problem, "jacobian", lambda theta: np.zeros((problem.n, 5)))
    got = _collect(problem, result(aborted=True), None, steps, y, base)
    assert got.message == f"m; {singular}" and got.covar is None
    # ... nor one with a zero residual (a zero covariance): no standard errors for lmfit
    monkeypatch.undo()
    monkeypatch.setattr(problem, "residual", lambda theta: np.zeros(problem.n))
    res = result(aborted=True)
    got = _collect(problem, res, None, steps, y, base)
    assert singular in got.message and got.covar is None
    assert all(p.stderr is None for p in res.params.values())
    # ... and one whose J^T J overflows gets none, also under np.seterr(all="raise")
    monkeypatch.undo()
    monkeypatch.setattr(problem, "jacobian", lambda theta: np.full((problem.n, 5), 1e200))
    with np.errstate(all="raise"):
        got = _collect(problem, result(aborted=True), None, steps, y, base)
    assert singular in got.message and got.covar is None
    monkeypatch.undo()
    # a numerically indefinite covariance: a variance below 0 in original units (A2 mixes
    # A1 and A2) becomes a standard error of 0, without warnings
    cov = np.eye(5) * 1e-4
    cov[2, 3] = cov[3, 2] = 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = _collect(problem, result(covar=cov), None, steps, y, base)
    assert np.diag(got.covar)[3] < 0 and got.stderr["A2"] == 0.0
    assert all(got.stderr[n] > 0 for n in ("b", "tau0", "A1", "K"))
    # two parameters at their bounds are both named
    theta = fit.theta.copy()
    theta[:2] = problem.lower[:2]
    got = _collect(problem, result(theta=theta, covar=fit.lmfit_result.covar), None, steps, y, base)
    assert got.at_bound == ("b", "tau0") and "at a bound: b, tau0" in got.message


@pytest.mark.parametrize("procedure", ["ours", "paper"])
def test_an_empty_trajectory_is_a_failed_fit_with_its_reason(procedure):
    fit = fit_series([], [], procedure=procedure)
    assert (
        fit.status == "failed" and fit.message == "0 points for 5 parameters: need at least k + 2."
    )
    assert fit.n_points == 0 and np.isnan(fit.window_start) and np.isnan(fit.t_max)
    assert not fit_window(np.array([]), np.array([]), "from_min").size


def test_the_fit_reads_single_precision_inputs_as_double():
    steps = np.asarray(pythia_steps(), float)
    y = (curve.eq9(steps, **EXAMPLE_CURVES["early_peak"]) * (1 + 0.02 * np.sin(steps))).astype(
        np.float32
    )
    single = fit_series(steps.astype(np.float32), y, procedure="ours")
    double = fit_series(steps, y.astype(float), procedure="ours")
    assert single.status == "ok"
    assert (single.params, single.r2, single.r2_all, single.chisqr) == (
        double.params,
        double.r2,
        double.r2_all,
        double.chisqr,
    )


def test_relative_weights_take_the_pooled_relative_sem():
    steps = np.asarray(pythia_steps(), float)
    y = curve.eq9(steps, **EXAMPLE_CURVES["log_rise"]) * (1 + 0.02 * np.sin(steps))
    sem = 0.03 * y * (1 + 0.5 * np.cos(steps))  # relative SEMs between 1.5 % and 4.5 %
    plain = fit_series(steps, y, procedure="ours")
    weighted = fit_series(steps, y, procedure="ours", sem=sem)
    window = fit_window(steps, y, "from_min")
    s = np.sqrt(np.mean((sem[window] / y[window]) ** 2))
    np.testing.assert_allclose(weighted.problem.sigma, s * y[window], rtol=1e-12)
    # a common scale of the weights leaves the curve alone and divides chi-square by s^2
    assert weighted.params == pytest.approx(plain.params, rel=1e-3)  # up to the solver tolerance
    assert weighted.chisqr == pytest.approx(plain.chisqr / s**2, rel=1e-3)


def test_fit_window_defaults_missing_values_and_the_early_boundary():
    steps = np.array([0, 5, 50, 100])
    y = [2.0, 1.0, 0.5, None]  # None (JSON's null) is a missing value
    np.testing.assert_array_equal(fit_window(steps, y), [True, True, True, False])  # "full"
    # the early part is the steps <= 5 % of the last, the boundary included: the minimum
    # there (step 5) starts the window, not the lower value at step 50
    np.testing.assert_array_equal(fit_window(steps, y, "from_min"), [False, True, True, False])
    np.testing.assert_array_equal(
        fit_window(steps, y, "from_min", early_fraction=0.01), [True, True, True, False]
    )


def test_fit_series_keeps_a_fit_that_raises_as_failed_with_the_reason(monkeypatch):
    from massive_activations.fitting import procedures

    def broken(problem, start, proc):
        raise RuntimeError("the solver broke")

    monkeypatch.setattr(procedures, "_lmfit", broken)
    steps = np.asarray(pythia_steps(), float)
    y = curve.eq9(steps, **EXAMPLE_CURVES["log_rise"])
    fit = fit_series(steps, y, hypothesis="step1", procedure="paper")
    assert (fit.status, fit.message) == ("failed", "RuntimeError: the solver broke")
    assert (fit.hypothesis, fit.procedure, fit.names) == ("step1", "paper", ("K", "A", "tau"))
    assert fit.n_points == steps.size and fit.t_max == steps.max() and fit.window_start == 0


def test_a_given_start_is_clipped_into_the_bounds_and_steps_scale_by_the_last_step(monkeypatch):
    from massive_activations.fitting import procedures

    seen = {}
    lmfit_fit = procedures._lmfit

    def spy(problem, start, proc):
        seen["problem"], seen["start"] = problem, np.array(start)
        return lmfit_fit(problem, start, proc)

    monkeypatch.setattr(procedures, "_lmfit", spy)
    steps = np.asarray(pythia_steps(), float)
    y = curve.eq9(steps, **EXAMPLE_CURVES["log_rise"])
    y[-1] = np.nan  # the last checkpoint unmeasured: still the time scale of the bounds
    # lam < 0 (its log is NaN), t0 = 0 (-inf) and gam above the cap start at their bounds
    start = {"A": 1.0, "lam": -2.0, "gam": 1e12, "t0": 0.0, "K": 0.5}
    fit = fit_series(steps, y, procedure="ours", start=start, window="full")
    assert fit.status in ("ok", "at_bound"), fit.message
    problem = seen["problem"]
    assert problem.t_scale == steps.max()
    theta = problem.to_theta(list(start.values()))
    assert np.isnan(theta[1]) and theta[3] == -np.inf and theta[2] > problem.upper[2]
    expect = [theta[0], problem.lower[1], problem.upper[2], problem.lower[3], theta[4]]
    np.testing.assert_array_equal(seen["start"], expect)
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="start must hold finite numbers"):
            fit_series(steps, y, procedure="ours", start=start | {"K": bad})


def test_collect_floors_an_exact_chi_square_and_leaves_r2_all_where_the_curve_is_undefined(
    monkeypatch,
):
    from types import SimpleNamespace

    from massive_activations.fitting.procedures import _collect

    steps, y, fit, problem, base, result = _collect_case()

    # an exact fit: chi-square 0 is floored at 1e-250 n, so that AIC and BIC stay finite
    def exact(theta, at=None):
        return problem.y if at is None else np.interp(at, problem.steps, problem.y)

    monkeypatch.setattr(problem, "curve", exact)
    got = _collect(problem, result(covar=fit.lmfit_result.covar), None, steps, y, base)
    n, k = problem.n, 5
    assert got.chisqr == 1e-250 * n and got.r2 == 1.0
    assert got.aic == pytest.approx(n * np.log(1e-250) + 2 * k, rel=1e-12)
    monkeypatch.undo()
    # the paper's fits bound only lam: fitted from step 1,000 on, t0 < 0 may leave Eq. 9
    # undefined at the first checkpoints (gam * t / t_max + t0 <= 0), where r2_all is NaN
    steps, y = steps[1:], y[1:]  # from step 1
    paper = fit_series(steps, y, hypothesis="eq9", procedure="paper", window=1000)
    problem = paper.problem
    theta = paper.theta.copy()
    theta[3] = -theta[2] * 500 / steps.max()  # gam u + t0 > 0 from step 500 on
    res = SimpleNamespace(
        params={
            n_: SimpleNamespace(value=v, stderr=None)
            for n_, v in zip(problem.names, theta, strict=True)
        },
        message="m",
        success=True,
        covar=None,
        aborted=False,
        nfev=1,
    )
    base = base | {"hypothesis": "eq9", "names": problem.hypothesis.names, "procedure": "paper"}
    got = _collect(problem, res, None, steps, y, base)
    assert got.status == "ok" and np.isfinite(got.r2) and np.isnan(got.r2_all)
