"""The predictor's validation numbers and chance levels against independent computations.

Small, fast cases (30 layers, Ridge / the mean baseline, a handful of permutations), each
recomputed here with scikit-learn's own splitters, estimators and metrics, so that a wrong
number in :mod:`massive_activations.prediction.validation` or
:mod:`massive_activations.prediction.nulls` fails a test (these run per mutant in
``make mutation``).
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import KFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from massive_activations.prediction.data import TargetData
from massive_activations.prediction.features import FEATURE_NAMES
from massive_activations.prediction.nulls import (
    max_null,
    n_arrangements,
    null_summary,
    permutations,
)
from massive_activations.prediction.transforms import metric_scale
from massive_activations.prediction.validation import (
    MIN_ROWS,
    PAPER_TABLE3,
    RESULT_COLUMNS,
    _validation_row,
    cross_validate,
    infeasible,
    table3,
)

# --------------------------------------------------------------------------- data


def _data(
    n_models: int = 6,
    n_layers: int = 5,
    target: str = "lam",
    seed: int = 0,
    transforms: str = "ours",
    archs: list[str] | None = None,
    layers_per_model: list[int] | None = None,
) -> TargetData:
    """A target that is a noisy linear function of two features, on ``n_models`` models."""
    rng = np.random.default_rng(seed)
    rows, y = [], []
    sizes = layers_per_model or [n_layers] * n_models
    for m, size in enumerate(sizes):
        width = rng.uniform(0.5, 2.0)
        for layer in range(size):
            f = {name: rng.normal() for name in FEATURE_NAMES}
            f["l_over_L"] = layer / size
            f["log_d"] = width
            rows.append(
                {
                    "model": f"m{m}",
                    "architecture": archs[m] if archs else f"a{m}",
                    "layer": layer,
                    **f,
                }
            )
            y.append(math.exp(0.8 * f["l_over_L"] - 0.5 * width + 0.05 * rng.normal()))
    features = pd.DataFrame(rows)
    n = len(y)
    counts = {"n_layers": n, "n_used": n, "n_unidentified": 0, "n_missing": 0, "n_out_of_domain": 0}
    return TargetData(target, features, np.array(y), counts, transforms)


ONE_ALPHA = {"Ridge": {"alpha": [0.5]}}


def _ridge_oof(data: TargetData, splits, y=None, alpha: float = 0.5) -> np.ndarray:
    """Out-of-fold predictions of Ridge on the target's transformed scale, built by hand."""
    y = data.y if y is None else y
    scale = metric_scale(data.target, data.y, data.transforms)
    pred = np.full(len(y), np.nan)
    for tr, te in splits:
        # the estimator's own target transform is fitted on the training fold
        from massive_activations.prediction.transforms import target_transformer

        t = target_transformer(data.target, data.transforms).fit(y[tr].reshape(-1, 1))
        z = t.transform(y[tr].reshape(-1, 1)).ravel()
        model = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(data.X[tr], z)
        pred[te] = t.inverse_transform(model.predict(data.X[te]).reshape(-1, 1)).ravel()
    tested = np.isfinite(pred)
    return scale(y[tested]), scale(pred[tested]), pred


# --------------------------------------------------------------------------- splits and R^2


@pytest.mark.parametrize("protocol", ["paper_split", "paper_cv5", "lomo"])
def test_ridge_metrics_match_a_hand_built_protocol(protocol):
    data = _data()
    run = cross_validate(data, "Ridge", protocol, seed=3, grids=ONE_ALPHA)
    n = len(data.y)
    if protocol == "paper_split":
        tr, te = train_test_split(np.arange(n), test_size=0.2, random_state=3)
        splits = [(np.sort(tr), np.sort(te))]
    elif protocol == "paper_cv5":
        splits = list(KFold(5, shuffle=True, random_state=3).split(np.zeros(n)))
    else:
        splits = [
            (np.flatnonzero(data.groups != g), np.flatnonzero(data.groups == g))
            for g in sorted(set(data.groups))
        ]
    assert len(run.folds) == len(splits)
    for (tr, te, _est, params), (tr2, te2) in zip(run.folds, splits, strict=True):
        assert tr.tolist() == list(tr2) and te.tolist() == list(te2)
        assert params == {"alpha": 0.5}
    z, zhat, pred = _ridge_oof(data, splits)
    np.testing.assert_allclose(run.pred, pred, rtol=1e-10)
    assert run.metrics["r2"] == pytest.approx(r2_score(z, zhat), rel=1e-10)
    assert run.metrics["mae"] == pytest.approx(mean_absolute_error(z, zhat), rel=1e-10)
    assert run.metrics["rmse"] == pytest.approx(math.sqrt(mean_squared_error(z, zhat)), rel=1e-10)
    assert run.test_mask.sum() == (6 if protocol == "paper_split" else n)
    assert 0.5 < run.metrics["r2"] < 1.0  # the features carry the target


def test_the_mean_baseline_predicts_the_training_folds_mean_on_the_transformed_scale():
    data = _data(target="K")  # Yeo-Johnson: fitted on each training fold
    run = cross_validate(data, "mean", "lomo", seed=0)
    from massive_activations.prediction.transforms import target_transformer

    for tr, te, _est, params in run.folds:
        assert params == {}
        t = target_transformer("K", "ours").fit(data.y[tr].reshape(-1, 1))
        zbar = t.transform(data.y[tr].reshape(-1, 1)).mean()
        want = t.inverse_transform([[zbar]])[0, 0]
        np.testing.assert_allclose(run.pred[te], want, rtol=1e-10)
    # under leave-one-model-out the mean scores below 0
    assert run.metrics["r2"] < 0


def test_metrics_on_a_constant_target_are_nan_r2_but_finite_errors():
    from massive_activations.prediction.validation import _metrics

    m = _metrics(np.ones(4), np.array([1.0, 2.0, 1.0, 3.0]))
    assert np.isnan(m["r2"])
    assert m["mae"] == pytest.approx(0.75) and m["rmse"] == pytest.approx(math.sqrt(5 / 4))
    z, zhat = np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 3.0])
    m = _metrics(z, zhat)
    assert m["r2"] == pytest.approx(r2_score(z, zhat))
    assert m["mae"] == pytest.approx(mean_absolute_error(z, zhat))
    assert m["rmse"] == pytest.approx(math.sqrt(mean_squared_error(z, zhat)))


def test_tuning_picks_the_grid_point_of_least_inner_cv_error():
    data = _data(seed=4)
    grid = {"Ridge": {"alpha": [1e-3, 1e3]}}
    run = cross_validate(data, "Ridge", "paper_split", seed=1, grids=grid)
    (tr, _te, _est, params) = run.folds[0]
    # the inner 5-fold search over layers, by hand, on the training fold's scale
    from massive_activations.prediction.transforms import target_transformer

    errors = {}
    for alpha in (1e-3, 1e3):
        sse = []
        for itr, ite in KFold(5, shuffle=True, random_state=1).split(tr):
            a, b = tr[itr], tr[ite]
            t = target_transformer("lam", "ours").fit(data.y[a].reshape(-1, 1))
            model = make_pipeline(StandardScaler(), Ridge(alpha=alpha))
            model.fit(data.X[a], t.transform(data.y[a].reshape(-1, 1)).ravel())
            z = t.transform(data.y[b].reshape(-1, 1)).ravel()
            sse.append(np.mean((z - model.predict(data.X[b])) ** 2))
        errors[alpha] = np.mean(sse)
    assert params == {"alpha": min(errors, key=errors.get)}
    assert params == {"alpha": 1e-3}  # a real signal: little shrinkage wins


# --------------------------------------------------------------------------- chance levels


def test_chance_r2_is_the_same_protocol_on_the_permuted_targets():
    data = _data()
    run = cross_validate(data, "Ridge", "paper_cv5", seed=2, n_permutations=4, grids=ONE_ALPHA)
    perms = permutations(data.models, data.features["layer"], 4, 2, "blocks")
    n = len(data.y)
    splits = list(KFold(5, shuffle=True, random_state=2).split(np.zeros(n)))
    want = []
    for p in perms:
        yp = data.y[p]
        _, _, pred = _ridge_oof(data, splits, y=yp)
        scale = metric_scale("lam", data.y, "ours")  # the fixed scale of the real target
        want.append(r2_score(scale(yp), scale(pred)))
    np.testing.assert_allclose(run.chance, want, rtol=1e-9)
    # retuning on one grid point gives the same numbers
    again = cross_validate(
        data, "Ridge", "paper_cv5", seed=2, n_permutations=4, grids=ONE_ALPHA,
        retune_permutations=True,
    )  # fmt: skip
    np.testing.assert_allclose(again.chance, want, rtol=1e-9)


def test_retuning_searches_the_grid_on_each_permutation():
    data = _data(seed=5)
    grid = {"Ridge": {"alpha": [1e-3, 1e4]}}
    fixed = cross_validate(data, "Ridge", "lomo", seed=0, n_permutations=2, grids=grid)
    retuned = cross_validate(
        data, "Ridge", "lomo", seed=0, n_permutations=2, grids=grid, retune_permutations=True
    )
    assert fixed.metrics == retuned.metrics
    # fixed: every fold refits with alpha = 1e-3; retuned: the inner search may pick 1e4,
    # the heavy shrinkage that predicts ~ the mean on permuted targets
    assert all(f[3] == {"alpha": 1e-3} for f in fixed.folds)
    assert not np.allclose(fixed.chance, retuned.chance)
    # by hand: a leave-one-group-out inner search on each training fold of each permutation
    from sklearn.model_selection import GroupKFold

    from massive_activations.prediction.transforms import target_transformer

    perms = permutations(data.models, data.features["layer"], 2, 0, "blocks")
    scale = metric_scale("lam", data.y, "ours")
    for p, got in zip(perms, retuned.chance, strict=True):
        yp = data.y[p]
        pred = np.full(len(yp), np.nan)
        for tr, te, _est, _params in fixed.folds:
            best, best_err = None, np.inf
            for alpha in (1e-3, 1e4):
                errs = []
                for a_, b_ in GroupKFold(5).split(tr, groups=data.groups[tr]):
                    a, b = tr[a_], tr[b_]
                    t = target_transformer("lam", "ours").fit(yp[a].reshape(-1, 1))
                    model = make_pipeline(StandardScaler(), Ridge(alpha=alpha))
                    model.fit(data.X[a], t.transform(yp[a].reshape(-1, 1)).ravel())
                    z = t.transform(yp[b].reshape(-1, 1)).ravel()
                    errs.append(np.mean((z - model.predict(data.X[b])) ** 2))
                if np.mean(errs) < best_err:
                    best, best_err = alpha, np.mean(errs)
            _, _, pp = _ridge_oof(data, [(tr, te)], y=yp, alpha=best)
            pred[te] = pp[te]
        assert got == pytest.approx(r2_score(scale(yp), scale(pred)), rel=1e-9)


def test_the_results_row_by_hand():
    data = _data(archs=["a0", "a0", "a1", "a2", "a3", "a4"])
    run = cross_validate(data, "Ridge", "lomo", seed=7, n_permutations=9, grids=ONE_ALPHA)
    row = run.row(7)
    assert list(row) == [c for c in RESULT_COLUMNS if c != "fits_used"]
    ch = np.array(json.loads(row["chance_r2"]))
    np.testing.assert_array_equal(ch, run.chance)
    assert row["chance_r2_mean"] == pytest.approx(ch.mean())
    assert row["chance_r2_q95"] == pytest.approx(np.percentile(ch, 95))
    assert row["p_value"] == pytest.approx((1 + (ch >= row["r2"]).sum()) / 10)
    # the two models of architecture a0 are held out together: 5 folds
    assert row["n_folds"] == 5 and row["n_models"] == 6 and row["n_architectures"] == 5
    assert row["n_train"] == round(np.mean([30 - 10, 25, 25, 25, 25]))
    assert row["n_test"] == 30 and row["n_permutations"] == 9
    assert row["n_used"] == 30 and row["n_missing"] == 0 and "n_layers" not in row
    assert row["null_scheme"] == "blocks" and row["null_arrangements"] == math.factorial(6)
    assert json.loads(row["params"]) == [{"alpha": 0.5}] * 5
    assert row["seed"] == 7 and row["scale"] == "log" and row["transforms"] == "ours"
    assert row["note"] == "" and row["target"] == "lam"
    assert (row["model_type"], row["protocol"]) == ("Ridge", "lomo")
    # a run without permutations has no chance level
    bare = cross_validate(data, "Ridge", "lomo", seed=7, grids=ONE_ALPHA).row(7)
    assert np.isnan(bare["chance_r2_mean"]) and np.isnan(bare["p_value"])
    assert np.isnan(bare["chance_r2_q95"]) and bare["chance_r2"] == "[]"


def test_p_value_counts_ties_as_at_least_as_large():
    data = _data()
    run = cross_validate(data, "Ridge", "paper_split", n_permutations=3, grids=ONE_ALPHA)
    run.chance = np.array([run.metrics["r2"], -1.0, 2.0])
    assert run.row(0)["p_value"] == pytest.approx(3 / 4)


# --------------------------------------------------------------------------- feasibility


def test_infeasible_at_the_boundaries():
    assert infeasible(_data(n_models=2, n_layers=5), "paper_split") == ""  # 10 rows
    nine = _data(n_models=3, n_layers=3)
    assert infeasible(nine, "paper_split") == f"only 9 usable layers (< {MIN_ROWS})"
    with pytest.raises(ValueError, match="only 9 usable layers"):
        cross_validate(nine, "Ridge", "paper_cv5")
    two = _data(n_models=4, archs=["a", "a", "b", "b"])
    assert "needs >= 3 architectures" in infeasible(two, "lomo")
    assert "2 have" in infeasible(two, "lomo")
    assert infeasible(two, "paper_cv5") == ""
    three = _data(n_models=3, archs=["a", "b", "c"])
    assert infeasible(three, "lomo") == ""


def test_an_infeasible_row_says_why_and_keeps_the_counts():
    two = _data(n_models=4, archs=["a", "a", "b", "b"])
    row = _validation_row(two, "Ridge", "lomo", 5, seed=4, null="rows")
    assert list(row) == list(RESULT_COLUMNS)
    assert "needs >= 3 architectures" in row["note"]
    assert np.isnan(row["r2"]) and np.isnan(row["p_value"])
    assert (row["target"], row["model_type"], row["protocol"]) == ("lam", "Ridge", "lomo")
    assert row["seed"] == 4 and row["null_scheme"] == "rows"
    assert row["params"] == "[]" and row["chance_r2"] == "[]"
    assert row["n_models"] == 4 and row["n_architectures"] == 2 and row["n_used"] == 20
    assert row["scale"] == "log" and row["transforms"] == "ours"
    ok = _validation_row(_data(), "Ridge", "paper_split", 2, seed=1, null="blocks",
                         retune_permutations=False, grids=ONE_ALPHA)  # fmt: skip
    assert ok["n_permutations"] == 2 and ok["note"] == "" and ok["seed"] == 1


def test_unknown_protocol_is_refused():
    from massive_activations.prediction.validation import _outer_splits

    with pytest.raises(ValueError, match="Unknown protocol"):
        _outer_splits("loo", 10, np.zeros(10), 0)


# --------------------------------------------------------------------------- permutations


def test_block_permutations_move_whole_models_among_models_of_the_same_depth():
    sizes = [3, 3, 3, 2, 2, 4]
    data = _data(n_models=6, layers_per_model=sizes)
    models, layers = data.models, data.features["layer"].to_numpy()
    # shuffle the rows: blocks are found by model, ordered by layer
    order = np.random.default_rng(0).permutation(len(models))
    models, layers = models[order], layers[order]
    perms = permutations(models, layers, 300, seed=11)
    assert perms.shape == (300, len(models)) and perms.dtype == np.int64
    seen = set()
    for p in perms:
        assert sorted(p) == list(range(len(models)))
        for m in set(models):
            rows = np.flatnonzero(models == m)
            rows = rows[np.argsort(layers[rows])]
            src = p[rows]
            # one source model, of the same depth, its layers in order
            assert len(set(models[src])) == 1
            assert (models == models[src[0]]).sum() == len(rows)
            assert layers[src].tolist() == sorted(layers[rows].tolist())
        seen.add(tuple(p))
    # 3! * 2! * 1! arrangements, all reached in 300 draws
    assert len(seen) == 12 == n_arrangements(models, layers)
    # each arrangement about equally often (uniform over the 12)
    counts = pd.Series([tuple(p) for p in perms]).value_counts()
    assert counts.min() >= 10 and counts.max() <= 45
    np.testing.assert_array_equal(perms, permutations(models, layers, 300, seed=11))
    assert not np.array_equal(perms, permutations(models, layers, 300, seed=12))


def test_row_permutations_shuffle_every_row():
    models = np.repeat(["a", "b"], 4)
    layers = np.tile(np.arange(4), 2)
    perms = permutations(models, layers, 200, seed=0, null="rows")
    rng = np.random.default_rng(0)
    want = np.array([rng.permutation(8) for _ in range(200)])
    np.testing.assert_array_equal(perms, want)
    assert n_arrangements(models, layers, "rows") == math.factorial(8)
    assert permutations(models, layers, 0, seed=0).shape == (0, 8)
    with pytest.raises(ValueError, match="Unknown null"):
        permutations(models, layers, 2, seed=0, null="both")
    with pytest.raises(ValueError, match="differ in length"):
        permutations(models, layers[:-1], 2, seed=0)


def test_n_arrangements_products_of_factorials():
    models = ["a"] * 2 + ["b"] * 2 + ["c"] * 2 + ["d"] * 5 + ["e"] * 5
    layers = [0, 1, 0, 1, 0, 1, *range(5), *range(5)]
    assert n_arrangements(models, layers) == math.factorial(3) * math.factorial(2)
    assert n_arrangements(["x"] * 3, [0, 1, 2]) == 1
    assert n_arrangements(models, layers, "rows") == float(math.factorial(16))
    # beyond the float range: infinite
    many = [f"m{i}" for i in range(200)]
    assert n_arrangements(many, [0] * 200) == math.inf
    assert n_arrangements(many[:170], [0] * 170) == pytest.approx(math.factorial(170), rel=1e-9)


def test_max_null_permutation_by_permutation():
    a = np.array([0.1, np.nan, -0.2, np.nan])
    b = np.array([0.3, 0.2, -0.5, np.nan])
    out = max_null([a, b])
    assert out[:3].tolist() == [0.3, 0.2, -0.2] and np.isnan(out[3])
    assert max_null([a]).tolist()[:1] == [0.1]
    with pytest.raises(ValueError, match="one common length"):
        max_null([a, b[:3]])
    with pytest.raises(ValueError, match="one common length"):
        max_null([])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an all-NaN permutation: NaN, without a warning
        assert np.isnan(max_null([a, a])[1])


# --------------------------------------------------------------------------- null summary


def _results(chance: dict, r2: dict, **extra) -> pd.DataFrame:
    rows = []
    for m, c in chance.items():
        rows.append(
            {
                "fits_used": "identified",
                "transforms": "ours",
                "target": "K",
                "protocol": "lomo",
                "model_type": m,
                "r2": r2[m],
                "chance_r2": json.dumps(c) if c is not None else None,
                "null_scheme": "blocks",
                "null_arrangements": 24.0,
                "seed": 3,
                **extra,
            }
        )
    return pd.DataFrame(rows)


def test_null_summary_is_the_null_of_the_maximum_by_hand():
    rng = np.random.default_rng(1)
    ridge, lasso, mean = rng.normal(0, 0.2, 50), rng.normal(0, 0.2, 50), rng.normal(5, 1, 50)
    res = _results(
        {"Ridge": ridge.tolist(), "Lasso": lasso.tolist(), "mean": mean.tolist()},
        {"Ridge": 0.25, "Lasso": 0.3, "mean": 9.0},
    )
    s = null_summary(res).iloc[0]
    null = np.maximum(ridge, lasso)  # the mean baseline is left out
    assert s["best_model_type"] == "Lasso" and s["best_r2"] == 0.3
    assert json.loads(s["model_types"]) == ["Lasso", "Ridge"]
    assert s["n_permutations"] == 50 and s["null_arrangements"] == 24.0
    assert s["null_max_mean"] == pytest.approx(null.mean())
    assert s["null_max_sd"] == pytest.approx(null.std(ddof=1))
    for q in (50, 90, 95, 99):
        assert s[f"null_max_q{q}"] == pytest.approx(np.percentile(null, q))
    assert s["p_value"] == pytest.approx((1 + (null >= 0.3).sum()) / 51)
    assert s["above_q95"] == bool(0.3 > np.percentile(null, 95))
    assert s["seed"] == 3 and s["null_scheme"] == "blocks"
    # counting the baseline in the maximum changes the null
    with_mean = null_summary(res, exclude=()).iloc[0]
    assert with_mean["best_model_type"] == "mean"
    assert with_mean["null_max_mean"] == pytest.approx(np.maximum(null, mean).mean())


def test_null_summary_above_q95_and_ties():
    chance = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    s = null_summary(_results({"Ridge": chance}, {"Ridge": 0.9})).iloc[0]
    # ties count: r2 = 0.9 equals one permutation; q95 of 0..0.9 is 0.855
    assert s["p_value"] == pytest.approx(2 / 11)
    assert s["null_max_q95"] == pytest.approx(0.855) and bool(s["above_q95"])
    s = null_summary(_results({"Ridge": chance}, {"Ridge": 0.85})).iloc[0]
    assert not s["above_q95"] and s["p_value"] == pytest.approx(2 / 11)
    # r2 equal to the 95th percentile is not above it
    s = null_summary(_results({"Ridge": chance}, {"Ridge": s["null_max_q95"]})).iloc[0]
    assert not s["above_q95"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "degrees of freedom" warning for one permutation
        one = null_summary(_results({"Ridge": [0.1]}, {"Ridge": 0.5})).iloc[0]
    assert np.isnan(one["null_max_sd"]) and one["p_value"] == pytest.approx(1 / 2)
    two = null_summary(_results({"Ridge": [0.1, 0.4]}, {"Ridge": 0.5})).iloc[0]
    assert two["null_max_sd"] == pytest.approx(np.std([0.1, 0.4], ddof=1))


def test_null_summary_without_validated_regressor_or_permutations():
    res = _results({"Ridge": None, "Lasso": None}, {"Ridge": np.nan, "Lasso": np.nan})
    s = null_summary(res).iloc[0]
    assert s["best_model_type"] is None and np.isnan(s["best_r2"])
    assert np.isnan(s["p_value"]) and not s["above_q95"] and np.isnan(s["n_permutations"])
    bare = null_summary(_results({"Ridge": []}, {"Ridge": 0.4})).iloc[0]
    assert bare["best_model_type"] == "Ridge" and bare["n_permutations"] == 0
    assert np.isnan(bare["null_max_q95"]) and np.isnan(bare["p_value"])
    assert not bare["above_q95"]
    # chance levels stored as lists (not JSON) and a row without them are read as well
    listed = _results({"Ridge": None}, {"Ridge": 0.4})
    listed["chance_r2"] = [np.array([0.1, 0.5])]
    s = null_summary(listed).iloc[0]
    assert s["n_permutations"] == 2 and s["p_value"] == pytest.approx(2 / 3)
    nan_row = _results({"Ridge": None}, {"Ridge": 0.4})
    nan_row["chance_r2"] = np.nan
    assert null_summary(nan_row).iloc[0]["n_permutations"] == 0
    empty = _results({"Ridge": None}, {"Ridge": 0.4})
    empty["chance_r2"] = ""  # an empty string: no permutations
    assert null_summary(empty).iloc[0]["n_permutations"] == 0


def test_null_summary_groups_and_column_order():
    a = _results({"Ridge": [0.1, 0.2]}, {"Ridge": 0.5})
    b = _results({"Ridge": [0.6, 0.7]}, {"Ridge": 0.5}).assign(protocol="paper_split")
    c = a.assign(transforms="paper")
    d = a.assign(fits_used=None)  # an older table without the choice: kept, not dropped
    # groups in the order they first appear (not sorted)
    s = null_summary(pd.concat([c, b, a, d], ignore_index=True))
    from massive_activations.prediction.nulls import NULL_COLUMNS

    assert list(s.columns) == list(NULL_COLUMNS) and s["above_q95"].dtype == bool
    assert s[["transforms", "protocol"]].values.tolist() == [
        ["paper", "lomo"], ["ours", "paper_split"], ["ours", "lomo"], ["ours", "lomo"]
    ]  # fmt: skip
    assert s["fits_used"].isna().tolist() == [False, False, False, True]
    assert s["p_value"].tolist() == pytest.approx([1 / 3, 1.0, 1 / 3, 1 / 3])


# --------------------------------------------------------------------------- Table 3


def test_table3_pivots_protocols_and_sits_beside_the_paper():
    rows = []
    for t in ("K", "A"):
        for m in ("Ridge", "mean"):
            for i, p in enumerate(("lomo", "paper_split")):
                rows.append({"target": t, "model_type": m, "protocol": p,
                             "r2": 0.1 * i + (t == "K"), "chance_r2_q95": -i})  # fmt: skip
    out = table3(pd.DataFrame(rows))
    # targets in the paper's order (A before K), the mean first
    assert out[["target", "model_type"]].values.tolist() == [
        ["A", "mean"], ["A", "Ridge"], ["K", "mean"], ["K", "Ridge"]
    ]  # fmt: skip
    assert "r2_paper_cv5" not in out.columns
    k_ridge = out.iloc[3]
    assert k_ridge["r2_lomo"] == 1.0 and k_ridge["r2_paper_split"] == pytest.approx(1.1)
    assert k_ridge["chance_q95_paper_split"] == -1 and k_ridge["chance_q95_lomo"] == 0
    assert k_ridge["paper_r2"] == PAPER_TABLE3.loc["K", "Ridge"]
    assert np.isnan(out.iloc[0]["paper_r2"])  # the paper has no mean baseline
    splits = pd.DataFrame(
        {"target": ["K", "K"], "model_type": ["Ridge", "best"], "r2_median": [0.5, 0.6],
         "r2_q05": [0.1, 0.2], "r2_q95": [0.9, 0.95], "n_repeats": [20, 20]}
    )  # fmt: skip
    out = table3(pd.DataFrame(rows), splits)
    assert list(out.columns[:7]) == [
        "target", "model_type", "paper_r2", "split_median", "split_q05", "split_q95",
        "split_repeats",
    ]  # fmt: skip
    assert out[["target", "model_type"]].values.tolist()[-1] == ["K", "best"]
    ridge = out[(out["target"] == "K") & (out["model_type"] == "Ridge")].iloc[0]
    assert ridge["split_median"] == 0.5 and ridge["split_q95"] == 0.9
    assert ridge["split_repeats"] == 20


# --------------------------------------------------------------------------- evaluate


@pytest.fixture(scope="module")
def arch_fits():
    from massive_activations.prediction.synthetic import architecture_fits

    fits, archs = architecture_fits(7, seed=2, layer_counts=[4] * 7)
    # one unidentified lam: used only with identified_only=False
    fits["lam_identified"] = fits["lam_identified"].copy()
    fits.loc[3, "lam_identified"] = False
    return fits, archs


def test_evaluate_is_each_validation_in_order(arch_fits):
    from massive_activations.prediction.data import target_data
    from massive_activations.prediction.validation import evaluate

    fits, archs = arch_fits
    table = evaluate(
        fits, targets=("lam", "K"), model_types=("mean", "Ridge"),
        protocols=("paper_split", "lomo"), architectures=archs, seed=5,
        n_permutations={"lomo": 3}, grids=ONE_ALPHA, progress=False, transforms="paper",
    )  # fmt: skip
    assert list(table.columns) == list(RESULT_COLUMNS)
    assert table[["target", "model_type", "protocol"]].values.tolist() == [
        [t, m, p] for t in ("lam", "K") for m in ("mean", "Ridge") for p in ("paper_split", "lomo")
    ]  # fmt: skip
    assert (table["fits_used"] == "identified").all() and (table["transforms"] == "paper").all()
    # a protocol missing from the mapping gets no permutations
    assert table["n_permutations"].tolist() == [0, 3] * 4
    for _, row in table.iterrows():
        data = target_data(fits, row["target"], architectures=archs, transforms="paper")
        n = 3 if row["protocol"] == "lomo" else 0
        run = cross_validate(
            data, row["model_type"], row["protocol"], seed=5, n_permutations=n, grids=ONE_ALPHA
        )
        want = run.row(5)
        for c in ("r2", "mae", "rmse", "n_test", "n_folds", "n_used", "chance_r2", "seed"):
            assert row[c] == want[c], c
    assert table.loc[table["target"] == "lam", "n_used"].iloc[0] == 27  # one not identified
    every = evaluate(
        fits, targets=("lam",), model_types=("Ridge",), protocols=("paper_split",),
        architectures=archs, n_permutations=2, grids=ONE_ALPHA, progress=False,
        identified_only=False,
    )  # fmt: skip
    assert every["fits_used"].tolist() == ["all"] and every["n_used"].tolist() == [28]
    assert every["n_permutations"].tolist() == [2] and every["transforms"].tolist() == ["ours"]


def test_evaluate_reports_an_infeasible_protocol_as_a_row(arch_fits):
    from massive_activations.prediction.validation import evaluate

    fits, archs = arch_fits
    two = fits[fits["model"].isin(["m0", "m1", "m2"])]  # 12 layers, 3 architectures
    only_two = {m: archs["m0"] for m in ("m0", "m1")} | {"m2": archs["m2"]}
    table = evaluate(
        two, targets=("K",), model_types=("Ridge",), protocols=("lomo", "paper_cv5"),
        architectures=only_two, n_permutations=2, grids=ONE_ALPHA, progress=False,
    )  # fmt: skip
    lomo, cv5 = table.iloc[0], table.iloc[1]
    assert "needs >= 3 architectures" in lomo["note"] and np.isnan(lomo["r2"])
    assert "; 2 have" in lomo["note"]
    assert lomo["n_architectures"] == 2 and lomo["n_models"] == 3
    assert cv5["note"] == "" and np.isfinite(cv5["r2"]) and cv5["n_folds"] == 5


# --------------------------------------------------------------------------- settings reach


def test_paper_transforms_are_used_for_fitting_and_scoring():
    from massive_activations.prediction.transforms import target_transformer

    data = _data(transforms="paper")  # lam: slog1p, not log
    run = cross_validate(data, "Ridge", "paper_cv5", seed=0, grids=ONE_ALPHA)
    splits = list(KFold(5, shuffle=True, random_state=0).split(np.zeros(len(data.y))))
    pred = np.full(len(data.y), np.nan)
    for tr, te in splits:
        t = target_transformer("lam", "paper").fit(data.y[tr].reshape(-1, 1))
        model = make_pipeline(StandardScaler(), Ridge(alpha=0.5))
        model.fit(data.X[tr], t.transform(data.y[tr].reshape(-1, 1)).ravel())
        pred[te] = t.inverse_transform(model.predict(data.X[te]).reshape(-1, 1)).ravel()
    np.testing.assert_allclose(run.pred, pred, rtol=1e-10)
    z, zhat = np.log1p(data.y), np.log1p(pred)  # slog1p of positive values
    assert run.metrics["r2"] == pytest.approx(r2_score(z, zhat), rel=1e-10)
    # retuning on the permuted targets uses the same transforms
    perm = cross_validate(
        data, "Ridge", "lomo", seed=0, n_permutations=1, grids=ONE_ALPHA,
        retune_permutations=True,
    )  # fmt: skip
    fixed = cross_validate(data, "Ridge", "lomo", seed=0, n_permutations=1, grids=ONE_ALPHA)
    assert perm.chance[0] == pytest.approx(fixed.chance[0], rel=1e-12)


def test_random_forests_are_seeded_in_every_refit():
    data = _data()
    one = {"RandomForest": {"max_depth": [3]}}
    a = cross_validate(data, "RandomForest", "paper_split", seed=4, n_permutations=1, grids=one)
    b = cross_validate(
        data, "RandomForest", "paper_split", seed=4, n_permutations=1, grids=one,
        retune_permutations=True,
    )  # fmt: skip
    # same seed: the same forests, whether refitted as clones or rebuilt by the retune path
    np.testing.assert_array_equal(a.pred, b.pred)
    assert a.chance[0] == b.chance[0]
    # and the forest is the one RandomForestRegressor(random_state=seed) grows
    from sklearn.ensemble import RandomForestRegressor

    from massive_activations.prediction.transforms import target_transformer

    (tr, te, _est, _params) = a.folds[0]
    t = target_transformer("lam", "ours").fit(data.y[tr].reshape(-1, 1))
    forest = make_pipeline(
        StandardScaler(), RandomForestRegressor(n_estimators=100, max_depth=3, random_state=4)
    ).fit(data.X[tr], t.transform(data.y[tr].reshape(-1, 1)).ravel())
    want = t.inverse_transform(forest.predict(data.X[te]).reshape(-1, 1)).ravel()
    np.testing.assert_allclose(a.pred[te], want, rtol=1e-12)


def test_inner_searches_are_grouped_only_under_leave_one_model_out(monkeypatch):
    from massive_activations.prediction import estimators

    seen = []

    class GroupSpy(estimators.GroupKFold):
        def split(self, X, y=None, groups=None):
            for tr, te in super().split(X, y, groups):
                seen.append(("group", set(groups[tr]), set(groups[te])))
                yield tr, te

    class KFoldSpy(estimators.KFold):
        def __init__(self, *a, **k):
            seen.append(("kfold", k.get("random_state")))
            super().__init__(*a, **k)

    monkeypatch.setattr(estimators, "GroupKFold", GroupSpy)
    monkeypatch.setattr(estimators, "KFold", KFoldSpy)
    data = _data()
    grid = {"Ridge": {"alpha": [0.1, 10.0]}}
    cross_validate(data, "Ridge", "lomo", seed=3, grids=grid)
    assert seen and all(s[0] == "group" and not s[1] & s[2] for s in seen)
    seen.clear()
    cross_validate(data, "Ridge", "paper_split", seed=3, grids=grid)
    assert seen == [("kfold", 3)]
    seen.clear()
    run = cross_validate(data, "Ridge", "paper_split", seed=3, grids=grid)
    seen.clear()
    run.permuted_r2(data.y[::-1].copy(), retune=True)
    assert seen == [("kfold", 3)]  # the retune path searches with the run's seed


def test_permuted_r2_defaults_to_the_fixed_estimators_and_scores_only_the_tested_rows():
    data = _data(seed=5)
    grid = {"Ridge": {"alpha": [1e-3, 1e4]}}
    run = cross_validate(data, "Ridge", "paper_split", seed=0, n_permutations=2, grids=grid)
    perms = permutations(data.models, data.features["layer"], 2, 0, "blocks")
    assert run.permuted_r2(data.y[perms[0]]) == run.chance[0]
    # by hand: the fold's tuned alpha, refitted on the permuted target, scored on its test rows
    (tr, te, _est, params) = run.folds[0]
    yp = data.y[perms[1]]
    _, _, pred = _ridge_oof(data, [(tr, te)], y=yp, alpha=params["alpha"])
    scale = metric_scale("lam", data.y, "ours")
    want = r2_score(scale(yp[te]), scale(pred[te]))
    assert np.isfinite(run.chance[1]) and run.chance[1] == pytest.approx(want, rel=1e-10)


def test_row_null_scheme_and_arrangements_follow_the_null():
    data = _data(n_models=4, n_layers=3)
    run = cross_validate(
        data, "Ridge", "paper_cv5", seed=1, n_permutations=2, null="rows", grids=ONE_ALPHA
    )
    row = run.row(1)
    assert row["null_scheme"] == "rows" and row["null_arrangements"] == math.factorial(12)
    perms = permutations(data.models, data.features["layer"], 2, 1, "rows")
    splits = list(KFold(5, shuffle=True, random_state=1).split(np.zeros(12)))
    scale = metric_scale("lam", data.y, "ours")
    for p, got in zip(perms, run.chance, strict=True):
        _, _, pred = _ridge_oof(data, splits, y=data.y[p])
        assert got == pytest.approx(r2_score(scale(data.y[p]), scale(pred)), rel=1e-9)


def test_defaults_errors_and_recorded_params():
    data = _data()
    run = cross_validate(data, "Ridge", "paper_split", grids=ONE_ALPHA)  # seed 0
    _tr, te = train_test_split(np.arange(len(data.y)), test_size=0.2, random_state=0)
    assert run.folds[0][1].tolist() == sorted(te)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice" without permutations
        row = run.row(0)
    assert np.isnan(row["chance_r2_mean"])
    two = _data(n_models=4, archs=["a", "a", "b", "b"])
    with pytest.raises(ValueError, match="Cannot validate lam under lomo: leave-one-model-out"):
        cross_validate(two, "Ridge", "lomo", grids=ONE_ALPHA)
    assert infeasible(two, "lomo").endswith("(seed replicates of an architecture count once)")
    # a grid of numpy integers is still recorded
    ints = cross_validate(data, "Ridge", "paper_split", grids={"Ridge": {"alpha": [np.int64(2)]}})
    assert json.loads(ints.row(0)["params"]) == [{"alpha": "2"}]


def test_table3_keeps_a_protocol_without_any_result():
    rows = [
        {"target": "K", "model_type": "Ridge", "protocol": "paper_split", "r2": 0.3,
         "chance_r2_q95": 0.1},
        {"target": "K", "model_type": "Ridge", "protocol": "lomo", "r2": np.nan,
         "chance_r2_q95": np.nan},
    ]  # fmt: skip
    out = table3(pd.DataFrame(rows))
    assert "r2_lomo" in out.columns and np.isnan(out.loc[0, "r2_lomo"])
    assert out.loc[0, "r2_paper_split"] == 0.3


def test_evaluate_passes_its_settings_and_defaults_to_every_validation(arch_fits, monkeypatch):
    from massive_activations.prediction import validation

    fits, archs = arch_fits
    calls = []
    real = validation.cross_validate

    def spy(data, model_type, protocol, **kw):
        calls.append((data.target, model_type, protocol, kw))
        return real(data, model_type, protocol, **{**kw, "n_permutations": 0})  # fast

    monkeypatch.setattr(validation, "cross_validate", spy)
    one = dict(targets=("K",), model_types=("mean",), protocols=("paper_split",))
    table = validation.evaluate(fits, architectures=archs, progress=False, **one)
    defaults = dict(n_permutations=200, seed=0, null="blocks", retune_permutations=False)
    assert calls == [("K", "mean", "paper_split", {**defaults, "grids": None})]
    assert table["seed"].tolist() == [0]
    calls.clear()
    validation.evaluate(
        fits, architectures=archs, progress=False, seed=3, null="rows", n_permutations=2,
        retune_permutations=True, grids=ONE_ALPHA, **{**one, "model_types": ("Ridge",)},
    )  # fmt: skip
    assert calls == [
        ("K", "Ridge", "paper_split", dict(n_permutations=2, seed=3, null="rows",
                                           retune_permutations=True, grids=ONE_ALPHA))
    ]  # fmt: skip


def test_evaluate_reads_the_chosen_fits_and_groups(arch_fits):
    from massive_activations.prediction.validation import evaluate

    fits, archs = arch_fits
    # other hypotheses and procedures in the table, with other values, are not read
    shuffled = fits["K"].to_numpy()[np.random.default_rng(0).permutation(len(fits))]
    eq14 = fits.assign(hypothesis="eq14", K=shuffled)
    other = pd.concat([fits, eq14, fits.assign(procedure="paper", K=2.0)], ignore_index=True)
    kw = dict(targets=("K",), model_types=("Ridge",), protocols=("lomo",), architectures=archs,
              n_permutations=0, grids=ONE_ALPHA, progress=False)  # fmt: skip
    base = evaluate(fits, **kw)
    pd.testing.assert_frame_equal(evaluate(other, **kw), base)
    paper = evaluate(other, procedure="paper", **kw)
    assert paper["note"].iloc[0] == "" and paper["r2"].iloc[0] != base["r2"].iloc[0]
    # the chosen hypothesis's rows, and only those, are read
    r2_eq14 = evaluate(other, hypothesis="eq14", **kw)["r2"].iloc[0]
    assert r2_eq14 == evaluate(eq14.assign(hypothesis="eq9"), **kw)["r2"].iloc[0]
    assert r2_eq14 != base["r2"].iloc[0]
    # a group of two models is held out together
    # (m5 and m6 drew the same architecture: one group by default)
    assert base["n_architectures"].iloc[0] == 6 == base["n_folds"].iloc[0]
    groups = {m: {"m0": "g", "m1": "g", "m5": "h", "m6": "h"}.get(m, m) for m in archs}
    grouped = evaluate(fits, groups=groups, **kw)
    assert grouped["n_architectures"].iloc[0] == 5 == grouped["n_folds"].iloc[0]


@pytest.mark.processes
def test_evaluate_in_two_processes_gives_the_same_table(arch_fits):
    from massive_activations.prediction.validation import evaluate

    fits, archs = arch_fits
    kw = dict(targets=("lam",), model_types=("Ridge",), protocols=("paper_split", "lomo"),
              architectures=archs, n_permutations=2, grids=ONE_ALPHA, progress=False)  # fmt: skip
    pd.testing.assert_frame_equal(evaluate(fits, **kw), evaluate(fits, n_jobs=2, **kw))


def test_evaluate_shows_progress_only_when_asked(arch_fits, capfd):
    from massive_activations.prediction.validation import evaluate

    fits, archs = arch_fits
    kw = dict(targets=("lam",), model_types=("Ridge",), protocols=("paper_split", "lomo"),
              architectures=archs, n_permutations=2, grids=ONE_ALPHA)  # fmt: skip
    one = evaluate(fits, progress=False, **kw)
    assert capfd.readouterr().err == ""  # no bar without progress
    two = evaluate(fits, **kw)  # progress by default
    pd.testing.assert_frame_equal(one, two)
    err = capfd.readouterr().err
    assert "validating" in err and "2/2" in err and "run/s" in err


def test_evaluate_table_has_the_result_columns_in_order_even_when_empty(arch_fits):
    from massive_activations.prediction.validation import RESULT_COLUMNS, evaluate

    fits, archs = arch_fits
    kw = dict(architectures=archs, n_permutations=0, grids=ONE_ALPHA, progress=False)
    table = evaluate(fits, targets=("K",), model_types=("Ridge",), protocols=("paper_split",), **kw)
    assert list(table.columns) == list(RESULT_COLUMNS) and len(table) == 1
    empty = evaluate(fits, targets=(), **kw)
    assert list(empty.columns) == list(RESULT_COLUMNS) and len(empty) == 0


def test_evaluate_hands_its_jobs_and_label_to_the_runner(arch_fits, monkeypatch):
    from massive_activations.prediction import validation

    fits, archs = arch_fits
    seen = {}
    real = validation.run_jobs

    def spy(func, jobs, **kw):
        seen.update(kw)
        return real(func, jobs, **{**kw, "n_jobs": 1})

    monkeypatch.setattr(validation, "run_jobs", spy)
    validation.evaluate(
        fits, targets=("K",), model_types=("mean",), protocols=("paper_split",),
        architectures=archs, n_permutations=0, progress=False, n_jobs=3,
    )  # fmt: skip
    assert seen["n_jobs"] == 3 and seen["desc"] == "validating" and seen["unit"] == "run"
