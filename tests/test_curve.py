"""Tests of the curve model (Eqs. 9-14) against exact identities and numerical derivatives."""

import numpy as np
import pytest
from scipy.special import lambertw

from massive_activations import curve
from massive_activations.schedule import pythia_steps

STEPS = np.asarray(pythia_steps(), dtype=float)


def random_eq9(rng, n):
    """Random valid Eq. 9 parameter sets spanning both regimes."""
    return {
        "A": rng.uniform(-100, 100, n),
        "lam": 10 ** rng.uniform(-6, -0.5, n),
        "gam": 10 ** rng.uniform(-4, 0, n),
        "t0": rng.uniform(0.5, 50, n),
        "K": rng.uniform(-10, 100, n),
    }


def test_eq9_and_eq14_agree_to_1e12():
    rng = np.random.default_rng(1)
    p = random_eq9(rng, 500)
    cols = {k: v[:, None] for k, v in p.items()}
    f9 = curve.eq9(STEPS, **cols)
    f14 = curve.eq14(STEPS, *curve.eq9_to_eq14(**cols))
    rel = np.abs(f9 - f14) / np.maximum(1.0, np.abs(f9))
    assert rel.max() < 1e-12


def test_conversion_round_trip_both_directions():
    rng = np.random.default_rng(2)
    p = random_eq9(rng, 200)
    back = curve.eq14_to_eq9(*curve.eq9_to_eq14(**p))
    for name in curve.EQ9_NAMES:
        np.testing.assert_allclose(getattr(back, name), p[name], rtol=1e-10)
    q = curve.eq9_to_eq14(**p)
    again = curve.eq9_to_eq14(*curve.eq14_to_eq9(*q))
    for name in curve.EQ14_NAMES:
        np.testing.assert_allclose(getattr(again, name), getattr(q, name), rtol=1e-10, atol=1e-14)


def test_conversion_formulas_match_the_paper():
    A, lam, gam, t0, K = 3.0, 0.01, 0.5, 2.0, 7.0
    q = curve.eq9_to_eq14(A, lam, gam, t0, K)
    assert q.b == pytest.approx(lam * gam)
    assert q.tau0 == pytest.approx(t0 / gam)
    assert q.A1 == pytest.approx(A * np.exp(-lam * t0))
    assert q.A2 == pytest.approx(q.A1 * np.log(gam))
    assert q.K == K


def _numeric_jacobian(f, t, params, h=1e-6):
    cols = []
    for i in range(len(params)):
        step = h * max(1.0, abs(params[i]))
        up, down = list(params), list(params)
        up[i] += step
        down[i] -= step
        cols.append((f(t, *up) - f(t, *down)) / (2 * step))
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize(
    "params",
    [
        (50.0, 0.02, 0.002, 1.0, 20.0),  # early peak
        (20.0, 1e-4, 0.01, 1.0, 5.0),  # slow rise
        (-8.0, 0.3, 0.7, 3.0, 1.0),  # negative amplitude
    ],
)
def test_eq9_jacobian_matches_finite_differences(params):
    t = np.linspace(0, 2000, 60)
    analytic = curve.eq9_jacobian(t, *params)
    numeric = _numeric_jacobian(curve.eq9, t, params)
    assert analytic.shape == (t.size, 5)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "params",
    [(1e-4, 5.0, 3.0, -2.0, 10.0), (0.01, 0.5, -4.0, 1.0, 0.0), (0.0, 100.0, 2.0, 2.0, 3.0)],
)
def test_eq14_jacobian_matches_finite_differences(params):
    t = np.linspace(0, 500, 50)
    analytic = curve.eq14_jacobian(t, *params)
    numeric = _numeric_jacobian(curve.eq14, t, params)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6)


def test_peak_x_solves_the_stationarity_condition():
    lam = np.logspace(-6, 1, 50)
    xs = curve.peak_x(lam)
    np.testing.assert_allclose(lam * xs * np.log(xs), 1.0, rtol=1e-12)
    # Both closed forms of the paper agree.
    np.testing.assert_allclose(xs, 1 / (lam * lambertw(1 / lam).real), rtol=1e-12)
    assert np.all(xs > 1)
    assert curve.peak_x(0.0) == np.inf
    assert curve.peak_x(-1.0) == np.inf


@pytest.mark.parametrize(
    "params", [(50.0, 0.02, 0.002, 1.0, 20.0), (2.0, 0.001, 0.1, 5.0, 0.0), (1.0, 0.5, 3.0, 0.1, 0)]
)
def test_t_peak_is_where_the_derivative_changes_sign(params):
    _, lam, gam, t0, _ = params
    tp = float(curve.t_peak(lam, gam, t0))
    assert tp > 0
    eps = 1e-3 * tp
    d = curve.eq9_jacobian(np.array([tp - eps, tp, tp + eps]), *params)
    # df/dt = gam * df/dt0: the t0 column is df/dx.
    dfdt = gam * d[:, 3]
    assert dfdt[0] > 0 > dfdt[2]
    assert abs(dfdt[1]) < 1e-9 * max(1.0, abs(dfdt[0]))
    # and a dense grid puts the maximum there
    grid = np.linspace(0, 3 * tp, 30001)
    assert grid[np.argmax(curve.eq9(grid, *params))] == pytest.approx(tp, rel=2e-4)


def test_regimes():
    t_max = 143_000
    assert curve.regime(50.0, 0.02, 0.002, 1.0, t_max) == "early_peak"
    assert curve.regime(20.0, 1e-6, 0.01, 1.0, t_max) == "log_rise"
    assert curve.regime(20.0, 0.0, 0.01, 1.0, t_max) == "log_rise"
    # x* for lam = 1 is exp(W(1)) = 1.76 < t0 = 5: the peak lies before step 0.
    assert curve.regime(1.0, 1.0, 0.01, 5.0, t_max) == "decay"
    grid = curve.regime(1.0, np.array([0.02, 1e-6, 1.0]), 0.002, np.array([1.0, 1.0, 5.0]), t_max)
    assert list(grid) == ["early_peak", "log_rise", "decay"]


def test_asymptote():
    assert curve.asymptote(5.0, 0.1, 3.0) == 3.0
    assert curve.asymptote(5.0, 0.0, 3.0) == np.inf
    assert curve.asymptote(-5.0, 0.0, 3.0) == -np.inf
    assert curve.asymptote(0.0, -1.0, 3.0) == 3.0
    # numerically: far out the curve is at K
    assert curve.eq9(1e7, 5.0, 0.1, 1.0, 1.0, 3.0) == pytest.approx(3.0, abs=1e-12)


@pytest.mark.parametrize("gam", [0.0, -1.0])
def test_non_positive_gam_is_refused(gam):
    with pytest.raises(ValueError, match="gam must be > 0"):
        curve.eq9(STEPS, 1.0, 0.1, gam, 1.0, 0.0)
    with pytest.raises(ValueError, match="gam must be > 0"):
        curve.t_peak(0.1, gam, 1.0)
    with pytest.raises(ValueError, match="gam must be > 0"):
        curve.eq9_to_eq14(1.0, 0.1, gam, 1.0, 0.0)


def test_log_argument_must_be_positive():
    with pytest.raises(ValueError, match=r"x = gam\*t \+ t0 must be > 0.*t0 > 0"):
        curve.eq9(STEPS, 1.0, 0.1, 1.0, 0.0, 0.0)  # x = 0 at step 0
    with pytest.raises(ValueError, match=r"t \+ tau0 must be > 0"):
        curve.eq14(STEPS, 0.1, -1.0, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="must be finite"):
        curve.eq9(STEPS, np.nan, 0.1, 1.0, 1.0, 0.0)


def test_eq14_to_eq9_refuses_zero_log_amplitude():
    with pytest.raises(ValueError, match="A1 must be non-zero"):
        curve.eq14_to_eq9(0.1, 1.0, 0.0, 1.0, 0.0)


def _t_peak_decimal(lam: float, gam: float, t0: float) -> float:
    """Eq. 13 in 60-digit decimal arithmetic, for ``lam < 1/e`` (an independent reference).

    ``w = W(1/lam)`` solves ``w + log(w) = -log(lam)`` (Newton from ``L - log L``).
    """
    from decimal import Decimal, localcontext

    with localcontext() as ctx:
        ctx.prec = 60
        big = -Decimal(lam).ln()
        w = big - big.ln()
        for _ in range(60):
            w -= (w + w.ln() - big) / (1 + 1 / w)
        return float((w.exp() - Decimal(t0)) / Decimal(gam))


EXTREME = [
    (1e-310, 1.0, 1.0),  # subnormal lam: 1/lam overflows
    (5e-324, 1e300, 0.0),  # x* = exp(W(1/lam)) itself overflows, t_peak does not
    (5e-324, 1e300, 1e308),
    (1e-320, 1e300, 1e10),
    (1e-300, 1e-10, 1.0),  # (x* - t0) / gam close to the largest float
    (1e-300, 1e300, -1e308),  # x* - t0 near the largest float, divided back down
    (1e-300 * (1 - 1e-9), 1.0, 1.0),  # both sides of the switch to logarithms
    (1e-300 * (1 + 1e-9), 1.0, 1.0),
    (0.02, 0.002, 1.0),
]


@pytest.mark.parametrize(("lam", "gam", "t0"), EXTREME)
def test_t_peak_of_extreme_parameters_is_accurate_and_warns_nothing(lam, gam, t0):
    import warnings

    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        tp = float(curve.t_peak(lam, gam, t0))
    assert np.isfinite(tp)
    np.testing.assert_allclose(tp, _t_peak_decimal(lam, gam, t0), rtol=1e-13)


def test_t_peak_beyond_the_largest_float_is_inf_without_warning():
    import warnings

    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        tp = curve.t_peak(np.array([1e-30, 1e-30, 1e-310, 0.0, -1.0]), 1e-300, 1.0)
        xs = curve.peak_x(np.array([5e-324, 1e-310]))
    assert tp.tolist() == [np.inf] * 5
    assert _t_peak_decimal(1e-30, 1e-300, 1.0) == np.inf
    assert xs[0] == np.inf and xs[1] == pytest.approx(_t_peak_decimal(1e-310, 1.0, 0.0))


def test_eq14_fit_with_a_huge_gam_has_a_t_peak_without_warning():
    """Eq. 14 -> Eq. 9 gives gam = exp(A2/A1) ~ 1e300 and a subnormal lam = b/gam."""
    import warnings

    from massive_activations.fitting.hypotheses import get_hypothesis

    p = np.array([[1e-12, 50.0, 1.0, 690.0, 0.0]])  # b, tau0, A1, A2, K
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        tp = get_hypothesis("eq14").t_peak(p)
    gam = np.exp(690.0)
    expected = _t_peak_decimal(1e-12 / gam, gam, 50.0 * gam)
    np.testing.assert_allclose(tp, [expected], rtol=1e-10)


def test_t_peak_beyond_the_largest_float_warns_nothing():
    """An element past the direct formula's range is computed in logs, with no overflow warning
    from the direct formula being evaluated where it does not apply."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = curve.t_peak(np.array([0.05, 0.05]), np.array([1e-3, 1e-308]), 3.0)
    assert np.isfinite(out[0]) and out[0] == pytest.approx((curve.peak_x(0.05) - 3.0) / 1e-3)
    assert out[1] == np.inf


# Checks that mutation testing (make mutation) showed were missing: every parameter's
# finiteness check, the fix each error names, scalars for scalar input, and the boundaries of
# the regimes and of t_peak's overflow-safe branch, each against a closed form or the
# 60-digit reference above.
FUNCTIONS = {
    curve.eq9: (2.0, 0.01, 0.5, 2.0, 7.0),
    curve.eq9_jacobian: (2.0, 0.01, 0.5, 2.0, 7.0),
    curve.eq14: (0.01, 2.0, 3.0, 1.0, 7.0),
    curve.eq14_jacobian: (0.01, 2.0, 3.0, 1.0, 7.0),
}


@pytest.mark.parametrize("f", list(FUNCTIONS), ids=lambda f: f.__name__)
@pytest.mark.parametrize("i", range(5))
def test_every_parameter_must_be_finite(f, i):
    params = list(FUNCTIONS[f])
    params[i] = np.nan
    with pytest.raises(ValueError, match="must be finite"):
        f(np.arange(5.0), *params)
    convert = curve.eq9_to_eq14 if f in (curve.eq9, curve.eq9_jacobian) else curve.eq14_to_eq9
    with pytest.raises(ValueError, match="must be finite"):
        convert(*params)


@pytest.mark.parametrize("i", range(3))
def test_t_peak_and_peak_x_refuse_non_finite_input(i):
    args = [0.01, 0.5, 2.0]
    args[i] = np.inf
    with pytest.raises(ValueError, match="must be finite"):
        curve.t_peak(*args)
    with pytest.raises(ValueError, match="must be finite"):
        curve.peak_x(np.nan)


def test_errors_name_the_input_and_the_fix():
    t = np.arange(5.0)
    for f in (curve.eq14, curve.eq14_jacobian):
        with pytest.raises(
            ValueError, match=r"^The logarithm's argument t \+ tau0 must be > 0 at every t"
        ):
            f(t, 0.1, -1.0, 1.0, 1.0, 0.0)
        with pytest.raises(
            ValueError, match=r"minimum is -1\.0\. Use tau0 > 0, or only steps t > -tau0\.$"
        ):
            f(t, 0.1, -1.0, 1.0, 1.0, 0.0)
    for f in (curve.eq9, curve.eq9_jacobian):
        with pytest.raises(ValueError, match=r"^The logarithm's argument x = gam\*t \+ t0 must be"):
            f(t, 1.0, 0.1, 1.0, -1.0, 0.0)
        with pytest.raises(ValueError, match=r"\. Use t0 > 0, or only steps t > -t0/gam\.$"):
            f(t, 1.0, 0.1, 1.0, -1.0, 0.0)
        with pytest.raises(ValueError, match=r"^gam must be > 0 \(it scales training steps into "):
            f(t, 1.0, 0.1, 0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match=r"^gam must be > 0 \(Eq. 14 divides by it and takes its "):
        curve.eq9_to_eq14(1.0, 0.1, 0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match=r"^gam must be > 0 \(it scales training steps into the "):
        curve.t_peak(0.1, -1.0, 1.0)


def test_scalar_input_gives_scalars_and_arrays_give_arrays():
    for value in (
        curve.asymptote(5.0, 0.1, 3.0),
        curve.peak_x(0.1),
        curve.t_peak(0.02, 0.002, 1.0),
        curve.regime(1.0, 0.02, 0.002, 1.0, 1000),
    ):
        assert not isinstance(value, np.ndarray) and np.ndim(value) == 0
    for value in (
        curve.asymptote([5.0], 0.1, 3.0),
        curve.peak_x([0.1]),
        curve.t_peak([0.02], 0.002, 1.0),
        curve.regime([1.0], 0.02, 0.002, 1.0, 1000),
    ):
        assert isinstance(value, np.ndarray) and value.shape == (1,)


def test_asymptote_of_a_small_amplitude():
    # lam <= 0: the curve rises (A > 0) or falls (A < 0) without bound, whatever |A|
    assert curve.asymptote(0.5, 0.0, 3.0) == np.inf
    assert curve.asymptote(-0.5, -1.0, 3.0) == -np.inf
    np.testing.assert_array_equal(
        curve.asymptote(np.array([0.5, -0.5, 0.0, 2.0]), 0.0, 3.0), [np.inf, -np.inf, 3.0, np.inf]
    )


def test_regime_boundaries_and_broadcast_over_the_amplitude():
    lam, gam = 0.02, 0.002
    xs = float(curve.peak_x(lam))
    # t0 = x*: the extremum is at step 0 exactly, which is "decay" (t_peak <= 0)
    assert float(curve.t_peak(lam, gam, xs)) == 0.0
    assert curve.regime(1.0, lam, gam, xs, 1000) == "decay"
    # an extremum at step 0.5 is inside the window
    t0 = xs - 0.5 * gam
    assert float(curve.t_peak(lam, gam, t0)) == pytest.approx(0.5)
    assert curve.regime(1.0, lam, gam, t0, 1000) == "early_peak"
    # at the window's last step: still inside
    tp = float(curve.t_peak(lam, gam, 1.0))
    assert curve.regime(1.0, lam, gam, 1.0, tp) == "early_peak"
    assert curve.regime(1.0, lam, gam, 1.0, np.nextafter(tp, 0)) == "log_rise"
    out = curve.regime(np.array([1.0, 2.0, 3.0]), lam, gam, 1.0, 143_000)
    assert out.shape == (3,) and set(out) == {"early_peak"}


def test_t_peak_where_x_star_just_overflows():
    # W(1/lam) just above log(DBL_MAX): x* is not a float, (x* - t0) / gam is
    lam, gam, t0 = 6.73e-312, 1e10, 1.0
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        tp = float(curve.t_peak(lam, gam, t0))
    np.testing.assert_allclose(tp, _t_peak_decimal(lam, gam, t0), rtol=1e-13)


def test_t_peak_mixes_branches_elementwise_without_warning():
    import warnings

    # a subnormal lam (logarithmic branch) beside ordinary ones, one with t0 = 0
    lam = np.array([5e-324, 0.02, 1e-310, 0.5])
    gam = np.array([1e300, 0.002, 1.0, 1.0])
    t0 = np.array([0.0, 0.0, 1.0, 1.0])
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        tp = curve.t_peak(lam, gam, t0)
        xs = curve.peak_x(lam[1:])
    expected = [_t_peak_decimal(*args) for args in zip(lam[:3], gam[:3], t0[:3], strict=True)]
    np.testing.assert_allclose(tp[:3], expected, rtol=1e-13)
    # lam = 0.5 > 1/e: the closed form 1 / (lam W(1/lam)) instead of the decimal reference
    x_half = 1 / (0.5 * lambertw(2.0).real)
    np.testing.assert_allclose(tp[3], x_half - 1.0, rtol=1e-13)
    np.testing.assert_allclose(xs[[0, 2]], [1 / (0.02 * lambertw(50.0).real), x_half], rtol=1e-13)
    np.testing.assert_allclose(xs[1], _t_peak_decimal(1e-310, 1.0, 0.0), rtol=1e-13)


def test_exp_or_inf_at_the_largest_exponent():
    top = curve._LOG_MAX
    assert np.isfinite(np.exp(top)) and curve._exp_or_inf(top) == np.exp(top)
    assert curve._exp_or_inf(np.nextafter(np.log(np.finfo(float).max), np.inf)) == np.inf


@pytest.mark.parametrize(
    ("checked", "unchecked"),
    [
        (curve.eq9, curve.eq9_unchecked),
        (curve.eq9_jacobian, curve.eq9_jacobian_unchecked),
        (curve.eq14, curve.eq14_unchecked),
        (curve.eq14_jacobian, curve.eq14_jacobian_unchecked),
    ],
)
def test_unchecked_kernels_equal_the_checked_curves_bit_for_bit(checked, unchecked):
    # the solvers' fast path: the same numbers wherever the checked function accepts them
    rng = np.random.default_rng(5)
    t = np.concatenate([[0.0], np.sort(rng.uniform(0, 3e5, 60))])
    for _ in range(300):
        p = rng.normal(0, 1, 5) * 10.0 ** rng.integers(-6, 4, 5)
        p[2] = abs(p[2]) + 1e-12 if checked.__name__.startswith("eq9") else p[2]
        p[1] = abs(p[1]) if checked.__name__.startswith("eq14") else p[1]
        p[3] = abs(p[3]) + 1e-9 if checked.__name__.startswith("eq9") else p[3]
        with np.errstate(all="ignore"):
            try:
                want = checked(t, *p)
            except ValueError:
                continue
            got = unchecked(t, *p)
        assert np.array_equal(got, want, equal_nan=True), p


def test_t_peak_is_zero_where_x_star_is_t0_on_the_logarithmic_branch():
    # x* - t0 = 0 exactly where a subnormal gam sends the element to the logarithmic branch: the
    # step of the peak is 0 (not NaN, not a warning from log(0))
    import warnings

    lam = np.array([0.5, 0.02, 1e-4])
    x_star = np.exp(curve._log_peak_x(lam))
    assert np.array_equal(np.log(x_star), curve._log_peak_x(lam))  # exact in floats
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        tp = curve.t_peak(lam, 1e-320, x_star)
        one = curve.t_peak(lam[1], 1e-320, x_star[1])
    assert tp.tolist() == [0.0, 0.0, 0.0] and one == 0.0
    # beside elements of the direct branch, each keeps its own value
    # (the third: logarithmic branch too, 2 x*/gam overflows, the step itself is a float)
    mixed = curve.t_peak([0.5, 0.02, 0.5], [1e-320, 1.0, 1e-308], [x_star[0], 1.0, 2.0])
    assert mixed[0] == 0.0 and mixed[1] == pytest.approx(float(curve.peak_x(0.02)) - 1.0)
    assert np.isfinite(mixed[2]) and 2 * float(curve.peak_x(0.5)) / 1e-308 == np.inf
    np.testing.assert_allclose(mixed[2], _t_peak_decimal(0.5, 1e-308, 2.0), rtol=1e-13)


def test_the_log_argument_error_names_its_smallest_value_nan_first():
    # x = gam*t + t0 = [1, -2, -1]: the message gives the minimum, -2.0, as a plain float
    with pytest.raises(ValueError, match=r"but its minimum is -2\.0\. "):
        curve.eq9(np.array([3.0, 0.0, 1.0]), 1.0, 0.1, 1.0, -2.0, 0.0)
    # a NaN argument is the worst of all: the message names it rather than -1.0
    with pytest.raises(ValueError, match=r"but its minimum is nan\. "):
        curve.eq9(np.array([3.0, np.nan, 1.0]), 1.0, 0.1, 1.0, -2.0, 0.0)
    with pytest.raises(
        ValueError, match=r"t \+ tau0 must be > 0 at every t, but its minimum is -4\.0"
    ):
        curve.eq14(np.array([2.0, -1.0, 0.0]), 0.1, -3.0, 1.0, 1.0, 0.0)
