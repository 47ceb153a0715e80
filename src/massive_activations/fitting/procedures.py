"""Fitting the per-layer trajectories: the paper's procedure and ours, with lmfit.

Two procedures, selected by name (:data:`PROCEDURES`):

``"paper"`` (as reported in Section 5)
    Normalise (min-max ``y``, ``t / t_max``; the paper does not say how, this is our
    choice, see :mod:`~massive_activations.fitting.hypotheses`), fit with Trust Region Reflective and
    the analytic Jacobian, unweighted, over every checkpoint, from the paper's initial guess,
    with the single bound ``lam >= 0`` (``b >= 0`` for Eq. 14), then map the parameters back
    exactly.  Steps that leave the curve's domain (the logarithm's argument <= 0) get
    residuals of ``1e8``, so the solver rejects them, as ``curve_fit`` does with the NaN that
    ``numpy.log`` returns there.  At most ``100 k`` evaluations (``curve_fit``'s default).
``"ours"``
    The same normalisation and solver, plus: bounds that keep the logarithm's argument
    positive and stop the runaway along Eq. 9's valleys (normalised units: ``1e-9 <= lam``,
    ``1e-9 <= gam <= 1e6``, ``1e-9 <= t0 <= 1e4``; Eq. 14: ``b >= 0``, ``tau0 >= 1e-9``);
    ``lam, gam, t0`` (``tau0``, ``tau``, ``w``) fitted on a log scale
    (:class:`~massive_activations.fitting.problem.Problem`); a multi-start (a grid over the
    non-linear parameters with the linear ones solved exactly, the best 4 grid points and the
    paper's guess refined together, the best kept); a fit window that starts at the
    trajectory's early minimum (``window="from_min"``: the lowest value among steps
    ``<= 5 %`` of the last step; small models dip at steps ~8-32 before the rise Eq. 9
    describes), exposed as ``window=`` so its effect can be shown; and weights
    ``1 / sigma_i`` with ``sigma_i = s * y_i``, ``s`` the pooled relative standard error of
    the trajectory over the sequences (the across-sequence CV is roughly constant over
    training, paper Table 2, so the noise is multiplicative), with ``x_scale="jac"``.

The fit itself is one :class:`lmfit.Minimizer` with ``method="least_squares"`` and the
analytic Jacobian (``Dfun``); for ``least_squares`` lmfit evaluates residual and Jacobian
with ``apply_bounds_transformation=False``, i.e. on the parameters themselves, bounds being
handled by SciPy.  ``scale_covar=True``: the covariance ``(J^T J)^-1`` is multiplied by the
reduced chi-square, so standard errors reflect the scatter actually seen around the curve
(which includes checkpoint-to-checkpoint noise the sequence SEM does not).  Covariance
intervals are ``p +- t(0.975, n - k) * stderr``.  Uncertainty beyond the covariance
(profile likelihood, bootstrap over sequences, ``t_peak``) is in
:mod:`~massive_activations.fitting.uncertainty`; the per-suite table in
:mod:`~massive_activations.fitting.fit_all`.

Quality statistics are in original units over the fitted window: ``r2 = 1 - RSS/TSS``
(unweighted, as the paper's R^2), ``r2_all`` over every checkpoint (the curve extrapolated to
the points before the window), ``chisqr = sum(((y - f) / sigma)^2)`` (``sigma = 1``
unweighted), ``redchi = chisqr / (n - k)``, ``aic = n log(chisqr / n) + 2k`` and
``bic = n log(chisqr / n) + k log n`` (lmfit's definitions; compare them across hypotheses
of one procedure and layer, not across procedures).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field

import lmfit
import numpy as np
from scipy import stats

from massive_activations.fitting.batch_lsq import batch_least_squares
from massive_activations.fitting.hypotheses import Hypothesis, get_hypothesis
from massive_activations.fitting.problem import Problem

__all__ = [
    "BOUND_ATOL",
    "BOUND_RTOL",
    "OURS",
    "PAPER",
    "PROCEDURES",
    "FitResult",
    "Procedure",
    "fit_series",
    "fit_window",
    "get_procedure",
]


@dataclass(frozen=True)
class Procedure:
    """A fitting procedure (see the module docstring).

    Attributes
    ----------
    name : str
    bounds : {"paper", "ours"}
        Which bounds of each :class:`~massive_activations.fitting.hypotheses.Hypothesis` to use.
    multistart : int
        Grid seeds refined besides the paper's guess (0: the paper's guess only).
    window : str or int
        ``"full"``, ``"from_min"`` or the first step to fit (see :func:`fit_window`).
    weights : {"none", "relative"}
    x_scale : float or "jac"
        Passed to :func:`scipy.optimize.least_squares`.
    log_scale : bool
        Fit the positive scale parameters on a log scale (see :class:`Problem`).
    max_nfev : int
        Residual evaluations allowed per parameter; a fit that needs more stops there and
        is reported ``"not_converged"`` (``"failed"`` for the paper's procedure, whose
        ``curve_fit`` raises instead of returning).
    """

    name: str
    bounds: str
    multistart: int
    window: str | int
    weights: str
    x_scale: float | str
    log_scale: bool
    max_nfev: int = 100


#: The paper's procedure: ``curve_fit``'s default budget for ``"trf"``, 100 evaluations per
#: parameter, after which ``curve_fit`` raises ``RuntimeError`` (no fit).
PAPER = Procedure("paper", "paper", 0, "full", "none", 1.0, False, 100)
#: Ours: 6,000 evaluations per parameter, for the slow valleys of Eq. 9 (along them R^2 hardly
#: changes while lam and t0 move by decades).  Measured: at 100 per parameter half of the
#: fits of ``benchmarks/coverage.py``'s broad family stop early; at 1,000, 52 of the 188 Eq. 9
#: fits of the paper-shaped stand-in did, and at 6,000 all 52 converged (median 7,923, at most
#: 23,044 evaluations).  Only a fit that crawls pays for the budget.
OURS = Procedure("ours", "ours", 4, "from_min", "relative", "jac", True, 6000)
#: The procedures by name.
PROCEDURES = {p.name: p for p in (PAPER, OURS)}


def get_procedure(procedure: str | Procedure, window: str | int | None = None) -> Procedure:
    """Look up ``"paper"`` or ``"ours"`` (or pass a :class:`Procedure`), optionally re-windowed."""
    if not isinstance(procedure, Procedure):
        if procedure not in PROCEDURES:
            raise ValueError(f"Unknown procedure {procedure!r}; choose one of {list(PROCEDURES)}.")
        procedure = PROCEDURES[procedure]
    if window is not None:
        procedure = dataclasses.replace(procedure, window=_check_window(window))
    return procedure


def _check_window(window):
    """``window`` if it is ``"full"``, ``"from_min"`` or a step (an int), else a ValueError."""
    if isinstance(window, bool) or not (
        isinstance(window, (int, np.integer)) or window in ("full", "from_min")
    ):
        raise ValueError(f"window must be 'full', 'from_min' or a step (int), got {window!r}.")
    return window


def fit_window(steps, y, window: str | int = "full", early_fraction: float = 0.05) -> np.ndarray:
    """Which points a fit uses: a boolean mask over ``steps``.

    Parameters
    ----------
    steps, y : array_like
        The trajectory (non-finite ``y`` are never used).
    window : {"full", "from_min"} or int
        ``"full"``: every point; ``"from_min"``: from the lowest ``y`` among the steps
        ``<= early_fraction * max(steps)`` on (the early dip of small models); an int: the
        steps ``>= window``.
    early_fraction : float
        Where ``"from_min"`` looks for the minimum.
    """
    window = _check_window(window)
    steps = np.asarray(steps, dtype=float)
    y = np.asarray(y, dtype=float)
    finite = np.isfinite(y)
    if window == "full":
        return finite
    if window == "from_min":
        early = finite & (steps <= early_fraction * np.max(steps, initial=-np.inf))
        if not early.any():
            return finite
        first = steps[early][np.argmin(y[early])]
        return finite & (steps >= first)
    return finite & (steps >= window)


@dataclass
class FitResult:
    """One fit of one hypothesis to one trajectory, by one procedure.

    ``params``/``stderr`` are in original units, keyed by parameter name; ``covar`` is the
    original-unit covariance (scaled by the reduced chi-square) and ``correl`` the matching
    correlation matrix, both in :attr:`names` order; ``theta`` is the solver's vector and
    ``covar_norm`` the covariance of the normalised parameters (see
    :class:`~massive_activations.fitting.problem.Problem`).  ``status`` is ``"ok"``,
    ``"at_bound"``, ``"not_converged"`` or ``"failed"``; ``message`` says why.  Uncertainty fields
    (``profile``, ``bootstrap``, ``t_peak_*``, ``intervals`` — the reported interval of each
    parameter and ``t_peak`` —, ``flags``, ``regime``) are filled by
    :mod:`~massive_activations.fitting.uncertainty`.
    """

    hypothesis: str
    procedure: str
    names: tuple[str, ...]
    status: str
    message: str
    n_points: int
    window_start: float
    t_max: float
    params: dict = field(default_factory=dict)
    stderr: dict = field(default_factory=dict)
    covar: np.ndarray | None = None
    correl: np.ndarray | None = None
    theta: np.ndarray | None = None
    covar_norm: np.ndarray | None = None
    at_bound: tuple[str, ...] = ()
    r2: float = np.nan
    r2_all: float = np.nan
    chisqr: float = np.nan
    redchi: float = np.nan
    aic: float = np.nan
    bic: float = np.nan
    nfev: int = 0
    steps: np.ndarray | None = None
    residuals: np.ndarray | None = None
    problem: Problem | None = field(default=None, repr=False)
    minimizer: lmfit.Minimizer | None = field(default=None, repr=False)
    lmfit_result: lmfit.minimizer.MinimizerResult | None = field(default=None, repr=False)
    profile: dict = field(default_factory=dict)
    bootstrap: object = field(default=None, repr=False)
    t_peak: float = np.nan
    t_peak_delta: tuple[float, float] = (np.nan, np.nan)
    t_peak_boot: tuple[float, float] = (np.nan, np.nan)
    regime: str = "undetermined"
    flags: dict = field(default_factory=dict)
    intervals: dict = field(default_factory=dict)
    model_free: dict = field(default_factory=dict)

    @property
    def nfree(self) -> int:
        """Degrees of freedom ``n - k``."""
        return self.n_points - len(self.names)

    def covariance_ci(self, level: float = 0.95) -> dict:
        """``{name: (lo, hi)}``: ``p +- t((1 + level)/2, n - k) * stderr``."""
        q = stats.t.ppf(0.5 + level / 2, max(self.nfree, 1))
        return {
            n: (self.params[n] - q * self.stderr[n], self.params[n] + q * self.stderr[n])
            for n in self.names
        }


def _relative_sigma(y, sem) -> np.ndarray:
    """``sigma_i = s * y_i`` with ``s`` the pooled relative SEM (1 when ``sem`` is None)."""
    y = np.asarray(y, float)
    if sem is None:
        return np.abs(y)
    with np.errstate(divide="ignore", invalid="ignore"):  # y = 0 or a missing SEM: left out
        rel = np.asarray(sem, float) / np.abs(y)
    rel = rel[np.isfinite(rel) & (rel > 0)]
    s = float(np.sqrt(np.mean(rel**2))) if rel.size else 1.0
    return s * np.abs(y)


def _start_theta(problem: Problem, values) -> np.ndarray:
    """``theta`` of a starting point given in original units, clipped into the bounds.

    A value <= 0 of a log-scaled parameter lies below its positive lower bound (its
    logarithm is NaN or -inf): it starts at that bound.
    """
    theta = problem.to_theta(values)
    return np.clip(np.where(np.isnan(theta), -np.inf, theta), problem.lower, problem.upper)


def _starts(problem: Problem, procedure: Procedure) -> np.ndarray:
    """Starting points: the paper's guess, plus the best grid seeds refined in a batch."""
    h = problem.hypothesis
    guess = problem.theta(h.paper_guess(problem.u, problem.z))
    guess = np.clip(guess, problem.lower, problem.upper)
    if procedure.multistart <= 0:
        return guess[None]
    seeds = problem.theta(h.seeds(problem.u, problem.z, problem.wn, n=procedure.multistart))
    X0 = np.vstack([guess[None], seeds])
    fun, jac = problem.batch(problem.z)
    # a rough refinement suffices to rank the starts: lmfit polishes the best one
    res = batch_least_squares(
        fun,
        jac,
        X0,
        problem.lower,
        problem.upper,
        valid=problem.valid,
        max_iter=40,
        ftol=1e-6,
        xtol=1e-6,
    )
    order = np.argsort(np.where(np.isfinite(res.cost), res.cost, np.inf), kind="stable")
    return res.x[order[:1]]


def fit_series(
    steps,
    y,
    *,
    hypothesis: str | Hypothesis = "eq9",
    procedure: str | Procedure = "ours",
    sem=None,
    window: str | int | None = None,
    start: dict | None = None,
) -> FitResult:
    """Fit one hypothesis to one trajectory by one procedure (point estimate + covariance).

    Parameters
    ----------
    steps, y : array_like
        Training steps and trajectory values (e.g. the ratio of means).
    hypothesis : {"eq9", "eq14", "step1", "step2"} or Hypothesis
    procedure : {"paper", "ours"} or Procedure
    sem : array_like, optional
        Standard errors of ``y`` over sequences, for the ``"relative"`` weights of
        ``"ours"`` (only their pooled relative size matters); without it the relative
        weights are ``1/y``.
    window : {"full", "from_min"} or int, optional
        Overrides the procedure's fit window.
    start : dict, optional
        A starting point in original units (``{name: value}``, finite numbers), replacing the
        procedure's starts (the paper's guess, or the multi-start).  It is clipped into the
        procedure's bounds: a value <= 0 of a log-scaled parameter starts at its lower bound.

    Returns
    -------
    FitResult
        Never raises for a bad fit: failures come back with ``status="failed"`` and the
        reason in ``message``.
    """
    h = get_hypothesis(hypothesis)
    proc = get_procedure(procedure, window)
    steps = np.asarray(steps, dtype=float)
    y = np.asarray(y, dtype=float)
    if steps.shape != y.shape or steps.ndim != 1:
        raise ValueError(f"steps and y must be 1-d of one length; got {steps.shape}, {y.shape}.")
    if start is not None and set(start) != set(h.names):
        raise ValueError(f"start has {sorted(start)}; {h.name} needs exactly {list(h.names)}.")
    if start is not None and not np.all(np.isfinite([start[n] for n in h.names])):
        raise ValueError(f"start must hold finite numbers; got {start}.")
    mask = fit_window(steps, y, proc.window)
    base = dict(
        hypothesis=h.name,
        procedure=proc.name,
        names=h.names,
        n_points=int(mask.sum()),
        window_start=float(steps[mask].min()) if mask.any() else np.nan,
        t_max=float(np.max(steps)) if steps.size else np.nan,
    )
    if mask.sum() <= h.k + 1:
        return FitResult(
            status="failed",
            message=f"{int(mask.sum())} points for {h.k} parameters: need at least k + 2.",
            **base,
        )
    if proc.weights == "relative" and np.any(y[mask] <= 0):
        return FitResult(status="failed", message="relative weights need y > 0.", **base)
    sigma = None
    if proc.weights == "relative":
        sigma = _relative_sigma(y[mask], None if sem is None else np.asarray(sem, float)[mask])
    problem = Problem(
        h, steps[mask], y[mask], sigma, proc.bounds, t_scale=np.max(steps), log_scale=proc.log_scale
    )
    # exp(-lam * t) at fast rates underflows to 0 in the grid search, the solver and the
    # statistics: the right value, also when the caller has set np.seterr(under="raise")
    with np.errstate(under="ignore"):
        try:
            if start is not None:
                theta0 = _start_theta(problem, [start[n] for n in h.names])
            else:
                theta0 = _starts(problem, proc)[0]
            result, mini = _lmfit(problem, theta0, proc)
        except Exception as err:  # a fit that fails is kept, with its reason
            return FitResult(status="failed", message=f"{type(err).__name__}: {err}", **base)
        fit = _collect(problem, result, mini, steps, y, base)
    if fit.status == "not_converged" and proc.name == "paper":
        # curve_fit raises RuntimeError when least_squares stops at max_nfev: no fit at all
        return FitResult(
            status="failed",
            message=(
                f"not converged within curve_fit's {proc.max_nfev * h.k} evaluations, where "
                f"curve_fit raises RuntimeError ({fit.message})"
            ),
            **base,
        )
    return fit


def _lmfit(problem: Problem, start, proc: Procedure):
    h, names = problem.hypothesis, problem.names
    params = lmfit.Parameters()
    for name, v, lo, hi in zip(names, start, problem.lower, problem.upper, strict=True):
        params.add(name, value=float(v), min=float(lo), max=float(hi))

    def residual(pars):
        return problem.residual([pars[n].value for n in names])

    def jacobian(pars):
        cols = [j for j, n in enumerate(names) if pars[n].vary]
        return problem.jacobian([pars[n].value for n in names])[:, cols]

    # max_nfev = the procedure's budget per parameter (the paper's: curve_fit's default for
    # "trf", 100 k).  lmfit counts the evaluations and aborts the fit past the budget (SciPy's
    # own limit it sets to twice that), still reporting the covariance at the last point.
    budget = proc.max_nfev * h.k
    mini = lmfit.Minimizer(residual, params, scale_covar=True, Dfun=jacobian)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        # lmfit takes sqrt of a covariance that may be numerically indefinite; we check it.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = mini.least_squares(x_scale=proc.x_scale, max_nfev=budget)
    return result, mini


#: A parameter within this fraction of a bound's magnitude (or ``BOUND_ATOL`` of a bound at
#: 0), in its own normalised units, sits at the bound: ``t0 = 9999.75`` against a cap of
#: ``1e4`` does.
BOUND_RTOL = 1e-3
BOUND_ATOL = 1e-6


def _at_bound(problem: Problem, theta) -> np.ndarray:
    """Which parameters sit at a bound, compared in their own (normalised) units."""
    p = problem.p_norm(theta)
    lo, hi = problem.p_norm(problem.lower), problem.p_norm(problem.upper)
    out = np.zeros(p.size, dtype=bool)
    for b in (lo, hi):
        finite = np.isfinite(b)
        tol = np.maximum(BOUND_RTOL * np.abs(np.where(finite, b, 0.0)), BOUND_ATOL)
        out |= finite & (np.abs(p - np.where(finite, b, 0.0)) <= tol)
    return out


def _collect(problem: Problem, result, mini, steps, y, base) -> FitResult:
    h = problem.hypothesis
    theta = np.array([result.params[n].value for n in problem.names])
    p = problem.to_original(theta)
    messages = [str(result.message)]
    status = "ok"
    if not problem.valid(theta)[0]:
        status = "failed"
        messages.insert(0, "the solution is outside the curve's domain")
    elif not result.success:
        status = "not_converged"
    at_bound = tuple(n for n, hit in zip(h.names, _at_bound(problem, theta), strict=True) if hit)
    if at_bound and status == "ok":
        status = "at_bound"
    if at_bound:
        messages.append(f"at a bound: {', '.join(at_bound)}")
    covar = correl = covar_norm = None
    stderr = dict.fromkeys(h.names, np.nan)
    cov_theta = result.covar
    if cov_theta is None and result.aborted and problem.valid(theta)[0]:
        # lmfit computes no covariance for an aborted fit: do as it would, at the last point
        J = problem.jacobian(theta)
        redchi = np.sum(problem.residual(theta) ** 2) / (problem.n - h.k)
        with np.errstate(all="ignore"):
            try:
                cov_theta = np.linalg.inv(J.T @ J) * redchi
                messages.append("covariance at the last point of the aborted fit")
            except np.linalg.LinAlgError:
                cov_theta = None
        if cov_theta is not None and np.all(np.diag(cov_theta) > 0):
            for j, n in enumerate(problem.names):  # conf_interval needs them
                result.params[n].stderr = float(np.sqrt(cov_theta[j, j]))
    if cov_theta is not None and np.all(np.isfinite(cov_theta)) and np.all(np.diag(cov_theta) > 0):
        dp = problem._dp(theta)
        covar_norm = np.asarray(cov_theta, float) * np.outer(dp, dp)
        covar = problem.M @ covar_norm @ problem.M.T
        sd = np.sqrt(np.clip(np.diag(covar), 0, None))
        stderr = dict(zip(h.names, sd, strict=True))
        with np.errstate(invalid="ignore", divide="ignore"):
            correl = covar / np.outer(sd, sd)
    else:
        messages.append("no covariance (J^T J singular)")
    fit = FitResult(status=status, message="; ".join(messages), **base)
    fit.params = dict(zip(h.names, p.tolist(), strict=True))
    fit.stderr = {k: float(v) for k, v in stderr.items()}
    fit.covar, fit.correl, fit.theta, fit.covar_norm = covar, correl, theta, covar_norm
    fit.at_bound, fit.nfev = at_bound, int(result.nfev)
    fit.problem, fit.minimizer, fit.lmfit_result = problem, mini, result
    if status == "failed":  # outside the curve's domain: no curve to compare with the data
        return fit
    res = problem.y - problem.curve(theta)
    n, k = problem.n, h.k
    rss = float(np.sum(res**2))
    fit.r2 = 1.0 - rss / float(np.sum((problem.y - problem.y.mean()) ** 2))
    chisqr = rss if problem.sigma is None else float(np.sum((res / problem.sigma) ** 2))
    chisqr = max(chisqr, 1e-250 * n)
    fit.chisqr, fit.redchi = chisqr, chisqr / (n - k)
    fit.aic = n * np.log(chisqr / n) + 2 * k
    fit.bic = n * np.log(chisqr / n) + k * np.log(n)
    fit.steps, fit.residuals = problem.steps, res
    ok = np.isfinite(y)
    if h.valid(problem.p_norm(theta)[None], steps[ok] / problem.t_scale)[0]:
        f_all = problem.curve(theta, steps[ok])
        tss = float(np.sum((y[ok] - y[ok].mean()) ** 2))
        fit.r2_all = 1.0 - float(np.sum((y[ok] - f_all) ** 2)) / tss
    return fit
