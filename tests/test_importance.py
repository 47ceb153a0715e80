"""Feature importance of the best validated predictor, on data of known origin."""

from __future__ import annotations

import pandas as pd
import pytest

from massive_activations import prediction, registry
from massive_activations.prediction import importance as I
from massive_activations.prediction.synthetic import architecture_fits


@pytest.fixture(scope="module")
def known():
    fits, archs = architecture_fits(10, seed=1)
    results = prediction.evaluate(fits, targets=("K",), model_types=("mean", "Ridge"),
                         architectures=archs, n_permutations=0, progress=False)  # fmt: skip
    return fits, archs, results


def test_best_model_ignores_the_mean_baseline(known):
    _, _, results = known
    best = I.best_model(results, "K")
    assert best in ("Ridge", "RandomForest")
    assert I.best_model(results, "gam") is None


def test_drivers_rank_the_features_that_make_the_target(known):
    fits, archs, results = known
    imps, skipped = I.drivers(fits, results, targets=("K", "gam"), architectures=archs)
    assert skipped == {"gam": "no model type validated for gam under paper_cv5"}
    top2 = set(imps["K"].head(2)["feature"])
    assert top2 == {"H_over_d", "dff_over_d"}  # K = exp(2 + 0.5 (z(H/d) + z(d_ff/d)))
    assert imps["K"].attrs["model_type"] == I.best_model(results, "K")


def test_importances_round_trip(known, tmp_path):
    fits, archs, results = known
    imps, _ = I.drivers(fits, results, targets=("K",), architectures=archs)
    path = I.write_importances(imps, tmp_path, "s")
    assert path.name == "importance.parquet"
    back = I.importances_by_target(registry.read("importance.parquet", tmp_path, "s"))
    pd.testing.assert_frame_equal(back["K"], imps["K"], check_dtype=False)
    assert back["K"].attrs == imps["K"].attrs
    with pytest.raises(FileNotFoundError, match="execute chapter 5 first"):
        registry.read("importance.parquet", tmp_path, "other")
