"""A suite's fits, read when they cover its table, else fitted now and written.

Chapter 4 fits every layer of every model of a suite (:func:`~massive_activations.fitting.fit_all.fit_all`)
and writes ``<data_dir>/<suite>/fits.parquet`` (:func:`massive_activations.registry.write`),
which chapters 5 and 6 read.  :func:`suite_fits` is that step: a stored file is reused only
when it was fitted, with the settings asked for now and the current fitting code's constants
(:func:`fit_settings`, recorded in the file's ``attrs``), on the very activation values of
the table (:func:`input_digest`).  So fits of an earlier,
smaller import (e.g. of the paper's release, suite ``paper``), of regenerated activations or
of an older procedure are never taken for fits of this table: they are refitted, and the
chapter says why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
from pathlib import Path

import pandas as pd

from massive_activations import registry
from massive_activations.fitting import intervals, procedures, uncertainty
from massive_activations.fitting.fit_all import fit_all

__all__ = [
    "CHECKPOINTS",
    "FITS_FILE",
    "FIT_VERSION",
    "fit_settings",
    "input_digest",
    "missing_layers",
    "settings_changes",
    "suite_fits",
]

#: The registered file of a suite's fits.
FITS_FILE = "fits.parquet"

#: Folder beside :data:`FITS_FILE` where a fit in progress saves each layer (one file per
#: layer, :func:`~massive_activations.fitting.fit_all.fit_all`'s ``checkpoints``): a build
#: killed midway resumes there, and the folder is emptied once the table is written.
CHECKPOINTS = ".fits-parts"

#: The version of the fitting code's numbers: bump it with a change that alters fitted values
#: without changing a setting :func:`fit_settings` records (a fixed bug, a new statistic), so
#: that stored fits of the older code are refitted.  2: profile ends to 4 digits, NaN where a
#: refit stops on its budget.
FIT_VERSION = 2

#: Arguments of :func:`~massive_activations.fitting.fit_all.fit_all` that never change the
#: numbers: left out of :func:`fit_settings`.
_NOT_SETTINGS = ("table", "n_jobs", "progress", "checkpoints", "checkpoint_key")

#: :func:`~massive_activations.fitting.fit_all.fit_all`'s own signature (its defaults).
_SIGNATURE = inspect.signature(fit_all)


def fit_settings(**settings) -> dict:
    """Everything besides the activation values that shapes a fits table.

    Parameters
    ----------
    **settings
        Arguments of :func:`~massive_activations.fitting.fit_all.fit_all` (its defaults fill
        the rest; ``n_jobs``, ``progress`` and the checkpoints do not change the numbers and are
        left out).

    Returns
    -------
    dict
        JSON values: the arguments, :data:`FIT_VERSION`, each procedure's constants
        (bounds, starts, window, weights, evaluation budget), the profile's budget and digits,
        the bootstrap refit's tolerances and the sandwich interval's autocorrelation floor.
    """
    call = {k: p.default for k, p in _SIGNATURE.parameters.items() if k not in _NOT_SETTINGS}
    unknown = sorted(set(settings) - set(call))
    if unknown:
        raise TypeError(f"fit_all has no argument(s) {unknown}; it takes {sorted(call)}.")
    call.update(settings)
    out = {
        "fit_version": FIT_VERSION,
        **call,
        "procedures": {n: dataclasses.asdict(p) for n, p in procedures.PROCEDURES.items()},
        "profile_nfev": uncertainty.PROFILE_NFEV,
        "profile_digits": uncertainty.PROFILE_DIGITS,
        "bootstrap_refit": dict(intervals.REFIT),
        "rho_floor": intervals.RHO_FLOOR,
    }
    return json.loads(json.dumps(out))  # tuples as lists: as a Parquet file gives them back


def input_digest(table: pd.DataFrame) -> str:
    """A sha256 of the activation table's values (columns in name order, rows as given)."""
    cols = sorted(table.columns)
    rows = pd.util.hash_pandas_object(table[cols], index=False).to_numpy()
    return hashlib.sha256(json.dumps(cols).encode() + rows.tobytes()).hexdigest()


def missing_layers(fits: pd.DataFrame, table: pd.DataFrame) -> list[tuple[str, int]]:
    """The ``(model, layer)`` pairs of the activation table that ``fits`` holds no row for."""
    want = set(zip(table["model"].astype(str), table["layer"].astype(int), strict=True))
    have = set(zip(fits["model"].astype(str), fits["layer"].astype(int), strict=True))
    return sorted(want - have)


def settings_changes(stored: dict, current: dict, prefix: str = "") -> list[str]:
    """``"key: old -> new"`` for every (nested) setting that differs between two records."""
    out = []
    for k in sorted(set(stored) | set(current), key=str):
        a, b = stored.get(k, "absent"), current.get(k, "absent")
        if isinstance(a, dict) and isinstance(b, dict):
            out += settings_changes(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out


def _stale(stored: pd.DataFrame, table: pd.DataFrame, settings: dict) -> str:
    """Why ``stored`` cannot stand for fits of ``table`` with ``settings`` ("" if it can)."""
    missing = missing_layers(stored, table)
    if missing:
        return f"{FITS_FILE} lacked {len(missing)} of the table's layers"
    old = [c for c in registry.required_columns(FITS_FILE) if c not in stored.columns]
    if old:
        return f"{FITS_FILE} predates the columns {old}"
    if "fit_settings" not in stored.attrs or "input_digest" not in stored.attrs:
        return f"{FITS_FILE} does not record the settings and data it was fitted with"
    changes = settings_changes(stored.attrs["fit_settings"], settings)
    if changes:
        return f"{FITS_FILE} was fitted with other settings: {'; '.join(changes)}"
    if stored.attrs["input_digest"] != input_digest(table):
        return f"{FITS_FILE} was fitted on other activation values"
    return ""


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
    settings = fit_settings(window=window, n_bootstrap=n_bootstrap, seed=seed)
    stored = None if refit else registry.read_optional(FITS_FILE, data_dir, suite)
    reason = ""
    if stored is not None:
        reason = _stale(stored, table, settings)
        if not reason:
            return stored, f"read from {FITS_FILE}"
        reason = f" ({reason})"
    parts = registry.path(FITS_FILE, data_dir, suite).parent / CHECKPOINTS
    fits = fit_all(
        table, window=window, n_bootstrap=n_bootstrap, seed=seed, n_jobs=n_jobs,
        progress=progress, checkpoints=parts, checkpoint_key=json.dumps(settings, sort_keys=True),
    )  # fmt: skip
    fits.attrs.update(fit_settings=settings, input_digest=input_digest(table))
    registry.write(fits, FITS_FILE, data_dir, suite)
    # the whole table is written: the layers saved on the way are no longer needed
    for part in parts.glob("*.pkl") if parts.is_dir() else ():
        part.unlink()
    if parts.is_dir() and not any(parts.iterdir()):
        parts.rmdir()
    return fits, "fitted now" + reason
