"""The predictor's samples: one per (model, layer) of the fits table, per target.

**Data.**  One sample per (model, layer) of the fits table (``fit_suite.fit_all``), from one
hypothesis (Eq. 9) and one fitting procedure (``"ours"`` by default).  For each target only the
layers whose parameter is identified (the fits table's ``<name>_identified``) and finite are
used; :func:`target_counts` reports how many were used, unidentified and missing (failed fits).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from massive_activations.prediction.features import FEATURE_NAMES, architecture, layer_features
from massive_activations.prediction.transforms import TARGETS, check_target

__all__ = [
    "TargetData",
    "target_counts",
    "target_data",
]


@dataclass(frozen=True)
class TargetData:
    """The samples of one target: features, values (original units) and counts.

    Attributes
    ----------
    target : str
    features : pandas.DataFrame
        One row per used layer: ``model, layer`` and :data:`FEATURE_NAMES`.
    y : numpy.ndarray
        The target's fitted values, original units.
    counts : dict
        ``n_layers`` (rows of the fits table for this hypothesis and procedure), ``n_used``,
        ``n_unidentified`` (finite but not identified), ``n_missing`` (no finite value).
    """

    target: str
    features: pd.DataFrame
    y: np.ndarray
    counts: dict

    @property
    def X(self) -> np.ndarray:
        """Feature matrix, columns :data:`FEATURE_NAMES`."""
        return self.features[list(FEATURE_NAMES)].to_numpy(float)

    @property
    def groups(self) -> np.ndarray:
        """Model name of each sample (the groups of leave-one-model-out)."""
        return self.features["model"].astype(str).to_numpy()


def _select(fits: pd.DataFrame, hypothesis: str, procedure: str) -> pd.DataFrame:
    needed = ["model", "layer", "hypothesis", "procedure"]
    missing = [c for c in needed if c not in fits.columns]
    if missing:
        raise ValueError(f"The fits table lacks columns {missing}; build it with fit_all.")
    rows = fits[(fits["hypothesis"] == hypothesis) & (fits["procedure"] == procedure)]
    if rows.empty:
        have = sorted(set(zip(fits["hypothesis"], fits["procedure"], strict=True)))
        raise ValueError(
            f"The fits table has no rows of hypothesis {hypothesis!r} and procedure "
            f"{procedure!r}; it has (hypothesis, procedure) {have}."
        )
    dup = rows.duplicated(["model", "layer"])
    if dup.any():
        raise ValueError(
            f"The fits table has {int(dup.sum())} repeated (model, layer) rows for "
            f"{hypothesis}/{procedure}; pass one suite's fits (one quantity)."
        )
    return rows


def _features_of(rows: pd.DataFrame, architectures: Mapping | None) -> pd.DataFrame:
    frames = []
    for model, part in rows.groupby("model", sort=True):
        spec = (architectures or {}).get(model, model)
        arch = architecture(spec, name=str(model))
        if "n_layers" in part.columns and (part["n_layers"] != arch.n_layers).any():
            raise ValueError(
                f"Model {model!r} has n_layers {sorted(set(part['n_layers']))} in the fits table "
                f"but {arch.n_layers} in its architecture; pass the right one in architectures."
            )
        frames.append(layer_features(arch, part["layer"].to_numpy()).set_index(part.index))
    return pd.concat(frames).loc[rows.index]


def target_data(
    fits: pd.DataFrame,
    target: str,
    *,
    hypothesis: str = "eq9",
    procedure: str = "ours",
    architectures: Mapping | None = None,
    identified_only: bool = True,
) -> TargetData:
    """The usable samples of one target: identified, finite values and their features.

    Parameters
    ----------
    fits : pandas.DataFrame
        The fits table (:func:`massive_activations.fitting.fit_all.fit_all`), or any table with
        ``model, layer, hypothesis, procedure``, the target and ``<target>_identified``.
    target : {"A", "lam", "gam", "t0", "K"}
    hypothesis, procedure : str
        Which fits to use.
    architectures : mapping, optional
        ``{model: spec}`` for models whose name does not tell their architecture (see
        :func:`massive_activations.prediction.features.architecture`).
    identified_only : bool
        Use only the layers whose fit identified the target (default).  ``False`` uses every
        finite value, identified or not, as the paper did (it reports no identifiability):
        a predictor can then learn values that the data did not determine.

    Returns
    -------
    TargetData
    """
    check_target(target)
    rows = _select(fits, hypothesis, procedure)
    flag = f"{target}_identified"
    if target not in rows.columns or flag not in rows.columns:
        raise ValueError(f"The fits table lacks the columns {target!r} and {flag!r}.")
    value = pd.to_numeric(rows[target], errors="coerce").to_numpy(float)
    finite = np.isfinite(value)
    ident = rows[flag].astype("boolean").fillna(False).to_numpy(bool)
    used = finite & ident if identified_only else finite
    counts = {
        "n_layers": len(rows),
        "n_used": int(used.sum()),
        "n_unidentified": int((finite & ~ident).sum()),
        "n_missing": int((~finite).sum()),
    }
    feats = _features_of(rows, architectures)[used].reset_index(drop=True)
    cols = ["model", "layer", *FEATURE_NAMES]
    return TargetData(target, feats[cols], value[used], counts)


def target_counts(
    fits: pd.DataFrame,
    *,
    targets: Sequence[str] = TARGETS,
    hypothesis: str = "eq9",
    procedure: str = "ours",
    architectures: Mapping | None = None,
) -> pd.DataFrame:
    """Per target: layers in the fits, used (identified), unidentified and missing, models."""
    rows = []
    for t in targets:
        d = target_data(
            fits, t, hypothesis=hypothesis, procedure=procedure, architectures=architectures
        )
        rows.append({"target": t, **d.counts, "n_models": len(set(d.groups))})
    return pd.DataFrame(rows)
