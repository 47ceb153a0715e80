"""Synthetic predictor inputs: fits of random architectures whose targets have a known origin.

Chapter 5 uses them to show what each validation protocol can detect (a target driven by the
architecture, or one that only identifies the model), :mod:`~massive_activations.prediction.power`
to measure whether a protocol can detect an architecture-driven target at the real data's
size, and the tests to check the predictor against known answers.

**The architecture-driven target.**  Every target is a monotone function of
``s = z(H/d) + z(d_ff/d) + noise`` (``z``: standardised over the layers; a constant feature
contributes 0; ``noise``: independent normal per layer, sd ``noise``) (:func:`synthetic_targets`):
``slog1p(A) = 4 + s``, ``lam = expm1(0.3 + 0.1 s)``, ``gam = 1e-3 exp(0.2 s)``,
``t0 = 1 + 0.5 exp(0.3 s)``, ``K = exp(2 + 0.5 s)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from massive_activations.prediction.features import layer_features
from massive_activations.prediction.transforms import TARGETS, slog1p_inverse

__all__ = [
    "architecture_fits",
    "architecture_signal",
    "random_architecture",
    "synthetic_targets",
]

_WIDTHS, _HEADS, _MLP = (64, 128, 256), (2, 4, 8), (2, 3, 4, 6, 8)


def random_architecture(rng: np.random.Generator, n_layers: int | None = None) -> dict:
    """A random ``{"n_layers", "d_model", "n_heads", "d_ff"}``: ``d`` in 64, 128, 256; ``L``
    in 2..8 unless given; ``H`` in 2, 4, 8; ``d_ff / d`` in 2, 3, 4, 6, 8."""
    d = int(rng.choice(_WIDTHS))
    L = int(rng.integers(2, 9)) if n_layers is None else int(n_layers)
    return {
        "n_layers": L,
        "d_model": d,
        "n_heads": int(rng.choice(_HEADS)),
        "d_ff": int(rng.choice(_MLP)) * d,
    }


def architecture_signal(
    features: pd.DataFrame, noise: float, rng: np.random.Generator
) -> np.ndarray:
    """``s = z(H/d) + z(d_ff/d) + noise * N(0, 1)`` of each row of a features table."""

    def z(c):
        v = features[c].to_numpy(float)
        sd = v.std(ddof=1) if len(v) > 1 else 0.0
        return (v - v.mean()) / sd if sd > 0 else np.zeros(len(v))

    return z("H_over_d") + z("dff_over_d") + noise * rng.standard_normal(len(features))


def synthetic_targets(s: np.ndarray) -> dict[str, np.ndarray]:
    """The five targets as known functions of the signal ``s`` (module docstring)."""
    s = np.asarray(s, float)
    return {
        "A": slog1p_inverse(4 + s),
        "lam": np.expm1(0.3 + 0.1 * s),
        "gam": 1e-3 * np.exp(0.2 * s),
        "t0": 1 + 0.5 * np.exp(0.3 * s),
        "K": np.exp(2 + 0.5 * s),
    }


def architecture_fits(
    n_models: int = 12,
    seed: int = 0,
    noise: float = 0.05,
    per_model: bool = False,
    *,
    layer_counts: Sequence[int] | None = None,
    n_seeds: int = 1,
) -> tuple[pd.DataFrame, dict]:
    """A fits-like table (``fit_suite.fit_all``'s columns that the predictor reads) of random
    architectures, with targets of known origin.

    Parameters
    ----------
    n_models : int
        Architectures (models ``m0, m1, ...``).
    seed : int
        Seed of the architectures and the noise.
    noise : float
        Sd of the per-layer noise in the signal ``s`` (module docstring).
    per_model : bool
        ``True``: ``K`` is instead a random constant per model (log-normal; seed replicates
        get their own), unrelated to its features: a predictor can only score on it by
        recognising the model.
    layer_counts : sequence of int, optional
        The architectures' numbers of layers (length ``n_models``; default random in 2..8).
    n_seeds : int
        Models per architecture: ``m<i>`` and its seed replicates ``m<i>-s1``, ...
        (identical features; their targets differ by the per-layer noise only).

    Returns
    -------
    fits : pandas.DataFrame
    architectures : dict
        ``{model: {"n_layers", "d_model", "n_heads", "d_ff"}}``.
    """
    if layer_counts is not None and len(layer_counts) != n_models:
        raise ValueError(
            f"layer_counts has {len(layer_counts)} entries for n_models={n_models}; give one "
            "number of layers per architecture."
        )
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be >= 1; got {n_seeds}.")
    rng = np.random.default_rng(seed)
    archs, frames = {}, []
    for i in range(n_models):
        spec = random_architecture(rng, None if layer_counts is None else layer_counts[i])
        for k in range(n_seeds):
            name = f"m{i}" + (f"-s{k}" if k else "")
            archs[name] = dict(spec)
            frames.append(layer_features({**spec, "name": name}))
    f = pd.concat(frames, ignore_index=True)
    s = architecture_signal(f, noise, rng)
    fits = f[["model", "layer", "n_layers"]].assign(hypothesis="eq9", procedure="ours")
    for name, values in synthetic_targets(s).items():
        fits[name] = values
    if per_model:
        constant = dict(zip(archs, rng.lognormal(2.0, 1.0, len(archs)), strict=True))
        fits["K"] = fits["model"].map(constant)
    for name in TARGETS:
        fits[f"{name}_identified"] = pd.array([True] * len(fits), dtype="boolean")
    return fits, archs
