"""Validating the predictor: the paper's protocols and leave-one-model-out, with chance levels.

**Protocols** (:data:`PROTOCOLS`), shown side by side: ``paper_split`` (the paper's 80/20
split over layers, one seed; :mod:`~massive_activations.prediction.splits` repeats it),
``paper_cv5`` (5-fold cross-validation over layers) and ``lomo`` (leave one architecture out:
every model of an architecture group, i.e. all seed replicates and variants of it, is held
out together, so no test architecture is ever seen in training;
:mod:`~massive_activations.prediction.data`).

R^2, MAE and RMSE are computed on the target's transformed scale
(:data:`~massive_activations.prediction.transforms.TRANSFORMS`; the paper does not say), with
one fixed scale per target for all folds (for ``K`` Yeo-Johnson with ``lambda`` fitted on all
of the target's values).  That scale only weighs the errors; no information flows from it
into a prediction.  For pooled protocols R^2 is ``1 - SSE / SST`` over all out-of-fold
predictions.

**Chance level**: the same protocol (same outer splits) run on permuted targets,
``n_permutations`` times, gives ``chance_r2_mean``, ``chance_r2_q95`` and the permutation
``p_value = (1 + #{R^2_perm >= R^2}) / (1 + n)`` of each regressor; ``chance_r2`` keeps every
permutation's R^2, from which :func:`~massive_activations.prediction.nulls.null_summary`
builds the null of the best regressor.  The permutations exchange whole models' target
vectors (``null="blocks"``, :mod:`~massive_activations.prediction.nulls`, which explains
why) and depend on the seed and the data only, so every regressor sees the same permuted
targets.  By default each fold keeps the hyperparameters tuned on the real targets (a fixed
estimator per fold, as in Ojala & Garriga's test); ``retune_permutations=True`` re-runs the
inner search on every permutation (the whole protocol, the grid size times the inner folds
costlier).  The baseline ``"mean"`` predicts the training fold's mean (on the transformed
scale) and shows what R^2 a protocol gives with no feature at all: under
leave-one-model-out it is below 0 (each held-out model's layers move the training mean away
from themselves).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import (
    KFold,
    LeaveOneGroupOut,
    train_test_split,
)

from massive_activations import reference
from massive_activations.parallel import run_jobs
from massive_activations.prediction.data import TargetData, target_data
from massive_activations.prediction.estimators import (
    MODEL_TYPES,
    fit_quiet,
    make_estimator,
    search_grid,
    tune,
)
from massive_activations.prediction.nulls import n_arrangements, permutations
from massive_activations.prediction.transforms import (
    TARGETS,
    metric_scale,
)

__all__ = [
    "MIN_ROWS",
    "PAPER_TABLE3",
    "PROTOCOLS",
    "RESULT_COLUMNS",
    "CVRun",
    "cross_validate",
    "evaluate",
    "infeasible",
    "table3",
]

#: Validation protocols (see the module docstring).
PROTOCOLS = ("paper_split", "paper_cv5", "lomo")

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
    "n_architectures",
    "n_used",
    "n_unidentified",
    "n_missing",
    "n_out_of_domain",
    "n_permutations",
    "null_scheme",
    "null_arrangements",
    "chance_r2",
    "seed",
    "scale",
    "transforms",
    "params",
    "note",
    "fits_used",
)

#: Paper Table 3: test R^2 per target (rows) and model (columns), 80/20 split over layers.
PAPER_TABLE3 = reference.table("table3_test_r2")

MIN_ROWS = 10


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
    null : str
        The permutation scheme (:data:`~massive_activations.prediction.nulls.NULLS`).
    """

    target: str
    model_type: str
    protocol: str
    data: TargetData
    folds: list
    pred: np.ndarray
    metrics: dict
    chance: np.ndarray = field(default_factory=lambda: np.empty(0))
    null: str = "blocks"
    seed: int = 0
    grid: dict = field(default_factory=dict)

    @property
    def test_mask(self) -> np.ndarray:
        """Rows predicted out of fold."""
        return np.isfinite(self.pred)

    def permuted_r2(self, yp: np.ndarray, *, retune: bool = False) -> float:
        """R^2 of the protocol (same outer folds) on the permuted target ``yp``.

        Each fold's estimator is refitted on ``yp`` with the hyperparameters tuned on the
        real target, or (``retune``) tuned again by the inner search.
        """
        X, groups, data = self.data.X, self.data.groups, self.data
        pp = np.full(len(yp), np.nan)
        for tr, te, est, _params in self.folds:
            if retune:
                base = make_estimator(self.model_type, data.target, self.seed, data.transforms)
                grouped = self.protocol == "lomo"
                est, _ = fit_quiet(
                    tune,
                    base,
                    self.grid,
                    X[tr],
                    yp[tr],
                    groups[tr],
                    grouped=grouped,
                    seed=self.seed,
                )
            else:  # an unfitted copy with the fold's tuned hyperparameters
                est = fit_quiet(clone(est).fit, X[tr], yp[tr])
            pp[te] = est.predict(X[te])
        tested = self.test_mask
        return _metrics(self.scale(yp[tested]), self.scale(pp[tested]))["r2"]

    @cached_property
    def scale(self):
        """The fixed metric scale of the target (:func:`metric_scale` of all its values)."""
        return metric_scale(self.data.target, self.data.y, self.data.transforms)

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
            "n_models": len(set(self.data.models)),
            "n_architectures": len(set(self.data.groups)),
            **{k: v for k, v in self.data.counts.items() if k != "n_layers"},
            "n_permutations": int(ch.size),
            "null_scheme": self.null,
            "null_arrangements": n_arrangements(
                self.data.models, self.data.features["layer"], self.null
            ),
            "chance_r2": json.dumps([float(c) for c in ch]),
            "seed": seed,
            "scale": self.data.scale,
            "transforms": self.data.transforms,
            "params": json.dumps([f[3] for f in self.folds], default=str),
            "note": "",
        }


def infeasible(data: TargetData, protocol: str) -> str:
    """Why ``protocol`` cannot be run on ``data`` (too few layers or architectures), or ""."""
    n, m = len(data.y), len(set(data.groups))
    if n < MIN_ROWS:
        return f"only {n} usable layers (< {MIN_ROWS})"
    if protocol == "lomo" and m < 3:
        return (
            f"leave-one-model-out needs >= 3 architectures with usable layers; {m} have "
            "(seed replicates of an architecture count once)"
        )
    return ""


def cross_validate(
    data: TargetData,
    model_type: str,
    protocol: str,
    *,
    seed: int = 0,
    n_permutations: int = 0,
    null: str = "blocks",
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
        Permuted-target repetitions of the protocol (0: no chance level); the outer splits
        stay those of the real run.
    null : {"blocks", "rows"}
        How the targets are permuted (:func:`~massive_activations.prediction.nulls.permutations`):
        whole models' vectors among models of the same depth (default), or every layer.
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
    why = infeasible(data, protocol)
    if why:
        raise ValueError(f"Cannot validate {data.target} under {protocol}: {why}.")
    X, y, groups = data.X, data.y, data.groups
    base = make_estimator(model_type, data.target, seed, data.transforms)
    grid = search_grid(model_type, grids)
    grouped = protocol == "lomo"
    folds, pred = [], np.full(len(y), np.nan)
    for tr, te in _outer_splits(protocol, len(y), groups, seed):
        est, params = fit_quiet(
            tune, base, grid, X[tr], y[tr], groups[tr], grouped=grouped, seed=seed
        )
        pred[te] = est.predict(X[te])
        folds.append((tr, te, est, params))
    scale = metric_scale(data.target, y, data.transforms)
    tested = np.isfinite(pred)
    metrics = _metrics(scale(y[tested]), scale(pred[tested]))
    run = CVRun(
        data.target,
        model_type,
        protocol,
        data,
        folds,
        pred,
        metrics,
        null=null,
        seed=seed,
        grid=grid,
    )
    perms = permutations(data.models, data.features["layer"], n_permutations, seed, null)
    run.chance = np.array([run.permuted_r2(y[p], retune=retune_permutations) for p in perms])
    return run


def evaluate(
    fits: pd.DataFrame,
    *,
    targets: Sequence[str] = TARGETS,
    model_types: Sequence[str] = ("mean", *MODEL_TYPES),
    protocols: Sequence[str] = PROTOCOLS,
    hypothesis: str = "eq9",
    procedure: str = "ours",
    architectures: Mapping | None = None,
    groups: Mapping | None = None,
    seed: int = 0,
    n_permutations: int | Mapping[str, int] = 200,
    null: str = "blocks",
    retune_permutations: bool = False,
    grids: Mapping | None = None,
    progress: bool = True,
    n_jobs: int = 1,
    identified_only: bool = True,
    transforms: str = "ours",
) -> pd.DataFrame:
    """Validate every (target, model type, protocol): paper Table 3 and the honest version.

    Parameters
    ----------
    fits : pandas.DataFrame
        The fits table.
    targets, model_types, protocols : sequence of str
        What to run (``"mean"`` is the training-mean baseline).
    hypothesis, procedure, architectures, groups, transforms
        See :func:`target_data`.
    seed, null, retune_permutations, grids
        See :func:`cross_validate`.
    n_permutations : int or mapping
        Permutations per validation (200 by default), or ``{protocol: n}`` (a protocol not
        in it gets none): leave-one-model-out costs as many fits per permutation as there
        are architectures, the 80/20 split one.
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
        and says why in ``note``.  :func:`~massive_activations.prediction.nulls.null_summary`
        of it gives the null of the best regressor.
    """
    datas = {
        t: target_data(
            fits,
            t,
            hypothesis=hypothesis,
            procedure=procedure,
            architectures=architectures,
            groups=groups,
            identified_only=identified_only,
            transforms=transforms,
        )
        for t in targets
    }
    combos = [(t, m, p) for t in targets for m in model_types for p in protocols]
    kwargs = dict(seed=seed, null=null, retune_permutations=retune_permutations, grids=grids)

    def n_perm(protocol: str) -> int:
        if isinstance(n_permutations, Mapping):
            return int(n_permutations.get(protocol, 0))
        return int(n_permutations)

    jobs = [(datas[t], m, p, n_perm(p)) for t, m, p in combos]
    rows = run_jobs(
        _validation_row,
        jobs,
        n_jobs=n_jobs,
        progress=progress,
        desc="validating",
        unit="run",
        **kwargs,
    )
    table = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    table["fits_used"] = "identified" if identified_only else "all"
    return table


def _validation_row(
    data: TargetData, model_type: str, protocol: str, n_permutations: int, **kwargs
) -> dict:
    """One row of :func:`evaluate` (a NaN row with the reason when it cannot be run)."""
    why = infeasible(data, protocol)
    if why:
        row = dict.fromkeys(RESULT_COLUMNS, np.nan)
        row.update(
            target=data.target,
            model_type=model_type,
            protocol=protocol,
            note=why,
            seed=kwargs["seed"],
            params="[]",
            chance_r2="[]",
            null_scheme=kwargs["null"],
            scale=data.scale,
            transforms=data.transforms,
            n_models=len(set(data.models)),
            n_architectures=len(set(data.groups)),
        )
        row.update({k: v for k, v in data.counts.items() if k != "n_layers"})
        return row
    run = cross_validate(data, model_type, protocol, n_permutations=n_permutations, **kwargs)
    return run.row(kwargs["seed"])


def table3(results: pd.DataFrame, splits: pd.DataFrame | None = None) -> pd.DataFrame:
    """Paper Table 3 beside ours: per (target, model type), the paper's test R^2 and, per
    protocol, our R^2 and the 95th percentile of its chance R^2 (``r2_<protocol>``,
    ``chance_q95_<protocol>``).

    ``results`` should hold one choice of fits and transforms.  With ``splits``
    (:func:`~massive_activations.prediction.splits.repeated_splits` of the same choice) the
    80/20 split's spread over its repeats follows the paper's column: ``split_median``,
    ``split_q05``, ``split_q95`` and ``split_repeats``, and a row ``model_type = "best"``
    per target (the best regressor of each repeat).
    """
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
    if splits is not None:
        spread = splits.set_index(["target", "model_type"])[
            ["r2_median", "r2_q05", "r2_q95", "n_repeats"]
        ].set_axis(["split_median", "split_q05", "split_q95", "split_repeats"], axis=1)
        out = out.merge(spread, on=["target", "model_type"], how="outer")
        first = ["target", "model_type", "paper_r2", *spread.columns]
        out = out[first + [c for c in out.columns if c not in first]]
    morder["best"] = len(morder)
    out = out.sort_values(
        ["target", "model_type"],
        key=lambda s: s.map(order if s.name == "target" else morder),
        kind="stable",
    )
    return out.reset_index(drop=True)
