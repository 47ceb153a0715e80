"""Trajectories from hand-made activation tables with known answers."""

from __future__ import annotations

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
