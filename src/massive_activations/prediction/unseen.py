"""Predictions for architectures the predictor never saw.

Two uses in chapter 5: a model of our suite held out of training, whose predicted Eq. 9
curves are compared with its measured trajectories (the test a model designer needs), and
the Pythia models, far outside the suite's range, whose predictions are extrapolations and
flagged as such.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from massive_activations.prediction import predictor as P
from massive_activations.prediction.features import pythia_architectures

__all__ = ["held_out_curves", "pythia_predictions"]


def held_out_curves(
    fits: pd.DataFrame,
    traj: pd.DataFrame,
    model: str,
    *,
    model_type: str = "RandomForest",
    architectures: Mapping | None = None,
    quantity: str = "ratio",
    seed: int = 0,
    identified_only: bool = True,
) -> pd.DataFrame:
    """Predicted vs measured trajectories of a model left out of the predictor's training.

    Parameters
    ----------
    fits : pandas.DataFrame
        The fits table of the suite (every model).
    traj : pandas.DataFrame
        :func:`massive_activations.measurement.trajectories.trajectories` of the suite.
    model : str
        The model to hold out; its layers are never seen in training.
    model_type : str
        Regressor of :func:`massive_activations.prediction.predictor.fit_predictor`.
    architectures : mapping, optional
        ``{model: spec}`` when names do not tell the architecture.
    quantity : str
        The measured series (``"ratio"``, ratio of means; or ``"ratio_mean"``).
    seed : int
        Seed of the predictor.
    identified_only : bool
        Train on identified values only (default) or on every fit
        (:func:`massive_activations.prediction.predictor.target_data`).

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
    rest = fits[fits["model"] != model]
    predictor = P.fit_predictor(
        rest,
        model_type=model_type,
        architectures=architectures,
        seed=seed,
        identified_only=identified_only,
    )
    spec = (architectures or {}).get(model, model)
    measured = traj[traj["model"] == model]
    steps = np.sort(measured["step"].unique())
    curves = P.predicted_curves(spec, steps, predictor=predictor)
    curves["model"] = model
    m = measured[["layer", "step", quantity]].rename(columns={quantity: "measured"})
    out = curves.merge(m, on=["layer", "step"], how="left")
    cols = ["model", "layer", "step", "measured", "value", "value_lo", "value_hi", "extrapolation"]
    return out[cols]


def pythia_predictions(
    predictor: P.Predictor,
    sizes: Sequence[str] = ("14M", "70M", "160M", "410M", "1B", "1.4B", "2.8B", "6.9B", "12B"),
) -> pd.DataFrame:
    """Predicted parameters of every layer of the Pythia models (all extrapolations).

    Returns :func:`massive_activations.prediction.predictor.predict_architecture`'s table for each
    size, concatenated, with ``extrapolated_features`` naming the features outside the
    training range.
    """
    archs = pythia_architectures()
    unknown = [s for s in sizes if s not in archs]
    if unknown:
        raise ValueError(f"Unknown Pythia sizes {unknown}; known: {list(archs)}.")
    frames = [P.predict_architecture(archs[s], predictor=predictor) for s in sizes]
    return pd.concat(frames, ignore_index=True)
