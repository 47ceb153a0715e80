"""Synthetic predictor inputs: fits of random architectures whose targets have a known origin.

Chapter 5 uses them to show what each validation protocol can detect (a target driven by the
architecture, or one that only identifies the model), and the tests to check the predictor
against known answers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from massive_activations.prediction.features import layer_features

__all__ = ["architecture_fits"]


def architecture_fits(
    n_models: int = 12, seed: int = 0, noise: float = 0.05, per_model: bool = False
) -> tuple[pd.DataFrame, dict]:
    """A fits-like table (``fit_suite.fit_all``'s columns that the predictor reads) of random
    architectures, with targets of known origin.

    ``per_model=False``: every target is a monotone function of ``s = z(H/d) + z(d_ff/d) +
    noise`` (``z``: standardised over the layers), so two features explain it:
    ``slog1p(A) = 4 + s``, ``lam = expm1(0.3 + 0.1 s)``, ``gam = 1e-3 exp(0.2 s)``,
    ``t0 = 1 + 0.5 exp(0.3 s)``, ``K = exp(2 + 0.5 s)``.
    ``per_model=True``: ``K`` is instead a random constant per model (log-normal), unrelated to
    the architecture: a predictor can only score on it by recognising the model.

    Returns
    -------
    fits : pandas.DataFrame
    architectures : dict
        ``{model: {"n_layers", "d_model", "n_heads", "d_ff"}}``.
    """
    rng = np.random.default_rng(seed)
    archs, frames = {}, []
    for i in range(n_models):
        d = int(rng.choice([64, 128, 256]))
        archs[f"m{i}"] = {
            "n_layers": int(rng.integers(2, 9)),
            "d_model": d,
            "n_heads": int(rng.choice([2, 4, 8])),
            "d_ff": int(rng.choice([2, 3, 4, 6, 8])) * d,
        }
        frames.append(layer_features({**archs[f"m{i}"], "name": f"m{i}"}))
    f = pd.concat(frames, ignore_index=True)

    def z(c):
        return (f[c] - f[c].mean()) / f[c].std()

    s = z("H_over_d") + z("dff_over_d") + noise * rng.standard_normal(len(f))
    fits = f[["model", "layer", "n_layers"]].assign(hypothesis="eq9", procedure="ours")
    fits["A"] = np.sign(4 + s) * np.expm1(np.abs(4 + s))
    fits["lam"] = np.expm1(0.3 + 0.1 * s)
    fits["gam"] = 1e-3 * np.exp(0.2 * s)
    fits["t0"] = 1 + 0.5 * np.exp(0.3 * s)
    fits["K"] = np.exp(2 + 0.5 * s)
    if per_model:
        constant = dict(zip(archs, rng.lognormal(2.0, 1.0, len(archs)), strict=True))
        fits["K"] = fits["model"].map(constant)
    for name in ("A", "lam", "gam", "t0", "K"):
        fits[f"{name}_identified"] = pd.array([True] * len(fits), dtype="boolean")
    return fits, archs
