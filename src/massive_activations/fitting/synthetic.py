"""Synthetic activation data from known curves: for certified-value tests and benchmarks.

Each (model, layer) follows a known Eq. 9 curve ``f(t)``.  Per sequence ``s`` and step
``t`` the table gets ``median = 1`` and ``top1 = f(t) * d(t) * (1 + cv * e[t, s])`` with
``e`` standard normal (``top2``, ``top3`` are 0.9 and 0.8 of ``top1``), so the ratio of
means is ``mean_s(top1)`` and its noise ``f(t) d(t) cv mean_s(e[t, s])`` is known exactly.
``cv`` is the across-sequence coefficient of variation (paper Table 2: 4-7 %).  Optionally
``e[t, s] = sqrt(rho) a[s] + sqrt(1 - rho) b[t, s]``: a persistent per-sequence effect
(a sequence that gives high ratios at one checkpoint gives high ratios at all), and
``d(t) = 1 + dip * max(0, 1 - log2(t + 1) / 4)``: the early dip of small models, whose
ratio falls from its value at initialisation to a minimum around step 16 before the rise
that Eq. 9 describes (``d = 1`` from step 15 on, so the curve is exactly Eq. 9 there).

Real trajectories also carry noise that every sequence shares at a checkpoint: the weights at
step ``t`` are one draw of training, so all sequences measured on them move together, and
neighbouring checkpoints are close in training, so that shared part is autocorrelated over
checkpoints.  ``shared_cv`` and ``phi`` add it, ``top1 *= 1 + c(t)`` with ``c`` a stationary
AR(1) over the checkpoint index (standard deviation ``shared_cv``, lag-1 correlation
``phi``); it is what a bootstrap over sequences cannot see.  :func:`draw_family` draws
whole data sets of a broad family (both regimes, Pythia's schedule and the suite's, every
noise level) for the coverage benchmark and the known-parameter check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from massive_activations.curve import eq9

__all__ = [
    "EXAMPLE_CURVES",
    "FAMILY_SCHEDULES",
    "FamilyCase",
    "draw_family",
    "shared_noise",
    "simulate_layer",
    "simulate_table",
]

#: Eq. 9 parameters on Pythia's 143k-step schedule: an early peak (t_peak ~ 18k steps)
#: and a logarithmic rise (t_peak ~ 211k, beyond training).
EXAMPLE_CURVES = {
    "early_peak": {"A": 200.0, "lam": 0.3, "gam": 1e-4, "t0": 1.2, "K": 5.0},
    "log_rise": {"A": 400.0, "lam": 0.1, "gam": 2e-5, "t0": 1.5, "K": 5.0},
}


def simulate_layer(
    steps: Sequence[float],
    params: Mapping[str, float],
    *,
    n_sequences: int = 10,
    cv: float = 0.06,
    rho: float = 0.0,
    dip: float = 0.0,
    shared_cv: float = 0.0,
    phi: float = 0.0,
    rng: np.random.Generator | int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sequence ``top1`` of one layer, shape ``(n_steps, n_sequences)``, and its truth.

    Parameters
    ----------
    steps, params
        Checkpoint steps and the Eq. 9 parameters.
    n_sequences, cv, rho, dip
        See the module docstring.
    shared_cv, phi : float
        The shared per-checkpoint component (:func:`shared_noise`); 0 for none.
    rng : numpy.random.Generator or int

    Returns
    -------
    top1 : numpy.ndarray
    truth : numpy.ndarray
        ``f(t) * d(t)``, the noise-free trajectory.
    """
    if not 0 <= rho <= 1:
        raise ValueError(f"rho must be in [0, 1], got {rho}.")
    rng = np.random.default_rng(rng)
    t = np.asarray(steps, dtype=float)
    truth = eq9(t, **params) * (1.0 + dip * np.clip(1.0 - np.log2(t + 1.0) / 4.0, 0.0, None))
    e = np.sqrt(1 - rho) * rng.standard_normal((t.size, n_sequences))
    e += np.sqrt(rho) * rng.standard_normal(n_sequences)
    shared = shared_noise(t.size, shared_cv, phi, rng) if shared_cv > 0 else 0.0
    return truth[:, None] * (1.0 + np.asarray(shared)[..., None]) * (1.0 + cv * e), truth


def shared_noise(n: int, sd: float, phi: float, rng: np.random.Generator | int = 0) -> np.ndarray:
    """A stationary AR(1) series of length ``n``: standard deviation ``sd``, lag-1 ``phi``.

    Values below -0.9 are clipped so that ``1 + c`` stays positive.
    """
    if not 0 <= phi < 1:
        raise ValueError(f"phi must be in [0, 1), got {phi}.")
    rng = np.random.default_rng(rng)
    z = rng.standard_normal(n)
    c = np.empty(n)
    c[0] = z[0]
    for i in range(1, n):
        c[i] = phi * c[i - 1] + np.sqrt(1 - phi**2) * z[i]
    return np.clip(sd * c, -0.9, None)


def simulate_table(
    curves: Mapping[str, Mapping[int, Mapping[str, float]]],
    steps: Sequence[int],
    *,
    suite: str = "synthetic",
    n_sequences: int = 10,
    cv: float = 0.06,
    rho: float = 0.0,
    dip: float = 0.0,
    shared_cv: float = 0.0,
    phi: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """An activation table (store's columns) for ``{model: {layer: eq9 params}}``.

    ``shared_cv`` and ``phi`` add the shared per-checkpoint noise (:func:`shared_noise`).
    Deterministic given ``seed``; each (model, layer) draws from its own stream.
    """
    frames = []
    steps = np.asarray(steps, dtype=np.int64)
    root = np.random.SeedSequence(seed)
    items = [(m, la, p) for m, layers in curves.items() for la, p in layers.items()]
    for (model, layer, params), ss in zip(items, root.spawn(len(items)), strict=True):
        top1, _ = simulate_layer(
            steps,
            params,
            n_sequences=n_sequences,
            cv=cv,
            rho=rho,
            dip=dip,
            shared_cv=shared_cv,
            phi=phi,
            rng=np.random.default_rng(ss),
        )
        n = top1.size
        frames.append(
            pd.DataFrame(
                {
                    "suite": suite,
                    "model": model,
                    "step": np.repeat(steps, n_sequences),
                    "layer": int(layer),
                    "sequence": np.tile(np.arange(n_sequences), steps.size),
                    "top1": top1.ravel(),
                    "top2": 0.9 * top1.ravel(),
                    "top3": 0.8 * top1.ravel(),
                    "median": np.ones(n),
                    "top1_position": 0,
                    "top1_channel": 0,
                    "top1_token": 0,
                    "dtype": "float32",
                    "variant": "raw",
                    "status": "ok",
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


#: The checkpoint schedules of the broad family: Pythia's (143k steps, the release's density:
#: the powers of two then every 4,000 steps) and the default suite's (8,000 steps, 41
#: checkpoints).
FAMILY_SCHEDULES = {
    "pythia": (143_000, 36),
    "suite": (8_000, 32),
}


@dataclass(frozen=True)
class FamilyCase:
    """One data set of the broad family: its truth, noise settings and simulated sequences."""

    regime: str
    schedule: str
    params: dict
    t_peak: float
    cv: float
    shared_cv: float
    phi: float
    steps: np.ndarray
    top1: np.ndarray


def draw_family(n: int, seed: int = 0, regimes=("early_peak", "log_rise")) -> list[FamilyCase]:
    """``n`` data sets per regime of a broad family of Eq. 9 trajectories with known truth.

    Per data set: a schedule (:data:`FAMILY_SCHEDULES`, equally often); ``lam`` log-uniform
    in [0.05, 1], ``t0`` uniform in [1.05, 3]; ``gam`` chosen so that ``t_peak`` is a
    log-uniform fraction of the last step, in [0.05, 0.6] for an early peak and [1.5, 10]
    for a logarithmic rise; ``K`` log-uniform in [2, 50] and ``A`` such that the curve's
    extremum inside training (early peak) or its value at the last step (log rise) lies a
    log-uniform factor in [1, 50] of ``K`` above ``K``.  Noise: 10 sequences with ``cv``
    uniform in [0.03, 0.10] (paper Table 2: 4-7 %), and a shared per-checkpoint component
    with ``shared_cv`` uniform in [0, 0.08] and ``phi`` uniform in [0, 0.9]
    (:func:`shared_noise`).  Deterministic given ``seed``.
    """
    from massive_activations.curve import peak_x
    from massive_activations.schedule import scaled_schedule

    rng = np.random.default_rng(seed)
    names = list(FAMILY_SCHEDULES)
    out = []
    for regime in regimes:
        if regime not in ("early_peak", "log_rise"):
            raise ValueError(f"regime must be 'early_peak' or 'log_rise'; got {regime!r}.")
        frac = (0.05, 0.6) if regime == "early_peak" else (1.5, 10.0)
        for i in range(n):
            schedule = names[i % len(names)]
            last, n_linear = FAMILY_SCHEDULES[schedule]
            steps = np.asarray(scaled_schedule(last, n_linear), dtype=float)
            lam = float(np.exp(rng.uniform(np.log(0.05), np.log(1.0))))
            t0 = float(rng.uniform(1.05, 3.0))
            xs = float(peak_x(lam))
            if xs <= t0:  # no peak after step 0: draw again with a smaller lam
                lam, xs = 0.05, float(peak_x(0.05))
            tp = float(np.exp(rng.uniform(*np.log(frac)))) * last
            gam = (xs - t0) / tp
            K = float(np.exp(rng.uniform(np.log(2.0), np.log(50.0))))
            where = tp if regime == "early_peak" else last
            x = gam * where + t0
            shape = np.exp(-lam * x) * np.log(x)
            A = float(np.exp(rng.uniform(0.0, np.log(50.0))) * K / shape)
            params = {"A": A, "lam": lam, "gam": float(gam), "t0": t0, "K": K}
            cv = float(rng.uniform(0.03, 0.10))
            shared_cv = float(rng.uniform(0.0, 0.08))
            phi = float(rng.uniform(0.0, 0.9))
            top1, _ = simulate_layer(steps, params, cv=cv, shared_cv=shared_cv, phi=phi, rng=rng)
            out.append(FamilyCase(regime, schedule, params, tp, cv, shared_cv, phi, steps, top1))
    return out
