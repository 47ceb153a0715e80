"""What drives each curve parameter: permutation importance of the best validated predictor.

The paper ranks features with SHAP on a model trained on all layers (Figs. 9-10). Here the
ranking that the claims ledger tests is the permutation importance measured on held-out
layers (:func:`massive_activations.prediction.importance.permutation_importances`) of the model type
that validated best for the target; SHAP values are shown beside it in chapter 5.

Output: ``<data>/<suite>/importance.parquet``, one row per (target, feature).

**Feature importance**: :func:`permutation_importances` (the increase in mean squared error
when a feature is shuffled, on the outer test folds, so on data the model did not see) and
SHAP (:func:`explain`, :func:`explain_highest`) with ``shap==0.51.0``: tree explainers for the
tree models, a linear explainer for Ridge and Lasso, on the transformed target scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

from massive_activations import registry
from massive_activations.prediction.data import target_data
from massive_activations.prediction.estimators import transformed_neg_mse
from massive_activations.prediction.features import FEATURE_NAMES
from massive_activations.prediction.unseen import Predictor
from massive_activations.prediction.validation import CVRun, cross_validate

__all__ = [
    "best_model",
    "drivers",
    "explain",
    "explain_highest",
    "importances_by_target",
    "permutation_importances",
    "write_importances",
]

_COLUMNS = (
    "target",
    "model_type",
    "protocol",
    "fits_used",
    "transforms",
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
    groups: Mapping | None = None,
    seed: int = 0,
    n_repeats: int = 10,
    identified_only: bool = True,
    transforms: str = "ours",
) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Permutation importances of each target's best model type, on held-out layers.

    Parameters
    ----------
    fits : pandas.DataFrame
        The fits table.
    results : pandas.DataFrame
        :func:`massive_activations.prediction.validation.evaluate`'s table, which picks the model type.
    targets : sequence of str
        Targets to explain.
    protocol : str
        The validation whose test folds measure the importance (default the paper's 5-fold
        CV over layers, so the ranking answers the paper's question).
    architectures, seed, n_repeats
        See :func:`massive_activations.prediction.validation.cross_validate` and
        :func:`~massive_activations.prediction.importance.permutation_importances`.
    identified_only : bool
        Which fits the predictor learns from (:func:`~massive_activations.prediction.data.target_data`);
        the model type is picked among the results of the same choice.
    groups, transforms
        See :func:`~massive_activations.prediction.data.target_data`; the model type is picked
        among the results of the same transforms when the table has several.

    Returns
    -------
    importances : dict
        ``{target: table}`` (``feature, importance, importance_std, rank``; ``attrs`` hold
        ``model_type``, ``protocol``, ``fits_used`` and ``transforms``).
    skipped : dict
        ``{target: reason}`` for targets with no validated model.
    """
    out, skipped = {}, {}
    used = "identified" if identified_only else "all"
    if "transforms" in results.columns:
        results = results[results["transforms"] == transforms]
    for t in targets:
        model = best_model(results, t, protocol, fits_used=used)
        if model is None:
            skipped[t] = f"no model type validated for {t} under {protocol}"
            continue
        data = target_data(
            fits,
            t,
            architectures=architectures,
            groups=groups,
            identified_only=identified_only,
            transforms=transforms,
        )
        run = cross_validate(data, model, protocol, seed=seed, n_permutations=0)
        imp = permutation_importances(run, n_repeats=n_repeats, seed=seed)
        imp.attrs.update(model_type=model, protocol=protocol, fits_used=used, transforms=transforms)
        out[t] = imp
    return out, skipped


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
            transforms=imp.attrs.get("transforms", "ours"),
        )
        for t, imp in importances.items()
    ]
    table = (
        pd.concat(frames, ignore_index=True)[list(_COLUMNS)]
        if frames
        else pd.DataFrame(
            {c: pd.Series(dtype=object if i < 6 else float) for i, c in enumerate(_COLUMNS)}
        )
    )
    return registry.write(table, "importance.parquet", root, suite)


def importances_by_target(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``importance.parquet``'s table (``registry.read("importance.parquet", ...)``) as
    :func:`drivers` returned it: ``{target: table}`` with ``attrs``."""
    out = {}
    for t, part in table.groupby("target", sort=False):
        imp = part[["feature", "importance", "importance_std", "rank"]].reset_index(drop=True)
        imp["rank"] = imp["rank"].astype(np.int64)
        imp.attrs.update(
            model_type=part["model_type"].iloc[0],
            protocol=part["protocol"].iloc[0],
            fits_used=part["fits_used"].iloc[0],
            # tables written before the transforms column used the paper's transforms
            transforms=part["transforms"].iloc[0] if "transforms" in part else "paper",
        )
        out[str(t)] = imp
    return out


def permutation_importances(run: CVRun, *, n_repeats: int = 10, seed: int = 0) -> pd.DataFrame:
    """Permutation importance of each feature on the outer test folds of a validation.

    The importance is the increase of the mean squared error (on each fold model's transformed
    target scale) when the feature's values are shuffled among the fold's test rows, averaged
    over repeats and over folds weighted by their test size: it is measured on layers the
    model did not see in training.

    Returns
    -------
    pandas.DataFrame
        ``feature, importance, importance_std, rank`` (1 = most important), sorted by rank.
    """
    X, y = run.data.X, run.data.y
    means, sds, weights = [], [], []
    for _, te, est, _ in run.folds:
        if len(te) < 2:
            continue
        res = permutation_importance(
            est, X[te], y[te], scoring=transformed_neg_mse, n_repeats=n_repeats, random_state=seed
        )
        means.append(res.importances_mean)
        sds.append(res.importances_std)
        weights.append(len(te))
    if not weights:
        raise ValueError("No test fold has >= 2 rows; permutation importance needs them.")
    w = np.asarray(weights, float)
    out = pd.DataFrame(
        {
            "feature": FEATURE_NAMES,
            "importance": np.average(np.asarray(means), axis=0, weights=w),
            "importance_std": np.sqrt(np.average(np.asarray(sds) ** 2, axis=0, weights=w)),
        }
    )
    out = out.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)
    out["rank"] = np.arange(1, len(out) + 1)
    return out


def explain(predictor: Predictor, target: str, features: pd.DataFrame | None = None):
    """SHAP values of a predictor's full model for ``target`` (paper Figs. 9-10).

    Parameters
    ----------
    predictor : Predictor
    target : str
    features : pandas.DataFrame, optional
        Rows with :data:`FEATURE_NAMES` columns (:func:`layer_features`); default: the
        target's training layers.

    Returns
    -------
    shap.Explanation
        Values on the model's transformed target scale (the predictor's transforms)
        for the standardised features; ``data`` holds the raw feature values, so
        ``shap.plots.beeswarm`` shows them.  Tree models use ``TreeExplainer``, Ridge and
        Lasso ``LinearExplainer`` with the training layers as background.
    """
    try:
        import shap
    except ImportError as err:  # pragma: no cover - shap is a pinned dependency
        raise ImportError("explain needs shap: pip install shap==0.51.0.") from err
    if target not in predictor.estimators:
        raise ValueError(f"The predictor has no target {target!r}; it has {predictor.targets}.")
    if predictor.model_type == "mean":
        raise ValueError("The 'mean' baseline uses no feature; there is nothing to explain.")
    est = predictor.estimators[target]
    scaler, model = est.regressor_[:-1], est.regressor_[-1]
    train = predictor.data[target].features[list(FEATURE_NAMES)]
    raw = train if features is None else features[list(FEATURE_NAMES)]
    Xs = scaler.transform(raw.to_numpy(float))
    if predictor.model_type in ("Ridge", "Lasso"):
        explainer = shap.LinearExplainer(model, scaler.transform(train.to_numpy(float)))
    else:
        explainer = shap.TreeExplainer(model)
    ex = explainer(Xs)
    return shap.Explanation(
        values=np.asarray(ex.values, float),
        base_values=np.asarray(ex.base_values, float).reshape(-1),
        data=raw.to_numpy(float),
        feature_names=list(FEATURE_NAMES),
    )


def explain_highest(predictor: Predictor, target: str = "K", features: pd.DataFrame | None = None):
    """SHAP explanation of the single row with the highest prediction of ``target``.

    A one-row ``shap.Explanation`` ready for ``shap.plots.waterfall`` (paper Fig. 10 explains
    the highest-``K`` prediction).  ``features`` as in :func:`explain`.
    """
    train = predictor.data[target].features
    rows = train if features is None else features
    pred = predictor.estimators[target].predict(rows[list(FEATURE_NAMES)].to_numpy(float))
    i = int(np.argmax(pred))
    return explain(predictor, target, rows.iloc[[i]])[0]
