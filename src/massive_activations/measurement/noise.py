"""The top-1/median ratio of pure noise: the baseline for "no massive activation".

A layer output without an outlier behaves, for this statistic, like ``n = seq_len * d``
i.i.d. Gaussian values: its largest absolute value is a few times its median absolute value
(about ``sqrt(2 ln n) / 0.674``).  The claims ledger judges "absent at initialisation"
against it (:mod:`massive_activations.audit.claims_activations`) and the checkpoint checks
flag an initial checkpoint far above it (:mod:`massive_activations.measurement.integrity`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["gaussian_ratio"]


def gaussian_ratio(n: int, reps: int = 32, seed: int = 0) -> float:
    """Mean top-1 / median of ``|z|`` over ``n`` i.i.d. standard normal values.

    Parameters
    ----------
    n : int
        Elements of one layer output (``seq_len * d``), at least 2.
    reps : int, default 32
        Draws averaged.
    seed : int, default 0
        Seed of the draws (the result is a deterministic function of its arguments).

    Returns
    -------
    float
        The ratio a layer output with no outlier (pure noise of ``n`` elements) gives.
    """
    if n < 2:
        raise ValueError(f"n must be >= 2 elements; got {n}.")
    rng = np.random.default_rng(seed)
    ratios = []
    for _ in range(reps):
        z = np.abs(rng.standard_normal(n))
        ratios.append(z.max() / np.median(z))
    return float(np.mean(ratios))
