"""The predictor's regressors and their hyperparameter search.

**Models**: Ridge, Lasso, random forest, gradient boosting and XGBoost (:data:`MODEL_TYPES`),
each a scikit-learn pipeline ``StandardScaler -> model`` (features standardised on the
training fold only) inside the target transform, plus the training-mean baseline ``"mean"``.
Hyperparameters are tuned by an inner 5-fold cross-validation on the training part only
(``KFold`` over layers for the paper's protocols, ``GroupKFold`` by architecture group for
leave-one-model-out; fewer folds when there are fewer layers or models)
(grids: :data:`GRIDS`; score: mean squared error on the transformed scale), and recorded per
outer fold in the results' ``params`` column.  XGBoost comes from the ``xgboost-cpu`` wheel
(imports as ``xgboost``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
from sklearn.base import clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso, Ridge
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    KFold,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from massive_activations.prediction.transforms import target_transformer

__all__ = [
    "GRIDS",
    "MODEL_TYPES",
    "fit_quiet",
    "make_estimator",
    "prefixed",
    "search_grid",
    "transformed_neg_mse",
    "tune",
]

#: The paper's five regressors (Table 3's columns); ``"mean"`` is the baseline.
MODEL_TYPES = ("Ridge", "Lasso", "RandomForest", "GradientBoosting", "XGBoost")

#: Hyperparameter grids searched by inner cross-validation (model's own parameter names).
GRIDS: dict[str, dict[str, list]] = {
    "mean": {},
    "Ridge": {"alpha": [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0]},
    "Lasso": {"alpha": [1e-4, 1e-3, 1e-2, 1e-1, 1.0]},
    "RandomForest": {"max_depth": [None, 3], "min_samples_leaf": [1, 3]},
    "GradientBoosting": {"learning_rate": [0.03, 0.1], "max_depth": [2, 3]},
    "XGBoost": {"learning_rate": [0.03, 0.1], "max_depth": [2, 4]},
}

_N_INNER = 5


def make_estimator(
    model_type: str, target: str, seed: int = 0, transforms: str = "ours"
) -> TransformedTargetRegressor:
    """The unfitted estimator: target transform around ``StandardScaler -> model``.

    Parameters
    ----------
    model_type : str
        One of :data:`MODEL_TYPES` or ``"mean"`` (the training-mean baseline).
    target : str
        Chooses the target transform (:func:`target_transformer`).
    seed : int
        ``random_state`` of the randomised models.
    transforms : {"ours", "paper"}
        Which set of target transforms
        (:data:`~massive_activations.prediction.transforms.TRANSFORMS`).
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
        regressor=pipe, transformer=target_transformer(target, transforms), check_inverse=False
    )


def transformed_neg_mse(estimator, X, y) -> float:
    """Minus the mean squared error on the estimator's own (training-fold) target scale."""
    z = estimator.transformer_.transform(np.asarray(y, float).reshape(-1, 1)).ravel()
    zhat = estimator.regressor_.predict(X)
    return -float(np.mean((z - zhat) ** 2))


def search_grid(model_type: str, grids: Mapping | None) -> dict:
    """The grid of ``model_type`` (``grids`` overriding :data:`GRIDS`), as pipeline names."""
    grid = (grids or {}).get(model_type, GRIDS.get(model_type, {}))
    return {f"regressor__model__{k}": list(v) for k, v in grid.items()}


def prefixed(params: Mapping) -> dict:
    """Hyperparameters named as the model's own (``alpha``) renamed for the pipeline."""
    return {f"regressor__model__{k}": v for k, v in params.items()}


def tune(estimator, grid: dict, X, y, groups, *, grouped: bool, seed: int):
    """Fit ``estimator`` with the grid's best parameters by inner CV; return (fitted, params)."""
    n_inner = min(_N_INNER, len(set(groups)) if grouped else len(y))
    if not grid or n_inner < 2 or sum(len(v) for v in grid.values()) == len(grid):
        params = {k: v[0] for k, v in grid.items()}
        est = clone(estimator).set_params(**params).fit(X, y)
    else:
        cv = GroupKFold(n_inner) if grouped else KFold(n_inner, shuffle=True, random_state=seed)
        search = GridSearchCV(
            estimator, grid, cv=cv, scoring=transformed_neg_mse, error_score="raise", n_jobs=1
        )
        search.fit(X, y, groups=groups if grouped else None)
        est, params = search.best_estimator_, search.best_params_
    return est, {k.removeprefix("regressor__model__"): v for k, v in params.items()}


def fit_quiet(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with scikit-learn's convergence warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kwargs)
