"""Chance levels of the predictor: permutations that keep model identity, and the null of the
best regressor.

**Why blocks.**  Layers of one model are not independent samples: they share the model's
training run, and neighbouring layers have similar curves.  The paper's protocols (80/20 and
5-fold over layers) put layers of a test model in training, so a regressor can score by
recognising the model from its features (every layer of a model has the same ``H / d``,
``d / L``, ...) and interpolating along its depth, with no law linking architecture to the
target.  Shuffling the target over all layers (``null="rows"``, the usual permutation test)
destroys that structure, so its chance level is far too low: a target that is a random
constant per model scores R^2 near 1 under the paper's split and "beats chance".

**The block null** (``null="blocks"``, the default) exchanges whole models' target vectors:
within each stratum of models with the same number of usable layers, a random permutation
of the models gives every model the vector of another (layer ``j`` of the model receives
layer ``j`` of the other, in layer order).  The permuted data keep which layers belong
together, each model's depth profile, its smoothness along depth and the number of layers;
what they lose is the link between a model's architecture and its targets.  Under the null
hypothesis that this link does not exist (the models' vectors are exchangeable among models
of the same depth), every arrangement is as likely as the observed one, so the test is exact.
Because vectors move only between models of the same depth, the null keeps whatever depends
on the depth ``L`` alone (and on the position within a model): it tests the features that
differ among models of the same depth (width, heads, MLP width) and the protocol's ability to
use them, not depth effects.  A model alone in its stratum keeps its own vector; with few
models per stratum the null has few distinct arrangements (``null_arrangements``, the
product of the strata's factorials), which bounds the smallest p-value; with one arrangement
the null is the observed value and nothing can be significant.

**The null of the best regressor.**  The claims ledger reads the best regressor's R^2, a
maximum over regressors; its chance level must be the same maximum on the same permuted
targets.  :func:`~massive_activations.prediction.validation.cross_validate` draws the
permutations from the seed alone (:func:`permutations`), so every regressor of a (target,
protocol) sees the same permuted targets, and :func:`null_summary` takes, permutation by
permutation, the maximum of their chance R^2 (``chance_r2`` of the results table).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "NULLS",
    "NULL_COLUMNS",
    "max_null",
    "n_arrangements",
    "null_summary",
    "permutations",
]

#: Permutation schemes (see the module docstring).
NULLS = ("blocks", "rows")

#: Columns of :func:`null_summary`'s table, in order.
NULL_COLUMNS = (
    "fits_used",
    "transforms",
    "target",
    "protocol",
    "best_model_type",
    "best_r2",
    "model_types",
    "null_scheme",
    "n_permutations",
    "null_arrangements",
    "null_max_mean",
    "null_max_sd",
    "null_max_q50",
    "null_max_q90",
    "null_max_q95",
    "null_max_q99",
    "p_value",
    "above_q95",
    "seed",
)


def _check_null(null: str) -> None:
    if null not in NULLS:
        raise ValueError(f"Unknown null {null!r}; choose one of {NULLS}.")


def _blocks(models: np.ndarray, layers: np.ndarray) -> dict[int, list[np.ndarray]]:
    """``{block size: [row indices of one model, in layer order], ...}``."""
    strata: dict[int, list[np.ndarray]] = {}
    for m in sorted(set(models.tolist())):
        rows = np.flatnonzero(models == m)
        rows = rows[np.argsort(layers[rows], kind="stable")]
        strata.setdefault(len(rows), []).append(rows)
    return strata


def permutations(
    models: Sequence, layers: Sequence, n: int, seed: int, null: str = "blocks"
) -> np.ndarray:
    """``n`` permutations of the rows: ``y[perm[k]]`` is the ``k``-th permuted target.

    Parameters
    ----------
    models, layers : sequence
        Model and layer of each row.
    n : int
        Number of permutations.
    seed : int
        The permutations depend on ``seed``, ``models``, ``layers`` and ``null`` only.
    null : {"blocks", "rows"}
        ``"blocks"``: whole models' vectors exchanged among models with the same number of
        rows, in layer order (the module docstring); ``"rows"``: every row shuffled.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, len(models))``, integer row indices.
    """
    _check_null(null)
    models = np.asarray(models).astype(str)
    layers = np.asarray(layers)
    if len(models) != len(layers):
        raise ValueError(f"models ({len(models)}) and layers ({len(layers)}) differ in length.")
    rng = np.random.default_rng(seed)
    N = len(models)
    out = np.empty((n, N), dtype=np.int64)
    strata = _blocks(models, layers)
    for k in range(n):
        if null == "rows":
            out[k] = rng.permutation(N)
            continue
        for blocks in strata.values():
            order = rng.permutation(len(blocks))
            for dest, src in zip(blocks, order, strict=True):
                out[k, dest] = blocks[src]
    return out


def n_arrangements(models: Sequence, layers: Sequence, null: str = "blocks") -> float:
    """Distinct permuted targets a scheme can give (at most; ``inf`` beyond float range):
    the product of the strata's factorials for blocks, ``N!`` for rows."""
    _check_null(null)
    models = np.asarray(models).astype(str)
    sizes = (
        [len(models)]
        if null == "rows"
        else [len(b) for b in _blocks(models, np.asarray(layers)).values()]
    )
    log = sum(math.lgamma(k + 1) for k in sizes)
    try:
        return float(round(math.exp(log)))
    except OverflowError:  # more than the largest float (171! and beyond)
        return math.inf


def max_null(chance: Sequence[np.ndarray]) -> np.ndarray:
    """Permutation by permutation, the largest chance R^2 of several regressors (NaN ignored
    unless every regressor gives NaN)."""
    arrays = [np.asarray(c, float) for c in chance]
    if not arrays or len({a.size for a in arrays}) != 1:
        raise ValueError(
            "The regressors' chance arrays must have one common length (the same "
            f"permutations); got lengths {[a.size for a in arrays]}."
        )
    stack = np.vstack(arrays)
    out = np.full(stack.shape[1], np.nan)
    ok = np.isfinite(stack).any(axis=0)
    out[ok] = np.nanmax(stack[:, ok], axis=0)
    return out


def _chance_array(value) -> np.ndarray:
    if isinstance(value, str):
        return np.asarray(json.loads(value) if value else [], float)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return np.empty(0)
    return np.asarray(value, float)


def null_summary(results: pd.DataFrame, exclude: Sequence[str] = ("mean",)) -> pd.DataFrame:
    """The null of the best regressor, per (fits used, transforms, target, protocol).

    Parameters
    ----------
    results : pandas.DataFrame
        :func:`~massive_activations.prediction.validation.evaluate`'s table (its
        ``chance_r2`` column: each row's permutation R^2, the same permutations for every
        regressor of a (target, protocol)).
    exclude : sequence of str
        Model types left out of the maximum (default the ``mean`` baseline, which the ledger
        never calls best).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`NULL_COLUMNS`: the best regressor and its R^2; the null of the maximum
        over the regressors (mean, sd, quantiles); ``p_value = (1 + #{max null >= best}) /
        (1 + n)``; ``above_q95``: best R^2 above the null's 95th percentile.  A (target,
        protocol) with no validated regressor gets NaN statistics.
    """
    rows = []
    keys = ["fits_used", "transforms", "target", "protocol"]
    ok = results[~results["model_type"].isin(exclude)]
    for key, part in ok.groupby(keys, sort=False, dropna=False):
        run = part[part["r2"].notna()].reset_index(drop=True)
        row = dict(zip(keys, key, strict=True))
        row.update(
            model_types=json.dumps(sorted(part["model_type"].astype(str))),
            null_scheme=str(part["null_scheme"].iloc[0]),
            seed=part["seed"].iloc[0],
        )
        first, last = NULL_COLUMNS.index("n_permutations"), NULL_COLUMNS.index("p_value")
        stats = dict.fromkeys(NULL_COLUMNS[first : last + 1], np.nan)
        stats.update(best_model_type=None, best_r2=np.nan, above_q95=False)
        if len(run):
            best = run.loc[run["r2"].idxmax()]
            chance = [_chance_array(c) for c in run["chance_r2"]]
            stats.update(best_model_type=str(best["model_type"]), best_r2=float(best["r2"]))
            stats.update(n_permutations=int(chance[0].size))
            stats.update(null_arrangements=float(best["null_arrangements"]))
            if chance[0].size:
                null = max_null(chance)
                r2 = float(best["r2"])
                q = np.nanquantile(null, [0.5, 0.9, 0.95, 0.99])
                stats.update(
                    null_max_mean=float(np.nanmean(null)),
                    null_max_sd=float(np.nanstd(null, ddof=1)) if null.size > 1 else np.nan,
                    null_max_q50=q[0],
                    null_max_q90=q[1],
                    null_max_q95=q[2],
                    null_max_q99=q[3],
                    p_value=float((1 + np.sum(null >= r2)) / (1 + null.size)),
                    above_q95=bool(r2 > q[2]),
                )
        row.update(stats)
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(NULL_COLUMNS))
    table["above_q95"] = table["above_q95"].astype(bool)
    return table
