"""The alternative hypotheses of paper Table 5: first- and second-order step responses.

The paper tests "first-order and second-order step responses (under-, critically and
over-damped)" (its Eqs. 15-18) and rejects them on R^2 and AIC, but does not write
those equations out in a form we could copy.  The forms below are **our reading**: the textbook unit-step responses of
``1 / (tau s + 1)`` and ``w^2 / (s^2 + 2 zeta w s + w^2)``, shifted and scaled so that ``K``
is the asymptote, as in Eq. 9 (Eq. 10: ``f -> K``).

First order (3 parameters ``K, A, tau``; ``tau > 0``)::

    f(t) = K - A * exp(-t / tau)

Second order (4 parameters ``K, A, w, zeta``; ``w > 0``, ``zeta >= 0``), one formula for
all damping regimes::

    f(t) = K - A * exp(-zeta * w * t) * (C(t) + zeta * S(t)),  q^2 = zeta^2 - 1,
    C(t) = cosh(q w t),  S(t) = sinh(q w t) / q

which is ``cos(r w t)`` and ``sin(r w t) / r`` with ``r = sqrt(1 - zeta^2)`` when
under-damped (``zeta < 1``), ``1`` and ``w t`` when critically damped (``zeta = 1``), and
the sum of two decaying exponentials when over-damped (``zeta > 1``).  It is evaluated
without overflow or cancellation in every regime (the products with ``exp(-zeta w t)`` are
formed as single exponentials, and ``sinh(y)/y``-type ratios through ``expm1`` and
``numpy.sinc``).  ``f(0) = K - A`` and ``f'(0) = 0`` (a second-order step response starts
flat).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "STEP1_NAMES",
    "STEP2_NAMES",
    "step1",
    "step1_jacobian",
    "step2",
    "step2_jacobian",
]

STEP1_NAMES = ("K", "A", "tau")
STEP2_NAMES = ("K", "A", "w", "zeta")


def _check(**values) -> None:
    for name, value in values.items():
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name} must be finite, got {value!r}.")


def step1(t, K, A, tau) -> np.ndarray:
    """First-order step response ``K - A * exp(-t / tau)``.

    Parameters
    ----------
    t : array_like
        Training steps (>= 0).
    K, A, tau : float or array_like
        Asymptote, amplitude (``f(0) = K - A``) and time constant (> 0); broadcast with ``t``.

    Raises
    ------
    ValueError
        If a parameter is not finite or ``tau <= 0``.
    """
    _check(K=K, A=A, tau=tau)
    if np.any(np.asarray(tau) <= 0):
        raise ValueError(f"tau must be > 0 (a time constant); got {tau!r}.")
    return K - A * np.exp(-np.asarray(t, dtype=float) / tau)


def step1_jacobian(t, K, A, tau) -> np.ndarray:
    """Analytic Jacobian of :func:`step1` with respect to ``(K, A, tau)``, last axis."""
    _check(K=K, A=A, tau=tau)
    t = np.asarray(t, dtype=float)
    e = np.exp(-t / tau)
    cols = (np.ones_like(e), -e, -A * e * t / np.square(tau))
    return np.stack(np.broadcast_arrays(*cols), axis=-1)


def _decay_terms(t, w, zeta):
    """``exp(-zeta w t) * C(t)`` and ``exp(-zeta w t) * S(t)`` for every damping regime."""
    t = np.asarray(t, dtype=float)
    w = np.asarray(w, dtype=float)
    zeta = np.asarray(zeta, dtype=float)
    q2 = zeta * zeta - 1.0
    r = np.sqrt(np.abs(q2))
    wt = w * t
    over = q2 > 0
    r_over = np.where(over, r, 0.0)  # each branch sees only its own regime's values
    r_under = np.where(over, 0.0, r)
    # over-damped: e^{-zeta wt} cosh(r wt) = (e^{-(zeta-r)wt} + e^{-(zeta+r)wt}) / 2 and
    # e^{-zeta wt} sinh(r wt)/r = e^{-(zeta-r)wt} * wt * g(2 r wt), g(y) = -expm1(-y)/y.
    slow = np.exp(-(zeta - r_over) * wt)
    fast = np.exp(-(zeta + r_over) * wt)
    y = 2.0 * r_over * wt
    with np.errstate(invalid="ignore", divide="ignore"):
        g = np.where(y > 1e-8, -np.expm1(-y) / np.where(y > 0, y, 1.0), 1.0 - y / 2.0)
    c_over = 0.5 * (slow + fast)
    s_over = slow * wt * g
    # under- and critically damped: cos(r wt) and sin(r wt)/r = wt * sinc(r wt / pi).
    env = np.exp(-zeta * wt)
    c_under = env * np.cos(r_under * wt)
    s_under = env * wt * np.sinc(r_under * wt / np.pi)
    return np.where(over, c_over, c_under), np.where(over, s_over, s_under)


def step2(t, K, A, w, zeta) -> np.ndarray:
    """Second-order step response, one formula for every damping (see the module docstring).

    Parameters
    ----------
    t : array_like
        Training steps (>= 0).
    K, A, w, zeta : float or array_like
        Asymptote, amplitude (``f(0) = K - A``), natural frequency (> 0) and damping ratio
        (>= 0); broadcast with ``t``.

    Raises
    ------
    ValueError
        If a parameter is not finite, ``w <= 0`` or ``zeta < 0``.
    """
    _check(K=K, A=A, w=w, zeta=zeta)
    if np.any(np.asarray(w) <= 0) or np.any(np.asarray(zeta) < 0):
        raise ValueError(f"Need w > 0 and zeta >= 0 (got w={w!r}, zeta={zeta!r}).")
    c, s = _decay_terms(t, w, zeta)
    return K - A * (c + zeta * s)


def step2_jacobian(t, K, A, w, zeta) -> np.ndarray:
    """Jacobian of :func:`step2` with respect to ``(K, A, w, zeta)``, last axis.

    ``K`` and ``A`` enter linearly (exact columns); the ``w`` and ``zeta`` columns are
    central differences with relative step ``1e-6`` (about 8 correct digits).
    """
    _check(K=K, A=A, w=w, zeta=zeta)
    t = np.asarray(t, dtype=float)
    c, s = _decay_terms(t, w, zeta)
    base = c + zeta * s
    cols = [np.ones_like(base), -base]
    for which in ("w", "zeta"):
        v = np.asarray(w if which == "w" else zeta, dtype=float)
        h = 1e-6 * np.maximum(np.abs(v), 1e-3)
        lo = np.maximum(v - h, 0.0) if which == "zeta" else v - h
        hi = v + h
        args_hi = (hi, zeta) if which == "w" else (w, hi)
        args_lo = (lo, zeta) if which == "w" else (w, lo)
        f_hi = -A * np.add(*_scaled(t, *args_hi))
        f_lo = -A * np.add(*_scaled(t, *args_lo))
        cols.append((f_hi - f_lo) / (hi - lo))
    return np.stack(np.broadcast_arrays(*cols), axis=-1)


def _scaled(t, w, zeta):
    c, s = _decay_terms(t, w, zeta)
    return c, np.asarray(zeta, dtype=float) * s
