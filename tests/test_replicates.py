"""Seed replicates and the packing model: spreads and comparisons on tables of known values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from massive_activations.suite.replicates import (
    final_ratios,
    packing_comparison,
    parameter_seed_spread,
    parameter_seed_summary,
    seed_spread,
)

ARCHS = pd.DataFrame(
    {
        "model": ["A", "A-s1", "A-s2", "A-packed", "B"],
        "architecture": ["A", "A", "A", "A", "B"],
        "seed": [0, 1, 2, 0, 0],
        "packing": [False, False, False, True, False],
    }
)


def _traj(finals: dict[str, list[float]]) -> pd.DataFrame:
    """Two checkpoints per model; the last holds ``finals`` (one value per layer)."""
    rows = []
    for model, values in finals.items():
        for layer, value in enumerate(values, start=1):
            rows.append({"model": model, "step": 10, "layer": layer, "ratio": 1000.0})
            rows.append({"model": model, "step": 100, "layer": layer, "ratio": value})
    # the earlier checkpoint's larger values must not count: only the last checkpoint does
    return pd.DataFrame(rows)


def test_final_ratios_take_the_largest_layer_at_the_last_checkpoint():
    traj = _traj({"A": [3.0, 7.0], "B": [9.0, 2.0]})
    f = final_ratios(traj, ARCHS).set_index("model")
    assert f.loc["A", "final"] == 7.0 and f.loc["A", "layer"] == 2
    assert f.loc["B", "final"] == 9.0 and f.loc["B", "layer"] == 1


def test_seed_spread_is_the_sample_statistics_of_the_seeds_without_the_packing_model():
    traj = _traj({"A": [10.0], "A-s1": [12.0], "A-s2": [14.0], "A-packed": [100.0], "B": [5.0]})
    s = seed_spread(traj, ARCHS).set_index("architecture")
    assert list(s.index) == ["A"]  # B has one seed: no spread
    assert s.loc["A", "seeds"] == 3
    assert s.loc["A", "mean"] == pytest.approx(12.0)
    assert s.loc["A", "sd"] == pytest.approx(2.0)  # ddof=1
    assert (s.loc["A", "min"], s.loc["A", "max"]) == (10.0, 14.0)
    assert s.loc["A", "cv_pct"] == pytest.approx(100 * 2.0 / 12.0)


def test_an_architectures_table_without_seeds_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="regenerate it with make data"):
        seed_spread(_traj({"A": [1.0]}), ARCHS[["model", "architecture"]])


def _table(model, variant, top1, median, positions, channels, step=100):
    n = len(positions)
    return pd.DataFrame(
        {
            "model": model,
            "variant": variant,
            "step": step,
            "layer": 1,
            "sequence": np.arange(n),
            "top1": top1,
            "median": median,
            "top1_position": positions,
            "top1_channel": channels,
        }
    )


def test_packing_comparison_per_variant():
    table = pd.concat(
        [
            # EOT first: the reference model's top-1 sits at position 0, the packed one's not
            _table("A", "eot_first", [40.0, 44.0, 42.0], 1.0, [0, 0, 0], [98, 98, 98]),
            _table("A-packed", "eot_first", [20.0, 20.0, 20.0], 2.0, [31, 5, 31], [27, 27, 3]),
            _table("A", "raw", [18.0, 20.0, 22.0], 1.0, [2, 7, 7], [122, 122, 122]),
            _table("A-packed", "raw", [10.0, 12.0, 14.0], 1.0, [0, 9, 9], [27, 27, 27]),
            # an earlier checkpoint must be ignored
            _table("A", "raw", [999.0] * 3, 1.0, [0, 0, 0], [1, 1, 1], step=10),
        ]
    )
    out = packing_comparison(table, ARCHS)
    assert list(out.columns[:3]) == ["variant", "model", "training"]
    got = out.set_index(["variant", "model"])
    eot = got.loc[("eot_first", "A")]
    assert eot.training == "eot_first training" and eot.ratio == pytest.approx(42.0)
    assert eot.position0_share == 1.0 and eot.top1_channel == 98
    packed = got.loc[("eot_first", "A-packed")]
    assert packed.training == "packing" and packed.ratio == pytest.approx(10.0)
    assert packed.position0_share == 0.0 and packed.top1_position == 31
    assert packed.top1_position_share == pytest.approx(2 / 3)
    assert packed.top1_channel == 27
    raw = got.loc[("raw", "A")]
    assert raw.ratio == pytest.approx(20.0) and raw.top1_position == 7
    assert got.loc[("raw", "A-packed"), "position0_share"] == pytest.approx(1 / 3)


def test_packing_comparison_without_a_variant_column_and_without_a_packing_model():
    table = pd.concat(
        [
            _table("A", "raw", [4.0, 4.0], 1.0, [0, 0], [5, 5]),
            _table("A-packed", "raw", [2.0, 2.0], 1.0, [3, 3], [6, 6]),
        ]
    ).drop(columns="variant")
    out = packing_comparison(table, ARCHS)
    assert "variant" not in out.columns and len(out) == 2
    with pytest.raises(ValueError, match="no packing model"):
        packing_comparison(table, ARCHS[~ARCHS.packing])


def _fits(values: dict[str, tuple[float, float, float, bool, str]]) -> pd.DataFrame:
    """Eq. 9 fits by our procedure, layer 1, parameter K only: model -> (K, lo, hi, id, status)."""
    rows = [
        {
            "model": m,
            "layer": 1,
            "hypothesis": "eq9",
            "procedure": "ours",
            "status": st,
            "K": k,
            "K_lo": lo,
            "K_hi": hi,
            "K_identified": ident,
        }
        for m, (k, lo, hi, ident, st) in values.items()
    ]
    # another procedure's fit must be ignored
    rows.append({**rows[0], "procedure": "paper", "K": 1e9})
    return pd.DataFrame(rows)


def test_parameter_seed_spread_against_the_fits_intervals():
    fits = _fits(
        {
            "A": (10.0, 9.0, 11.0, True, "ok"),
            "A-s1": (12.0, 11.5, 12.5, True, "ok"),
            "A-s2": (14.0, 10.0, 20.0, False, "at_bound"),
            "A-packed": (99.0, 98.0, 100.0, True, "ok"),  # packing: not a seed replicate
            "B": (1.0, 0.0, 2.0, True, "ok"),  # one seed: no spread
        }
    )
    spread = parameter_seed_spread(fits, ARCHS, params=("K",))
    assert len(spread) == 1
    row = spread.iloc[0]
    assert (row.architecture, row.layer, row.parameter, row.seeds) == ("A", 1, "K", 3)
    assert row["mean"] == pytest.approx(12.0) and row.sd == pytest.approx(2.0)
    assert row.cv_pct == pytest.approx(100 * 2 / 12)
    assert row.n_identified == 2 and row.statuses == "ok / ok / at_bound"
    assert row["values"] == "10 / 12 / 14"
    # seed 0's interval [9, 11] and seed 1's [11.5, 12.5] share no point
    assert not row.intervals_agree
    summary = parameter_seed_summary(spread).set_index("parameter")
    assert summary.loc["K", "cells"] == 1
    assert summary.loc["K", "all_identified_share"] == 0.0
    assert summary.loc["K", "intervals_disagree_share"] == 1.0

    agreeing = _fits({"A": (10.0, 9.0, 12.0, True, "ok"), "A-s1": (11.0, 10.5, 13.0, True, "ok")})
    row = parameter_seed_spread(agreeing, ARCHS, params=("K",)).iloc[0]
    assert row.intervals_agree and row.n_identified == 2
    summary = parameter_seed_summary(parameter_seed_spread(agreeing, ARCHS, params=("K",)))
    assert summary.iloc[0].all_identified_share == 1.0
    assert summary.iloc[0].intervals_disagree_share == 0.0


def test_parameter_seed_spread_names_missing_columns():
    fits = _fits({"A": (1.0, 0.0, 2.0, True, "ok")}).drop(columns="K_lo")
    with pytest.raises(ValueError, match=r"K_lo.*refit with chapter 4"):
        parameter_seed_spread(fits, ARCHS, params=("K",))


def test_parameter_seed_spread_keeps_failed_fits_without_counting_their_values():
    fits = _fits(
        {
            "A": (10.0, 9.0, 11.0, True, "ok"),
            "A-s1": (np.nan, np.nan, np.nan, None, "failed"),
            "A-s2": (14.0, 13.0, 15.0, True, "ok"),
        }
    )
    fits["K_identified"] = fits["K_identified"].astype("boolean")
    row = parameter_seed_spread(fits, ARCHS, params=("K",)).iloc[0]
    assert row.seeds == 3 and row.n_values == 2 and row.n_identified == 2
    assert row["mean"] == pytest.approx(12.0) and row.statuses == "ok / failed / ok"
    assert not bool(row.intervals_agree)  # decided (bool() of NA raises), and False
    # one seed with an interval: agreement cannot be judged
    one = _fits(
        {
            "A": (10.0, 9.0, 11.0, True, "ok"),
            "A-s1": (np.nan, np.nan, np.nan, None, "failed"),
        }
    )
    spread = parameter_seed_spread(one, ARCHS, params=("K",))
    assert pd.isna(spread.iloc[0].intervals_agree)
    assert pd.isna(parameter_seed_summary(spread).iloc[0].intervals_disagree_share)
