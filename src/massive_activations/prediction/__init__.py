"""Predicting the curve parameters from architecture (chapter 5; paper Section 6, Tables 3-4).

Modules, lowest first: :mod:`~massive_activations.prediction.features` (paper Table 4's
features of a layer), :mod:`~massive_activations.prediction.transforms` (target transforms),
:mod:`~massive_activations.prediction.data` (one sample per model and layer),
:mod:`~massive_activations.prediction.estimators` (the five regressors and their search),
:mod:`~massive_activations.prediction.validation` (protocols, chance levels, Table 3),
:mod:`~massive_activations.prediction.unseen` (predictions for architectures never seen),
:mod:`~massive_activations.prediction.importance` (permutation importance and SHAP), and
:mod:`~massive_activations.prediction.synthetic` (targets of known origin, for the tests).
"""

from massive_activations.prediction.data import (
    TargetData,
    target_counts,
    target_data,
)
from massive_activations.prediction.estimators import (
    GRIDS,
    MODEL_TYPES,
    fit_quiet,
    make_estimator,
    prefixed,
    search_grid,
    transformed_neg_mse,
    tune,
)
from massive_activations.prediction.features import (
    FEATURE_NAMES,
    Architecture,
    architecture,
    features_table,
    layer_features,
    pythia_architectures,
    suite_architectures,
)
from massive_activations.prediction.importance import (
    best_model,
    drivers,
    explain,
    explain_highest,
    importances_by_target,
    permutation_importances,
    write_importances,
)
from massive_activations.prediction.synthetic import (
    architecture_fits,
)
from massive_activations.prediction.transforms import (
    TARGETS,
    YeoJohnson,
    check_target,
    metric_scale,
    scale_name,
    slog1p,
    slog1p_inverse,
    target_transformer,
)
from massive_activations.prediction.unseen import (
    Predictor,
    fit_predictor,
    held_out_curves,
    predict_architecture,
    predicted_curves,
    pythia_predictions,
)
from massive_activations.prediction.validation import (
    MIN_ROWS,
    PAPER_TABLE3,
    PROTOCOLS,
    RESULT_COLUMNS,
    CVRun,
    cross_validate,
    evaluate,
    table3,
)

__all__ = [
    "FEATURE_NAMES",
    "GRIDS",
    "MIN_ROWS",
    "MODEL_TYPES",
    "PAPER_TABLE3",
    "PROTOCOLS",
    "RESULT_COLUMNS",
    "TARGETS",
    "Architecture",
    "CVRun",
    "Predictor",
    "TargetData",
    "YeoJohnson",
    "architecture",
    "architecture_fits",
    "best_model",
    "check_target",
    "cross_validate",
    "drivers",
    "evaluate",
    "explain",
    "explain_highest",
    "features_table",
    "fit_predictor",
    "fit_quiet",
    "held_out_curves",
    "importances_by_target",
    "layer_features",
    "make_estimator",
    "metric_scale",
    "permutation_importances",
    "predict_architecture",
    "predicted_curves",
    "prefixed",
    "pythia_architectures",
    "pythia_predictions",
    "scale_name",
    "search_grid",
    "slog1p",
    "slog1p_inverse",
    "suite_architectures",
    "table3",
    "target_counts",
    "target_data",
    "target_transformer",
    "transformed_neg_mse",
    "tune",
    "write_importances",
]
