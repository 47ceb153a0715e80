"""Predicting Eq. 9's parameters from architecture (paper Section 6, Tables 3-4, Figs. 9-10).

Each of ``A, lam, gam, t0, K`` (:data:`TARGETS`) is predicted separately from paper Table 4's
ten features of a layer (:mod:`massive_activations.prediction.features`; layers counted from 1).

**Data.**  One sample per (model, layer) of the fits table (``fit_suite.fit_all``), from one
hypothesis (Eq. 9) and one fitting procedure (``"ours"`` by default).  For each target only the
layers whose parameter is identified (the fits table's ``<name>_identified``) and finite are
used; :func:`target_counts` reports how many were used, unidentified and missing (failed fits).

**Targets** are transformed as the paper did: ``log1p`` for ``A, lam, gam, t0`` and
Yeo-Johnson for ``K``.  ``log1p`` is applied sign-preserving, ``sign(x) log1p(|x|)``
(:func:`slog1p`), so that negative values (``A`` and ``t0`` can be negative under the paper's
procedure, which bounds only ``lam``) stay defined; on values >= 0 it is plain ``log1p``.
Yeo-Johnson's ``lambda`` (maximum likelihood, :class:`YeoJohnson`) is fitted on the training
fold only, inside a ``TransformedTargetRegressor``; its inverse is clipped to the transform's
range.  Predictions come back in original units.

**Models**: Ridge, Lasso, random forest, gradient boosting and XGBoost (:data:`MODEL_TYPES`),
each a scikit-learn pipeline ``StandardScaler -> model`` (features standardised on the
training fold only) inside the target transform, plus the training-mean baseline ``"mean"``.
Hyperparameters are tuned by an inner 5-fold cross-validation on the training part only
(``KFold`` over layers for the paper's protocols, ``GroupKFold`` by model for
leave-one-model-out; fewer folds when there are fewer layers or models)
(grids: :data:`GRIDS`; score: mean squared error on the transformed scale), and recorded per
outer fold in the results' ``params`` column.  XGBoost comes from the ``xgboost-cpu`` wheel
(imports as ``xgboost``).

**Protocols** (:data:`PROTOCOLS`), shown side by side:

* ``"paper_split"``: the paper's 80/20 random split over layers (layers of one model in both
  parts), scored on the 20 %;
* ``"paper_cv5"``: 5-fold cross-validation over layers (shuffled), pooled out-of-fold
  predictions;
* ``"lomo"``: leave-one-model-out: each model's layers are predicted by a predictor that saw
  none of that model's layers (inner tuning is grouped by model too), pooled out-of-fold.

R^2, MAE and RMSE are computed on the transformed scale (presumably the paper's; it does not
say), with one fixed scale per target for all folds: ``slog1p``, or for ``K`` Yeo-Johnson with ``lambda`` fitted on all of
the target's values.  That scale only weighs the errors; no information flows from it into a
prediction.  For pooled protocols R^2 is ``1 - SSE / SST`` over all out-of-fold predictions.

**Chance level**: the same protocol (same outer splits) run on targets shuffled across all
layers, ``n_permutations`` times, gives ``chance_r2_mean``, ``chance_r2_q95`` and the
permutation ``p_value = (1 + #{R^2_perm >= R^2}) / (1 + n)``.  By default each fold keeps the
hyperparameters tuned on the real targets (a fixed estimator per fold, as in Ojala & Garriga's
test); ``retune_permutations=True`` re-runs the inner search on every shuffle (the whole
protocol, the grid size times the inner folds costlier).  The baseline ``"mean"`` predicts the
training fold's mean (on the transformed scale) and shows what R^2 a protocol gives with no
feature at all: under leave-one-model-out it is below 0 (each held-out model's layers move the
training mean away from themselves).

**Feature importance**: :func:`permutation_importances` (the increase in mean squared error
when a feature is shuffled, on the outer test folds, so on data the model did not see) and
SHAP (:func:`explain`, :func:`explain_highest`) with ``shap==0.51.0``: tree explainers for the
tree models, a linear explainer for Ridge and Lasso, on the transformed target scale.

**Unseen architectures**: :func:`fit_predictor` trains one model per target on every usable
layer (hyperparameters tuned by inner cross-validation grouped by model) plus ``n_members``
models each fitted without one group of models (``GroupKFold``); :func:`predict_architecture`
returns the full model's prediction with the members' range as its uncertainty and flags
extrapolation (a feature outside its training range); :func:`predicted_curves` evaluates the
implied Eq. 9 curves (:func:`massive_activations.curve.eq9`).

Everything is deterministic given ``seed``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.inspection import permutation_importance
from sklearn.linear_model import Lasso, Ridge
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    KFold,
    LeaveOneGroupOut,
    train_test_split,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from tqdm import tqdm

from massive_activations import reference
from massive_activations.curve import eq9
from massive_activations.measurement.store import read_derived, write_derived
from massive_activations.prediction.features import FEATURE_NAMES, architecture, layer_features

__all__ = [
    "GRIDS",
    "MODEL_TYPES",
    "PAPER_TABLE3",
    "PROTOCOLS",
    "RESULT_COLUMNS",
    "TARGETS",
    "CVRun",
    "Predictor",
    "TargetData",
    "YeoJohnson",
    "cross_validate",
    "evaluate",
    "explain",
    "explain_highest",
    "fit_predictor",
    "make_estimator",
    "permutation_importances",
    "predict_architecture",
    "predicted_curves",
    "predictor_path",
    "read_predictor",
    "slog1p",
    "slog1p_inverse",
    "table3",
    "target_counts",
    "target_data",
    "target_transformer",
    "write_predictor",
]

#: The predicted parameters of Eq. 9, in the paper's order.
TARGETS = ("A", "lam", "gam", "t0", "K")
#: The paper's five regressors (Table 3's columns); ``"mean"`` is the baseline.
MODEL_TYPES = ("Ridge", "Lasso", "RandomForest", "GradientBoosting", "XGBoost")
#: Validation protocols (see the module docstring).
PROTOCOLS = ("paper_split", "paper_cv5", "lomo")
#: Hyperparameter grids searched by inner cross-validation (model's own parameter names).
GRIDS: dict[str, dict[str, list]] = {
    "mean": {},
    "Ridge": {"alpha": [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0]},
    "Lasso": {"alpha": [1e-4, 1e-3, 1e-2, 1e-1, 1.0]},
    "RandomForest": {"max_depth": [None, 3], "min_samples_leaf": [1, 3]},
    "GradientBoosting": {"learning_rate": [0.03, 0.1], "max_depth": [2, 3]},
    "XGBoost": {"learning_rate": [0.03, 0.1], "max_depth": [2, 4]},
}
#: Columns of the results table (:func:`evaluate`), in order.
RESULT_COLUMNS = (
    "target",
    "model_type",
    "protocol",
    "r2",
    "mae",
    "rmse",
    "chance_r2_mean",
    "chance_r2_q95",
    "p_value",
    "n_train",
    "n_test",
    "n_folds",
    "n_models",
    "n_used",
    "n_unidentified",
    "n_missing",
    "n_permutations",
    "seed",
    "scale",
    "params",
    "note",
    "fits_used",
)
#: Paper Table 3: test R^2 per target (rows) and model (columns), 80/20 split over layers.
PAPER_TABLE3 = reference.table("table3_test_r2")

_MIN_ROWS = 10
_N_INNER = 5


# --------------------------------------------------------------------------- target transforms


def slog1p(x):
    """Sign-preserving ``log1p``: ``sign(x) * log1p(|x|)`` (plain ``log1p`` for ``x >= 0``)."""
    x = np.asarray(x, dtype=float)
    return np.sign(x) * np.log1p(np.abs(x))


def slog1p_inverse(z):
    """Inverse of :func:`slog1p`: ``sign(z) * expm1(|z|)``."""
    z = np.asarray(z, dtype=float)
    return np.sign(z) * np.expm1(np.abs(z))


class YeoJohnson(TransformerMixin, BaseEstimator):
    """The Yeo-Johnson power transform, ``lambda`` by maximum likelihood on the fit data.

    Unlike scikit-learn's ``PowerTransformer`` it does not standardise, and its inverse
    clips values outside the transform's range (where the inverse is undefined) to just
    inside that range, so that a regression prediction always maps back to a number.
    """

    def fit(self, y, _=None):
        """Fit ``lambda_`` (``scipy.stats.yeojohnson_normmax``) on a column of values."""
        y = np.asarray(y, dtype=float).ravel()
        if y.size < 2 or not np.all(np.isfinite(y)):
            raise ValueError(f"Yeo-Johnson needs >= 2 finite values; got {y.size} values: {y}.")
        self.lambda_ = float(stats.yeojohnson_normmax(y)) if np.ptp(y) > 0 else 1.0
        return self

    def transform(self, y):
        """Yeo-Johnson of ``y`` (any shape) with the fitted ``lambda_``."""
        lam = self.lambda_
        y = np.asarray(y, dtype=float)
        pos = y >= 0
        out = np.empty_like(y)
        yp, yn = y[pos], y[~pos]
        out[pos] = np.log1p(yp) if lam == 0 else np.expm1(lam * np.log1p(yp)) / lam
        out[~pos] = -np.log1p(-yn) if lam == 2 else -np.expm1((2 - lam) * np.log1p(-yn)) / (2 - lam)
        return out

    def inverse_transform(self, z):
        """Inverse Yeo-Johnson; values beyond the transform's range are clipped to its edge."""
        lam = self.lambda_
        z = np.asarray(z, dtype=float).copy()
        eps = 1e-12
        if lam < 0:  # the non-negative branch reaches only z < -1/lam
            z = np.minimum(z, (eps - 1) / lam)
        if lam > 2:  # the negative branch reaches only z > 1/(2 - lam)
            z = np.maximum(z, (1 - eps) / (2 - lam))
        pos = z >= 0
        out = np.empty_like(z)
        zp, zn = z[pos], z[~pos]
        out[pos] = np.expm1(zp) if lam == 0 else np.expm1(np.log1p(lam * zp) / lam)
        out[~pos] = -np.expm1(-zn) if lam == 2 else -np.expm1(np.log1p(-(2 - lam) * zn) / (2 - lam))
        return out


def target_transformer(target: str):
    """The (unfitted) target transform of ``target``: Yeo-Johnson for ``K``, else slog1p."""
    _check_target(target)
    if target == "K":
        return YeoJohnson()
    return FunctionTransformer(
        slog1p, inverse_func=slog1p_inverse, validate=False, check_inverse=False
    )


def _scale_name(target: str) -> str:
    return "yeo-johnson" if target == "K" else "slog1p"


def _metric_scale(target: str, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    t = target_transformer(target).fit(np.asarray(y, float).reshape(-1, 1))
    return lambda v: t.transform(np.asarray(v, float).reshape(-1, 1)).ravel()


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise ValueError(f"Unknown target {target!r}; choose one of {TARGETS}.")


# --------------------------------------------------------------------------- data


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
    _check_target(target)
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


# --------------------------------------------------------------------------- estimators


def make_estimator(model_type: str, target: str, seed: int = 0) -> TransformedTargetRegressor:
    """The unfitted estimator: target transform around ``StandardScaler -> model``.

    Parameters
    ----------
    model_type : str
        One of :data:`MODEL_TYPES` or ``"mean"`` (the training-mean baseline).
    target : str
        Chooses the target transform (:func:`target_transformer`).
    seed : int
        ``random_state`` of the randomised models.
    """
    if model_type == "mean":
        model = DummyRegressor(strategy="mean")
    elif model_type == "Ridge":
        model = Ridge()
    elif model_type == "Lasso":
        model = Lasso(max_iter=100_000)
    elif model_type == "RandomForest":
        model = RandomForestRegressor(n_estimators=100, random_state=seed, n_jobs=1)
    elif model_type == "GradientBoosting":
        model = GradientBoostingRegressor(n_estimators=200, random_state=seed)
    elif model_type == "XGBoost":
        try:
            from xgboost import XGBRegressor
        except ImportError as err:
            raise ImportError(
                "XGBoost is not installed: pip install xgboost-cpu==3.2.0, or leave "
                "'XGBoost' out of model_types."
            ) from err
        model = XGBRegressor(
            n_estimators=200, random_state=seed, n_jobs=1, tree_method="hist", verbosity=0
        )
    else:
        raise ValueError(
            f"Unknown model type {model_type!r}; choose one of {MODEL_TYPES} or 'mean'."
        )
    pipe = Pipeline([("scale", StandardScaler()), ("model", model)])
    return TransformedTargetRegressor(
        regressor=pipe, transformer=target_transformer(target), check_inverse=False
    )


def _transformed_neg_mse(estimator, X, y) -> float:
    """Minus the mean squared error on the estimator's own (training-fold) target scale."""
    z = estimator.transformer_.transform(np.asarray(y, float).reshape(-1, 1)).ravel()
    zhat = estimator.regressor_.predict(X)
    return -float(np.mean((z - zhat) ** 2))


def _grid(model_type: str, grids: Mapping | None) -> dict:
    grid = (grids or {}).get(model_type, GRIDS.get(model_type, {}))
    return {f"regressor__model__{k}": list(v) for k, v in grid.items()}


def _prefixed(params: Mapping) -> dict:
    return {f"regressor__model__{k}": v for k, v in params.items()}


def _tune(estimator, grid: dict, X, y, groups, *, grouped: bool, seed: int):
    """Fit ``estimator`` with the grid's best parameters by inner CV; return (fitted, params)."""
    n_inner = min(_N_INNER, len(set(groups)) if grouped else len(y))
    if not grid or n_inner < 2 or sum(len(v) for v in grid.values()) == len(grid):
        params = {k: v[0] for k, v in grid.items()}
        est = clone(estimator).set_params(**params).fit(X, y)
    else:
        cv = GroupKFold(n_inner) if grouped else KFold(n_inner, shuffle=True, random_state=seed)
        search = GridSearchCV(
            estimator, grid, cv=cv, scoring=_transformed_neg_mse, error_score="raise", n_jobs=1
        )
        search.fit(X, y, groups=groups if grouped else None)
        est, params = search.best_estimator_, search.best_params_
    return est, {k.removeprefix("regressor__model__"): v for k, v in params.items()}


def _fit_quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kwargs)


# --------------------------------------------------------------------------- validation


def _outer_splits(protocol: str, n: int, groups: np.ndarray, seed: int) -> list:
    if protocol == "paper_split":
        tr, te = train_test_split(np.arange(n), test_size=0.2, random_state=seed)
        return [(np.sort(tr), np.sort(te))]
    if protocol == "paper_cv5":
        return list(KFold(5, shuffle=True, random_state=seed).split(np.zeros(n)))
    if protocol == "lomo":
        return list(LeaveOneGroupOut().split(np.zeros(n), groups=groups))
    raise ValueError(f"Unknown protocol {protocol!r}; choose one of {PROTOCOLS}.")


def _metrics(z: np.ndarray, zhat: np.ndarray) -> dict:
    err = zhat - z
    sst = float(np.sum((z - z.mean()) ** 2))
    r2 = 1.0 - float(np.sum(err**2)) / sst if sst > 0 else np.nan
    return {
        "r2": r2,
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
    }


@dataclass
class CVRun:
    """One (target, model type, protocol) validation.

    Attributes
    ----------
    target, model_type, protocol : str
    data : TargetData
    folds : list of (train_idx, test_idx, fitted estimator, params)
    pred : numpy.ndarray
        Out-of-fold predictions, original units (NaN for rows never tested).
    metrics : dict
        ``r2, mae, rmse`` on the transformed scale.
    chance : numpy.ndarray
        R^2 of each permutation.
    """

    target: str
    model_type: str
    protocol: str
    data: TargetData
    folds: list
    pred: np.ndarray
    metrics: dict
    chance: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def test_mask(self) -> np.ndarray:
        """Rows predicted out of fold."""
        return np.isfinite(self.pred)

    def row(self, seed: int) -> dict:
        """The results-table row (:data:`RESULT_COLUMNS`)."""
        ch = self.chance
        r2 = self.metrics["r2"]
        return {
            "target": self.target,
            "model_type": self.model_type,
            "protocol": self.protocol,
            **self.metrics,
            "chance_r2_mean": float(np.mean(ch)) if ch.size else np.nan,
            "chance_r2_q95": float(np.quantile(ch, 0.95)) if ch.size else np.nan,
            "p_value": float((1 + np.sum(ch >= r2)) / (1 + ch.size)) if ch.size else np.nan,
            "n_train": round(float(np.mean([len(f[0]) for f in self.folds]))),
            "n_test": int(self.test_mask.sum()),
            "n_folds": len(self.folds),
            "n_models": len(set(self.data.groups)),
            **{k: v for k, v in self.data.counts.items() if k != "n_layers"},
            "n_permutations": int(ch.size),
            "seed": seed,
            "scale": _scale_name(self.target),
            "params": json.dumps([f[3] for f in self.folds], default=str),
            "note": "",
        }


def _check_feasible(data: TargetData, protocol: str) -> str:
    n, m = len(data.y), len(set(data.groups))
    if n < _MIN_ROWS:
        return f"only {n} usable layers (< {_MIN_ROWS})"
    if protocol == "lomo" and m < 3:
        return f"leave-one-model-out needs >= 3 models with usable layers; {m} have"
    return ""


def cross_validate(
    data: TargetData,
    model_type: str,
    protocol: str,
    *,
    seed: int = 0,
    n_permutations: int = 0,
    retune_permutations: bool = False,
    grids: Mapping | None = None,
) -> CVRun:
    """Validate one model type on one target under one protocol, with its chance level.

    Parameters
    ----------
    data : TargetData
        From :func:`target_data`.
    model_type : str
        One of :data:`MODEL_TYPES` or ``"mean"``.
    protocol : {"paper_split", "paper_cv5", "lomo"}
    seed : int
        Split, inner CV, model and permutation seed.
    n_permutations : int
        Shuffled-target repetitions of the protocol (0: no chance level).  The targets are
        shuffled across all layers; the outer splits stay those of the real run.
    retune_permutations : bool
        Re-run the inner hyperparameter search on every shuffled target (the whole protocol,
        costlier by the grid size times the inner folds).  By default each fold keeps the
        hyperparameters tuned on the real targets (a fixed estimator per fold), which gives a
        somewhat lower chance level for flexible settings.
    grids : mapping, optional
        ``{model_type: {param: values}}`` replacing :data:`GRIDS` entries.

    Returns
    -------
    CVRun
    """
    why = _check_feasible(data, protocol)
    if why:
        raise ValueError(f"Cannot validate {data.target} under {protocol}: {why}.")
    X, y, groups = data.X, data.y, data.groups
    base = make_estimator(model_type, data.target, seed)
    grid = _grid(model_type, grids)
    grouped = protocol == "lomo"
    folds, pred = [], np.full(len(y), np.nan)
    for tr, te in _outer_splits(protocol, len(y), groups, seed):
        est, params = _fit_quiet(
            _tune, base, grid, X[tr], y[tr], groups[tr], grouped=grouped, seed=seed
        )
        pred[te] = est.predict(X[te])
        folds.append((tr, te, est, params))
    scale = _metric_scale(data.target, y)
    tested = np.isfinite(pred)
    metrics = _metrics(scale(y[tested]), scale(pred[tested]))
    rng = np.random.default_rng(seed)
    chance = []
    for _ in range(n_permutations):
        yp = y[rng.permutation(len(y))]
        pp = np.full(len(y), np.nan)
        for tr, te, _est, params in folds:
            if retune_permutations:
                est, _ = _fit_quiet(
                    _tune, base, grid, X[tr], yp[tr], groups[tr], grouped=grouped, seed=seed
                )
            else:
                est = _fit_quiet(clone(base).set_params(**_prefixed(params)).fit, X[tr], yp[tr])
            pp[te] = est.predict(X[te])
        chance.append(_metrics(scale(yp[tested]), scale(pp[tested]))["r2"])
    return CVRun(
        data.target, model_type, protocol, data, folds, pred, metrics, np.asarray(chance, float)
    )


def evaluate(
    fits: pd.DataFrame,
    *,
    targets: Sequence[str] = TARGETS,
    model_types: Sequence[str] = ("mean", *MODEL_TYPES),
    protocols: Sequence[str] = PROTOCOLS,
    hypothesis: str = "eq9",
    procedure: str = "ours",
    architectures: Mapping | None = None,
    seed: int = 0,
    n_permutations: int = 100,
    retune_permutations: bool = False,
    grids: Mapping | None = None,
    progress: bool = True,
    n_jobs: int = 1,
    identified_only: bool = True,
) -> pd.DataFrame:
    """Validate every (target, model type, protocol): paper Table 3 and the honest version.

    Parameters
    ----------
    fits : pandas.DataFrame
        The fits table.
    targets, model_types, protocols : sequence of str
        What to run (``"mean"`` is the training-mean baseline).
    hypothesis, procedure, architectures
        See :func:`target_data`.
    seed, n_permutations, retune_permutations, grids
        See :func:`cross_validate`.
    progress : bool
        Show a tqdm progress bar.
    n_jobs : int
        Validations run in parallel processes (joblib); each is seeded, so the table does
        not depend on it.
    identified_only : bool
        See :func:`target_data`; recorded in the ``fits_used`` column (``"identified"`` or
        ``"all"``).

    Returns
    -------
    pandas.DataFrame
        One row per (target, model type, protocol), columns :data:`RESULT_COLUMNS`.  A
        combination that cannot be run (too few usable layers or models) gets NaN metrics
        and says why in ``note``.
    """
    datas = {
        t: target_data(
            fits,
            t,
            hypothesis=hypothesis,
            procedure=procedure,
            architectures=architectures,
            identified_only=identified_only,
        )
        for t in targets
    }
    combos = [(t, m, p) for t in targets for m in model_types for p in protocols]
    kwargs = dict(
        seed=seed,
        n_permutations=n_permutations,
        retune_permutations=retune_permutations,
        grids=grids,
    )
    jobs = [(datas[t], m, p) for t, m, p in combos]
    if n_jobs == 1:
        rows = (_validation_row(*job, **kwargs) for job in jobs)
    else:
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=n_jobs, return_as="generator")
        rows = parallel(delayed(_validation_row)(*job, **kwargs) for job in jobs)
    bar = tqdm(rows, total=len(jobs), desc="validating", unit="run", disable=not progress)
    table = pd.DataFrame(list(bar), columns=list(RESULT_COLUMNS))
    table["fits_used"] = "identified" if identified_only else "all"
    return table


def _validation_row(data: TargetData, model_type: str, protocol: str, **kwargs) -> dict:
    """One row of :func:`evaluate` (a NaN row with the reason when it cannot be run)."""
    why = _check_feasible(data, protocol)
    if why:
        row = dict.fromkeys(RESULT_COLUMNS, np.nan)
        row.update(
            target=data.target,
            model_type=model_type,
            protocol=protocol,
            note=why,
            seed=kwargs["seed"],
            params="[]",
        )
        row.update({k: v for k, v in data.counts.items() if k != "n_layers"})
        return row
    return cross_validate(data, model_type, protocol, **kwargs).row(kwargs["seed"])


def table3(results: pd.DataFrame) -> pd.DataFrame:
    """Paper Table 3 beside ours: per (target, model type), the paper's test R^2 and, per
    protocol, our R^2 and the 95th percentile of its chance R^2 (``r2_<protocol>``,
    ``chance_q95_<protocol>``)."""
    wide = results.pivot_table(
        index=["target", "model_type"],
        columns="protocol",
        values=["r2", "chance_r2_q95"],
        aggfunc="first",
        dropna=False,
    )
    out = pd.DataFrame(index=wide.index)
    paper = PAPER_TABLE3.stack()
    out["paper_r2"] = [paper.get((t, m), np.nan) for t, m in out.index]
    for p in PROTOCOLS:
        if ("r2", p) in wide.columns:
            out[f"r2_{p}"] = wide[("r2", p)]
            out[f"chance_q95_{p}"] = wide[("chance_r2_q95", p)]
    order = {t: i for i, t in enumerate(TARGETS)}
    morder = {m: i for i, m in enumerate(("mean", *MODEL_TYPES))}
    out = out.reset_index()
    out = out.sort_values(
        ["target", "model_type"],
        key=lambda s: s.map(order if s.name == "target" else morder),
        kind="stable",
    )
    return out.reset_index(drop=True)


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
            est, X[te], y[te], scoring=_transformed_neg_mse, n_repeats=n_repeats, random_state=seed
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


# --------------------------------------------------------------------------- unseen models


@dataclass
class Predictor:
    """Per-target models trained on every usable layer, for unseen architectures.

    Attributes
    ----------
    model_type : str
    estimators : dict
        ``{target: fitted estimator}`` trained on all usable layers of the target.
    members : dict
        ``{target: [fitted estimators]}``, each trained without one group of models.
    params : dict
        ``{target: tuned hyperparameters}``.
    data : dict
        ``{target: TargetData}``: the training samples.
    feature_min, feature_max : pandas.Series
        Range of each feature over all training layers (for the extrapolation flag).
    """

    model_type: str
    estimators: dict
    members: dict
    params: dict
    data: dict
    feature_min: pd.Series
    feature_max: pd.Series

    @property
    def targets(self) -> tuple[str, ...]:
        """The targets it predicts."""
        return tuple(self.estimators)


def fit_predictor(
    fits: pd.DataFrame,
    *,
    model_type: str = "RandomForest",
    targets: Sequence[str] = TARGETS,
    hypothesis: str = "eq9",
    procedure: str = "ours",
    architectures: Mapping | None = None,
    seed: int = 0,
    n_members: int = 5,
    grids: Mapping | None = None,
    identified_only: bool = True,
) -> Predictor:
    """Train a :class:`Predictor` on all usable layers of a fits table.

    Hyperparameters are tuned by inner cross-validation grouped by model (the choice that
    predicts unseen models best); the members are refits with those hyperparameters on
    ``GroupKFold(n_members)`` training parts (each leaves out some models), whose spread is the
    uncertainty that :func:`predict_architecture` reports.  ``identified_only``: see
    :func:`target_data`.
    """
    estimators, members, params, datas = {}, {}, {}, {}
    for t in targets:
        d = target_data(
            fits,
            t,
            hypothesis=hypothesis,
            procedure=procedure,
            architectures=architectures,
            identified_only=identified_only,
        )
        groups = d.groups
        n_groups = len(set(groups))
        if len(d.y) < _MIN_ROWS or n_groups < 2:
            raise ValueError(
                f"Target {t!r} has {len(d.y)} usable layers in {n_groups} models; a predictor "
                f"needs >= {_MIN_ROWS} layers in >= 2 models. Leave it out of targets."
            )
        base = make_estimator(model_type, t, seed)
        est, p = _fit_quiet(
            _tune, base, _grid(model_type, grids), d.X, d.y, groups, grouped=True, seed=seed
        )
        tuned = clone(base).set_params(**_prefixed(p))
        folds = GroupKFold(min(n_members, n_groups)).split(d.X, groups=groups)
        members[t] = [_fit_quiet(clone(tuned).fit, d.X[tr], d.y[tr]) for tr, _ in folds]
        estimators[t], params[t], datas[t] = est, p, d
    allX = pd.concat([d.features for d in datas.values()])[list(FEATURE_NAMES)]
    return Predictor(model_type, estimators, members, params, datas, allX.min(), allX.max())


def _extrapolated(predictor: Predictor, feats: pd.DataFrame) -> list[str]:
    X = feats[list(FEATURE_NAMES)]
    lo, hi = predictor.feature_min, predictor.feature_max
    tol = 1e-9 * (hi - lo).abs().clip(lower=1.0)
    out = (X.lt(lo - tol)) | (X.gt(hi + tol))
    return [";".join(c for c in FEATURE_NAMES if row[c]) for _, row in out.iterrows()]


def predict_architecture(
    spec, layer: int | Iterable[int] | None = None, *, predictor: Predictor
) -> pd.DataFrame:
    """Predicted Eq. 9 parameters of an architecture's layers, with uncertainty.

    Parameters
    ----------
    spec
        Anything :func:`massive_activations.prediction.features.architecture` accepts (a ModelSpec, a
        mapping, ``"L6-d256-h8"``, ``"pythia-12b"``).
    layer : int or iterable of int, optional
        Layers ``1..L`` (default: all).
    predictor : Predictor
        From :func:`fit_predictor`.

    Returns
    -------
    pandas.DataFrame
        One row per layer: ``model, layer, n_layers, relative_depth``; per target ``<t>``
        (the full model's prediction, original units) with ``<t>_lo``, ``<t>_hi`` (the range
        of the members' predictions); ``extrapolation`` (a feature lies outside the training
        range) and ``extrapolated_features`` (their names, ``;``-separated).
    """
    feats = layer_features(spec, layer)
    X = feats[list(FEATURE_NAMES)].to_numpy(float)
    out = feats[["model", "layer", "n_layers"]].copy()
    out["relative_depth"] = feats["l_over_L"]
    for t in predictor.targets:
        out[t] = predictor.estimators[t].predict(X)
        m = np.vstack([e.predict(X) for e in predictor.members[t]])
        out[f"{t}_lo"], out[f"{t}_hi"] = m.min(axis=0), m.max(axis=0)
    names = _extrapolated(predictor, feats)
    out["extrapolation"] = [bool(n) for n in names]
    out["extrapolated_features"] = names
    return out


def _safe_eq9(steps, p: Mapping[str, float]) -> np.ndarray:
    try:
        return eq9(steps, *(p[n] for n in ("A", "lam", "gam", "t0", "K")))
    except ValueError:  # outside Eq. 9's domain (gam <= 0 or gam*t + t0 <= 0)
        return np.full(np.shape(steps), np.nan)


def predicted_curves(
    spec,
    steps: Sequence[float],
    *,
    predictor: Predictor,
    layer: int | Iterable[int] | None = None,
) -> pd.DataFrame:
    """The Eq. 9 curves implied by the predicted parameters (needs all five targets).

    ``value`` uses the full models' parameters; ``value_lo``/``value_hi`` are the range over
    the members' curves (member ``i`` of every target, each a predictor that left out some
    models).  Parameter sets outside Eq. 9's domain (``gam <= 0``, or ``gam t + t0 <= 0``)
    give NaN.

    Returns
    -------
    pandas.DataFrame
        ``model, layer, step, value, value_lo, value_hi, extrapolation``.
    """
    missing = [t for t in TARGETS if t not in predictor.targets]
    if missing:
        raise ValueError(f"The predictor lacks targets {missing}; fit it with all of {TARGETS}.")
    feats = layer_features(spec, layer)
    X = feats[list(FEATURE_NAMES)].to_numpy(float)
    steps = np.asarray(steps, float)
    point = {t: predictor.estimators[t].predict(X) for t in TARGETS}
    n_mem = min(len(predictor.members[t]) for t in TARGETS)
    mem = [{t: predictor.members[t][i].predict(X) for t in TARGETS} for i in range(n_mem)]
    flags = _extrapolated(predictor, feats)
    frames = []
    for j, la in enumerate(feats["layer"]):
        curves = np.vstack([_safe_eq9(steps, {t: m[t][j] for t in TARGETS}) for m in mem])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            lo, hi = np.nanmin(curves, axis=0), np.nanmax(curves, axis=0)
        frames.append(
            pd.DataFrame(
                {
                    "model": feats["model"].iloc[j],
                    "layer": int(la),
                    "step": steps,
                    "value": _safe_eq9(steps, {t: point[t][j] for t in TARGETS}),
                    "value_lo": lo,
                    "value_hi": hi,
                    "extrapolation": bool(flags[j]),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- SHAP


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
        Values on the model's transformed target scale (slog1p, or Yeo-Johnson for ``K``)
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


# --------------------------------------------------------------------------- files


def predictor_path(root: str | Path, suite: str) -> Path:
    """``<root>/<suite>/predictor.parquet``."""
    return Path(root) / suite / "predictor.parquet"


def write_predictor(results: pd.DataFrame, root: str | Path, suite: str) -> Path:
    """Write the results of :func:`evaluate` atomically to :func:`predictor_path`.

    When the folder holds a ``manifest.json`` (written by ``make data``), the file's sha256
    is added to it under ``"derived"`` (:func:`massive_activations.provenance.update_manifest`).
    """
    missing = [c for c in RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise ValueError(f"The results table lacks columns {missing}; build it with evaluate.")
    return write_derived(results, predictor_path(root, suite))


def read_predictor(root: str | Path, suite: str) -> pd.DataFrame:
    """Read ``<root>/<suite>/predictor.parquet``."""
    return read_derived(
        predictor_path(root, suite),
        "run predictor.evaluate on the suite's fits and write_predictor (chapter 5).",
    )
