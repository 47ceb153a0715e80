"""The paper's curve model: Eq. 9, its reparametrisation Eq. 14, and their analysis.

Eq. 9 (arXiv 2508.03616, Section 5)::

    f(t) = A * exp(-lam * x) * log(x) + K,    x = gam * t + t0

Eq. 14, the form the paper fits::

    f(t) = exp(-b * t) * (A1 * log(t + tau0) + A2) + K

with ``b = lam * gam``, ``tau0 = t0 / gam``, ``A1 = A * exp(-lam * t0)`` and
``A2 = A1 * log(gam)``.  Both are vectorised over ``t`` and over parameter arrays that
broadcast with it, come with analytic Jacobians, and validate their domain: the logarithm
needs ``x > 0`` (Eq. 9) or ``t + tau0 > 0`` (Eq. 14) at every ``t``.

The extremum of Eq. 9 lies where ``lam * x * log(x) = 1``, i.e.
``x* = exp(W(1/lam)) = 1 / (lam * W(1/lam))`` with ``W`` the principal branch of the
Lambert W function, so ``t_peak = (x* - t0) / gam`` (Eq. 13).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import lambertw

__all__ = [
    "EQ9_NAMES",
    "EQ14_NAMES",
    "REGIMES",
    "Eq9Params",
    "Eq14Params",
    "asymptote",
    "eq9",
    "eq9_jacobian",
    "eq9_jacobian_unchecked",
    "eq9_to_eq14",
    "eq9_unchecked",
    "eq14",
    "eq14_jacobian",
    "eq14_jacobian_unchecked",
    "eq14_to_eq9",
    "eq14_unchecked",
    "peak_x",
    "regime",
    "t_peak",
]

EQ9_NAMES = ("A", "lam", "gam", "t0", "K")
EQ14_NAMES = ("b", "tau0", "A1", "A2", "K")

#: Labels returned by :func:`regime`.
REGIMES = ("early_peak", "log_rise", "decay")


class Eq9Params(NamedTuple):
    """Parameters of Eq. 9: amplitude, decay rate, time scaling, time offset, baseline."""

    A: float
    lam: float
    gam: float
    t0: float
    K: float


class Eq14Params(NamedTuple):
    """Parameters of Eq. 14: decay ``b``, offset ``tau0``, log and constant amplitudes, baseline."""

    b: float
    tau0: float
    A1: float
    A2: float
    K: float


def _check_finite(**values) -> None:
    for name, value in values.items():
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name} must be finite, got {value!r}.")


def _check_positive(name: str, value, why: str) -> None:
    if np.any(np.asarray(value) <= 0):
        raise ValueError(f"{name} must be > 0 ({why}); got {value!r}.")


def _log_argument(t, scale, offset, *, label: str, fix: str) -> np.ndarray:
    """Return ``scale * t + offset``, raising a clear error where it is not > 0."""
    arg = np.asarray(scale, dtype=float) * np.asarray(t, dtype=float) + np.asarray(
        offset, dtype=float
    )
    if np.any(~(arg > 0)):
        bad = np.argmin(np.where(np.isnan(arg), -np.inf, arg))
        raise ValueError(
            f"The logarithm's argument {label} must be > 0 at every t, but its minimum is "
            f"{float(arg.flat[bad])!r}. {fix}"
        )
    return arg


def eq9(t, A, lam, gam, t0, K) -> np.ndarray:
    """Evaluate Eq. 9, ``A * exp(-lam * x) * log(x) + K`` with ``x = gam * t + t0``.

    Parameters
    ----------
    t : array_like
        Training steps.
    A, lam, gam, t0, K : float or array_like
        Amplitude, decay rate, time scaling (> 0), time offset and asymptotic baseline.
        Arrays broadcast with ``t``.

    Returns
    -------
    numpy.ndarray
        ``f(t)``, broadcast over ``t`` and the parameters.

    Raises
    ------
    ValueError
        If ``gam <= 0``, a parameter is not finite, or ``x <= 0`` at some ``t``.
    """
    _check_finite(A=A, lam=lam, gam=gam, t0=t0, K=K)
    _check_positive("gam", gam, "it scales training steps into the curve's time axis")
    x = _log_argument(
        t, gam, t0, label="x = gam*t + t0", fix="Use t0 > 0, or only steps t > -t0/gam."
    )
    return _eq9_at(x, A, lam, K)


def _eq9_at(x, A, lam, K):
    return A * np.exp(-lam * x) * np.log(x) + K


def _eq9_jacobian_at(t, x, A, lam):
    e = np.exp(-lam * x)
    logx = np.log(x)
    d_dx = A * e * (1.0 / x - lam * logx)
    cols = (e * logx, -A * x * e * logx, d_dx * t, d_dx, np.ones_like(x))
    return np.stack(np.broadcast_arrays(*cols), axis=-1)


def eq9_unchecked(t, A, lam, gam, t0, K) -> np.ndarray:
    """:func:`eq9` without its checks, for a solver that checks the domain once per step.

    The caller guarantees what :func:`eq9` checks (finite parameters, ``gam > 0``,
    ``gam * t + t0 > 0`` at every ``t``); the values are then identical to :func:`eq9`'s.
    Outside the domain the result is NaN or wrong, without an error.
    """
    return _eq9_at(gam * np.asarray(t, dtype=float) + t0, A, lam, K)


def eq9_jacobian_unchecked(t, A, lam, gam, t0, K) -> np.ndarray:
    """:func:`eq9_jacobian` without its checks (see :func:`eq9_unchecked`)."""
    t = np.asarray(t, dtype=float)
    return _eq9_jacobian_at(t, gam * t + t0, A, lam)


def eq9_jacobian(t, A, lam, gam, t0, K) -> np.ndarray:
    """Analytic Jacobian of Eq. 9 with respect to ``(A, lam, gam, t0, K)``.

    Returns
    -------
    numpy.ndarray
        Shape ``(*broadcast_shape, 5)``; the last axis follows :data:`EQ9_NAMES`.
    """
    _check_finite(A=A, lam=lam, gam=gam, t0=t0, K=K)
    _check_positive("gam", gam, "it scales training steps into the curve's time axis")
    t = np.asarray(t, dtype=float)
    x = _log_argument(
        t, gam, t0, label="x = gam*t + t0", fix="Use t0 > 0, or only steps t > -t0/gam."
    )
    return _eq9_jacobian_at(t, x, A, lam)


def eq14(t, b, tau0, A1, A2, K) -> np.ndarray:
    """Evaluate Eq. 14, ``exp(-b * t) * (A1 * log(t + tau0) + A2) + K``.

    Parameters
    ----------
    t : array_like
        Training steps.
    b, tau0, A1, A2, K : float or array_like
        Decay rate, time offset, log amplitude, constant amplitude and baseline.

    Raises
    ------
    ValueError
        If a parameter is not finite or ``t + tau0 <= 0`` at some ``t``.
    """
    _check_finite(b=b, tau0=tau0, A1=A1, A2=A2, K=K)
    s = _log_argument(t, 1.0, tau0, label="t + tau0", fix="Use tau0 > 0, or only steps t > -tau0.")
    return _eq14_at(np.asarray(t, dtype=float), s, b, A1, A2, K)


def _eq14_at(t, s, b, A1, A2, K):
    return np.exp(-b * t) * (A1 * np.log(s) + A2) + K


def _eq14_jacobian_at(t, s, b, A1, A2):
    e = np.exp(-b * t)
    logs = np.log(s)
    cols = (-t * e * (A1 * logs + A2), e * A1 / s, e * logs, e, np.ones_like(s))
    return np.stack(np.broadcast_arrays(*cols), axis=-1)


def eq14_unchecked(t, b, tau0, A1, A2, K) -> np.ndarray:
    """:func:`eq14` without its checks (finite parameters, ``t + tau0 > 0``; see
    :func:`eq9_unchecked`)."""
    t = np.asarray(t, dtype=float)
    return _eq14_at(t, 1.0 * t + tau0, b, A1, A2, K)


def eq14_jacobian_unchecked(t, b, tau0, A1, A2, K) -> np.ndarray:
    """:func:`eq14_jacobian` without its checks (see :func:`eq14_unchecked`)."""
    t = np.asarray(t, dtype=float)
    return _eq14_jacobian_at(t, 1.0 * t + tau0, b, A1, A2)


def eq14_jacobian(t, b, tau0, A1, A2, K) -> np.ndarray:
    """Analytic Jacobian of Eq. 14 with respect to ``(b, tau0, A1, A2, K)``.

    Returns
    -------
    numpy.ndarray
        Shape ``(*broadcast_shape, 5)``; the last axis follows :data:`EQ14_NAMES`.
    """
    _check_finite(b=b, tau0=tau0, A1=A1, A2=A2, K=K)
    t = np.asarray(t, dtype=float)
    s = _log_argument(t, 1.0, tau0, label="t + tau0", fix="Use tau0 > 0, or only steps t > -tau0.")
    return _eq14_jacobian_at(t, s, b, A1, A2)


def eq9_to_eq14(A, lam, gam, t0, K) -> Eq14Params:
    """Convert Eq. 9 parameters to Eq. 14 parameters (exact, elementwise).

    ``b = lam*gam``, ``tau0 = t0/gam``, ``A1 = A*exp(-lam*t0)``, ``A2 = A1*log(gam)``.
    """
    _check_finite(A=A, lam=lam, gam=gam, t0=t0, K=K)
    _check_positive("gam", gam, "Eq. 14 divides by it and takes its logarithm")
    A1 = A * np.exp(-lam * t0)
    return Eq14Params(lam * gam, t0 / gam, A1, A1 * np.log(gam), K)


def eq14_to_eq9(b, tau0, A1, A2, K) -> Eq9Params:
    """Convert Eq. 14 parameters back to Eq. 9 parameters (exact, elementwise).

    ``gam = exp(A2/A1)``, ``lam = b/gam``, ``t0 = tau0*gam``, ``A = A1*exp(b*tau0)``.

    Raises
    ------
    ValueError
        If ``A1 == 0``: then Eq. 14 is ``A2*exp(-b*t) + K``, which no Eq. 9 curve equals
        unless ``A2 == 0`` too, and ``gam`` is undefined.
    """
    _check_finite(b=b, tau0=tau0, A1=A1, A2=A2, K=K)
    if np.any(np.asarray(A1) == 0):
        raise ValueError(
            "A1 must be non-zero to convert Eq. 14 to Eq. 9 (gam = exp(A2/A1)); got "
            f"A1={A1!r}. A curve with A1 = 0 has no logarithmic term: fit Eq. 14 directly."
        )
    gam = np.exp(np.asarray(A2, dtype=float) / np.asarray(A1, dtype=float))
    return Eq9Params(A1 * np.exp(b * tau0), b / gam, gam, tau0 * gam, K)


def asymptote(A, lam, K) -> np.ndarray:
    """Limit of Eq. 9 as ``t -> infinity`` (Eq. 10).

    ``K`` when ``lam > 0`` (the exponential beats the logarithm); ``sign(A) * inf`` when
    ``lam <= 0`` and ``A != 0`` (a logarithmic or faster rise that never settles); ``K``
    when ``A == 0``.
    """
    A, lam, K = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (A, lam, K)))
    out = np.where((lam > 0) | (A == 0), K, np.where(A > 0, np.inf, -np.inf))
    return out[()] if out.ndim == 0 else out


#: Largest ``v`` with ``exp(v)`` finite in float64 (just below ``log(DBL_MAX)``).
_LOG_MAX = float(np.nextafter(np.log(np.finfo(float).max), 0.0))
#: Below this ``lam``, ``1/lam`` nears the float64 limit: ``W(1/lam)`` is computed from
#: ``log(1/lam)`` instead.
_LAM_TINY = 1e-300


def _log_peak_x(lam) -> np.ndarray:
    """``log x* = W(1/lam)`` for ``lam > 0`` (``inf`` otherwise), for every positive float.

    ``1/lam`` overflows for subnormal ``lam``, so below :data:`_LAM_TINY` the root of
    ``w + log(w) = -log(lam)`` (the defining equation of ``W(1/lam)``) is found by Newton's
    method from ``w = L - log(L)``, ``L = -log(lam) > 690``, which converges to machine
    precision in three steps.
    """
    lam = np.asarray(lam, dtype=float)
    positive = lam > 0
    direct = lam >= _LAM_TINY
    w = lambertw(1.0 / np.where(direct, lam, 1.0)).real
    if np.any(positive & ~direct):
        big = -np.log(np.where(positive & ~direct, lam, _LAM_TINY))
        v = big - np.log(big)
        for _ in range(4):
            v = v - (v + np.log(v) - big) / (1.0 + 1.0 / v)
        w = np.where(direct, w, v)
    return np.where(positive, w, np.inf)


def _exp_or_inf(v) -> np.ndarray:
    """``exp(v)``, with ``inf`` (and no overflow warning) where it exceeds float64."""
    v = np.asarray(v, dtype=float)
    fits = v <= _LOG_MAX
    return np.where(fits, np.exp(np.where(fits, v, 0.0)), np.inf)


def peak_x(lam) -> np.ndarray:
    """Where Eq. 9's derivative vanishes, in ``x``: ``x* = exp(W(1/lam))``, ``lam > 0``.

    ``lam * x * log(x) = 1`` has exactly one root ``x* > 1`` for every ``lam > 0``
    (``x log x`` rises from 0 on ``x > 1`` and is negative below 1).  For ``lam <= 0``
    there is none and ``inf`` is returned; for ``lam`` below about ``1e-311`` the root
    exceeds the largest float and is ``inf`` too.
    """
    lam = np.asarray(lam, dtype=float)
    _check_finite(lam=lam)
    xs = _exp_or_inf(_log_peak_x(lam))
    return xs[()] if xs.ndim == 0 else xs


def t_peak(lam, gam, t0) -> np.ndarray:
    """Training step of Eq. 9's extremum (Eq. 13): ``(x* - t0) / gam``.

    A maximum when ``A > 0``.  The value is negative when the extremum lies before
    step 0 (``x* <= t0``); it is ``inf`` for ``lam <= 0``, and ``+-inf`` when it lies
    beyond the largest float (tiny ``lam`` or ``gam``: a fitted curve can get there).  Such
    values are computed in logarithms, ``(x* - t0) / gam = s * exp(m + log|d| - log(gam))``
    with ``m = max(log x*, log|t0|)``, so no intermediate overflows.  Use :func:`regime`
    to classify a curve over a training window.
    """
    _check_finite(gam=gam, t0=t0)
    _check_positive("gam", gam, "it scales training steps into the curve's time axis")
    lam = np.asarray(lam, dtype=float)
    _check_finite(lam=lam)
    w, gam, t0 = np.broadcast_arrays(
        _log_peak_x(lam), np.asarray(gam, dtype=float), np.asarray(t0, dtype=float)
    )
    log_t0 = np.log(np.abs(t0), out=np.full(t0.shape, -np.inf), where=t0 != 0)
    m = np.maximum(w, log_t0)
    # The direct formula is safe where |x* - t0| <= 2 exp(m) and 2 exp(m) / gam both fit.
    bound = m + np.log(2.0)
    direct = np.isfinite(w) & (bound < _LOG_MAX) & (bound - np.log(gam) < _LOG_MAX)
    xs = _exp_or_inf(np.where(direct, w, 0.0))
    out = np.full(xs.shape, np.inf)
    np.divide(xs - t0, gam, out=out, where=direct)  # only where it fits: no overflow warning
    scaled = np.isfinite(w) & ~direct
    if np.any(scaled):
        ms = np.where(scaled, m, 0.0)
        d = _exp_or_inf(np.where(scaled, w, 0.0) - ms) - np.sign(t0) * _exp_or_inf(
            np.where(scaled, log_t0, -np.inf) - ms
        )
        log_d = np.log(np.abs(d), out=np.full(d.shape, -np.inf), where=d != 0)
        big = np.sign(d) * _exp_or_inf(ms + log_d - np.log(gam))
        out = np.where(scaled, big, out)
    return out[()] if out.ndim == 0 else out


def regime(A, lam, gam, t0, t_max) -> np.ndarray:
    """Classify Eq. 9 curves over the training window ``[0, t_max]``.

    Returns
    -------
    numpy.ndarray of str
        ``"early_peak"``: the extremum lies inside the window (``0 < t_peak <= t_max``), so
        the curve rises, peaks and decays towards ``K``;
        ``"log_rise"``: ``lam <= 0`` or ``t_peak > t_max``, so the curve still rises at the
        end of training (logarithmically when ``lam`` is small);
        ``"decay"``: ``t_peak <= 0``, the curve only falls towards ``K`` during training.
        The labels assume ``A > 0``; for ``A < 0`` the same labels name the mirror image.
    """
    tp = np.asarray(t_peak(lam, gam, t0))
    A = np.asarray(A, dtype=float)
    tp, _ = np.broadcast_arrays(tp, A)
    out = np.where(tp <= 0, "decay", np.where(tp <= t_max, "early_peak", "log_rise"))
    return out[()] if out.ndim == 0 else out
