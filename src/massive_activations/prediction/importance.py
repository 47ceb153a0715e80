"""What drives each curve parameter: permutation importance of the best validated predictor.

The paper ranks features with SHAP on a model trained on all layers (Figs. 9-10). Here the
ranking that the claims ledger tests is the permutation importance measured on held-out
layers (:func:`massive_activations.prediction.predictor.permutation_importances`) of the model type
that validated best for the target; SHAP values are shown beside it in chapter 5.

Output: ``<data>/<suite>/importance.parquet``, one row per (target, feature).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from massive_activations.measurement.store import read_derived, write_derived
from massive_activations.prediction import predictor as P

__all__ = ["best_model", "drivers", "importance_path", "read_importances", "write_importances"]

_COLUMNS = (
    "target",
    "model_type",
    "protocol",
    "fits_used",
    "feature",
    "importance",
    "importance_std",
    "rank",
)


def best_model(
    results: pd.DataFrame, target: str, protocol: str = "paper_cv5", fits_used: str | None = None
) -> str | None:
    """The model type (not the ``mean`` baseline) with the highest test R^2, or None.

    ``fits_used`` (``"identified"`` or ``"all"``) selects the rows of a results table that
    holds both (column ``fits_used``).
    """
    rows = results[
        (results["target"] == target)
        & (results["protocol"] == protocol)
        & (results["model_type"] != "mean")
        & results["r2"].notna()
    ]
    if fits_used is not None and "fits_used" in rows.columns:
        rows = rows[rows["fits_used"] == fits_used]
    if rows.empty:
        return None
    return str(rows.loc[rows["r2"].idxmax(), "model_type"])


def drivers(
    fits: pd.DataFrame,
    results: pd.DataFrame,
    *,
    targets: Sequence[str] = ("K", "lam"),
    protocol: str = "paper_cv5",
    architectures: Mapping | None = None,
    seed: int = 0,
    n_repeats: int = 10,
    identified_only: bool = True,
) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Permutation importances of each target's best model type, on held-out layers.

    Parameters
    ----------
    fits : pandas.DataFrame
        The fits table.
    results : pandas.DataFrame
        :func:`massive_activations.prediction.predictor.evaluate`'s table, which picks the model type.
    targets : sequence of str
        Targets to explain.
    protocol : str
        The validation whose test folds measure the importance (default the paper's 5-fold
        CV over layers, so the ranking answers the paper's question).
    architectures, seed, n_repeats
        See :func:`massive_activations.prediction.predictor.cross_validate` and
        :func:`~massive_activations.prediction.predictor.permutation_importances`.
    identified_only : bool
        Which fits the predictor learns from (:func:`~massive_activations.prediction.predictor.target_data`);
        the model type is picked among the results of the same choice.

    Returns
    -------
    importances : dict
        ``{target: table}`` (``feature, importance, importance_std, rank``; ``attrs`` hold
        ``model_type`` and ``protocol``).
    skipped : dict
        ``{target: reason}`` for targets with no validated model.
    """
    out, skipped = {}, {}
    used = "identified" if identified_only else "all"
    for t in targets:
        model = best_model(results, t, protocol, fits_used=used)
        if model is None:
            skipped[t] = f"no model type validated for {t} under {protocol}"
            continue
        data = P.target_data(fits, t, architectures=architectures, identified_only=identified_only)
        run = P.cross_validate(data, model, protocol, seed=seed, n_permutations=0)
        imp = P.permutation_importances(run, n_repeats=n_repeats, seed=seed)
        imp.attrs.update(model_type=model, protocol=protocol, fits_used=used)
        out[t] = imp
    return out, skipped


def importance_path(root: str | Path, suite: str) -> Path:
    """``<root>/<suite>/importance.parquet``."""
    return Path(root) / suite / "importance.parquet"


def write_importances(
    importances: Mapping[str, pd.DataFrame], root: str | Path, suite: str
) -> Path:
    """Write :func:`drivers`' tables as one long table, atomically."""
    frames = [
        imp.assign(
            target=t,
            model_type=imp.attrs["model_type"],
            protocol=imp.attrs["protocol"],
            fits_used=imp.attrs.get("fits_used", "identified"),
        )
        for t, imp in importances.items()
    ]
    table = (
        pd.concat(frames, ignore_index=True)[list(_COLUMNS)]
        if frames
        else pd.DataFrame(
            {c: pd.Series(dtype=object if i < 5 else float) for i, c in enumerate(_COLUMNS)}
        )
    )
    return write_derived(table, importance_path(root, suite))


def read_importances(root: str | Path, suite: str) -> dict[str, pd.DataFrame]:
    """Read ``importance.parquet`` back into ``{target: table}`` (with ``attrs``)."""
    table = read_derived(
        importance_path(root, suite),
        "run chapter 5 (notebooks/05_predicting.py) on this suite first.",
    )
    out = {}
    for t, part in table.groupby("target", sort=False):
        imp = part[["feature", "importance", "importance_std", "rank"]].reset_index(drop=True)
        imp["rank"] = imp["rank"].astype(np.int64)
        imp.attrs.update(
            model_type=part["model_type"].iloc[0],
            protocol=part["protocol"].iloc[0],
            fits_used=part["fits_used"].iloc[0],
        )
        out[str(t)] = imp
    return out
