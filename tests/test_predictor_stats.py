"""The predictor's statistics: block-permutation nulls, the null of the best regressor,
repeated splits, the power check, grouped leave-one-model-out and the seed noise ceiling."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.model_selection import GroupKFold

from massive_activations import prediction, registry
from massive_activations.prediction import estimators, tables
from massive_activations.prediction.synthetic import architecture_fits

FAST = {
    "Ridge": {"alpha": [0.01, 1.0]},
    "Lasso": {"alpha": [1e-3]},
    "RandomForest": {"max_depth": [None]},
}


def _spec_of(archs, model):
    a = archs[model]
    return (a["n_layers"], a["d_model"], a["n_heads"], a["d_ff"])


# --------------------------------------------------------------------------- block null


def test_block_permutations_keep_model_identity():
    fits, archs = architecture_fits(6, seed=3, layer_counts=[3, 3, 3, 4, 4, 2])
    fits = fits.drop(index=[7]).reset_index(drop=True)  # a model with 2 of its 3 layers
    data = prediction.target_data(fits, "gam", architectures=archs)
    models, layers = data.models, data.features["layer"].to_numpy()
    perms = prediction.permutations(models, layers, 200, seed=11)
    assert perms.shape == (200, len(models))
    sizes = {m: int(np.sum(models == m)) for m in set(models)}

    def rows(m):  # a model's rows in layer order
        r = np.flatnonzero(models == m)
        return r[np.argsort(layers[r])]

    moved = 0
    for perm in perms:
        assert sorted(perm) == list(range(len(models)))  # a permutation of the rows
        sources = []
        for m in set(models):
            src = models[perm[rows(m)]]
            assert len(set(src)) == 1  # the model's layers all come from one model ...
            source = src[0]
            assert sizes[source] == sizes[m]  # ... of the same size ...
            np.testing.assert_array_equal(perm[rows(m)], rows(source))  # ... in layer order
            sources.append(source)
            moved += source != m
        assert sorted(sources) == sorted(set(models))  # models exchanged, none duplicated
    assert moved > 0
    # strata: three 3-layer models (one of them now 2 rows, alone with the 2-layer model)
    strata = sorted(sizes.values())
    expected = math.prod(math.factorial(strata.count(k)) for k in set(strata))
    assert prediction.n_arrangements(models, layers) == expected
    seen = {tuple(p) for p in perms}
    assert len(seen) == expected  # 200 draws visit every arrangement, and no other
    np.testing.assert_array_equal(perms, prediction.permutations(models, layers, 200, seed=11))
    assert not np.array_equal(perms, prediction.permutations(models, layers, 200, seed=12))
    # the row shuffle breaks models apart
    rows_perm = prediction.permutations(models, layers, 20, seed=11, null="rows")
    assert any(len(set(models[p[rows(models[0])]])) > 1 for p in rows_perm)
    with pytest.raises(ValueError, match="Unknown null"):
        prediction.permutations(models, layers, 2, seed=0, null="layers")


def test_cross_validate_scores_exactly_those_permutations():
    """The chance R^2 of the mean baseline, recomputed by hand from the permutations."""
    fits, archs = architecture_fits(8, seed=2, layer_counts=[3] * 4 + [4] * 4)
    data = prediction.target_data(fits, "gam", architectures=archs)
    run = prediction.cross_validate(data, "mean", "paper_cv5", seed=5, n_permutations=6)
    perms = prediction.permutations(data.models, data.features["layer"], 6, seed=5)
    z = np.log(data.y)  # gam is scored on the log scale
    for k, perm in enumerate(perms):
        zp, pred = z[perm], np.empty(len(z))
        for tr, te, _, _ in run.folds:
            pred[te] = zp[tr].mean()
        r2 = 1 - np.sum((zp - pred) ** 2) / np.sum((zp - zp.mean()) ** 2)
        assert run.chance[k] == pytest.approx(r2, rel=1e-9)
    row = run.row(5)
    assert json.loads(row["chance_r2"]) == pytest.approx(list(run.chance), rel=1e-12)
    assert row["null_scheme"] == "blocks" and row["null_arrangements"] == 24.0**2


def test_block_null_is_not_fooled_by_model_identity():
    """A per-model constant with no relation to the architecture: the paper's split scores it
    by recognising models; the row shuffle calls that significant, the block null does not."""
    # twelve distinct architectures of five layers (this seed draws no two alike)
    fits, archs = architecture_fits(12, seed=1, layer_counts=[5] * 12, per_model=True)
    data = prediction.target_data(fits, "K", architectures=archs)
    assert len(set(data.groups)) == 12
    kw = dict(seed=0, n_permutations=19, grids=FAST)
    rows = prediction.cross_validate(data, "RandomForest", "paper_split", null="rows", **kw)
    blocks = prediction.cross_validate(data, "RandomForest", "paper_split", **kw)
    assert rows.metrics["r2"] == blocks.metrics["r2"] > 0.9  # the same real run
    r_rows, r_blocks = rows.row(0), blocks.row(0)
    assert r_rows["p_value"] == pytest.approx(1 / 20)  # "beats chance": a false positive
    assert r_rows["chance_r2_q95"] < 0.3
    assert r_blocks["chance_r2_q95"] > 0.8  # recognising models is chance under the blocks
    assert r_blocks["p_value"] > 0.05


def test_null_of_the_best_regressor_is_the_permutationwise_maximum():
    fits, archs = architecture_fits(10, seed=6, layer_counts=[3] * 5 + [5] * 5, noise=3.0)
    res = prediction.evaluate(
        fits,
        targets=("gam",),
        model_types=("mean", "Ridge", "Lasso"),
        protocols=("paper_split", "lomo"),
        architectures=archs,
        n_permutations=40,
        grids=FAST,
        progress=False,
    )
    summary = prediction.null_summary(res)
    assert list(summary.columns) == list(prediction.NULL_COLUMNS)
    assert len(summary) == 2
    for _, s in summary.iterrows():
        part = res[(res.protocol == s.protocol) & (res.model_type != "mean")]
        pairs = zip(part.model_type, part.chance_r2, strict=True)
        chance = {m: np.array(json.loads(c)) for m, c in pairs}
        top = np.max(np.vstack(list(chance.values())), axis=0)
        assert s.best_r2 == part.r2.max()
        assert s.best_model_type == part.loc[part.r2.idxmax(), "model_type"]
        assert s.null_max_q95 == pytest.approx(np.quantile(top, 0.95))
        assert s.p_value == pytest.approx((1 + np.sum(top >= s.best_r2)) / 41)
        assert json.loads(s.model_types) == sorted(chance)  # the mean baseline is left out
        # stochastically larger than either regressor's null: every quantile at least as
        # large, and the 95th percentile above the smaller of theirs
        qs = np.linspace(0, 1, 21)
        for c in chance.values():
            assert np.all(np.quantile(top, qs) >= np.quantile(c, qs) - 1e-12)
        assert s.null_max_q95 > min(np.quantile(c, 0.95) for c in chance.values())
        assert s.null_max_mean > min(np.mean(c) for c in chance.values())
        assert s.null_max_mean >= max(np.mean(c) for c in chance.values())
    with pytest.raises(ValueError, match="one common length"):
        prediction.max_null([np.zeros(3), np.zeros(4)])


# --------------------------------------------------------------------------- seeds, lomo


def test_grouped_lomo_never_tests_an_architecture_seen_in_training(monkeypatch):
    fits, archs = architecture_fits(6, seed=1, n_seeds=3)
    data = prediction.target_data(fits, "gam", architectures=archs)
    assert len(set(data.models)) == 18 and len(set(data.groups)) == 6
    inner = []

    class SpyGroupKFold(GroupKFold):
        def split(self, X, y=None, groups=None):
            for tr, te in super().split(X, y, groups):
                inner.append((set(groups[tr]), set(groups[te])))
                yield tr, te

    monkeypatch.setattr(estimators, "GroupKFold", SpyGroupKFold)
    run = prediction.cross_validate(data, "Ridge", "lomo", grids=FAST)
    assert len(run.folds) == 6
    models = data.models
    for tr, te, _, _ in run.folds:
        # judged by the architecture itself, not by the group labels
        test_specs = {_spec_of(archs, m) for m in models[te]}
        train_specs = {_spec_of(archs, m) for m in models[tr]}
        assert len(test_specs) == 1 and not test_specs & train_specs
        assert len(set(models[te])) == 3  # every seed replicate is held out together
    assert inner and all(not a & b for a, b in inner)
    row = run.row(0)
    assert (row["n_models"], row["n_architectures"]) == (18, 6)
    # a mapping (architectures.parquet's column) groups the same way; one that would split
    # identical architectures is refused
    table = pd.DataFrame({"model": list(archs), "architecture": [m[:2] for m in archs]})
    mapping = prediction.architecture_groups(table)
    again = prediction.target_data(fits, "gam", architectures=archs, groups=mapping)
    assert len(set(again.groups)) == 6
    leaky = {m: m for m in archs}
    with pytest.raises(ValueError, match="identical features are in different groups"):
        prediction.target_data(fits, "gam", architectures=archs, groups=leaky)
    with pytest.raises(ValueError, match="lacks models"):
        prediction.target_data(fits, "gam", architectures=archs, groups={"m0": "a"})


def test_seed_replicates_leak_when_models_are_held_out_one_by_one():
    """Why the groups matter: holding out single models lets a seed replicate in training
    tell the held-out model's value, even for a target that does not depend on architecture
    but is shared by the seeds (here: a per-architecture constant)."""
    fits, archs = architecture_fits(6, seed=5, n_seeds=3, noise=0.01, layer_counts=[3] * 6)
    rng = np.random.default_rng(0)
    const = {f"m{i}": rng.lognormal(0, 1) for i in range(6)}
    fits["gam"] = fits["model"].str.split("-").str[0].map(const)
    grouped = prediction.target_data(fits, "gam", architectures=archs)
    by_model = prediction.TargetData(
        "gam", grouped.features.assign(architecture=grouped.models), grouped.y, grouped.counts
    )
    leak = prediction.cross_validate(by_model, "RandomForest", "lomo", grids=FAST)
    honest = prediction.cross_validate(grouped, "RandomForest", "lomo", grids=FAST)
    assert leak.metrics["r2"] > 0.95 and honest.metrics["r2"] < 0.5


def test_noise_ceiling_matches_a_one_way_anova():
    sigma = 0.4
    fits, archs = architecture_fits(10, seed=8, n_seeds=3, noise=sigma)
    table = prediction.noise_ceiling(fits, architectures=archs, targets=("A", "gam"))
    assert list(table.columns) == list(prediction.CEILING_COLUMNS)
    row = table.set_index("target").loc["A"]
    data = prediction.target_data(fits, "A", architectures=archs)
    z = prediction.slog1p(data.y)  # A's scale: slog1p(A) = 4 + s
    cells = pd.Series(z).groupby([data.groups, data.features["layer"].to_numpy()])
    f, p = stats.f_oneway(*[g.to_numpy() for _, g in cells])
    assert row.f_stat == pytest.approx(f, rel=1e-9) and row.p_value == pytest.approx(p, rel=1e-6)
    within = sum(((g - g.mean()) ** 2).sum() for _, g in cells) / (len(z) - cells.ngroups)
    assert row.var_seed == pytest.approx(within, rel=1e-12)
    assert row.var_seed == pytest.approx(sigma**2, rel=0.35)  # the seeds differ by the noise
    assert row.ceiling_r2 == pytest.approx(1 - within / np.var(z, ddof=1), rel=1e-12)
    assert 0.8 < row.ceiling_r2 < 0.99 and row.p_value < 1e-6
    assert row.n_replicated_cells == row.n_cells  # every cell has its three seeds
    # gam = 1e-3 exp(0.2 s) is scored on the log scale: the same ceiling
    assert table.set_index("target").loc["gam", "ceiling_r2"] == pytest.approx(row.ceiling_r2)
    # a target that is pure noise, independent across seeds: no ceiling, no F
    noise = fits.assign(A=np.random.default_rng(1).lognormal(3, 1, len(fits)))
    flat = prediction.noise_ceiling(noise, architectures=archs, targets=("A",)).iloc[0]
    assert flat.ceiling_r2 < 0.25 and flat.p_value > 0.05
    # no replicates: nothing to compare with
    single, sa = architecture_fits(5, seed=8)
    none = prediction.noise_ceiling(single, architectures=sa, targets=("K",)).iloc[0]
    assert np.isnan(none.var_seed) and "two seed replicates" in none.note


# --------------------------------------------------------------------------- splits, power


def test_repeated_splits_report_the_spread_of_independent_runs():
    fits, archs = architecture_fits(8, seed=9, noise=1.0)
    table = prediction.repeated_splits(
        fits,
        targets=("gam",),
        model_types=("mean", "Ridge", "Lasso"),
        n_repeats=6,
        seed=3,
        architectures=archs,
        grids=FAST,
        progress=False,
    )
    assert list(table.columns) == list(prediction.SPLIT_COLUMNS)
    assert list(table.model_type) == ["mean", "Ridge", "Lasso", "best"]
    data = prediction.target_data(fits, "gam", architectures=archs)
    r2 = {
        m: np.array(
            [
                prediction.cross_validate(data, m, "paper_split", seed=3 + k, grids=FAST).metrics[
                    "r2"
                ]
                for k in range(6)
            ]
        )
        for m in ("Ridge", "Lasso")
    }
    best = np.maximum(r2["Ridge"], r2["Lasso"])
    t = table.set_index("model_type")
    for name, v in (*r2.items(), ("best", best)):
        assert t.loc[name, "r2_mean"] == pytest.approx(v.mean())
        assert t.loc[name, "r2_sd"] == pytest.approx(v.std(ddof=1))
        assert t.loc[name, "r2_median"] == pytest.approx(np.median(v))
        assert t.loc[name, "r2_q05"] == pytest.approx(np.quantile(v, 0.05))
        assert t.loc[name, "r2_min"] == v.min() and t.loc[name, "n_finite"] == 6
    assert t.loc["Ridge", "best_share"] == pytest.approx(np.mean(r2["Ridge"] >= r2["Lasso"]))
    assert t.loc["Ridge", "best_share"] + t.loc["Lasso", "best_share"] == pytest.approx(1)
    # the first split is evaluate's paper_split with the same seed
    first = prediction.cross_validate(data, "Ridge", "paper_split", seed=3, grids=FAST)
    assert first.metrics["r2"] == r2["Ridge"][0]
    assert t.loc["Ridge", "n_test"] == len(first.folds[0][1])
    with pytest.raises(ValueError, match="n_repeats must be >= 2"):
        prediction.repeated_splits(fits, n_repeats=1, architectures=archs)


def _layout(n_models, layer_counts, seed=1):
    fits, archs = architecture_fits(n_models, seed=seed, layer_counts=layer_counts)
    return prediction.target_data(fits, "gam", architectures=archs)


POWER = dict(model_types=("Ridge",), n_replicates=10, n_permutations=19, grids=FAST)


def test_power_check_flags_an_undetectable_null():
    # tiny n: three models; even a nearly noiseless architecture-driven target is not
    # detected (the block null has 3! = 6 arrangements, so the real one is never above
    # its 95th percentile): "not predictable" could not be told from "not testable"
    tiny = _layout(3, [4, 4, 4])
    for noise in (0.05, 100.0):
        row = prediction.power_check(tiny, noise=noise, **POWER)
        assert row["power"] <= 0.2, (noise, row)
    # noise at a workable n: the detection rate is the test's false-positive rate
    mid = _layout(8, [3] * 4 + [4] * 4)
    low = prediction.power_check(mid, noise=100.0, **POWER)
    assert low["power"] <= 0.3
    # a strong architecture-driven signal at that n: the protocols detect it
    for protocol in ("paper_split", "lomo"):
        high = prediction.power_check(mid, protocol=protocol, noise=0.05, **POWER)
        assert high["power"] >= 0.8, (protocol, high)
        assert high["best_r2_median"] > high["null_q95_median"]
    assert list(high) == list(prediction.POWER_COLUMNS)
    assert (high["n_used"], high["n_models"], high["n_architectures"]) == (28, 8, 8)
    assert high["power_lo"] <= high["power"] <= high["power_hi"]
    lo, hi = stats.binomtest(high["n_detected"], 10).proportion_ci(method="exact")
    assert (high["power_lo"], high["power_hi"]) == pytest.approx((lo, hi))


def test_power_check_uses_the_real_layout_and_is_deterministic():
    data = _layout(6, [2, 2, 3, 3, 5, 5])
    rng = np.random.default_rng(0)
    syn = prediction.synthetic_like(data, rng)
    assert (syn.models == data.models).all() and (syn.groups == data.groups).all()
    pd.testing.assert_series_equal(syn.features["layer"], data.features["layer"])
    n_layers = syn.features["l_times_L"] / syn.features["layer"]
    np.testing.assert_array_equal(n_layers, data.features["l_times_L"] / data.features["layer"])
    assert not np.allclose(syn.y, data.y)  # a new target, never the real values
    real = prediction.synthetic_like(data, rng, design="real")
    pd.testing.assert_frame_equal(real.features, data.features)
    kw = dict(model_types=("Ridge",), n_replicates=3, n_permutations=5, grids=FAST)
    a = prediction.power_check(data, seed=4, **kw)
    b = prediction.power_check(data, seed=4, n_jobs=2, **kw)
    pd.testing.assert_series_equal(pd.Series(a), pd.Series(b))
    # stopping a replicate's permutations early never changes a decision
    for noise in (0.05, 3.0):
        full = prediction.power_check(data, seed=4, noise=noise, early_stop=False, **kw)
        fast = prediction.power_check(data, seed=4, noise=noise, **kw)
        assert fast["n_detected"] == full["n_detected"]
        assert fast["best_r2_median"] == full["best_r2_median"]
    few = prediction.power_check(_layout(2, [3, 3]), **kw)
    assert np.isnan(few["power"]) and "only 6 usable layers" in few["note"]
    with pytest.raises(ValueError, match="Unknown design"):
        prediction.synthetic_like(data, rng, design="other")


# --------------------------------------------------------------------------- tables


def test_predictor_tables_are_registered_written_once_and_resumed(tmp_path, monkeypatch):
    fits, archs = architecture_fits(6, seed=2, n_seeds=2, layer_counts=[2, 3, 3, 4, 4, 2])
    settings = dict(
        architectures=archs,
        targets=("A", "gam"),
        model_types=("mean", "Ridge"),
        protocols=("paper_split", "lomo"),
        fits_used=("all",),
        transforms=("ours", "paper"),
        n_permutations=4,
        n_repeats=2,
        n_replicates=2,
        grids=FAST,
        progress=False,
    )
    paths = prediction.write_predictor_tables(fits, tmp_path, "syn", **settings)
    assert list(paths) == list(prediction.PREDICTOR_FILES)
    got = {name: registry.read(name, tmp_path, "syn") for name in paths}
    res = got["predictor.parquet"]
    assert set(res.transforms) == {"ours", "paper"}
    assert res.groupby(["target", "transforms"]).scale.first().to_dict() == {
        ("A", "ours"): "slog1p", ("A", "paper"): "slog1p",
        ("gam", "ours"): "log", ("gam", "paper"): "slog1p",
    }  # fmt: skip
    # A's transform is the same under both: its rows are the same numbers, relabelled
    a = [res[(res.target == "A") & (res.transforms == t)].drop(columns="transforms")
         for t in ("ours", "paper")]  # fmt: skip
    pd.testing.assert_frame_equal(a[0].reset_index(drop=True), a[1].reset_index(drop=True))
    null = got["predictor_null.parquet"]
    null = null[null.target == "gam"]
    assert len(null) == 4 and (null.n_permutations == 4).all() and (null.seed == 0).all()
    assert set(null.protocol) == {"paper_split", "lomo"} and null.best_model_type.eq("Ridge").all()
    assert set(got["predictor_splits.parquet"].model_type) == {"mean", "Ridge", "best"}
    assert len(got["predictor_power.parquet"]) == 4
    ceiling = got["predictor_ceiling.parquet"]
    assert (ceiling.n_replicated_cells == ceiling.n_cells).all()
    # the tables exist: nothing is recomputed ...
    monkeypatch.setattr(tables, "predictor_tables", lambda *a, **k: pytest.fail("recomputed"))
    assert prediction.write_predictor_tables(fits, tmp_path, "syn", **settings) == paths
    # ... and a missing null summary is derived from predictor.parquet, not a new evaluation
    monkeypatch.undo()
    monkeypatch.setattr(tables, "evaluate", lambda *a, **k: pytest.fail("re-evaluated"))
    paths["predictor_null.parquet"].unlink()
    prediction.write_predictor_tables(fits, tmp_path, "syn", **settings)
    again = registry.read("predictor_null.parquet", tmp_path, "syn")
    pd.testing.assert_frame_equal(again, got["predictor_null.parquet"])
    with pytest.raises(ValueError, match="Unknown tables"):
        prediction.predictor_tables(fits, which=("nope.parquet",))


def test_stale_tables_are_recomputed_and_recompute_forces(tmp_path, monkeypatch):
    fits, archs = architecture_fits(4, seed=3, n_seeds=2, layer_counts=[2, 3, 3, 2])
    kw = dict(architectures=archs, targets=("gam",), which=("predictor_ceiling.parquet",))
    path = registry.path("predictor_ceiling.parquet", tmp_path, "syn")
    path.parent.mkdir(parents=True)
    pd.DataFrame({"target": ["gam"], "ceiling_r2": [0.5]}).to_parquet(path)  # an old version
    got = prediction.load_predictor_tables(fits, tmp_path, "syn", **kw)
    ceiling = got["predictor_ceiling.parquet"]
    assert list(ceiling.columns) == list(prediction.CEILING_COLUMNS)
    assert ceiling.ceiling_r2.iloc[0] != 0.5 and ceiling.n_replicated_cells.iloc[0] > 0
    # current tables are read, not recomputed; recompute=True computes them again
    monkeypatch.setattr(tables, "predictor_tables", lambda *a, **k: pytest.fail("recomputed"))
    again = prediction.load_predictor_tables(fits, tmp_path, "syn", **kw)
    pd.testing.assert_frame_equal(again["predictor_ceiling.parquet"], ceiling)
    with pytest.raises(pytest.fail.Exception, match="recomputed"):
        prediction.load_predictor_tables(fits, tmp_path, "syn", recompute=True, **kw)
    # a table of other fits (chapter 4 refitted) or other settings is computed again
    other = fits.assign(gam=fits["gam"] * 1.1)
    assert prediction.predictor_digest(other, **kw_settings(kw)) != ceiling.attrs["inputs_digest"]
    with pytest.raises(pytest.fail.Exception, match="recomputed"):
        prediction.load_predictor_tables(other, tmp_path, "syn", **kw)
    with pytest.raises(pytest.fail.Exception, match="recomputed"):
        prediction.load_predictor_tables(fits, tmp_path, "syn", seed=1, **kw)
    # what decides: the record in the file, which survives the round trip
    assert again["predictor_ceiling.parquet"].attrs["inputs_digest"] == (
        prediction.predictor_digest(fits, **kw_settings(kw))
    )
    with pytest.raises(TypeError, match=r"no argument\(s\) \['seeds'\]"):
        prediction.predictor_digest(fits, seeds=1)


def kw_settings(kw: dict) -> dict:
    """``kw`` without ``which`` (a call's tables, not a setting of their numbers)."""
    return {k: v for k, v in kw.items() if k != "which"}


# --------------------------------------------------------------------------- calls


def _null_row(target, protocol, best_r2, q95):
    return {"fits_used": "all", "transforms": "ours", "target": target, "protocol": protocol,
            "best_model_type": "Ridge", "best_r2": best_r2, "null_max_q95": q95,
            "p_value": 0.5, "n_permutations": 200}  # fmt: skip


def _power_row(target, protocol, power, note=""):
    return {"fits_used": "all", "transforms": "ours", "target": target, "protocol": protocol,
            "power": power, "power_lo": 0.0, "power_hi": 1.0,
            "n_detected": 0 if np.isnan(power) else round(20 * power), "n_replicates": 20,
            "note": note}  # fmt: skip


def test_a_silence_is_not_detected_only_with_power():
    null = pd.DataFrame(
        [
            _null_row("K", "paper_split", 0.9, 0.4),  # above the null
            _null_row("lam", "paper_split", -3056.0, 0.4),  # silent, powered
            _null_row("gam", "paper_split", -3056.0, 0.4),  # silent, 0.5 power
            _null_row("t0", "paper_split", 0.1, 0.4),  # silent, no power row
            _null_row("A", "paper_split", np.nan, np.nan),  # could not run
            _null_row("lam", "lomo", 0.1, 0.4),  # silent, power only for the split
        ]
    )
    power = pd.DataFrame(
        [
            _power_row("lam", "paper_split", 0.85),
            _power_row("gam", "paper_split", 0.5),
            _power_row("A", "paper_split", np.nan, note="only 4 usable layers"),
        ]
    )
    splits = pd.DataFrame(
        [{"fits_used": "all", "transforms": "ours", "target": "lam", "model_type": m,
          "r2_median": r, "r2_q05": r - 1, "r2_q95": r + 0.1, "n_repeats": 20}
         for m, r in (("Ridge", 0.3), ("best", 0.2))]
    )  # fmt: skip
    calls = prediction.detection_table(null, power, splits)
    assert list(calls.columns) == list(prediction.DETECTION_COLUMNS)
    assert calls.call.tolist() == [
        "detected", "not detected", "underpowered", "underpowered", "not run", "underpowered"
    ]  # fmt: skip
    assert "10/20 replicates" in calls.reason.iloc[2] and "80%" in calls.reason.iloc[2]
    assert "no power check" in calls.reason.iloc[3]
    assert calls.reason.iloc[4].endswith("could not run on these data: only 4 usable layers")
    # the spread of the best regressor joins the split rows only
    assert calls.split_r2_median.iloc[1] == 0.2 and np.isnan(calls.split_r2_median.iloc[5])
    # a stricter power requirement turns the powered silence into underpowered
    strict = prediction.detection_table(null, power, min_power=0.9)
    assert strict.call.iloc[1] == "underpowered"
    with pytest.raises(ValueError, match="min_power"):
        prediction.detection_table(null, power, min_power=0)


def test_table3_shows_the_split_spread_beside_the_paper():
    results = pd.DataFrame(
        [{"target": "K", "model_type": m, "protocol": p, "r2": r, "chance_r2_q95": 0.1}
         for m, r in (("mean", -0.1), ("Ridge", 0.6)) for p in ("paper_split", "lomo")]
    )  # fmt: skip
    splits = pd.DataFrame(
        [{"target": "K", "model_type": m, "r2_median": r, "r2_q05": r - 0.5,
          "r2_q95": r + 0.1, "n_repeats": 20}
         for m, r in (("mean", -0.05), ("Ridge", 0.5), ("best", 0.55))]
    )  # fmt: skip
    t3 = prediction.table3(results, splits)
    assert t3.model_type.tolist() == ["mean", "Ridge", "best"]
    assert t3.columns[:7].tolist() == ["target", "model_type", "paper_r2", "split_median",
                                       "split_q05", "split_q95", "split_repeats"]  # fmt: skip
    ridge = t3.set_index("model_type").loc["Ridge"]
    assert ridge.paper_r2 == prediction.PAPER_TABLE3.loc["K", "Ridge"]
    assert (ridge.split_median, ridge.split_q05, ridge.r2_lomo) == (0.5, 0.0, 0.6)
    assert np.isnan(t3.set_index("model_type").loc["best", "r2_lomo"])


def test_an_interrupted_table_resumes_from_its_parts(tmp_path, monkeypatch):
    fits, archs = architecture_fits(6, seed=2, layer_counts=[2, 3, 3, 4, 4, 2])
    settings = dict(
        architectures=archs, targets=("A", "gam"), model_types=("mean", "Ridge"),
        protocols=("paper_split",), fits_used=("all", "identified"), transforms=("ours",),
        n_permutations=3, grids=FAST, progress=False, which=("predictor.parquet",),
    )  # fmt: skip
    calls = []
    real = tables.evaluate

    def evaluate(*a, **k):  # the second part fails: a run killed half-way
        calls.append(k["identified_only"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(tables, "evaluate", evaluate)
    with pytest.raises(KeyboardInterrupt):
        prediction.write_predictor_tables(fits, tmp_path, "syn", **settings)
    parts = sorted((tmp_path / "syn" / tables.CHECKPOINTS).glob("*.parquet"))
    assert len(parts) == 1 and parts[0].name.startswith("evaluate-all-ours-A_gam-")
    assert not (tmp_path / "syn" / "predictor.parquet").exists()
    # the rerun computes only the missing part, and gives the table of an uninterrupted run
    calls.clear()
    prediction.write_predictor_tables(fits, tmp_path, "syn", **settings)
    assert calls == [True]
    resumed = registry.read("predictor.parquet", tmp_path, "syn")
    assert not (tmp_path / "syn" / tables.CHECKPOINTS).exists()  # parts removed
    monkeypatch.undo()
    whole = prediction.predictor_tables(fits, **settings)["predictor.parquet"]
    pd.testing.assert_frame_equal(resumed, whole, check_dtype=False)
    # a part computed with other settings is not reused
    done = []
    monkeypatch.setattr(tables, "evaluate", lambda *a, **k: done.append(1) or real(*a, **k))
    monkeypatch.setattr(tables.evaluate, "__name__", "evaluate", raising=False)
    prediction.predictor_tables(fits, **settings, checkpoints=tmp_path / "c")
    n_first = len(done)
    prediction.predictor_tables(fits, **settings, checkpoints=tmp_path / "c")
    assert len(done) == n_first == 2  # the second call read both parts
    prediction.predictor_tables(fits, **{**settings, "seed": 1}, checkpoints=tmp_path / "c")
    assert len(done) == 4


def test_a_parts_key_depends_on_the_values_only_not_on_memory():
    # param_names holds arrays of str objects: their bytes are pointers, which differ from one
    # process to the next; the key must not (or a restarted build recomputes every part)
    fits, archs = architecture_fits(4, seed=1, layer_counts=[2, 2, 3, 3])

    def names(*parts):  # new str objects, at new addresses, each call
        return np.array(["".join(p) for p in parts], dtype=object)

    one = fits.assign(param_names=[names(("la", "m"), ("t", "0")) for _ in range(len(fits))])
    two = fits.assign(param_names=[names(("la", "m"), ("t", "0")) for _ in range(len(fits))])
    assert one.param_names[0][0] is not two.param_names[0][0]
    key = dict(targets=("K",), common=dict(architectures=archs), settings=dict(seed=0))
    assert tables._digest(one, **key) == tables._digest(two, **key)
    other = fits.assign(param_names=[names(("ga", "m"), ("t", "0")) for _ in range(len(fits))])
    assert tables._digest(other, **key) != tables._digest(one, **key)
    # arrays of numbers by value, dtype and shape
    three = one.assign(fit_steps=[np.arange(4.0) for _ in range(len(fits))])
    four = one.assign(fit_steps=[np.arange(4.0).reshape(2, 2) for _ in range(len(fits))])
    assert tables._digest(three, **key) != tables._digest(four, **key)
    assert tables._digest(three, **key) == tables._digest(three.copy(deep=True), **key)
