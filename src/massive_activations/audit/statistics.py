"""Statistics behind the ledger's tests: a Gaussian baseline, a rank test, a proportion interval.

The Gaussian baseline, :func:`gaussian_ratio`, lives in
:mod:`massive_activations.measurement.noise` (the checkpoint checks use it too) and is
re-exported here.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from massive_activations.measurement.noise import gaussian_ratio

__all__ = [
    "gaussian_ratio",
    "spearman_permutation",
    "wilson_interval",
]


def spearman_permutation(x, y, max_exact: int = 8, n_resamples: int = 20000, seed: int = 0):
    """Spearman's rho and its one-sided (rho > 0) permutation p-value.

    Exact (every permutation) for up to ``max_exact`` points, otherwise ``n_resamples``
    random permutations with a fixed seed.
    """
    x = pd.Series(np.asarray(x, float)).rank().to_numpy()
    y = pd.Series(np.asarray(y, float)).rank().to_numpy()
    n = len(x)
    if n < 3:
        raise ValueError(f"Spearman's test needs >= 3 points; got {n}.")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise ValueError("Spearman's rho is undefined when one variable is constant.")

    def rho(yy):
        return float(np.corrcoef(x, yy)[0, 1])

    observed = rho(y)
    if n <= max_exact:
        perms = (np.asarray(p) for p in itertools.permutations(y))
        null = np.fromiter((rho(p) for p in perms), float, count=math.factorial(n))
    else:
        rng = np.random.default_rng(seed)
        null = np.array([rho(rng.permutation(y)) for _ in range(n_resamples)])
    hits = int(np.sum(null >= observed - 1e-12))
    if n <= max_exact:
        return observed, hits / len(null)
    return observed, (hits + 1) / (len(null) + 1)


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion ``k / n`` (NaN for ``n = 0``)."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))
