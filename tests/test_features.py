"""Paper Table 4's features from architecture specs: Pythia, our suites, layer indexing, I/O."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from massive_activations import reference, registry
from massive_activations.prediction.features import (
    FEATURE_NAMES,
    Architecture,
    architecture,
    features_table,
    layer_features,
    pythia_architectures,
    suite_architectures,
)
from massive_activations.suite.configs import ModelSpec, get_suite


def test_pythia_1b_features_match_hand_computation_from_the_reference_table():
    row = reference.table("pythia_architectures").loc["1B"]
    L, d, H, d_ff = (int(row[k]) for k in ("n_layers", "d_model", "n_heads", "d_ff"))
    f = layer_features("pythia-1b", layers=4).iloc[0]
    assert (f["model"], f["layer"], f["n_layers"]) == ("pythia-1b", 4, L)
    r = (4 - 1) / (L - 1)  # relative depth: 0 = first layer, 1 = last (paper Table 4)
    expected = {
        "l_over_L": r,
        "l_over_L_sq": r * r,
        "l_over_L_cube": r * r * r,
        "l_over_L_sqrt": math.sqrt(r),
        "H_over_d": H / d,
        "dff_over_d": d_ff / d,
        "d_over_L": d / L,
        "H_over_L": H / L,
        "log_d": math.log(d),
        "l_times_L": 4.0 * L,
    }
    for name, value in expected.items():
        assert f[name] == pytest.approx(value, rel=1e-12), name
    # Pythia-1B: 16 layers, 8 heads, width 2048 (so layer 4 sits at 3/15 = 0.2 of the depth)
    assert f["l_over_L"] == 0.2 and f["l_over_L_sq"] == pytest.approx(0.04)
    assert f["dff_over_d"] == 4.0


def test_layers_count_from_one_to_L_and_relative_depth_runs_from_0_to_1():
    f = layer_features("pythia-14m")
    L = int(reference.table("pythia_architectures").loc["14M", "n_layers"])
    assert list(f["layer"]) == list(range(1, L + 1))
    # the paper's definition: 0 = first layer, 1 = last layer, evenly spaced
    np.testing.assert_allclose(f["l_over_L"], np.linspace(0, 1, L), rtol=0, atol=1e-15)
    assert f["l_over_L"].iloc[0] == 0.0 and f["l_over_L"].iloc[-1] == 1.0
    for name, power in (("l_over_L_sq", 2), ("l_over_L_cube", 3), ("l_over_L_sqrt", 0.5)):
        np.testing.assert_allclose(f[name], np.linspace(0, 1, L) ** power, atol=1e-15)
    assert f["l_times_L"].iloc[0] == L and f["l_times_L"].iloc[-1] == L * L  # index l = 1..L
    # every depth spans 0..1: the first and last layers of a 2-layer and a 36-layer model agree
    for spec in ("L2-d64-h4", "pythia-12b"):
        g = layer_features(spec)
        assert (g["l_over_L"].iloc[0], g["l_over_L"].iloc[-1]) == (0.0, 1.0)
    single = layer_features({"n_layers": 1, "d_model": 32, "n_heads": 2, "name": "one"})
    assert (
        (single[["l_over_L", "l_over_L_sq", "l_over_L_cube", "l_over_L_sqrt"]] == 0)
        .to_numpy()
        .all()
    )
    assert list(f.columns[-len(FEATURE_NAMES) :]) == list(FEATURE_NAMES)
    with pytest.raises(ValueError, match=r"Layers \[0\] are not in 1\.\.6"):
        layer_features("pythia-14m", layers=[0, 1])
    with pytest.raises(ValueError, match=r"\[7\]"):
        layer_features("pythia-14m", layers=7)


def test_every_pythia_name_form_gives_the_same_architecture():
    archs = pythia_architectures()
    assert list(archs) == reference.values()["models"]
    a = archs["1.4B"]
    for name in ("pythia-1.4b", "EleutherAI/pythia-1.4b-deduped", "1.4B"):
        b = architecture(name)
        assert (b.n_layers, b.d_model, b.n_heads, b.d_ff) == (
            a.n_layers,
            a.d_model,
            a.n_heads,
            a.d_ff,
        )
        assert b.name == name


def test_suite_models_resolve_by_spec_and_by_name():
    for suite in ("smoke", "default"):
        archs = suite_architectures(suite)
        assert list(archs) == get_suite(suite).names
        for name, arch in archs.items():
            assert architecture(name) == arch  # the name L<L>-d<d>-h<H> tells the same
            assert arch.d_ff == 4 * arch.d_model
    spec = ModelSpec("custom", 3, 64, 4, 10)
    a = architecture(spec)
    assert a == Architecture("custom", 3, 64, 4, 256)
    m = architecture({"n_layers": 2, "d_model": 32, "n_heads": 2, "d_ff": 48}, name="x")
    assert m == Architecture("x", 2, 32, 2, 48)
    assert layer_features(m)["dff_over_d"].tolist() == [1.5, 1.5]


def test_bad_specs_say_what_is_wrong():
    with pytest.raises(ValueError, match="neither a suite name"):
        architecture("gpt2")
    with pytest.raises(ValueError, match=r"lacks \['n_heads'\]"):
        architecture({"n_layers": 2, "d_model": 32})
    with pytest.raises(ValueError, match="positive integers"):
        Architecture("bad", 0, 32, 2, 128)


def test_write_features_is_atomic_and_round_trips(tmp_path):
    table = features_table(["pythia-70m", "L2-d64-h4"])
    assert table["model"].tolist() == ["pythia-70m"] * 6 + ["L2-d64-h4"] * 2
    path = registry.write(table, "features.parquet", tmp_path, "syn")
    assert path == tmp_path / "syn" / "features.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(path), table)
    assert [p.name for p in path.parent.iterdir()] == ["features.parquet"]
    with pytest.raises(ValueError, match="missing columns"):
        registry.write(table.drop(columns="log_d"), "features.parquet", tmp_path, "syn")
    assert np.isfinite(table[list(FEATURE_NAMES)].to_numpy()).all()
