"""Synthetic activation tables from known curves: for certified-value tests and benchmarks.

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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from massive_activations.curve import eq9

__all__ = ["EXAMPLE_CURVES", "simulate_layer", "simulate_table"]

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
    rng: np.random.Generator | int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sequence ``top1`` of one layer, shape ``(n_steps, n_sequences)``, and its truth.

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
    return truth[:, None] * (1.0 + cv * e), truth


def simulate_table(
    curves: Mapping[str, Mapping[int, Mapping[str, float]]],
    steps: Sequence[int],
    *,
    suite: str = "synthetic",
    n_sequences: int = 10,
    cv: float = 0.06,
    rho: float = 0.0,
    dip: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """An activation table (store's columns) for ``{model: {layer: eq9 params}}``.

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
                    "status": "ok",
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
