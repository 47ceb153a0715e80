"""A suite's fits, read when they cover its table, else fitted now and written.

Chapter 4 fits every layer of every model of a suite (:func:`~massive_activations.fitting.fit_all.fit_all`)
and writes ``<data_dir>/<suite>/fits.parquet`` (:func:`massive_activations.registry.write`),
which chapters 5 and 6 read.  :func:`suite_fits` is that step: a stored file is reused only
when it holds every (model, layer) of the table, so fits of an earlier, smaller import (e.g. of the paper's release, suite ``paper``) are never taken for
fits of the whole table.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from massive_activations import registry
from massive_activations.fitting.fit_all import fit_all

__all__ = [
    "FITS_FILE",
    "missing_layers",
    "suite_fits",
]

#: The registered file of a suite's fits.
FITS_FILE = "fits.parquet"


def missing_layers(fits: pd.DataFrame, table: pd.DataFrame) -> list[tuple[str, int]]:
    """The ``(model, layer)`` pairs of the activation table that ``fits`` holds no row for."""
    want = set(zip(table["model"].astype(str), table["layer"].astype(int), strict=True))
    have = set(zip(fits["model"].astype(str), fits["layer"].astype(int), strict=True))
    return sorted(want - have)


def suite_fits(
    table: pd.DataFrame,
    data_dir: str | Path,
    suite: str,
    *,
    refit: bool = False,
    window: str | int | None = "from_min",
    n_bootstrap: int = 200,
    seed: int = 0,
    n_jobs: int = 2,
    progress: bool = False,
) -> tuple[pd.DataFrame, str]:
    """The fits of every layer of ``table``: read, or fitted now and written.

    Parameters
    ----------
    table : pandas.DataFrame
        The suite's activation table (one evaluation variant).
    data_dir, suite
        Where the fits live: ``<data_dir>/<suite>/fits.parquet``.
    refit : bool
        Fit now even when the stored fits cover the table.
    window, n_bootstrap, seed, n_jobs, progress
        Passed to :func:`~massive_activations.fitting.fit_all.fit_all` (every hypothesis and
        both procedures, as chapter 4 fits).

    Returns
    -------
    fits : pandas.DataFrame
    source : str
        ``"read from fits.parquet"`` or ``"fitted now"`` (with the reason when a stored file
        was set aside).
    """
    stored = None if refit else registry.read_optional(FITS_FILE, data_dir, suite)
    reason = ""
    if stored is not None:
        missing = missing_layers(stored, table)
        old = [c for c in registry.required_columns(FITS_FILE) if c not in stored.columns]
        if not missing and not old:
            return stored, f"read from {FITS_FILE}"
        reason = (
            f" ({FITS_FILE} lacked {len(missing)} of the table's layers)"
            if missing
            else f" ({FITS_FILE} predates the columns {old})"
        )
    fits = fit_all(
        table, window=window, n_bootstrap=n_bootstrap, seed=seed, n_jobs=n_jobs,
        progress=progress,
    )  # fmt: skip
    registry.write(fits, FITS_FILE, data_dir, suite)
    return fits, "fitted now" + reason
