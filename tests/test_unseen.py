"""Predictions for a held-out model and for Pythia, on fits of known origin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from massive_activations import prediction
from massive_activations.curve import eq9
from massive_activations.prediction.synthetic import architecture_fits
from massive_activations.prediction.unseen import held_out_curves, pythia_predictions


@pytest.fixture(scope="module")
def known():
    fits, archs = architecture_fits(10, seed=2, noise=0.0)
    steps = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000])
    rows = []
    for (m, layer), r in fits[fits.procedure == "ours"].set_index(["model", "layer"]).iterrows():
        v = eq9(steps, r["A"], r["lam"], r["gam"], r["t0"], r["K"])
        rows += [
            {"model": m, "layer": layer, "step": s, "ratio": x}
            for s, x in zip(steps, v, strict=True)
        ]
    return fits, archs, pd.DataFrame(rows)


def test_held_out_model_is_never_seen_and_is_predicted(known):
    fits, archs, traj = known
    out = held_out_curves(fits, traj, "m3", model_type="Ridge", architectures=archs)
    assert set(out.model) == {"m3"}
    assert set(out.layer) == set(range(1, archs["m3"]["n_layers"] + 1))
    assert out["measured"].notna().all()
    # targets are smooth functions of two features: the unseen model's curves are close
    ok = out.dropna(subset=["value"])
    rel = np.abs(ok.value - ok.measured) / np.abs(ok.measured).clip(lower=1e-9)
    assert np.median(rel) < 0.5
    with pytest.raises(ValueError, match="not in the fits table"):
        held_out_curves(fits, traj, "nope", architectures=archs)


def test_pythia_predictions_flag_extrapolation(known):
    fits, archs, _ = known
    pred = prediction.fit_predictor(fits, model_type="Ridge", architectures=archs, targets=("K",))
    out = pythia_predictions(pred, sizes=("14M", "1B"))
    assert set(out.model) == {"pythia-14m", "pythia-1b"}
    assert len(out) == 6 + 16
    by = out.groupby("model").extrapolation
    assert by.all()["pythia-1b"]  # d = 2048 lies outside the synthetic models' 64-256
    assert not by.any()["pythia-14m"]  # L6 d128 h4: inside their range
    assert "log_d" in out.set_index("model").loc["pythia-1b", "extrapolated_features"].iloc[0]
    with pytest.raises(ValueError, match="Unknown Pythia sizes"):
        pythia_predictions(pred, sizes=("3B",))


def test_held_out_model_takes_its_seed_replicates_out_of_training(monkeypatch):
    from massive_activations.prediction import unseen

    fits, archs = architecture_fits(5, seed=3, n_seeds=3, noise=0.0)
    steps = np.array([0, 10, 100, 1000])
    traj = pd.DataFrame(
        [{"model": m, "layer": la, "step": s, "ratio": 1.0}
         for m, la in fits[["model", "layer"]].itertuples(index=False) for s in steps]
    )  # fmt: skip
    seen = []
    real = unseen.fit_predictor

    def spy(f, **kw):
        seen.append(set(f["model"]))
        return real(f, **kw)

    monkeypatch.setattr(unseen, "fit_predictor", spy)
    out = held_out_curves(fits, traj, "m2-s1", model_type="Ridge", architectures=archs)
    assert set(out.model) == {"m2-s1"}
    trained = seen[0]
    held = {m for m in archs if archs[m] == archs["m2-s1"]}
    assert held >= {"m2", "m2-s1", "m2-s2"} and not trained & held
    assert trained | held == set(archs)
