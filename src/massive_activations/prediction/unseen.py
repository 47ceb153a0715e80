"""Predictions for architectures the predictor never saw.

Two uses in chapter 5: a model of our suite held out of training, whose predicted Eq. 9
curves are compared with its measured trajectories (the test a model designer needs), and
the Pythia models, far outside the suite's range, whose predictions are extrapolations and
flagged as such.

**Unseen architectures**: :func:`fit_predictor` trains one model per target on every usable
layer (hyperparameters tuned by inner cross-validation grouped by architecture, seed
replicates together) plus ``n_members`` models each fitted without one part of the
architectures (``GroupKFold``); :func:`predict_architecture`
returns the full model's prediction with the members' range as its uncertainty and flags
extrapolation (a feature outside its training range); :func:`predicted_curves` evaluates the
implied Eq. 9 curves (:func:`massive_activations.curve.eq9`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import (
    GroupKFold,
)

from massive_activations.curve import eq9
from massive_activations.prediction.data import model_groups, target_data
from massive_activations.prediction.estimators import (
    fit_quiet,
    make_estimator,
    prefixed,
    search_grid,
    tune,
)
from massive_activations.prediction.features import (
    FEATURE_NAMES,
    layer_features,
    pythia_architectures,
)
from massive_activations.prediction.transforms import TARGETS
from massive_activations.prediction.validation import MIN_ROWS

__all__ = [
    "Predictor",
    "fit_predictor",
    "held_out_curves",
    "predict_architecture",
    "predicted_curves",
    "pythia_predictions",
]


def held_out_curves(
    fits: pd.DataFrame,
    traj: pd.DataFrame,
    model: str,
    *,
    model_type: str = "RandomForest",
    architectures: Mapping | None = None,
    groups: Mapping | None = None,
    quantity: str = "ratio",
    seed: int = 0,
    identified_only: bool = True,
    transforms: str = "ours",
) -> pd.DataFrame:
    """Predicted vs measured trajectories of a model whose architecture the predictor never saw.

    Parameters
    ----------
    fits : pandas.DataFrame
        The fits table of the suite (every model).
    traj : pandas.DataFrame
        :func:`massive_activations.measurement.trajectories.trajectories` of the suite.
    model : str
        The model to predict.  Every model of its architecture group (its seed replicates
        and variants, :mod:`~massive_activations.prediction.data`) is left out of training
        with it, so its architecture is never seen.
    model_type : str
        Regressor of :func:`massive_activations.prediction.unseen.fit_predictor`.
    architectures : mapping, optional
        ``{model: spec}`` when names do not tell the architecture.
    groups : mapping, optional
        ``{model: architecture group}`` (default: identical architectures form a group).
    quantity : str
        The measured series (``"ratio"``, ratio of means; or ``"ratio_mean"``).
    seed : int
        Seed of the predictor.
    identified_only : bool
        Train on identified values only (default) or on every fit
        (:func:`massive_activations.prediction.data.target_data`).
    transforms : {"ours", "paper"}
        Target transforms (:data:`~massive_activations.prediction.transforms.TRANSFORMS`).

    Returns
    -------
    pandas.DataFrame
        ``model, layer, step, measured, value, value_lo, value_hi, extrapolation``: the
        measurement and the curve implied by the predicted parameters, with the members'
        range.

    Raises
    ------
    ValueError
        If the model is unknown, or the remaining models leave a target with too few
        identified layers (the message names it).
    """
    models = sorted(set(fits["model"]))
    if model not in models:
        raise ValueError(f"Model {model!r} is not in the fits table; it has {models}.")
    names = model_groups(models, architectures=architectures, groups=groups)
    held = sorted(m for m in models if names[m] == names[model])
    rest = fits[~fits["model"].isin(held)]
    if rest.empty:
        raise ValueError(
            f"Holding out the architecture of {model!r} ({held}) leaves no model to train on."
        )
    predictor = fit_predictor(
        rest,
        model_type=model_type,
        architectures=architectures,
        groups=groups,
        seed=seed,
        identified_only=identified_only,
        transforms=transforms,
    )
    spec = (architectures or {}).get(model, model)
    measured = traj[traj["model"] == model]
    steps = np.sort(measured["step"].unique())
    curves = predicted_curves(spec, steps, predictor=predictor)
    curves["model"] = model
    m = measured[["layer", "step", quantity]].rename(columns={quantity: "measured"})
    out = curves.merge(m, on=["layer", "step"], how="left")
    cols = ["model", "layer", "step", "measured", "value", "value_lo", "value_hi", "extrapolation"]
    return out[cols]


def pythia_predictions(
    predictor: Predictor,
    sizes: Sequence[str] = ("14M", "70M", "160M", "410M", "1B", "1.4B", "2.8B", "6.9B", "12B"),
) -> pd.DataFrame:
    """Predicted parameters of every layer of the Pythia models (all extrapolations).

    Returns :func:`massive_activations.prediction.unseen.predict_architecture`'s table for each
    size, concatenated, with ``extrapolated_features`` naming the features outside the
    training range.
    """
    archs = pythia_architectures()
    unknown = [s for s in sizes if s not in archs]
    if unknown:
        raise ValueError(f"Unknown Pythia sizes {unknown}; known: {list(archs)}.")
    frames = [predict_architecture(archs[s], predictor=predictor) for s in sizes]
    return pd.concat(frames, ignore_index=True)


@dataclass
class Predictor:
    """Per-target models trained on every usable layer, for unseen architectures.

    Attributes
    ----------
    model_type : str
    estimators : dict
        ``{target: fitted estimator}`` trained on all usable layers of the target.
    members : dict
        ``{target: [fitted estimators]}``, each trained without some architectures.
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
    groups: Mapping | None = None,
    seed: int = 0,
    n_members: int = 5,
    grids: Mapping | None = None,
    identified_only: bool = True,
    transforms: str = "ours",
) -> Predictor:
    """Train a :class:`Predictor` on all usable layers of a fits table.

    Hyperparameters are tuned by inner cross-validation grouped by architecture (the choice
    that predicts unseen architectures best); the members are refits with those
    hyperparameters on ``GroupKFold(n_members)`` training parts (each leaves out some
    architectures with all their seed replicates), whose spread is the uncertainty that
    :func:`predict_architecture` reports.  ``groups``, ``identified_only``, ``transforms``:
    see :func:`~massive_activations.prediction.data.target_data`.
    """
    estimators, members, params, datas = {}, {}, {}, {}
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
        arch = d.groups
        n_groups = len(set(arch))
        if len(d.y) < MIN_ROWS or n_groups < 2:
            raise ValueError(
                f"Target {t!r} has {len(d.y)} usable layers in {n_groups} architectures; a "
                f"predictor needs >= {MIN_ROWS} layers in >= 2 architectures. Leave it out of "
                "targets."
            )
        base = make_estimator(model_type, t, seed, transforms)
        est, p = fit_quiet(
            tune, base, search_grid(model_type, grids), d.X, d.y, arch, grouped=True, seed=seed
        )
        tuned = clone(base).set_params(**prefixed(p))
        folds = GroupKFold(min(n_members, n_groups)).split(d.X, groups=arch)
        members[t] = [fit_quiet(clone(tuned).fit, d.X[tr], d.y[tr]) for tr, _ in folds]
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
        One row per layer: ``model, layer, n_layers, relative_depth`` (``(l - 1) / (L - 1)``,
        the features' position); per target ``<t>``
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
