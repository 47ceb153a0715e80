"""The noise ceiling: how much of a target's variance the architecture can explain at all.

Seed replicates of an architecture (``L4-d128-h4``, ``L4-d128-h4-s1``, ...) have identical
features at every layer, so no predictor can tell them apart: the spread of a target across
the seeds of one architecture at one layer is noise to the predictor.  On the target's
scale (:data:`~massive_activations.prediction.transforms.TRANSFORMS`, the scale its R^2 is
computed on), with *cells* = (architecture group, layer) and the seeds as replicates,
:func:`noise_ceiling` reports

- ``var_total``: the variance of the target over all used layers of all models;
- ``var_seed``: the pooled variance within cells (the seed-to-seed variance; only cells with
  two or more replicates contribute, ``df_within = N - n_cells`` degrees of freedom);
- ``var_between``: the variance of the cell means beyond what the seed noise explains (the
  one-way random-effects estimate ``(MS_between - MS_within) / n0``, ``n0`` the effective
  cell size, floored at 0), and ``icc = var_between / (var_between + var_seed)``;
- ``ceiling_r2 = 1 - var_seed / var_total``: the largest R^2 a predictor of the features can
  expect (it can at best predict the cell mean);
- ``f_stat``, ``p_value``: the one-way ANOVA test that the cells differ by more than seed
  noise.

A target whose variance across architectures does not exceed its variance across seeds
(``p_value`` large, ``ceiling_r2`` near 0) cannot be predicted from architecture by any
method: "not predictable" is then a property of the data, not of the predictor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from massive_activations.prediction.data import target_data
from massive_activations.prediction.transforms import TARGETS, metric_scale

__all__ = ["CEILING_COLUMNS", "noise_ceiling"]

#: Columns of :func:`noise_ceiling`'s table, in order.
CEILING_COLUMNS = (
    "fits_used",
    "transforms",
    "target",
    "scale",
    "n_used",
    "n_models",
    "n_architectures",
    "n_cells",
    "n_replicated_cells",
    "df_within",
    "var_total",
    "var_seed",
    "var_between",
    "icc",
    "ceiling_r2",
    "f_stat",
    "p_value",
    "note",
)


def _anova(z: np.ndarray, cells: np.ndarray) -> dict:
    N = len(z)
    labels, inverse, sizes = np.unique(cells, return_inverse=True, return_counts=True)
    C = len(labels)
    means = np.bincount(inverse, weights=z) / sizes
    ss_within = float(np.sum((z - means[inverse]) ** 2))
    ss_between = float(np.sum(sizes * (means - z.mean()) ** 2))
    out = {
        "n_cells": C,
        "n_replicated_cells": int(np.sum(sizes > 1)),
        "df_within": N - C,
        "var_total": float(np.var(z, ddof=1)) if N > 1 else np.nan,
    }
    if N - C < 1 or C < 2:
        why = "no architecture has two seed replicates at a layer" if N - C < 1 else "one cell"
        return {**out, "note": why}
    ms_within = ss_within / (N - C)
    ms_between = ss_between / (C - 1)
    n0 = (N - np.sum(sizes**2) / N) / (C - 1)
    var_between = max((ms_between - ms_within) / n0, 0.0)
    total = var_between + ms_within
    f = ms_between / ms_within if ms_within > 0 else np.inf
    return {
        **out,
        "var_seed": ms_within,
        "var_between": var_between,
        "icc": var_between / total if total > 0 else np.nan,
        "ceiling_r2": 1.0 - ms_within / out["var_total"] if out["var_total"] > 0 else np.nan,
        "f_stat": f,
        "p_value": float(stats.f.sf(f, C - 1, N - C)) if np.isfinite(f) else 0.0,
        "note": "",
    }


def noise_ceiling(
    fits: pd.DataFrame,
    groups: Mapping | None = None,
    *,
    targets: Sequence[str] = TARGETS,
    hypothesis: str = "eq9",
    procedure: str = "ours",
    architectures: Mapping | None = None,
    identified_only: bool = True,
    transforms: str = "ours",
) -> pd.DataFrame:
    """Seed-to-seed against architecture-to-architecture variance of each target.

    Parameters
    ----------
    fits : pandas.DataFrame
        The fits table.
    groups : mapping, optional
        ``{model: architecture}`` (e.g.
        :func:`~massive_activations.prediction.data.architecture_groups` of
        ``architectures.parquet``); default: models with identical architectures.
    targets : sequence of str
    hypothesis, procedure, architectures, identified_only, transforms
        See :func:`~massive_activations.prediction.data.target_data`.

    Returns
    -------
    pandas.DataFrame
        One row per target, columns :data:`CEILING_COLUMNS` (module docstring); a target
        without replicated cells gets NaN variances and the reason in ``note``.
    """
    rows = []
    for t in targets:
        d = target_data(
            fits,
            t,
            hypothesis=hypothesis,
            procedure=procedure,
            architectures=architectures,
            groups=groups,
            identified_only=identified_only,
            transforms=transforms,
        )
        row = {
            "fits_used": "identified" if identified_only else "all",
            "transforms": transforms,
            "target": t,
            "scale": d.scale,
            "n_used": len(d.y),
            "n_models": len(set(d.models)),
            "n_architectures": len(set(d.groups)),
        }
        if len(d.y) < 3:
            rows.append({**row, "note": f"only {len(d.y)} usable layers"})
            continue
        z = metric_scale(t, d.y, transforms)(d.y)
        cells = np.array([f"{g}|{la}" for g, la in zip(d.groups, d.features["layer"], strict=True)])
        rows.append({**row, **_anova(z, cells)})
    return pd.DataFrame(rows, columns=list(CEILING_COLUMNS))
