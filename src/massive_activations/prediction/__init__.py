"""Predicting the curve parameters from architecture (chapter 5; paper Section 6, Tables 3-4).

Modules, lowest first: :mod:`~massive_activations.prediction.features` (paper Table 4's
features of a layer), :mod:`~massive_activations.prediction.transforms` (target transforms,
ours and the paper's), :mod:`~massive_activations.prediction.data` (one sample per model and
layer, with its architecture group), :mod:`~massive_activations.prediction.estimators` (the
five regressors and their search), :mod:`~massive_activations.prediction.nulls` (block
permutations that keep model identity; the null of the best regressor),
:mod:`~massive_activations.prediction.validation` (protocols, chance levels, Table 3),
:mod:`~massive_activations.prediction.splits` (the 80/20 split repeated),
:mod:`~massive_activations.prediction.synthetic` (targets of known origin),
:mod:`~massive_activations.prediction.power` (can a protocol detect an architecture-driven
target at this size?), :mod:`~massive_activations.prediction.ceiling` (seed noise against
architecture variance), :mod:`~massive_activations.prediction.tables` (the derived tables,
computed once), :mod:`~massive_activations.prediction.detection` (each target's call:
detected, not detected with power, or underpowered), :mod:`~massive_activations.prediction.unseen` (predictions for
architectures never seen) and :mod:`~massive_activations.prediction.importance`
(permutation importance and SHAP).
"""

from massive_activations.prediction.ceiling import CEILING_COLUMNS, noise_ceiling
from massive_activations.prediction.data import (
    TargetData,
    architecture_groups,
    model_groups,
    target_counts,
    target_data,
)
from massive_activations.prediction.detection import (
    CALLS,
    DETECTION_COLUMNS,
    MIN_POWER,
    detection_table,
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
from massive_activations.prediction.nulls import (
    NULL_COLUMNS,
    NULLS,
    max_null,
    n_arrangements,
    null_summary,
    permutations,
)
from massive_activations.prediction.power import (
    POWER_COLUMNS,
    power_check,
    power_table,
    synthetic_like,
)
from massive_activations.prediction.splits import SPLIT_COLUMNS, repeated_splits
from massive_activations.prediction.synthetic import (
    architecture_fits,
    architecture_signal,
    random_architecture,
    synthetic_targets,
)
from massive_activations.prediction.tables import (
    PREDICTOR_FILES,
    load_predictor_tables,
    predictor_digest,
    predictor_tables,
    write_predictor_tables,
)
from massive_activations.prediction.transforms import (
    TARGETS,
    TRANSFORMS,
    YeoJohnson,
    check_target,
    check_transforms,
    in_domain,
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
    infeasible,
    table3,
)

__all__ = [
    "CALLS",
    "CEILING_COLUMNS",
    "DETECTION_COLUMNS",
    "FEATURE_NAMES",
    "GRIDS",
    "MIN_POWER",
    "MIN_ROWS",
    "MODEL_TYPES",
    "NULLS",
    "NULL_COLUMNS",
    "PAPER_TABLE3",
    "POWER_COLUMNS",
    "PREDICTOR_FILES",
    "PROTOCOLS",
    "RESULT_COLUMNS",
    "SPLIT_COLUMNS",
    "TARGETS",
    "TRANSFORMS",
    "Architecture",
    "CVRun",
    "Predictor",
    "TargetData",
    "YeoJohnson",
    "architecture",
    "architecture_fits",
    "architecture_groups",
    "architecture_signal",
    "best_model",
    "check_target",
    "check_transforms",
    "cross_validate",
    "detection_table",
    "drivers",
    "evaluate",
    "explain",
    "explain_highest",
    "features_table",
    "fit_predictor",
    "fit_quiet",
    "held_out_curves",
    "importances_by_target",
    "in_domain",
    "infeasible",
    "layer_features",
    "load_predictor_tables",
    "make_estimator",
    "max_null",
    "metric_scale",
    "model_groups",
    "n_arrangements",
    "noise_ceiling",
    "null_summary",
    "permutation_importances",
    "permutations",
    "power_check",
    "power_table",
    "predict_architecture",
    "predicted_curves",
    "predictor_digest",
    "predictor_tables",
    "prefixed",
    "pythia_architectures",
    "pythia_predictions",
    "random_architecture",
    "repeated_splits",
    "scale_name",
    "search_grid",
    "slog1p",
    "slog1p_inverse",
    "suite_architectures",
    "synthetic_like",
    "synthetic_targets",
    "table3",
    "target_counts",
    "target_data",
    "target_transformer",
    "transformed_neg_mse",
    "tune",
    "write_importances",
    "write_predictor_tables",
]
