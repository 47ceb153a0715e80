"""The architecture -> curve-parameter predictor: protocols, chance level, importance, I/O."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GroupKFold

from massive_activations import prediction, registry
from massive_activations.curve import eq9
from massive_activations.fitting.fit_all import fit_all
from massive_activations.fitting.synthetic import EXAMPLE_CURVES, simulate_table
from massive_activations.prediction import estimators
from massive_activations.prediction.features import FEATURE_NAMES
from massive_activations.prediction.synthetic import architecture_fits
from massive_activations.schedule import scaled_schedule

FAST = {  # one value per parameter (two for Ridge): the tests stay fast
    "Ridge": {"alpha": [0.01, 1.0]},
    "RandomForest": {"max_depth": [None]},
    "GradientBoosting": {"max_depth": [2]},
    "XGBoost": {"max_depth": [2]},
}


def synthetic_fits(n_models: int = 12, seed: int = 0, noise: float = 0.05):
    """Targets that are known functions of H/d and d_ff/d (see ``architecture_fits``)."""
    return architecture_fits(n_models, seed, noise)


@pytest.fixture(scope="module")
def syn():
    return synthetic_fits()


def test_leave_one_model_out_never_tests_a_model_seen_in_training(syn, monkeypatch):
    fits, archs = syn
    data = prediction.target_data(fits, "K", architectures=archs)
    inner = []

    class SpyGroupKFold(GroupKFold):
        def split(self, X, y=None, groups=None):
            for tr, te in super().split(X, y, groups):
                inner.append((set(groups[tr]), set(groups[te])))
                yield tr, te

    monkeypatch.setattr(estimators, "GroupKFold", SpyGroupKFold)
    run = prediction.cross_validate(data, "Ridge", "lomo", seed=0, grids=FAST)
    g = data.groups
    assert len(run.folds) == len(set(g)) == 12
    tested = np.concatenate([te for _, te, _, _ in run.folds])
    assert sorted(tested) == list(range(len(g)))  # every layer tested exactly once
    for tr, te, _, _ in run.folds:
        assert len(set(g[te])) == 1  # one model per test fold ...
        assert not set(g[tr]) & set(g[te])  # ... and none of its layers in training
    # the inner search that tunes each fold is grouped by model as well
    assert len(inner) > 0 and all(not a & b for a, b in inner)
    # the paper's protocols do mix models: layers of a test model sit in training
    split = prediction.cross_validate(data, "Ridge", "paper_split", seed=0, grids=FAST)
    tr, te, _, _ = split.folds[0]
    assert set(g[tr]) & set(g[te])
    assert len(te) == round(0.2 * len(g))


def test_model_identity_leaks_under_the_paper_split_but_not_leave_one_model_out(syn):
    fits, archs = syn
    rng = np.random.default_rng(5)
    per_model = dict(zip(archs, rng.lognormal(2.0, 1.0, len(archs)), strict=True))
    leak = fits.assign(K=fits["model"].map(per_model))  # a constant per model, no physics
    data = prediction.target_data(leak, "K", architectures=archs)
    cv = prediction.cross_validate(data, "RandomForest", "paper_cv5", seed=0, grids=FAST)
    lomo = prediction.cross_validate(data, "RandomForest", "lomo", seed=0, grids=FAST)
    assert cv.metrics["r2"] > 0.8
    assert lomo.metrics["r2"] < 0.3


@pytest.mark.parametrize("model_type", ["Ridge", "RandomForest"])
def test_known_function_of_two_features_is_learned_and_ranked(syn, model_type):
    fits, archs = syn
    data = prediction.target_data(fits, "A", architectures=archs)
    run = prediction.cross_validate(
        data, model_type, "paper_cv5", seed=0, n_permutations=5, null="rows", grids=FAST
    )
    row = run.row(0)
    assert row["r2"] > 0.9
    # shuffling single layers destroys everything: a low chance level (but see
    # test_predictor_stats for why the block null is the one to read)
    assert row["chance_r2_q95"] < 0.3 and row["p_value"] == pytest.approx(1 / 6)
    assert row["null_scheme"] == "rows"
    imp = prediction.permutation_importances(run, n_repeats=5, seed=0)
    assert set(imp["feature"][:2]) == {"H_over_d", "dff_over_d"}
    assert list(imp["rank"]) == list(range(1, len(FEATURE_NAMES) + 1))
    assert imp["importance"].iloc[1] > 5 * max(imp["importance"].iloc[2], 1e-12)


@pytest.mark.parametrize("protocol", prediction.PROTOCOLS)
def test_shuffled_target_gives_r2_near_zero_and_so_does_chance(syn, protocol):
    fits, archs = syn
    rng = np.random.default_rng(1)
    shuffled = fits.assign(A=fits["A"].to_numpy()[rng.permutation(len(fits))])
    data = prediction.target_data(shuffled, "A", architectures=archs)
    row = prediction.cross_validate(data, "Ridge", protocol, seed=0, n_permutations=20).row(0)
    # one noise draw scatters (leave-one-model-out of this draw gives -0.43: a fold whose
    # tuned penalty is weak fits noise); the permutations' mean is the stable chance level
    assert -0.6 < row["r2"] < 0.15
    assert -0.3 < row["chance_r2_mean"] < 0.05
    assert row["chance_r2_q95"] < 0.3
    assert row["p_value"] > 0.05
    real = prediction.cross_validate(
        prediction.target_data(fits, "A", architectures=archs), "Ridge", protocol
    )
    assert real.metrics["r2"] > 0.9  # the same features do carry the unshuffled target


def test_transforms_invert_exactly():
    x = np.array([-1e4, -3.5, -1e-9, 0.0, 1e-9, 0.7, 12.0, 3e6])
    np.testing.assert_allclose(
        prediction.slog1p_inverse(prediction.slog1p(x)), x, rtol=1e-13, atol=0
    )
    assert prediction.slog1p(np.array([2.0]))[0] == np.log1p(2.0)
    assert prediction.slog1p(np.array([-2.0]))[0] == -np.log1p(2.0)
    rng = np.random.default_rng(0)
    samples = {
        "skewed positive (lambda < 0)": rng.lognormal(3, 1.5, 60),
        "skewed negative (lambda > 2)": -rng.lognormal(3, 1.5, 60),
        "mixed signs": rng.standard_normal(60) * 5,
    }
    lams = {}
    for what, y in samples.items():
        yj = prediction.YeoJohnson().fit(y)
        lams[what] = yj.lambda_
        z = yj.transform(y.reshape(-1, 1))
        np.testing.assert_allclose(yj.inverse_transform(z).ravel(), y, rtol=1e-10, err_msg=what)
        assert abs(stats_skew(z.ravel())) < abs(stats_skew(y)) + 1e-12, what
    assert lams["skewed positive (lambda < 0)"] < 0 < 2 < lams["skewed negative (lambda > 2)"]
    # beyond the transform's range the inverse is clipped, never NaN
    yj = prediction.YeoJohnson().fit(samples["skewed positive (lambda < 0)"])
    assert np.isfinite(yj.inverse_transform(np.array([1e6, -1e6]))).all()
    # the estimator predicts in original units: the mean baseline returns the inverse of
    # the transformed training mean
    X, y = np.zeros((60, 3)), samples["skewed positive (lambda < 0)"]
    est = prediction.make_estimator("mean", "K").fit(X, y)
    expected = est.transformer_.inverse_transform(
        np.array([[est.transformer_.transform(y.reshape(-1, 1)).mean()]])
    )
    np.testing.assert_allclose(est.predict(X[:1]), expected.ravel(), rtol=1e-12)
    est = prediction.make_estimator("mean", "lam", transforms="paper").fit(X, y)
    np.testing.assert_allclose(est.predict(X[:1]), np.expm1(np.log1p(y).mean()), rtol=1e-12)
    # ours: the geometric mean (log scale) for lam, gam, t0; the paper's log1p for A
    for target in ("lam", "gam", "t0"):
        est = prediction.make_estimator("mean", target).fit(X, y)
        np.testing.assert_allclose(est.predict(X[:1]), np.exp(np.log(y).mean()), rtol=1e-12)
    est = prediction.make_estimator("mean", "A").fit(X, y)
    np.testing.assert_allclose(est.predict(X[:1]), np.expm1(np.log1p(y).mean()), rtol=1e-12)


def stats_skew(v):
    from scipy.stats import skew

    return float(skew(v))


def test_unidentified_and_missing_targets_are_excluded_and_counted(syn):
    fits, archs = syn
    fits = fits.copy()
    fits.loc[[0, 1, 2], "K_identified"] = False
    fits.loc[3, "K_identified"] = pd.NA  # not assessed: not identified either
    fits.loc[4, "K"] = np.nan  # a failed fit
    fits.loc[4, "K_identified"] = pd.NA
    other = fits.assign(hypothesis="eq14")  # another hypothesis's rows are ignored
    data = prediction.target_data(pd.concat([fits, other]), "K", architectures=archs)
    n = len(fits)
    assert data.counts == {
        "n_layers": n,
        "n_used": n - 5,
        "n_unidentified": 4,
        "n_missing": 1,
        "n_out_of_domain": 0,
    }
    kept = set(zip(data.features["model"], data.features["layer"], strict=True))
    for i in range(5):
        assert (fits.loc[i, "model"], fits.loc[i, "layer"]) not in kept
    np.testing.assert_array_equal(data.y, fits["K"].to_numpy()[5:])
    counts = prediction.target_counts(fits, architectures=archs).set_index("target")
    assert counts.loc["K", "n_used"] == n - 5 and counts.loc["A", "n_used"] == n
    res = prediction.evaluate(
        fits,
        targets=["K"],
        model_types=["Ridge"],
        protocols=["lomo"],
        architectures=archs,
        n_permutations=0,
        grids=FAST,
        progress=False,
    )
    assert res.loc[0, ["n_used", "n_unidentified", "n_missing"]].tolist() == [n - 5, 4, 1]
    assert res.loc[0, "n_test"] == n - 5
    # too few identified layers: the row says why instead of failing
    few = fits.assign(lam_identified=[True] * 6 + [False] * (n - 6))
    res = prediction.evaluate(
        few,
        targets=["lam"],
        model_types=["Ridge"],
        architectures=archs,
        n_permutations=0,
        progress=False,
    )
    assert res["r2"].isna().all() and res["note"].str.contains("only 6 usable layers").all()
    with pytest.raises(ValueError, match="no rows of hypothesis 'eq9' and procedure 'paper'"):
        prediction.target_data(fits, "K", procedure="paper", architectures=archs)
    with pytest.raises(ValueError, match="Unknown target"):
        prediction.target_data(fits, "b", architectures=archs)


def test_fit_all_output_feeds_the_predictor():
    steps = scaled_schedule(8000, 12)
    curves = {}
    for name in ("L2-d64-h4", "L3-d64-h2", "L2-d128-h8", "L3-d128-h4"):
        L = int(name[1])
        curves[name] = {}
        for la in range(1, L + 1):
            p = dict(EXAMPLE_CURVES["early_peak"], gam=1e-4 * 143_000 / 8000)
            p["K"] = 5.0 + 3.0 * la + int(name.split("-h")[1])
            curves[name][la] = p
    fits = fit_all(
        simulate_table(curves, steps, seed=0),
        hypotheses=("eq9",),
        procedures=("ours",),
        profile=(),
        n_bootstrap=30,  # the reported intervals need the bootstrap over sequences
        progress=False,
    )
    counts = prediction.target_counts(fits)
    assert (counts["n_layers"] == 10).all()
    assert (counts[["n_used", "n_unidentified", "n_missing"]].sum(axis=1) == 10).all()
    k = prediction.target_data(fits, "K")
    assert k.counts["n_used"] >= 8
    truth = np.array([curves[m][la]["K"] for m, la in k.features[["model", "layer"]].values])
    np.testing.assert_allclose(k.y, truth, rtol=0.2)


def test_evaluate_is_deterministic_and_writes_atomically(syn, tmp_path):
    fits, archs = syn
    kw = dict(
        targets=["K"],
        model_types=["mean", "XGBoost"],
        architectures=archs,
        n_permutations=2,
        grids=FAST,
        progress=False,
    )
    a = prediction.evaluate(fits, seed=3, **kw)
    b = prediction.evaluate(fits, seed=3, **kw)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == list(prediction.RESULT_COLUMNS)
    assert len(a) == 2 * len(prediction.PROTOCOLS)
    c = prediction.evaluate(
        fits, seed=4, **{**kw, "model_types": ["XGBoost"], "protocols": ["paper_split"]}
    )
    xgb = a[a["model_type"] == "XGBoost"].set_index("protocol")
    assert not np.allclose(xgb["r2"]["paper_split"], c["r2"].iloc[0])  # the seed splits
    assert (xgb["r2"] > xgb["chance_r2_q95"]).all()
    # the paper's protocols flatter: trees cannot extrapolate to a held-out model whose
    # H/d or d_ff/d lies at the edge of the others'
    assert xgb.loc["paper_split", "r2"] > 0.9 and xgb.loc["paper_cv5", "r2"] > 0.9
    assert xgb.loc["lomo", "r2"] < xgb.loc["paper_cv5", "r2"] - 0.3
    path = registry.write(a, "predictor.parquet", tmp_path, "syn")
    assert path == tmp_path / "syn" / "predictor.parquet"
    assert [p.name for p in path.parent.iterdir()] == ["predictor.parquet"]
    pd.testing.assert_frame_equal(registry.read("predictor.parquet", tmp_path, "syn"), a)
    with pytest.raises(ValueError, match=r"missing columns \['chance_r2_q95'\]"):
        registry.write(a.drop(columns="chance_r2_q95"), "predictor.parquet", tmp_path, "syn")
    t3 = prediction.table3(a)
    paper = t3.set_index("model_type")["paper_r2"]
    assert np.isnan(paper["mean"])
    assert paper["XGBoost"] == prediction.PAPER_TABLE3.loc["K", "XGBoost"]
    assert {f"r2_{p}" for p in prediction.PROTOCOLS} <= set(t3.columns)


@pytest.fixture(scope="module")
def small_predictor(syn):
    fits, archs = syn
    return prediction.fit_predictor(
        fits, model_type="RandomForest", architectures=archs, grids=FAST
    )


def test_predict_architecture_flags_pythia_12b_as_extrapolation(small_predictor, syn):
    pred = prediction.predict_architecture("pythia-12b", predictor=small_predictor)
    assert len(pred) == 36 and pred["extrapolation"].all()
    assert pred["extrapolated_features"].str.contains("log_d").all()
    for t in prediction.TARGETS:
        assert (pred[f"{t}_lo"] <= pred[f"{t}_hi"]).all()
    _, archs = syn
    inside = prediction.predict_architecture(
        {**archs["m3"], "name": "m3"}, predictor=small_predictor
    )
    assert not inside["extrapolation"].any()
    assert (inside["extrapolated_features"] == "").all()
    one = prediction.predict_architecture(
        {**archs["m3"], "name": "m3"}, 1, predictor=small_predictor
    )
    pd.testing.assert_frame_equal(one, inside.iloc[[0]].reset_index(drop=True))
    assert (inside["A"] > 0).all() and (inside["K"] > 0).all()  # original units


def test_predicted_curves_are_eq9_of_the_predicted_parameters(small_predictor, syn):
    _, archs = syn
    spec = {**archs["m0"], "name": "m0"}
    steps = np.array([0.0, 100.0, 1000.0, 8000.0])
    curves = prediction.predicted_curves(spec, steps, predictor=small_predictor, layer=[1, 2])
    params = prediction.predict_architecture(spec, [1, 2], predictor=small_predictor)
    assert len(curves) == 2 * len(steps)
    for la, part in curves.groupby("layer"):
        p = params.set_index("layer").loc[la]
        expected = eq9(steps, *(p[n] for n in ("A", "lam", "gam", "t0", "K")))
        np.testing.assert_allclose(part["value"], expected, rtol=1e-12)
        assert (part["value_lo"] <= part["value_hi"]).all()


def test_shap_values_add_up_to_the_predictions(small_predictor, syn):
    fits, archs = syn
    for target in ("K", "lam"):
        ex = prediction.explain(small_predictor, target)
        data = small_predictor.data[target]
        z = small_predictor.estimators[target].regressor_.predict(data.X)
        np.testing.assert_allclose(ex.base_values + ex.values.sum(axis=1), z, rtol=1e-5)
        assert ex.values.shape == (len(data.y), len(FEATURE_NAMES))
        top = np.argsort(-np.abs(ex.values).mean(axis=0))[:2]
        assert {FEATURE_NAMES[i] for i in top} == {"H_over_d", "dff_over_d"}
    one = prediction.explain_highest(small_predictor, "K")
    preds = small_predictor.estimators["K"].predict(small_predictor.data["K"].X)
    best = small_predictor.data["K"].X[np.argmax(preds)]
    np.testing.assert_array_equal(one.data, best)
    assert one.values.shape == (len(FEATURE_NAMES),)
    ridge = prediction.fit_predictor(fits, model_type="Ridge", targets=["K"], architectures=archs)
    ex = prediction.explain(ridge, "K")
    z = ridge.estimators["K"].regressor_.predict(ridge.data["K"].X)
    np.testing.assert_allclose(ex.base_values + ex.values.sum(axis=1), z, rtol=1e-6, atol=1e-9)


def test_bad_inputs_say_what_to_do(syn):
    fits, archs = syn
    with pytest.raises(ValueError, match="Unknown model type 'SVR'"):
        prediction.make_estimator("SVR", "K")
    data = prediction.target_data(fits, "K", architectures=archs)
    with pytest.raises(ValueError, match="Unknown protocol"):
        prediction.cross_validate(data, "Ridge", "holdout")
    with pytest.raises(ValueError, match="Cannot tell the architecture of model 'm0'"):
        prediction.target_data(fits, "K")
    wrong = {**archs, "m0": {**archs["m0"], "n_layers": archs["m0"]["n_layers"] + 1}}
    with pytest.raises(ValueError, match="n_layers"):
        prediction.target_data(fits, "K", architectures=wrong)


def test_evaluate_in_parallel_gives_the_same_table():
    fits, archs = architecture_fits(8, seed=3)
    kw = dict(targets=("K", "gam"), model_types=("mean", "Ridge"), architectures=archs,
              n_permutations=3, progress=False)  # fmt: skip
    serial = prediction.evaluate(fits, **kw)
    parallel = prediction.evaluate(fits, n_jobs=2, **kw)
    pd.testing.assert_frame_equal(serial, parallel)
    assert serial["r2"].notna().all()


def test_identified_only_is_the_default_and_all_fits_is_a_choice():
    fits, archs = architecture_fits(6, seed=4)
    fits["K_identified"] = pd.array([i % 2 == 0 for i in range(len(fits))], dtype="boolean")
    ident = prediction.target_data(fits, "K", architectures=archs)
    every = prediction.target_data(fits, "K", architectures=archs, identified_only=False)
    assert len(every.y) == len(fits) and len(ident.y) == (len(fits) + 1) // 2
    res = prediction.evaluate(fits, targets=("K",), model_types=("mean",), architectures=archs,
                     protocols=("lomo",), identified_only=False, progress=False)  # fmt: skip
    assert (res["fits_used"] == "all").all() and res["n_used"].iloc[0] == len(fits)


def test_log_targets_are_in_sensible_units_and_the_papers_log1p_stays_an_option():
    fits, archs = architecture_fits(8, seed=2)
    assert {t: prediction.scale_name(t) for t in prediction.TARGETS} == {
        "A": "slog1p", "lam": "log", "gam": "log", "t0": "log", "K": "yeo-johnson"
    }  # fmt: skip
    assert prediction.scale_name("gam", "paper") == "slog1p"
    # log1p of gam ~ 1e-3 is gam itself: the paper's "transformed" gam is the raw value
    gam = fits["gam"].to_numpy()
    paper = prediction.metric_scale("gam", gam, "paper")(gam)
    np.testing.assert_allclose(paper, gam, rtol=2e-3)
    np.testing.assert_allclose(prediction.metric_scale("gam", gam)(gam), np.log(gam), rtol=1e-15)
    # values outside the log's domain are left out and counted (ours), kept by the paper's
    bad = fits.copy()
    bad.loc[[0, 1], "t0"] = [-0.5, 0.0]
    ours = prediction.target_data(bad, "t0", architectures=archs)
    theirs = prediction.target_data(bad, "t0", architectures=archs, transforms="paper")
    assert ours.counts["n_out_of_domain"] == 2 and ours.counts["n_used"] == len(fits) - 2
    assert theirs.counts["n_out_of_domain"] == 0 and len(theirs.y) == len(fits)
    res = prediction.evaluate(bad, targets=("t0",), model_types=("mean",), protocols=("lomo",),
                              architectures=archs, n_permutations=0, progress=False)  # fmt: skip
    assert res.loc[0, ["n_out_of_domain", "scale", "transforms"]].tolist() == [2, "log", "ours"]
    with pytest.raises(ValueError, match="Unknown transforms"):
        prediction.target_data(fits, "K", architectures=archs, transforms="log")
