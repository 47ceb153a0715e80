"""A layer's regime without a curve: drop from the peak and the slope at the end of training.

Eq. 9's call (early peak / logarithmic rise, :func:`massive_activations.fitting.uncertainty.
classify`) rests on a fitted curve; this module calls the regime from the trajectory alone,
so the ledger can count a regime only where both agree:

* the checkpoint-to-checkpoint noise ``sigma`` of ``log y`` (:func:`checkpoint_noise`): a
  robust scale of its second differences over the later half of the checkpoints, where a
  smooth trend contributes almost nothing to them;
* the **drop** from the peak to the end, ``log max - log end`` on a running median of three
  checkpoints, in units of ``sigma * sqrt(2)`` (``drop_z``);
* the **end slope**: the least-squares slope of ``log y`` on ``log t`` over the last third of
  the checkpoints, in units of its standard error from ``sigma`` (``slope_z``).

An **early peak** drops significantly (``drop_z > Z_DROP``) and is not rising at the end
(``slope_z < Z_SLOPE``); a **logarithmic rise** rises at the end (``slope_z > Z_SLOPE``) and has
not dropped (``drop_z < Z_SLOPE``); anything else is undetermined.

:func:`agreed_regime` combines this call with Eq. 9's: the regime both name, and for an early
peak only when the two also agree on where the peak is (the :func:`peak_region` overlaps the
fit's ``t_peak`` interval).  On the broad family of ``benchmarks/coverage.py`` a flat
trajectory can pass both tests with a noise bump: Eq. 9 put its peak in the first hundred
steps, the drop test at the end of training; the overlap rule sets such a layer aside.  The example the issue
tracker gave: a ratio 15 % below its peak at the end with 2.3 % checkpoint noise has
``drop_z`` near 5, an early peak, whatever a curve says.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "Z_DROP",
    "Z_SLOPE",
    "agreed_regime",
    "checkpoint_noise",
    "model_free_regime",
    "peak_region",
]

#: Drop from the peak that counts as a decline, in noise units (a one-sided 3-sigma test).
Z_DROP = 3.0
#: End slope (or drop) that counts as significant, in standard errors.
Z_SLOPE = 2.0


def _log_series(steps, y) -> tuple[np.ndarray, np.ndarray]:
    steps = np.asarray(steps, float)
    y = np.asarray(y, float)
    ok = np.isfinite(y) & (y > 0) & np.isfinite(steps)
    order = np.argsort(steps[ok], kind="stable")
    return steps[ok][order], np.log(y[ok][order])


def _running_median3(v: np.ndarray) -> np.ndarray:
    if v.size < 3:
        return v.copy()
    out = v.copy()
    out[1:-1] = np.median(np.stack([v[:-2], v[1:-1], v[2:]]), axis=0)
    return out


def checkpoint_noise(steps, y) -> float:
    """Checkpoint-to-checkpoint noise of ``log y``: ``1.4826 MAD(d2) / sqrt(6)``.

    ``d2`` are the second differences of ``log y`` over the later half of the checkpoints
    (at least 5 points); for independent noise of standard deviation ``sigma`` their
    standard deviation is ``sqrt(6) sigma``.  NaN with fewer than 5 usable points.
    """
    _, ly = _log_series(steps, y)
    late = ly[ly.size // 2 :] if ly.size >= 10 else ly
    if late.size < 5:
        return float("nan")
    d2 = np.diff(late, 2)
    mad = np.median(np.abs(d2 - np.median(d2)))
    return float(1.4826 * mad / np.sqrt(6))


def peak_region(steps, y, z: float = 1.96) -> tuple[float, float]:
    """The steps whose smoothed ``log y`` is within ``z sigma sqrt(2)`` of the maximum.

    A model-free range for the step of the peak: every checkpoint the data cannot tell from
    the highest one.  ``(nan, nan)`` when the noise cannot be estimated.
    """
    t, ly = _log_series(steps, y)
    sigma = checkpoint_noise(steps, y)
    if not np.isfinite(sigma) or t.size == 0:
        return (float("nan"), float("nan"))
    smooth = _running_median3(ly)
    near = smooth >= smooth.max() - z * max(sigma, 1e-12) * np.sqrt(2)
    return (float(t[near].min()), float(t[near].max()))


def model_free_regime(steps, y) -> dict:
    """The regime of a trajectory from its drop and end slope (see the module docstring).

    Returns
    -------
    dict
        ``sigma``, ``drop`` (log units), ``drop_z``, ``peak_step``, ``peak_lo`` and
        ``peak_hi`` (the :func:`peak_region`), ``slope`` (d log y / d log t over the last
        third), ``slope_z``, and ``regime``: ``"early_peak"``, ``"log_rise"`` or
        ``"undetermined"``.
    """
    t, ly = _log_series(steps, y)
    out = {
        "sigma": checkpoint_noise(steps, y),
        "drop": np.nan,
        "drop_z": np.nan,
        "peak_step": np.nan,
        "peak_lo": np.nan,
        "peak_hi": np.nan,
        "slope": np.nan,
        "slope_z": np.nan,
        "regime": "undetermined",
    }
    sigma = out["sigma"]
    if not np.isfinite(sigma) or t.size < 6:
        return out
    sigma = max(sigma, 1e-12)
    smooth = _running_median3(ly)
    i = int(np.argmax(smooth))
    out["peak_step"] = float(t[i])
    out["peak_lo"], out["peak_hi"] = peak_region(steps, y)
    out["drop"] = float(smooth[i] - np.mean(smooth[-2:]))
    out["drop_z"] = out["drop"] / (sigma * np.sqrt(2))
    tail = slice(max(0, t.size - max(4, t.size // 3)), t.size)
    lt, yt = np.log(np.maximum(t[tail], 1.0)), ly[tail]
    sxx = float(np.sum((lt - lt.mean()) ** 2))
    if sxx > 0:
        out["slope"] = float(np.sum((lt - lt.mean()) * (yt - yt.mean())) / sxx)
        out["slope_z"] = out["slope"] / (sigma / np.sqrt(sxx))
    if out["drop_z"] > Z_DROP and not out["slope_z"] > Z_SLOPE:
        out["regime"] = "early_peak"
    elif out["slope_z"] > Z_SLOPE and out["drop_z"] < Z_SLOPE:
        out["regime"] = "log_rise"
    return out


def agreed_regime(eq9_regime: str, model_free: dict, t_peak_interval) -> str:
    """The regime Eq. 9's call and the model-free call agree on, else ``"undetermined"``.

    Parameters
    ----------
    eq9_regime : str
        The fit's call from its ``t_peak`` interval
        (:func:`massive_activations.fitting.uncertainty.classify`).
    model_free : dict
        :func:`model_free_regime`'s output (``regime``, ``peak_lo``, ``peak_hi``).
    t_peak_interval : tuple of float
        The fit's reported ``t_peak`` interval.

    Returns
    -------
    str
        ``eq9_regime`` when both calls name it (and it is not ``"undetermined"``); an early
        peak moreover needs the model-free peak region ``[peak_lo, peak_hi]`` to overlap the
        ``t_peak`` interval (both calls must see the same peak).  Otherwise
        ``"undetermined"``.
    """
    call = model_free.get("regime", "undetermined")
    if eq9_regime != call or eq9_regime == "undetermined":
        return "undetermined"
    if eq9_regime == "early_peak":
        lo, hi = (float(v) for v in t_peak_interval)
        p_lo = float(model_free.get("peak_lo", np.nan))
        p_hi = float(model_free.get("peak_hi", np.nan))
        if not (p_lo <= hi and lo <= p_hi):  # False with any NaN
            return "undetermined"
    return eq9_regime
