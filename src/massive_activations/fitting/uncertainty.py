"""Uncertainty of a fit: profile intervals, a bootstrap over sequences, ``t_peak``, flags.

Given a :class:`~massive_activations.fitting.procedures.FitResult` (point estimate and the covariance
``M C M^T``, scaled by the reduced chi-square, see :mod:`~massive_activations.fitting.procedures`):

* :func:`profile_ci`: profile-likelihood intervals from :func:`lmfit.conf_interval` (each
  parameter fixed on a grid, the others re-optimised; F-test at the requested level), in
  normalised units then mapped back (each profiled parameter maps back on its own,
  monotonically).  An interval that does not close inside the parameter's range is
  reported as the bound it reaches, or ``+-inf``.
* :func:`bootstrap`: the evaluation sequences resampled with replacement (the same draw at
  every checkpoint, since each sequence is measured at every checkpoint), the trajectory
  recomputed, the curve refitted warm-started from the estimate with the same procedure
  (bounds, window, weights and normalisation constants), all replicates at once with
  :func:`~massive_activations.fitting.batch_lsq.batch_least_squares`; *expanded* percentile
  intervals (:func:`percentile_ci`: with only 10 sequences the plain percentile interval
  covers ~91 % at a nominal 95 %).  It captures the sampling of sequences only, not
  checkpoint-to-checkpoint training noise.
* :func:`t_peak_delta`: ``t_peak`` (Eq. 13) with a delta-method interval,
  ``t_peak +- t(0.975, n - k) * sqrt(g^T C g)``, ``g`` its gradient by central differences.
* :func:`identifiability`: per parameter the reasons the data do not pin it down.
* :func:`classify`: early peak / logarithmic rise / decay / undetermined from the
  ``t_peak`` interval.
* :func:`covariance_band` (as lmfit's ``ModelResult.eval_uncertainty``: the analytic
  Jacobian and the scaled covariance, times ``t((1 + erf(sigma/sqrt 2))/2, n - k)``) and
  :func:`bootstrap_band` (pointwise expanded percentiles of the bootstrap curves), for
  plots; ``sigma`` is the band's level (1: 68.3 %, 2: 95.4 %).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import lmfit
import numpy as np
from scipy import special, stats

from massive_activations.fitting.batch_lsq import batch_least_squares
from massive_activations.fitting.intervals import REFIT, expanded_tail, reported_intervals
from massive_activations.fitting.procedures import FitResult
from massive_activations.fitting.regimes import agreed_regime, model_free_regime
from massive_activations.measurement.trajectories import LayerSequences

__all__ = [
    "REGIMES",
    "UNCALIBRATED",
    "Bootstrap",
    "assess",
    "bootstrap",
    "bootstrap_band",
    "classify",
    "covariance_band",
    "identifiability",
    "is_identified",
    "percentile_ci",
    "profile_ci",
    "regime_confirmed",
    "t_peak_delta",
    "t_peak_identified",
]

#: Residual evaluations per free parameter allowed to each refit of a profile (lmfit's own
#: default for ``leastsq``).  A refit that stops on this budget has not reached the profile's
#: minimum: its chi-square is too high, the interval end it feeds is too close and depends on
#: the last bits of the solver's arithmetic, so :func:`profile_ci` reports that end as NaN.
PROFILE_NFEV = 2000

#: Significant digits of a profile interval end: lmfit's root search stops at a relative
#: tolerance of 5e-5, and the digits beyond it change with the last bits of the solver's
#: arithmetic (OpenBLAS kernels sum in an order that follows memory alignment), so more
#: digits would make a refit's table differ bitwise from run to run.
PROFILE_DIGITS = 4

#: Labels of :func:`classify`.
REGIMES = ("early_peak", "log_rise", "decay", "inverted", "undetermined")


def profile_ci(fit: FitResult, names=None, level: float = 0.95, maxiter: int = 10) -> dict:
    """Profile-likelihood confidence intervals with :func:`lmfit.conf_interval`.

    Parameters
    ----------
    fit : FitResult
    names : sequence of str, optional
        Parameters to profile (default: the hypothesis's ``profile``, e.g. ``K, lam``).
        Each must map back to original units on its own (not Eq. 14's ``A2``).
    level : float
        Confidence level.
    maxiter : int
        Steps (of one standard error each) of :func:`lmfit.conf_interval`'s search for each
        end; a profile that has not reached the level after them is reported open.

    Returns
    -------
    dict
        ``{name: (lo, hi, note)}`` in original units, to :data:`PROFILE_DIGITS` significant
        digits; ``note`` is ``""``, ``"lower bound"``,
        ``"upper bound"``, ``"unbounded"``, the error met, or says which end is NaN because
        a refit on that side stopped on the evaluation budget (:data:`PROFILE_NFEV`).
    """
    prob = fit.problem
    h = prob.hypothesis
    names = tuple(h.profile if names is None else names)
    M = prob.M
    for n in names:
        if n not in h.names:
            raise ValueError(f"{h.name} has no parameter {n!r}; it has {list(h.names)}.")
        if np.count_nonzero(M[h.names.index(n)]) != 1:
            raise ValueError(f"{n} of {h.name} mixes parameters when mapped back; profile others.")
    inner = [prob.names[h.names.index(n)] for n in names]
    best = {m: fit.lmfit_result.params[m].value for m in inner}
    stuck: dict[tuple[str, str], int] = {}  # (parameter, "below"/"above"): refits on budget
    minimizer = fit.minimizer
    refit = minimizer.leastsq

    def checked_refit(*args, **kwargs):
        # lmfit refits with the profiled parameter fixed; note the refits that hit the budget
        out = refit(*args, **kwargs)
        if out.ier in (-1, 5):  # lmfit's abort on max_nfev, MINPACK's maxfev
            fixed = [m for m in inner if not out.params[m].vary]
            for m in fixed:
                side = "below" if out.params[m].value < best[m] else "above"
                stuck[m, side] = stuck.get((m, side), 0) + 1
        return out

    budget = minimizer.max_nfev
    minimizer.max_nfev = PROFILE_NFEV * h.k
    minimizer.leastsq = checked_refit
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # conf_interval warns when a bound is reached
            ci = lmfit.conf_interval(
                minimizer, fit.lmfit_result, p_names=inner, sigmas=[level], maxiter=maxiter
            )
    except Exception as err:  # no stderr, < 2 variables, or a solver failure
        return {n: (np.nan, np.nan, f"{type(err).__name__}: {err}") for n in names}
    finally:
        minimizer.max_nfev = budget
        del minimizer.leastsq  # the bound method again
    out = {}
    for n, m in zip(names, inner, strict=True):
        j = h.names.index(n)
        lo, hi = ci[m][0][1], ci[m][-1][1]
        notes = []
        if not np.isfinite(lo):
            lo = prob.lower[j] if np.isfinite(prob.lower[j]) else -np.inf
            notes.append("lower bound" if np.isfinite(lo) else "unbounded")
        if not np.isfinite(hi):
            hi = prob.upper[j] if np.isfinite(prob.upper[j]) else np.inf
            notes.append("upper bound" if np.isfinite(hi) else "unbounded")
        ends = np.array([lo, hi])
        for e, side in enumerate(("below", "above")):
            if (m, side) in stuck:
                ends[e] = np.nan
                notes.append(
                    f"{stuck[m, side]} refit(s) {side} the estimate stopped on the budget of "
                    f"{PROFILE_NFEV * h.k} evaluations (end not determined)"
                )
        if prob.log[j]:
            ends = np.exp(ends)
        lo_o, hi_o = (float(f"{e:.{PROFILE_DIGITS}g}") for e in M[j, j] * ends + prob.c[j])
        out[n] = (lo_o, hi_o, ", ".join(dict.fromkeys(notes)))
    return out


@dataclass
class Bootstrap:
    """Bootstrap replicates of a fit (original units; failed replicates left out).

    Attributes
    ----------
    params : numpy.ndarray
        ``(n_ok, k)`` parameters.
    theta : numpy.ndarray
        The same as the solver's vectors (for :func:`bootstrap_band`).
    t_peak : numpy.ndarray
        ``(n_ok,)``.
    n : int
        Replicates drawn.
    seed : int
    n_sequences : int
        Sequences resampled (for the expanded percentile interval).
    """

    params: np.ndarray
    theta: np.ndarray
    t_peak: np.ndarray
    n: int
    seed: int
    n_sequences: int

    def ci(self, j: int | None = None, level: float = 0.95) -> tuple[float, float]:
        """Expanded percentile interval of parameter ``j`` (``None``: ``t_peak``)."""
        sample = self.t_peak if j is None else self.params[:, j]
        return percentile_ci(sample, level, n_clusters=self.n_sequences)

    @property
    def n_ok(self) -> int:
        """Replicates that converged."""
        return int(self.params.shape[0])


def percentile_ci(
    values, level: float = 0.95, n_clusters: int | None = None
) -> tuple[float, float]:
    """Percentile interval of ``values``, where ``+-inf`` are allowed (NaN if empty).

    With ``n_clusters`` (the number of resampled sequences) the interval is Hesterberg's
    expanded percentile interval (:func:`~massive_activations.fitting.intervals.expanded_tail`).
    """
    v = np.sort(np.asarray(values, float))
    v = v[~np.isnan(v)]
    if v.size == 0:
        return (np.nan, np.nan)
    a = expanded_tail(level, n_clusters)
    return tuple(_quantile(v, q) for q in (a, 1 - a))


def _quantile(v: np.ndarray, q: float) -> float:
    """``numpy.quantile(v, q)`` (linear interpolation) of sorted ``v``, exact at ``+-inf``.

    numpy interpolates ``inf - inf`` to NaN, and a finite value towards ``inf`` by a finite
    fraction of the clipped gap; here an end that takes a positive weight from an infinite
    neighbour is that infinity.
    """
    h = (v.size - 1) * q
    i = int(np.floor(h))
    j = min(i + 1, v.size - 1)
    frac = h - i
    below, above = float(v[i]), float(v[j])
    if frac == 0 or below == above:
        return below
    if np.isinf(below):
        return below
    if np.isinf(above):
        return above
    return below + frac * (above - below)


def bootstrap(
    fit: FitResult, seqs: LayerSequences, *, n: int = 200, seed: int = 0, quantity: str = "ratio"
) -> Bootstrap:
    """Refit on trajectories recomputed from sequences resampled with replacement.

    Parameters
    ----------
    fit : FitResult
        A fit of ``seqs.series(quantity)``.
    seqs : LayerSequences
        The per-sequence data the trajectory was computed from.
    n : int
        Replicates.
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    quantity : {"ratio", "ratio_mean"}
    """
    p = fit.problem
    if not np.all(np.isin(p.steps, seqs.steps)):
        raise ValueError(
            "The fit's steps are not all in seqs.steps: bootstrap the data it was fitted to."
        )
    pos = np.searchsorted(seqs.steps, p.steps)
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, seqs.sequences.size, size=(n, seqs.sequences.size))
    Y = seqs.series(quantity, resample=draw)[:, pos]
    Z = (Y - p.y_min) / p.y_scale
    if p.sigma is None:
        W = np.ones_like(Z)
    else:  # the same relative weights, on the resampled values
        W = p.y_scale / (np.median(p.sigma / np.abs(p.y)) * np.abs(Y))
    good = np.all(np.isfinite(Z) & np.isfinite(W), axis=1)  # a replicate with no value fails
    X = np.empty((0, fit.theta.size))
    if good.any():
        fun, jac = p.batch(Z[good], W[good])
        x0 = np.tile(fit.theta, (int(good.sum()), 1))
        # a replicate that has not converged within REFIT's budget counts as failed
        res = batch_least_squares(fun, jac, x0, p.lower, p.upper, valid=p.valid, **REFIT)
        X = res.x[res.success & np.isfinite(res.cost)]
    P = p.to_original(X)
    return Bootstrap(P, X, p.hypothesis.t_peak(P), n, seed, int(seqs.sequences.size))


def t_peak_delta(fit: FitResult, level: float = 0.95) -> tuple[float, float, float]:
    """``(t_peak, lo, hi)`` with a delta-method interval (NaN where undefined)."""
    h = fit.problem.hypothesis if fit.problem else None
    if h is None or not fit.params:
        return (np.nan, np.nan, np.nan)
    p = np.array([fit.params[n] for n in fit.names])
    tp = float(h.t_peak(p)[0])
    if not np.isfinite(tp) or fit.covar is None:
        return (tp, np.nan, np.nan)
    # central differences with a step of 1e-6 of the parameter's size, or of its standard
    # error where that is larger (a parameter at 0, e.g. Eq. 14's A2 or t0); t_peak comes from
    # a root search good to ~1e-13 relative, which a smaller step would amplify
    se = np.sqrt(np.clip(np.diag(fit.covar), 0, None))
    scale = np.fmax(np.abs(p), se)
    g = np.zeros(p.size)
    for j in range(p.size):
        if scale[j] == 0:  # 0 with no variance: its row and column of C are 0, g_j is unused
            continue
        step = 1e-6 * scale[j]
        hi, lo = p.copy(), p.copy()
        hi[j] += step
        lo[j] -= step
        g[j] = (h.t_peak(hi)[0] - h.t_peak(lo)[0]) / (2 * step)
    with np.errstate(over="ignore", invalid="ignore"):  # an unbounded variance: NaN below
        var = float(g @ fit.covar @ g)
    if not np.isfinite(var) or var < 0:
        return (tp, np.nan, np.nan)
    q = stats.t.ppf(0.5 + level / 2, max(fit.nfree, 1)) * np.sqrt(var)
    return (tp, tp - q, tp + q)


def classify(lo: float, hi: float, t_max: float, sign: float = 1.0) -> str:
    """Regime of a layer from the interval ``[lo, hi]`` of its ``t_peak``.

    For a positive amplitude (``sign > 0``, the extremum is a maximum):
    ``"early_peak"``: the interval lies inside training (``0 < lo``, ``hi <= t_max``);
    ``"log_rise"``: it lies beyond the end of training (``lo > t_max``, ``hi`` may be
    ``inf``): the curve still rises at the end; ``"decay"``: it lies before step 0
    (``hi <= 0``).  For a negative amplitude the extremum is a minimum: before step 0
    (``hi <= 0``) the curve rises through all of training towards ``K`` from below
    (``"log_rise"``); inside training it dips and recovers (``"inverted"``).  Anything
    else (an interval that straddles 0 or ``t_max``, or none; a zero or unknown ``sign``:
    a flat curve has no extremum) is ``"undetermined"``.
    """
    if np.isnan(lo) or np.isnan(hi):
        return "undetermined"
    if sign > 0:
        if lo > t_max:
            return "log_rise"
        if hi <= 0:
            return "decay"
        return "early_peak" if (lo > 0 and hi <= t_max) else "undetermined"
    if sign < 0:
        if hi <= 0:
            return "log_rise"
        return "inverted" if (lo > 0 and hi <= t_max) else "undetermined"
    return "undetermined"  # no amplitude (sign 0) or none known (NaN): no extremum


def identifiability(fit: FitResult, corr_threshold: float = 0.99) -> dict:
    """Per parameter, the reasons to doubt that the data identify it.

    Flags: ``"not_converged"`` (the fit stopped before converging), ``"at_bound"`` (the
    estimate sits on a bound), ``"no_stderr"`` (no covariance), ``"imprecise"`` (standard
    error larger than ``|estimate|``), ``"profile_open"`` (the profile interval does not
    close: it runs to a bound or to infinity), ``"interval_open"`` (the reported interval,
    ``fit.intervals``, is missing or infinite: e.g. too many bootstrap replicates failed),
    ``"wide"`` (the reported interval spans more than a decade, :data:`WIDTH_RATIO`, for a
    positive scale parameter, or more than the estimate's size for the others),
    ``"extrapolated"`` (``K`` of Eq. 9 / Eq. 14 when the curve's return to it is mostly
    beyond the last step: the asymptote is then a guess, which the benchmark of
    ``benchmarks/coverage.py`` shows its intervals miss), ``"unconfirmed"`` (every parameter
    of Eq. 9 / Eq. 14 unless the layer is an early peak by both calls: the fit's ``t_peak``
    interval and the model-free drop and end slope of ``fit.model_free``, see
    :func:`regime_confirmed`; elsewhere the curve's shape is partly extrapolated, and the
    benchmark shows intervals of such fits, K and ``t_peak`` above all, missing the truth),
    ``"uncalibrated"`` (a parameter in :data:`UNCALIBRATED`: no interval method the
    benchmark tries covers it at 90 %), and the warning ``"correlated:<other>"``
    (``|correlation| > corr_threshold`` with another parameter).  See :func:`is_identified`
    for which of them decide.
    """
    flags = {n: [] for n in fit.names}
    for j, n in enumerate(fit.names):
        if fit.status == "not_converged":
            flags[n].append("not_converged")
        if n in fit.at_bound:
            flags[n].append("at_bound")
        se = fit.stderr.get(n, np.nan)
        if not np.isfinite(se):
            flags[n].append("no_stderr")
        elif se > abs(fit.params[n]):
            flags[n].append("imprecise")
        if fit.correl is not None:
            c = np.abs(np.asarray(fit.correl[j], float))
            c[j] = 0.0
            c = np.nan_to_num(c)
            if c.max() > corr_threshold:
                flags[n].append(f"correlated:{fit.names[int(np.argmax(c))]}")
        if n in fit.profile:
            lo, hi, note = fit.profile[n]
            if note or not (np.isfinite(lo) and np.isfinite(hi)):
                flags[n].append("profile_open")
        if fit.intervals:
            lo, hi = fit.intervals.get(n, (np.nan, np.nan))
            if not (np.isfinite(lo) and np.isfinite(hi)):
                flags[n].append("interval_open")
            elif _too_wide(fit, n, lo, hi):
                flags[n].append("wide")
    if "K" in flags and _asymptote_unseen(fit):
        flags["K"].append("extrapolated")
    h = fit.problem.hypothesis.name if fit.problem is not None else fit.hypothesis
    if h in ("eq9", "eq14") and not regime_confirmed(fit):
        for n in flags:
            flags[n].append("unconfirmed")
    for n in flags:
        if (h, n) in UNCALIBRATED:
            flags[n].append("uncalibrated")
    return {n: tuple(v) for n, v in flags.items()}


#: (hypothesis, parameter) pairs whose intervals no method of ``benchmarks/coverage.py``
#: brings to 90 % coverage, so they are never called identified: Eq. 9's amplitude ``A``
#: trades off against ``lam`` along a ridge of the fit (|r| > 0.99 on most early peaks) and
#: its estimate is biased low when the rise is sparsely sampled; on the broad family its
#: reported interval covered 85 % of the confirmed early peaks (53 fits; the AR(1) sandwich
#: 83 %, the block bootstrap 79 %, the bootstrap over sequences 57 %), 75 % of those narrow
#: enough to pass the other flags.
UNCALIBRATED = frozenset({("eq9", "A")})


def regime_confirmed(fit: FitResult) -> bool:
    """Whether the fit's early peak is confirmed by the trajectory itself.

    True when the fit converged inside its bounds, its ``t_peak`` interval lies inside
    training (``fit.regime == "early_peak"``) and the model-free call of
    :func:`~massive_activations.fitting.regimes.model_free_regime` (``fit.model_free``,
    filled by :func:`assess`: a significant drop from the peak and no rise at the end) says
    early peak too, with its peak region overlapping the ``t_peak`` interval
    (:func:`~massive_activations.fitting.regimes.agreed_regime`).  The curve alone is not
    enough: on the broad family of ``benchmarks/coverage.py`` about 2-3 % of logarithmic
    rises (``t_peak`` beyond the last step) get an Eq. 9 ``t_peak`` interval inside training.
    """
    interval = fit.intervals.get("t_peak", (np.nan, np.nan))
    return fit.status == "ok" and (
        agreed_regime(fit.regime, fit.model_free, interval) == "early_peak"
    )


#: A positive scale parameter's interval is too wide to read when ``hi / lo`` exceeds this
#: (a decade); any other parameter's when it is wider than ``|estimate|``.
WIDTH_RATIO = 10.0
#: ``K`` counts as observed when the curve has come at least this share of the way from its
#: extremum back to ``K`` by the last step.
SEEN_SHARE = 0.5


def _too_wide(fit: FitResult, name: str, lo: float, hi: float) -> bool:
    j = fit.names.index(name)
    if fit.problem is not None and fit.problem.log[j]:
        return bool(lo <= 0 or hi / lo > WIDTH_RATIO)
    return bool(hi - lo > abs(fit.params[name]))


def _asymptote_unseen(fit: FitResult) -> bool:
    """Whether the fitted curve's approach to ``K`` lies mostly beyond the data.

    Eq. 9 and Eq. 14 approach ``K`` only after their extremum: ``K`` is observed when the
    extremum lies inside training and the curve has come :data:`SEEN_SHARE` of the way back
    to ``K`` by the last step.  Other hypotheses are not judged.
    """
    h = fit.problem.hypothesis if fit.problem else None
    if h is None or h.name not in ("eq9", "eq14") or not fit.params:
        return False
    p = np.array([fit.params[n] for n in fit.names])
    tp = float(h.t_peak(p)[0])  # not fit.t_peak: it is filled only by assess()
    if not (np.isfinite(tp) and 0 < tp < fit.t_max):
        return True
    f_peak, f_end = fit.problem.curve(fit.theta, np.array([tp, fit.t_max]))
    with np.errstate(invalid="ignore"):  # no amplitude (A = 0): 0 / 0, unseen
        share = (f_peak - f_end) / (f_peak - fit.params["K"])
    return not bool(share >= SEEN_SHARE)


def t_peak_identified(fit: FitResult):
    """Whether ``t_peak``'s reported interval counts as identified (None when not defined).

    Only for a confirmed early peak (:func:`regime_confirmed`: the fit converged inside its
    bounds, its interval lies inside training and the model-free call agrees).  Beyond the
    last step ``t_peak`` is an extrapolation: its regime call ("log rise") stands, but
    ``benchmarks/coverage.py`` shows its intervals missing the true ``t_peak`` far more
    often than 5 % (a third covered), so no number is vouched for.
    """
    if fit.problem is None or fit.problem.hypothesis.name not in ("eq9", "eq14"):
        return None
    return regime_confirmed(fit)


def is_identified(flags) -> bool:
    """Whether a parameter with these flags counts as identified.

    Every flag but ``"correlated:..."`` rules it out.  A correlation near 1 alone does not:
    Eq. 9's ``lam`` correlates with ``A`` at ``|r| > 0.99`` on most early-peak layers, yet
    its intervals cover the truth at the nominal rate (``benchmarks/coverage.py``); it is
    reported as a warning (``A`` itself is ruled out by ``"uncalibrated"``).
    """
    return not any(not f.startswith("correlated:") for f in flags)


def assess(
    fit: FitResult,
    seqs: LayerSequences | None = None,
    *,
    quantity: str = "ratio",
    profile: bool | tuple = True,
    n_bootstrap: int = 0,
    seed: int = 0,
    level: float = 0.95,
    corr_threshold: float = 0.99,
    model_free: dict | None = None,
    profile_unconfirmed: bool = True,
) -> FitResult:
    """Fill a fit's uncertainty fields in place (and return it).

    Profile intervals (``profile=True``: the hypothesis's default parameters, or a tuple of
    names; skipped for fits that did not converge, whose profile would be meaningless and
    slow, and, with ``profile_unconfirmed=False``, for Eq. 9 / Eq. 14 fits whose early peak
    is not confirmed (:func:`regime_confirmed`): their parameters are flagged
    ``"unconfirmed"`` whatever the profile says, so it cannot change what is identified,
    and it is the slowest part of a fit), the ``t_peak`` delta interval, a bootstrap of ``n_bootstrap`` replicates when
    ``seqs`` is given, the reported interval of every parameter and of ``t_peak``
    (:func:`~massive_activations.fitting.intervals.reported_intervals`), the identifiability
    flags and the regime.  The regime is called only for a fit that converged inside its
    bounds (status ``"ok"``), from the reported ``t_peak`` interval (the union of the
    delta-method and bootstrap intervals); any other fit is ``"undetermined"``.  Beside it,
    ``fit.model_free`` holds the model-free call of the trajectory
    (:func:`~massive_activations.fitting.regimes.model_free_regime`): ``model_free`` when
    given, else computed from ``seqs`` (every checkpoint) or, without them, from the fitted
    points; the identifiability flags need both calls (:func:`regime_confirmed`).  Failed
    fits are returned unchanged.
    """
    if fit.status == "failed" or fit.problem is None:
        return fit
    if model_free is None:
        if seqs is not None:
            model_free = model_free_regime(seqs.steps, seqs.series(quantity))
        else:
            model_free = model_free_regime(fit.steps, fit.problem.y)
    fit.model_free = dict(model_free)
    fit.t_peak, *delta = t_peak_delta(fit, level)
    fit.t_peak_delta = tuple(delta)
    if n_bootstrap and seqs is not None:
        fit.bootstrap = bootstrap(fit, seqs, n=n_bootstrap, seed=seed, quantity=quantity)
        if fit.bootstrap.n_ok >= 0.5 * n_bootstrap:
            fit.t_peak_boot = fit.bootstrap.ci(None, level)
    fit.intervals = reported_intervals(fit, level)
    h = fit.problem.hypothesis
    if h.name not in ("eq9", "eq14"):
        fit.regime = "n/a"
    elif fit.status != "ok":
        fit.regime = "undetermined"
    else:
        lo, hi = fit.intervals["t_peak"]
        sign = h.amplitude_sign([fit.params[n] for n in fit.names])
        fit.regime = classify(lo, hi, fit.t_max, sign)
    needed = profile_unconfirmed or h.name not in ("eq9", "eq14") or regime_confirmed(fit)
    if profile and fit.status in ("ok", "at_bound") and needed:
        fit.profile = profile_ci(fit, None if profile is True else profile, level)
    fit.flags = identifiability(fit, corr_threshold)
    return fit


def covariance_band(fit: FitResult, steps, sigma: float = 1.0):
    """``(f, lo, hi)``: the curve and its ``sigma``-level band from the covariance.

    As :meth:`lmfit.model.ModelResult.eval_uncertainty`: ``sqrt(J C J^T)`` with the analytic
    Jacobian, times ``t((1 + erf(sigma / sqrt(2))) / 2, n - k)``.
    """
    p = fit.problem
    steps = np.asarray(steps, float)
    u = steps / p.t_scale
    p_norm = p.p_norm(fit.theta)
    if fit.covar_norm is None or not p.hypothesis.valid(p_norm[None], u)[0]:
        nan = np.full(steps.shape, np.nan)
        return nan, nan, nan
    J = p.hypothesis.jac(u, *p_norm)
    sd = p.y_scale * np.sqrt(np.clip(np.einsum("ni,ij,nj->n", J, fit.covar_norm, J), 0, None))
    scale = stats.t.ppf((special.erf(sigma / np.sqrt(2)) + 1) / 2, max(fit.nfree, 1))
    f = p.curve(fit.theta, steps)
    return f, f - scale * sd, f + scale * sd


def bootstrap_band(fit: FitResult, steps, sigma: float = 1.0):
    """``(f, lo, hi)``: the curve and pointwise bootstrap percentiles at the ``sigma`` level."""
    p = fit.problem
    steps = np.asarray(steps, float)
    if fit.bootstrap is None or fit.bootstrap.n_ok == 0:
        raise ValueError("This fit has no bootstrap: run assess(..., n_bootstrap=200) first.")
    X = fit.bootstrap.theta
    ok = p.hypothesis.valid(p.p_norm(X), steps / p.t_scale)
    curves = p.curve(X[ok], steps)
    a = expanded_tail(float(special.erf(sigma / np.sqrt(2))), fit.bootstrap.n_sequences)
    lo, hi = np.quantile(curves, [a, 1 - a], axis=0)
    return p.curve(fit.theta, steps), lo, hi
