"""The fit's quality statistics against independent computations.

R^2 (the paper's Table 1 statistic) is recomputed with :func:`sklearn.metrics.r2_score` from
the fitted curve evaluated by :mod:`massive_activations.curve` (not the fitting code's own
curve), and the chi-square, reduced chi-square, AIC and BIC from their textbook formulas
(lmfit's definitions: ``n log(chi2/n) + 2k`` and ``n log(chi2/n) + k log n``) on the same
residual vector.  A wrong factor in any of them (the mutation that halved the residual term of
R^2 passed every test before) fails here.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import r2_score

from massive_activations import curve
from massive_activations.fitting.procedures import fit_series
from massive_activations.fitting.synthetic import EXAMPLE_CURVES
from massive_activations.schedule import scaled_schedule

STEPS = np.array(scaled_schedule(143_000, 40), float)


def _data(name: str, seed: int, cv: float = 0.05):
    rng = np.random.default_rng(seed)
    truth = curve.eq9(STEPS, **EXAMPLE_CURVES[name])
    return truth * (1.0 + cv * rng.standard_normal(STEPS.size))


def _curve(fit, steps):
    if fit.hypothesis == "eq9":
        return curve.eq9(steps, **fit.params)
    return curve.eq14(steps, **fit.params)


# the paper's procedure converges on the early peak; on the log rise it stops at curve_fit's
# evaluation limit and is counted as failed (no parameters), so it is checked where it converges
CASES = [
    (procedure, hypothesis, name, seed)
    for procedure, name, seed in (
        ("paper", "early_peak", 0),
        ("ours", "early_peak", 0),
        ("ours", "log_rise", 3),
    )
    for hypothesis in ("eq9", "eq14")
]


@pytest.mark.parametrize("procedure,hypothesis,name,seed", CASES)
def test_r2_aic_bic_match_their_formulas(procedure, hypothesis, name, seed):
    y = _data(name, seed)
    fit = fit_series(STEPS, y, hypothesis=hypothesis, procedure=procedure)
    assert fit.status in ("ok", "at_bound"), fit.message
    window = np.isin(STEPS, fit.steps)
    f = _curve(fit, fit.steps)
    yw = y[window]
    np.testing.assert_allclose(fit.r2, r2_score(yw, f), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fit.r2_all, r2_score(y, _curve(fit, STEPS)), rtol=1e-9, atol=1e-12)
    n, k = yw.size, len(fit.names)
    assert fit.n_points == n
    # the weights of "ours" are relative (sigma proportional to y); "paper" is unweighted
    sigma = fit.problem.sigma
    chi2 = np.sum((yw - f) ** 2) if sigma is None else np.sum(((yw - f) / sigma) ** 2)
    np.testing.assert_allclose(fit.chisqr, chi2, rtol=1e-9)
    np.testing.assert_allclose(fit.redchi, chi2 / (n - k), rtol=1e-9)
    np.testing.assert_allclose(fit.aic, n * np.log(chi2 / n) + 2 * k, rtol=1e-9)
    np.testing.assert_allclose(fit.bic, n * np.log(chi2 / n) + k * np.log(n), rtol=1e-9)
    np.testing.assert_allclose(fit.residuals, yw - f, rtol=1e-7, atol=1e-9 * np.abs(yw).max())


def test_r2_of_an_exact_curve_is_one_and_of_a_constant_fit_is_near_zero():
    y = curve.eq9(STEPS, **EXAMPLE_CURVES["early_peak"])
    fit = fit_series(STEPS, y, hypothesis="eq9", procedure="ours", window="full")
    assert fit.r2 == pytest.approx(1.0, abs=1e-8)
    # pure noise around a constant: no curve explains it, R^2 stays near 0 (never near 1)
    rng = np.random.default_rng(1)
    flat = 50.0 * (1 + 0.05 * rng.standard_normal(STEPS.size))
    fit = fit_series(STEPS, flat, hypothesis="eq9", procedure="ours", window="full")
    assert fit.r2 == pytest.approx(r2_score(flat, _curve(fit, STEPS)), abs=1e-9)
    assert fit.r2 < 0.5


def _covariance(fit, y):
    """``redchi * (J^T W J)^-1`` at the fit's parameters, from the curve's analytic Jacobian
    in original units."""
    p = [fit.params[n] for n in fit.names]
    jac = curve.eq9_jacobian if fit.hypothesis == "eq9" else curve.eq14_jacobian
    J = jac(fit.steps, *p)
    r = y[np.isin(STEPS, fit.steps)] - _curve(fit, fit.steps)
    sigma = fit.problem.sigma
    if sigma is not None:
        J, r = J / sigma[:, None], r / sigma
    n, k = J.shape
    return np.linalg.inv(J.T @ J) * (r @ r) / (n - k)


@pytest.mark.parametrize(
    "procedure,hypothesis", [("paper", "eq14"), ("ours", "eq9"), ("ours", "eq14")]
)
def test_covariance_is_the_scaled_inverse_fisher_matrix_in_original_units(procedure, hypothesis):
    """``covar = redchi * (J^T W J)^-1`` with ``J`` the analytic Jacobian of the curve in
    original units (:mod:`massive_activations.curve`), not the solver's normalised one;
    ``stderr``, ``correl`` and the covariance intervals follow from it."""
    from scipy import stats

    y = _data("early_peak", 0)
    fit = fit_series(STEPS, y, hypothesis=hypothesis, procedure=procedure)
    assert fit.status == "ok", fit.message
    p = [fit.params[n] for n in fit.names]
    cov = _covariance(fit, y)
    n, k = fit.n_points, len(fit.names)
    np.testing.assert_allclose(fit.covar, cov, rtol=2e-3)
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_allclose([fit.stderr[n] for n in fit.names], sd, rtol=1e-3)
    np.testing.assert_allclose(fit.correl, cov / np.outer(sd, sd), atol=2e-3)
    np.testing.assert_allclose(np.diag(fit.correl), 1.0, rtol=1e-12)
    q = stats.t.ppf(0.975, n - k)
    ci = fit.covariance_ci()
    for j, name in enumerate(fit.names):
        np.testing.assert_allclose(ci[name], (p[j] - q * sd[j], p[j] + q * sd[j]), rtol=1e-3)
    q90 = stats.t.ppf(0.95, n - k)
    lo, hi = fit.covariance_ci(0.90)[fit.names[0]]
    np.testing.assert_allclose(hi - lo, 2 * q90 * sd[0], rtol=1e-3)
    assert fit.nfree == n - k


def test_a_solution_outside_the_domain_is_failed_not_raised():
    """The paper's procedure has no bound on ``t0``: a start with ``x = gam*t + t0 <= 0``
    walls every residual, the solver stops there, and the fit is reported failed with that
    reason (it raised ValueError before: mutation testing found the untested branch)."""
    steps = np.linspace(0, 1000, 30)
    y = 5 + np.log1p(steps)
    start = {"A": 1.0, "lam": 0.1, "gam": 1.0, "t0": -5.0, "K": 0.0}
    fit = fit_series(steps, y, hypothesis="eq9", procedure="paper", start=start)
    assert fit.status == "failed"
    assert fit.message.startswith("the solution is outside the curve's domain; ")
    assert str(fit.lmfit_result.message) in fit.message
    assert fit.params["t0"] == pytest.approx(-5.0) and fit.at_bound == ()
    assert np.isnan(fit.r2) and np.isnan(fit.aic) and fit.residuals is None
    assert fit.covar is None and fit.correl is None


def test_the_message_carries_the_solvers_and_at_bound_names():
    y = _data("early_peak", 0)
    fit = fit_series(STEPS, y, hypothesis="eq9", procedure="ours")
    assert fit.message.split("; ")[0] == str(fit.lmfit_result.message)
    assert "aborted" not in fit.message  # lmfit's own covariance: it converged
    assert all(n in fit.names for n in fit.at_bound)
    if fit.at_bound:
        assert f"at a bound: {', '.join(fit.at_bound)}" in fit.message


def test_an_aborted_fit_gets_the_covariance_at_its_last_point():
    """A fit stopped by its evaluation budget has no lmfit covariance: it is computed at the
    last point, the same formula, and said in the message."""
    import dataclasses

    from massive_activations.fitting.procedures import PAPER

    y = _data("early_peak", 0)
    # the paper's procedure (its guess, unweighted) with 1 evaluation per parameter
    short = dataclasses.replace(PAPER, name="short", max_nfev=1)
    fit = fit_series(STEPS, y, hypothesis="eq9", procedure=short)
    assert fit.status == "not_converged" and fit.lmfit_result.aborted, fit.message
    assert "covariance at the last point of the aborted fit" in fit.message.split("; ")
    np.testing.assert_allclose(fit.covar, _covariance(fit, y), rtol=2e-3)
    sd = np.sqrt(np.diag(fit.covar))
    np.testing.assert_allclose([fit.stderr[n] for n in fit.names], sd, rtol=1e-12)


@pytest.mark.parametrize("nfree", [0, 1, 2, 30])
def test_covariance_ci_uses_students_t_with_n_minus_k_degrees_of_freedom(nfree):
    import dataclasses

    from scipy import stats

    fit = fit_series(STEPS, _data("early_peak", 3), procedure="ours")
    short = dataclasses.replace(fit, n_points=len(fit.names) + nfree)
    for level in (0.95, 0.5):
        q = stats.t.ppf((1 + level) / 2, max(nfree, 1))  # no degrees of freedom: 1, not 0
        got = short.covariance_ci(level)
        for n in fit.names:
            half = q * fit.stderr[n]
            assert got[n] == pytest.approx((fit.params[n] - half, fit.params[n] + half), rel=1e-12)
    assert short.covariance_ci() == short.covariance_ci(0.95)
