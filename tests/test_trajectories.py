"""Trajectories from hand-made activation tables with known answers."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from massive_activations.measurement.trajectories import (
    PAPER_TABLE2,
    layer_sequences,
    paper_model_key,
    sequence_ratio,
    trajectories,
    variability_summary,
)


def _table(rows, **extra):
    cols = ["model", "step", "layer", "sequence", "top1", "top2", "top3", "median"]
    df = pd.DataFrame(rows, columns=cols)
    for k, v in extra.items():
        df[k] = v
    return df


@pytest.fixture
def two_sequences():
    # model m, layer 1, steps 0 and 10, sequences 0 and 1
    return _table(
        [
            ("m", 0, 1, 0, 4.0, 3.0, 2.0, 1.0),
            ("m", 0, 1, 1, 6.0, 5.0, 4.0, 3.0),
            ("m", 10, 1, 0, 10.0, 8.0, 6.0, 2.0),
            ("m", 10, 1, 1, 30.0, 20.0, 10.0, 2.0),
        ],
        suite="s",
        dtype="float32",
        status="ok",
    )


def test_ratio_of_means_and_mean_of_ratios_differ_as_computed_by_hand(two_sequences):
    traj = trajectories(two_sequences)
    assert list(traj["step"]) == [0, 10]
    r0 = traj.iloc[0]
    # ratio of means (Eq. 8): (4 + 6) / (1 + 3) = 2.5; mean of ratios: (4 + 2) / 2 = 3
    assert r0["ratio"] == pytest.approx(2.5)
    assert r0["ratio_mean"] == pytest.approx(3.0)
    assert r0["ratio_top2"] == pytest.approx(8.0 / 4.0)
    assert r0["ratio_top3"] == pytest.approx(6.0 / 4.0)
    assert r0["n_sequences"] == 2 and r0["n_excluded"] == 0
    r1 = traj.iloc[1]
    assert r1["ratio"] == pytest.approx(40.0 / 4.0)
    assert r1["ratio_mean"] == pytest.approx((5.0 + 15.0) / 2)


def test_cv_sem_and_ci_follow_paper_table2_definitions(two_sequences):
    r = trajectories(two_sequences).iloc[1]
    ratios = np.array([5.0, 15.0])
    cv = 100 * ratios.std(ddof=1) / ratios.mean()
    assert r["cv_pct"] == pytest.approx(cv)
    assert r["sem_pct"] == pytest.approx(cv / np.sqrt(2))
    assert r["ci95_pct"] == pytest.approx(12.706204736 * cv / np.sqrt(2))  # t(0.975, 1)


def test_paper_table2_is_self_consistent_with_our_definitions():
    # SEM = CV / sqrt(10) and CI = t(0.975, 9) * SEM, to the paper's rounding
    assert np.allclose(PAPER_TABLE2["sem_pct"], PAPER_TABLE2["cv_pct"] / np.sqrt(10), atol=0.006)
    assert np.allclose(PAPER_TABLE2["ci95_pct"], 2.2621571628 * PAPER_TABLE2["sem_pct"], atol=0.02)


def test_rows_not_ok_are_excluded_and_counted(two_sequences):
    df = two_sequences.copy()
    df.loc[1, "status"] = "overflow"
    df.loc[1, "top1"] = np.inf
    r = trajectories(df).iloc[0]
    assert r["n_sequences"] == 1 and r["n_excluded"] == 1
    assert r["ratio"] == pytest.approx(4.0) and np.isnan(r["cv_pct"])


def test_several_dtypes_must_be_chosen(two_sequences):
    other = two_sequences.assign(dtype="float16", top1=two_sequences["top1"] * 2)
    both = pd.concat([two_sequences, other], ignore_index=True)
    with pytest.raises(ValueError, match="several dtypes"):
        trajectories(both)
    assert trajectories(both, dtype="float16").iloc[0]["ratio"] == pytest.approx(5.0)


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="median"):
        trajectories(pd.DataFrame({"model": ["m"], "step": [0], "layer": [1]}))


def test_layer_sequences_matches_trajectories_and_resamples(two_sequences):
    seqs = layer_sequences(two_sequences, "m", 1)
    assert seqs.top1.shape == (2, 2)
    traj = trajectories(two_sequences)
    assert np.allclose(seqs.series("ratio"), traj["ratio"])
    assert np.allclose(seqs.series("ratio_mean"), traj["ratio_mean"])
    # resampling sequence 1 twice gives that sequence's ratio at every step
    boot = seqs.series("ratio", resample=[[1, 1], [0, 0]])
    assert np.allclose(boot, [[6 / 3, 30 / 2], [4 / 1, 10 / 2]])


def test_sem_of_ratio_of_means_matches_the_bootstrap():
    rng = np.random.default_rng(0)
    top = 100 * (1 + 0.06 * rng.standard_normal((1, 10)))
    med = 1 + 0.02 * rng.standard_normal((1, 10))
    df = _table([("m", 0, 1, s, top[0, s], 0, 0, med[0, s]) for s in range(10)])
    seqs = layer_sequences(df, "m", 1)
    draws = rng.integers(0, 10, size=(20000, 10))
    boot_sd = seqs.series("ratio", resample=draws).std()
    # the delta-method SEM and the bootstrap SD agree (the bootstrap uses 1/n, not 1/(n-1))
    assert seqs.sem("ratio")[0] * np.sqrt(9 / 10) == pytest.approx(boot_sd, rel=0.05)


def test_layer_sequences_errors_name_what_exists(two_sequences):
    with pytest.raises(ValueError, match=r"has layers \[1\]"):
        layer_sequences(two_sequences, "m", 7)
    dup = pd.concat([two_sequences, two_sequences.iloc[:1]], ignore_index=True)
    with pytest.raises(ValueError, match="duplicate"):
        layer_sequences(dup, "m", 1)
    # the same (step, sequence) measured twice with different values is a duplicate too
    again = two_sequences.iloc[:1].assign(top1=99.0)
    with pytest.raises(ValueError, match=r"1 duplicate \(step, sequence\) rows, e.g. step=0"):
        layer_sequences(pd.concat([two_sequences, again], ignore_index=True), "m", 1)


def test_variability_summary_means_and_paper_columns(two_sequences):
    df = pd.concat([two_sequences, two_sequences.assign(model="pythia-1.4b")], ignore_index=True)
    summary = variability_summary(trajectories(df))
    rows = trajectories(two_sequences)
    assert summary.loc["m", "cv_pct"] == pytest.approx(rows["cv_pct"].mean())
    assert summary.loc["m", "n_rows"] == 2
    assert np.isnan(summary.loc["m", "paper_cv_pct"])
    assert summary.loc["pythia-1.4b", "paper_cv_pct"] == pytest.approx(5.19)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("pythia-1.4b", "1.4b"),
        ("EleutherAI/pythia-70m-deduped", "70m"),
        ("14M", "14m"),
        ("tiny", None),
    ],
)
def test_paper_model_key(name, key):
    assert paper_model_key(name) == key


def test_sequence_ratio_skips_missing_and_rejects_unknown_quantity():
    top = np.array([[2.0, np.nan, 4.0]])
    med = np.array([[1.0, 1.0, 2.0]])
    assert sequence_ratio(top, med)[0] == pytest.approx(6.0 / 3.0)
    assert sequence_ratio(top, med, "ratio_mean")[0] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="quantity"):
        sequence_ratio(top, med, "median")


def test_top1_location_and_position0_share():
    from massive_activations.measurement.trajectories import position0_share, top1_location

    rows = [
        # model, step, layer, sequence, top1_position, top1_channel, top1
        ("m", 0, 1, 0, 5, 3, 1.0),
        ("m", 0, 1, 1, 0, 3, 2.0),
        ("m", 10, 1, 0, 0, 7, 4.0),
        ("m", 10, 1, 1, 0, 7, 6.0),
        ("m", 10, 2, 0, 0, 9, 8.0),
        ("m", 10, 2, 1, 4, 2, 2.0),
    ]
    table = pd.DataFrame(
        rows,
        columns=["model", "step", "layer", "sequence", "top1_position", "top1_channel", "top1"],
    )
    share = position0_share(table, "m")
    assert share.loc[1, 0] == 0.5 and share.loc[1, 10] == 1.0 and share.loc[2, 10] == 0.5
    loc = top1_location(table, "m", 10)
    assert loc.loc[1].tolist() == [7, 1.0, 1.0, 5.0]
    # a tie between channels 2 and 9: the lowest is reported, held by half the sequences
    assert loc.loc[2, "top1_channel"] == 2 and loc.loc[2, "channel_share"] == 0.5
    with pytest.raises(ValueError, match="No rows for model 'x'"):
        position0_share(table, "x")


# --- against a plain-Python recomputation on a random table (independent of pandas groupby) ---


def _random_table(seed: int = 3) -> pd.DataFrame:
    """Two models, three steps, two layers, five sequences; some rows not usable."""
    rng = np.random.default_rng(seed)
    rows = []
    for model in ("a", "pythia-70m"):
        for step in (0, 4, 16):
            for layer in (1, 2):
                for seq in range(5):
                    med = float(rng.uniform(0.5, 2.0))
                    t1 = med * float(rng.uniform(5, 50))
                    t2 = t1 * float(rng.uniform(0.3, 0.9))
                    t3 = t2 * float(rng.uniform(0.3, 0.9))
                    rows.append((model, step, layer, seq, t1, t2, t3, med, "ok"))
    df = _table([r[:8] for r in rows], status=[r[8] for r in rows], suite="s")
    # one overflowing row, one non-finite top-3, one zero median: all three left out
    df.loc[3, "status"] = "overflow"
    df.loc[17, "top3"] = np.nan
    df.loc[12, "median"] = 0.0
    # a (step, layer) with a single usable sequence
    only = (df["model"] == "a") & (df["step"] == 16) & (df["layer"] == 2)
    df.loc[only & (df["sequence"] > 0), "status"] = "nonfinite"
    return df.sample(frac=1.0, random_state=1).reset_index(drop=True)


def _usable(r) -> bool:
    values = (r["top1"], r["top2"], r["top3"], r["median"])
    return r["status"] == "ok" and all(np.isfinite(v) for v in values) and r["median"] > 0


def test_trajectories_match_a_plain_python_recomputation():
    import math
    import statistics

    from scipy import stats

    df = _random_table()
    raw = trajectories(df)
    assert list(raw.columns) == [
        "suite", "model", "step", "layer", "n_sequences", "n_excluded", "top1", "top2",
        "top3", "median", "ratio", "ratio_mean", "ratio_top2", "ratio_top3", "cv_pct",
        "sem_pct", "ci95_pct",
    ]  # fmt: skip
    assert raw["n_sequences"].dtype.kind == "i" and raw["n_excluded"].dtype.kind == "i"
    traj = raw.set_index(["model", "step", "layer"])
    # sorted by (model, step, layer)
    keys = list(traj.index)
    assert keys == sorted(keys)
    groups: dict = {}
    for _, r in df.iterrows():
        groups.setdefault((r["model"], r["step"], r["layer"]), []).append(r)
    assert len(traj) == len(groups)
    for key, rs in groups.items():
        ok = [r for r in rs if _usable(r)]
        got = traj.loc[key]
        n = len(ok)
        assert got["n_sequences"] == n and got["n_excluded"] == len(rs) - n
        mean = {c: statistics.fmean(r[c] for r in ok) for c in ("top1", "top2", "top3", "median")}
        for c, v in mean.items():
            assert got[c] == pytest.approx(v, rel=1e-12)
        assert got["ratio"] == pytest.approx(mean["top1"] / mean["median"], rel=1e-12)
        assert got["ratio_top2"] == pytest.approx(mean["top2"] / mean["median"], rel=1e-12)
        assert got["ratio_top3"] == pytest.approx(mean["top3"] / mean["median"], rel=1e-12)
        ratios = [r["top1"] / r["median"] for r in ok]
        assert got["ratio_mean"] == pytest.approx(statistics.fmean(ratios), rel=1e-12)
        if n < 2:
            assert np.isnan(got["cv_pct"]) and np.isnan(got["sem_pct"])
            assert np.isnan(got["ci95_pct"])
            continue
        cv = 100 * statistics.stdev(ratios) / statistics.fmean(ratios)
        assert got["cv_pct"] == pytest.approx(cv, rel=1e-10)
        assert got["sem_pct"] == pytest.approx(cv / math.sqrt(n), rel=1e-10)
        t = stats.t.ppf(0.975, n - 1)
        assert got["ci95_pct"] == pytest.approx(t * cv / math.sqrt(n), rel=1e-10)
    # the case with one sequence is in the table
    assert traj.loc[("a", 16, 2), "n_sequences"] == 1


def test_layer_sequences_place_every_value_and_blank_the_unusable():
    df = _random_table()
    seqs = layer_sequences(df, "pythia-70m", 1)
    assert seqs.model == "pythia-70m" and seqs.layer == 1
    assert seqs.steps.tolist() == [0, 4, 16] and seqs.steps.dtype == np.int64
    assert seqs.sequences.tolist() == [0, 1, 2, 3, 4]
    rows = df[(df["model"] == "pythia-70m") & (df["layer"] == 1)]
    for _, r in rows.iterrows():
        i, j = [0, 4, 16].index(r["step"]), int(r["sequence"])
        for c in ("top1", "top2", "top3", "median"):
            want = r[c] if _usable(r) else np.nan
            np.testing.assert_equal(getattr(seqs, c)[i, j], want)
    # the trajectory of the arrays equals the table's, for every top and both quantities
    traj = trajectories(df)
    t = traj[(traj["model"] == "pythia-70m") & (traj["layer"] == 1)].sort_values("step")
    assert np.allclose(seqs.series("ratio"), t["ratio"], rtol=1e-12)
    assert np.allclose(seqs.series("ratio_mean"), t["ratio_mean"], rtol=1e-12)
    assert np.allclose(seqs.series("ratio", top="top2"), t["ratio_top2"], rtol=1e-12)
    assert np.allclose(seqs.series("ratio", top="top3"), t["ratio_top3"], rtol=1e-12)
    # a one-dimensional resample is one replicate
    one = seqs.series("ratio_mean", resample=[4, 4, 0, 1, 1])
    r = seqs.top1 / seqs.median
    want = np.nanmean(r[:, [4, 4, 0, 1, 1]], axis=1)
    assert one.shape == (3,) and np.allclose(one, want, rtol=1e-12)


def test_sem_of_both_quantities_by_their_formulas():
    df = _random_table()
    seqs = layer_sequences(df, "a", 2)
    for i in range(seqs.steps.size):
        ok = np.isfinite(seqs.top1[i]) & np.isfinite(seqs.median[i])
        top, med = seqs.top1[i, ok], seqs.median[i, ok]
        n = ok.sum()
        got_mean, got_ratio = seqs.sem("ratio_mean")[i], seqs.sem("ratio")[i]
        if n < 2:
            assert np.isnan(got_mean) and np.isnan(got_ratio)
            continue
        r = top / med
        assert got_mean == pytest.approx(np.std(r, ddof=1) / np.sqrt(n), rel=1e-12)
        R = top.sum() / med.sum()
        want = np.std(top - R * med, ddof=1) / (np.sqrt(n) * med.mean())
        assert got_ratio == pytest.approx(want, rel=1e-12)
    # step 16 has one usable sequence: NaN, without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(seqs.sem("ratio")).sum() == 1
        assert np.isnan(seqs.sem("ratio_mean")).sum() == 1


def test_sequence_ratio_along_another_axis_and_all_missing():
    top = np.array([[2.0, 6.0], [4.0, np.nan], [np.nan, np.nan]])
    med = np.array([[1.0, 2.0], [1.0, 1.0], [1.0, 1.0]])
    # sequences along axis 0: column 0 has (2, 4) over (1, 1); column 1 (6) over (2)
    assert np.allclose(sequence_ratio(top, med, axis=0), [3.0, 3.0])
    assert np.allclose(sequence_ratio(top, med, "ratio_mean", axis=0), [3.0, 3.0])
    by_row = sequence_ratio(top, med)
    assert np.allclose(by_row[:2], [8.0 / 3.0, 4.0]) and np.isnan(by_row[2])
    by_row = sequence_ratio(top, med, "ratio_mean")
    assert np.allclose(by_row[:2], [2.5, 4.0]) and np.isnan(by_row[2])
    # a pair with a missing median counts in neither sum
    assert sequence_ratio([[3.0, 5.0]], [[1.0, np.nan]])[0] == pytest.approx(3.0)


def test_variability_summary_by_hand_with_min_step():
    df = _random_table()
    traj = trajectories(df)
    for min_step in (0, 4):
        s = variability_summary(traj, min_step=min_step)
        assert list(s.index) == ["a", "pythia-70m"]
        for model in s.index:
            rows = traj[(traj["model"] == model) & (traj["step"] >= min_step)]
            rows = rows[rows["cv_pct"].notna()]
            assert s.loc[model, "n_rows"] == len(rows)
            assert s.loc[model, "n_sequences"] == np.median(rows["n_sequences"])
            for c in ("cv_pct", "sem_pct", "ci95_pct"):
                assert s.loc[model, c] == pytest.approx(rows[c].mean(), rel=1e-12)
        assert np.isnan(s.loc["a", "paper_sem_pct"])
        for c in ("cv_pct", "sem_pct", "ci95_pct"):
            assert s.loc["pythia-70m", f"paper_{c}"] == PAPER_TABLE2.loc["70m", c]
    # the (step 16, layer 2) row of model a has one sequence: never counted
    assert variability_summary(traj).loc["a", "n_rows"] == 5
    # models come out sorted whatever the order of the rows
    backwards = variability_summary(traj.iloc[::-1])
    assert list(backwards.index) == ["a", "pythia-70m"]


def test_several_variants_and_a_dtype_without_column_are_refused(two_sequences):
    both = pd.concat(
        [two_sequences.assign(variant="raw"), two_sequences.assign(variant="eot_first")],
        ignore_index=True,
    )
    with pytest.raises(ValueError, match="several evaluation variants"):
        trajectories(both)
    with pytest.raises(ValueError, match="several evaluation variants"):
        layer_sequences(both, "m", 1)
    one = trajectories(both[both["variant"] == "raw"])
    assert one["ratio"].tolist() == pytest.approx([2.5, 10.0])
    with pytest.raises(ValueError, match="not in the table"):
        trajectories(two_sequences, dtype="bfloat16")
    with pytest.raises(ValueError, match="no 'dtype' column"):
        trajectories(two_sequences.drop(columns="dtype"), dtype="float32")
    # without a dtype or status column every finite row with a positive median is used
    plain = trajectories(two_sequences.drop(columns=["dtype", "status", "suite"]))
    assert plain["ratio"].tolist() == pytest.approx([2.5, 10.0])
    assert "suite" not in plain.columns


def test_layer_sequences_picks_the_dtype_and_names_an_unknown_model(two_sequences):
    other = two_sequences.assign(dtype="float16", top1=two_sequences["top1"] * 2)
    both = pd.concat([two_sequences, other], ignore_index=True)
    seqs = layer_sequences(both, "m", 1, dtype="float16")
    assert seqs.top1[0].tolist() == [8.0, 12.0]
    with pytest.raises(ValueError, match=r"holds models \['m'\]\.$"):
        layer_sequences(two_sequences, "zz", 1)


def test_peak_table_by_hand():
    from massive_activations.measurement.trajectories import peak_table

    traj = pd.DataFrame(
        {
            "model": ["a"] * 6 + ["b"] * 3,
            "layer": [1, 1, 1, 2, 2, 2, 3, 3, 3],
            "step": [16, 0, 4, 0, 4, 16, 0, 4, 16],
            "ratio": [5.0, 1.0, 9.0, 2.0, 3.0, 3.0, 7.0, 7.0, 1.0],
            "other": [0.0, 1.0, 2.0, 3.0, 4.0, 8.0, 0.0, 0.0, 0.0],
        }
    )
    raw = peak_table(traj)
    assert list(raw.columns) == [
        "model", "layer", "n_layers", "relative_depth", "peak_step", "peak", "final",
        "last_step", "peak_inside",
    ]  # fmt: skip
    p = raw.set_index(["model", "layer"])
    assert p.loc[("a", 1)].tolist() == [2, 0.5, 4, 9.0, 5.0, 16, True]
    # a tie: the first checkpoint reaching it; the peak at the last step is not inside
    assert p.loc[("a", 2)].tolist() == [2, 1.0, 4, 3.0, 3.0, 16, True]
    assert p.loc[("b", 3)].tolist() == [3, 1.0, 0, 7.0, 1.0, 16, True]
    q = peak_table(traj, "other").set_index(["model", "layer"])
    assert q.loc[("a", 2), "peak_step"] == 16 and not q.loc[("a", 2), "peak_inside"]
    assert q.loc[("a", 2), "final"] == 8.0
    with pytest.raises(ValueError, match="lack column 'nope'"):
        peak_table(traj, "nope")


def test_layer_summary_by_hand():
    from massive_activations.measurement.trajectories import layer_summary

    table = pd.DataFrame(
        {
            "layer": [0, 0, 0, 1, 1, 1],
            "top1": [10.0, 20.0, 30.0, 4.0, 8.0, 6.0],
            "median": [1.0, 2.0, 2.0, 1.0, 2.0, 1.0],
            "top1_position": [0, 0, 3, 5, 5, 0],
            "top1_channel": [7, 7, 2, 4, 1, 1],
        }
    )
    s = layer_summary(table)
    assert list(s.columns) == [
        "top1", "median", "ratio", "ratio_min", "ratio_max", "position0", "positions", "channel"
    ]  # fmt: skip
    assert s.loc[0, "top1"] == 20.0 and s.loc[0, "median"] == pytest.approx(5 / 3)
    assert s.loc[0, "ratio"] == pytest.approx(60.0 / 5.0)
    assert s.loc[0, "ratio_min"] == 10.0 and s.loc[0, "ratio_max"] == 15.0
    assert s.loc[0, "position0"] == pytest.approx(2 / 3)
    assert s.loc[0, "positions"] == "0: 2, 3: 1" and s.loc[0, "channel"] == 7
    assert s.loc[1, "ratio"] == pytest.approx(18.0 / 4.0)
    assert s.loc[1, "ratio_min"] == 4.0 and s.loc[1, "ratio_max"] == 6.0
    assert s.loc[1, "positions"] == "0: 1, 5: 2" and s.loc[1, "channel"] == 1


def test_sem_with_two_sequences_and_quiet_divisions(two_sequences):
    seqs = layer_sequences(two_sequences, "m", 1)
    r = seqs.top1 / seqs.median  # two sequences per step: the smallest n with an SEM
    assert np.allclose(seqs.sem("ratio_mean"), np.std(r, axis=1, ddof=1) / np.sqrt(2))
    R = seqs.series("ratio")
    d = seqs.top1 - R[:, None] * seqs.median
    want = np.std(d, axis=1, ddof=1) / (np.sqrt(2) * seqs.median.mean(axis=1))
    assert np.allclose(seqs.sem("ratio"), want)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # 0 / 0 and x / 0 give NaN or inf, without numpy's warnings
        assert np.isnan(sequence_ratio([[0.0, 0.0]], [[0.0, 0.0]])[0])
        assert np.isnan(sequence_ratio([[1.0]], [[0.0]], "ratio_mean")[0])  # no finite ratio
        assert np.isnan(sequence_ratio([[0.0]], [[0.0]], "ratio_mean")[0])


def test_sem_counts_sequences_with_both_values_and_refuses_unknown_quantities():
    from massive_activations.measurement.trajectories import LayerSequences

    top = np.array([[4.0, 6.0, 8.0]])
    med = np.array([[1.0, 2.0, np.nan]])  # a top-1 without its median does not count
    seqs = LayerSequences("m", 1, np.array([0]), np.arange(3), top, top, top, med)
    r = np.array([4.0, 3.0])
    assert seqs.sem("ratio_mean")[0] == pytest.approx(np.std(r, ddof=1) / np.sqrt(2))
    d = np.array([4.0, 6.0]) - (10.0 / 3.0) * np.array([1.0, 2.0])
    assert seqs.sem()[0] == pytest.approx(np.std(d, ddof=1) / (np.sqrt(2) * 1.5))
    assert seqs.sem()[0] == seqs.sem("ratio")[0]
    with pytest.raises(ValueError, match="quantity must be one of"):
        seqs.sem("median")
