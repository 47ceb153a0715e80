"""Checkpoint schedules: Pythia's 154 revisions and Pythia-shaped schedules scaled down.

Pythia saves ``step0``, the powers of two ``step1 ... step512``, then every 1,000 steps to
``step143000`` (Biderman et al. 2023; the book's page "Reading the paper"): 1 + 10 + 143 = 154 checkpoints.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PYTHIA_FINAL_STEP", "pythia_steps", "scaled_schedule"]

PYTHIA_FINAL_STEP = 143_000


def pythia_steps() -> list[int]:
    """Return Pythia's 154 checkpoint steps in increasing order."""
    return [0] + [2**k for k in range(10)] + list(range(1000, PYTHIA_FINAL_STEP + 1, 1000))


def scaled_schedule(final_step: int, n_linear: int, max_log: int | None = None) -> list[int]:
    """A Pythia-shaped schedule: step 0, powers of two, then ``n_linear`` evenly spaced steps.

    Parameters
    ----------
    final_step : int
        Last training step; always included.
    n_linear : int
        Number of evenly spaced checkpoints after the logarithmic part, ending at
        ``final_step`` (Pythia: 143 at a spacing of 1,000).
    max_log : int, optional
        Largest power of two of the logarithmic part.  Defaults to the largest power of two
        below the linear spacing, as Pythia's 512 is below its spacing of 1,000.

    Returns
    -------
    list of int
        Sorted, unique steps including 0 and ``final_step``.
    """
    if final_step < 1 or n_linear < 1:
        raise ValueError(
            f"final_step and n_linear must be >= 1 (got final_step={final_step}, "
            f"n_linear={n_linear})."
        )
    spacing = final_step / n_linear
    linear = np.round(np.linspace(spacing, final_step, n_linear)).astype(int).tolist()
    if max_log is None:
        max_log = 2 ** int(np.floor(np.log2(max(spacing, 1.0)))) if spacing >= 2 else 1
    logs = [2**k for k in range(int(np.log2(max_log)) + 1) if 2**k < final_step]
    return sorted({0, *logs, *linear})
