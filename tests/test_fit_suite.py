"""fit_all on a small synthetic suite: the table, its determinism, the paper tables, I/O."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from massive_activations import registry
from massive_activations.fitting.fit_all import (
    PAPER_TABLE1,
    PAPER_TABLE5,
    PARAM_NAMES,
    compare_procedures,
    fit_all,
    regime_table,
    table1,
    table5,
)
from massive_activations.fitting.synthetic import EXAMPLE_CURVES, simulate_table
from massive_activations.schedule import scaled_schedule

STEPS = scaled_schedule(143_000, 20)
CURVES = {
    "pythia-70m": {1: EXAMPLE_CURVES["early_peak"], 2: EXAMPLE_CURVES["log_rise"]},
    "tiny": {1: EXAMPLE_CURVES["early_peak"]},
}


@pytest.fixture(scope="module")
def table():
    return simulate_table(CURVES, STEPS, suite="syn", seed=1)


@pytest.fixture(scope="module")
def fits(table):
    return fit_all(table, n_bootstrap=20, seed=3, progress=False)


def test_one_row_per_layer_hypothesis_and_procedure(fits):
    assert len(fits) == 3 * 4 * 2
    assert not fits.duplicated(["model", "layer", "hypothesis", "procedure"]).any()
    assert set(fits["status"]) <= {"ok", "at_bound", "not_converged", "failed"}
    assert (fits["suite"] == "syn").all() and (fits["n_points"] > 0).all()
    for n in PARAM_NAMES:
        for suffix in ("", "_stderr", "_cov_lo", "_prof_lo", "_boot_hi", "_flags", "_identified"):
            assert f"{n}{suffix}" in fits.columns
    eq9 = fits[(fits["hypothesis"] == "eq9") & (fits["model"] == "tiny")]
    assert eq9[["A", "lam", "gam", "t0", "K"]].notna().all().all()
    assert eq9[["b", "tau", "w"]].isna().all().all()
    # uncertainty for Eq. 9 / Eq. 14 only: bootstrap there, none for the step responses
    fitted = fits[fits["status"] != "failed"]
    assert (fitted.loc[fitted["hypothesis"].isin(["eq9", "eq14"]), "n_boot"] == 20).all()
    assert (fits.loc[fits["status"] == "failed", "n_boot"] == 0).all()
    assert (fits.loc[fits["hypothesis"].isin(["step1", "step2"]), "n_boot"] == 0).all()
    ok = eq9[eq9["procedure"] == "ours"].iloc[0]
    assert ok["K_prof_lo"] < ok["K"] < ok["K_prof_hi"]
    # profiles only where they can change what is identified: confirmed early peaks
    e9 = fits[fits["hypothesis"] == "eq9"]
    confirmed = e9["t_peak_identified"].fillna(False).astype(bool)
    assert e9.loc[confirmed, "lam_prof_lo"].notna().all()
    assert e9.loc[~confirmed, ["K_prof_lo", "lam_prof_hi"]].isna().all().all()
    assert (~confirmed).any()
    assert ok["t_peak_boot_lo"] < ok["t_peak"] < ok["t_peak_boot_hi"]
    assert ok["regime"] == "early_peak" and len(ok["residuals"]) == ok["n_points"]


def test_rows_are_deterministic_and_independent_of_the_other_layers(table, fits):
    alone = fit_all(table[table["model"] == "tiny"], n_bootstrap=20, seed=3, progress=False)
    mine = fits[fits["model"] == "tiny"].reset_index(drop=True)
    cols = [c for c in mine.columns if c not in ("n_layers", "relative_depth")]
    pd.testing.assert_frame_equal(alone[cols], mine[cols])
    other = fit_all(
        table[table["model"] == "tiny"],
        n_bootstrap=20,
        seed=4,
        progress=False,
        hypotheses=("eq9",),
        procedures=("ours",),
    )
    assert other["K_boot_lo"].iloc[0] != mine.loc[mine["hypothesis"] == "eq9"].iloc[1]["K_boot_lo"]


def test_failed_fits_are_kept(table):
    few = table[(table["model"] == "tiny") & (table["step"] <= 4)]
    out = fit_all(few, hypotheses=("eq9",), n_bootstrap=0, progress=False)
    assert len(out) == 2 and (out["status"] == "failed").all()
    assert out["message"].str.contains("need at least").all()


def test_write_and_read_back(tmp_path, fits):
    path = registry.write(fits, "fits.parquet", tmp_path, "syn")
    assert path == tmp_path / "syn" / "fits.parquet" and path.is_file()
    assert not list(path.parent.glob(".*.tmp"))
    back = registry.read("fits.parquet", tmp_path, "syn")
    assert back.shape == fits.shape
    assert np.allclose(back["residuals"].iloc[0], fits["residuals"].iloc[0])
    with pytest.raises(FileNotFoundError, match="execute chapter 4 first"):
        registry.read("fits.parquet", tmp_path, "other")


def test_table1_and_table5_carry_the_papers_numbers(fits):
    t1 = table1(fits)
    assert set(t1["procedure"]) == {"paper", "ours"}
    row = t1[(t1["model"] == "pythia-70m") & (t1["procedure"] == "ours")].iloc[0]
    assert row["paper_r2"] == PAPER_TABLE1["70m"] and row["n_layers"] == 2
    eq9 = fits[
        (fits["model"] == "pythia-70m")
        & (fits["procedure"] == "ours")
        & (fits["hypothesis"] == "eq9")
    ]
    converged = eq9[eq9["status"].isin(["ok", "at_bound"])]
    assert row["r2_eq9"] == pytest.approx(converged["r2_all"].mean())  # failures not averaged
    assert row["n_converged"] + row["n_not_converged"] + row["n_failed"] == len(eq9)
    assert np.isnan(t1.loc[t1["model"] == "tiny", "paper_r2"]).all()
    t5 = table5(fits)
    assert len(t5) == 2 * 2 * 4
    r = t5[(t5["model"] == "pythia-70m") & (t5["hypothesis"] == "step1")].iloc[0]
    assert r["paper_r2"] == PAPER_TABLE5.loc["step1", "70m"]
    share = t5.groupby(["model", "procedure"])["aic_best_share"].sum()
    assert np.allclose(share[share.notna() & (share > 0)], 1.0)


def test_compare_procedures_and_regime_table(fits):
    comp = compare_procedures(fits)
    assert set(comp["procedure"]) == {"paper", "ours"} and len(comp) == 2 * 4 * 2
    shares = comp[[c for c in comp.columns if c.startswith("share_") and c != "share_identified"]]
    assert np.allclose(shares.sum(axis=1), 1.0)
    reg = regime_table(fits)
    assert len(reg) == 3
    first = reg[(reg["model"] == "tiny")].iloc[0]
    assert first["paper_claim"] == "early_peak" and first["regime"] == "early_peak"
    assert bool(first["agrees"])


def test_unknown_models_are_named(table):
    with pytest.raises(ValueError, match="not in the table"):
        fit_all(table, models=["pythia-12b"], progress=False)


def test_recovery_table_counts_coverage_and_identification():
    from massive_activations.fitting.fit_all import recovery_table

    fits = pd.DataFrame(
        {
            "model": ["a", "a", "b"],
            "K": [1.0, 3.0, 10.0],
            "K_lo": [0.5, 2.5, 9.0],
            "K_hi": [1.5, 3.5, 11.0],
            "K_identified": pd.array([True, False, pd.NA], dtype="boolean"),
            "t_peak": [5.0, 50.0, 7.0],
            "t_peak_lo": [4.0, 40.0, 1.0],
            "t_peak_hi": [6.0, 60.0, 9.0],
            "regime": ["early_peak", "undetermined", "early_peak"],
            "t_peak_identified": pd.array([True, False, True], dtype="boolean"),
        }
    )
    truths = {"a": {"K": 1.2, "t_peak": 5.5}, "b": {"K": 10.0, "t_peak": 20.0}}
    out = recovery_table(fits, truths)
    # true, median estimate, fits, identified, covered, covered among identified
    assert out.loc[("a", "K")].tolist() == [1.2, 2.0, 2, 1, 1, 1]
    assert out.loc[("b", "K"), "n_covered"] == 1 and out.loc[("b", "K"), "n_identified"] == 0
    assert out.loc[("a", "t_peak")].tolist() == [5.5, 27.5, 2, 1, 1, 1]
    assert out.loc[("b", "t_peak"), "n_covered"] == 0


def test_window_effect_reports_each_window():
    from massive_activations.fitting.fit_all import window_effect
    from massive_activations.fitting.synthetic import EXAMPLE_CURVES, simulate_table
    from massive_activations.schedule import scaled_schedule

    steps = scaled_schedule(4000, 20)
    curves = {"m": {1: {**EXAMPLE_CURVES["early_peak"], "gam": 4e-3}}}
    table = simulate_table(curves, steps, dip=0.5, seed=0)
    out = window_effect(table, windows=("full", "from_min"))
    assert list(out["window"]) == ["full", "from_min"]
    assert (out["layers"] == 1).all()
    assert out.set_index("window").loc["from_min", "r2_all"] <= 1.0
    assert {"share_ok", "share_all_identified"} <= set(out.columns)


def test_window_effect_fits_only_the_models_asked_for():
    from massive_activations.fitting.fit_all import window_effect
    from massive_activations.fitting.synthetic import EXAMPLE_CURVES, simulate_table
    from massive_activations.schedule import scaled_schedule

    curve = {**EXAMPLE_CURVES["early_peak"], "gam": 4e-3}
    curves = {"small": {1: curve}, "big": {1: curve, 2: curve}}
    table = simulate_table(curves, scaled_schedule(4000, 12), seed=0)
    out = window_effect(table, windows=("full",), models=["big"])
    assert out["layers"].tolist() == [2]
    with pytest.raises(ValueError, match="not in the table"):
        window_effect(table, windows=("full",), models=["huge"])


def _resumable(table, parts, key="k", n_jobs=1):
    few = dict(hypotheses=("eq9",), procedures=("ours",), profile=(), n_bootstrap=0)
    return fit_all(table, **few, seed=3, progress=False, n_jobs=n_jobs, checkpoints=parts,
                   checkpoint_key=key)  # fmt: skip


def _mark(path):
    import pickle

    rows = pickle.loads(path.read_bytes())
    rows[0]["message"] = "read back"
    path.write_bytes(pickle.dumps(rows))


def test_fit_all_saves_each_layer_and_resumes_from_the_saved_ones(table, tmp_path, monkeypatch):
    from massive_activations import provenance

    parts = tmp_path / "parts"
    fresh = _resumable(table, None)
    log = tmp_path / "provenance.jsonl"
    monkeypatch.setenv(provenance.LOG_ENV, str(log))
    first = _resumable(table, parts)
    monkeypatch.delenv(provenance.LOG_ENV)
    assert not log.exists()  # transient files: not among the data files a page lists
    pd.testing.assert_frame_equal(first, fresh)  # saving changes nothing
    files = sorted(p.name.rsplit("-", 1)[0] for p in parts.glob("*.pkl"))
    assert files == ["pythia-70m-L1", "pythia-70m-L2", "tiny-L1"]
    # a saved layer is read, not fitted again; a layer with no file (a run killed before it
    # ended) is fitted and saved
    (saved,) = parts.glob("pythia-70m-L2-*.pkl")
    _mark(saved)
    (lost,) = parts.glob("tiny-L1-*.pkl")
    lost.unlink()
    resumed = _resumable(table, parts)
    assert lost.is_file()
    read = resumed[resumed.message == "read back"]
    assert list(zip(read.model, read.layer, strict=True)) == [("pythia-70m", 2)]
    pd.testing.assert_frame_equal(
        resumed[resumed.message != "read back"], fresh[resumed.message != "read back"]
    )
    # a saved layer stands only for the same fit: other settings (key) or other values
    other = _resumable(table, parts, key="other settings")
    assert "read back" not in set(other.message)
    changed = table.copy()
    row = (changed.model == "pythia-70m") & (changed.layer == 2) & (changed.step == STEPS[-1])
    changed.loc[row, "top1"] *= 1.5
    assert "read back" not in set(_resumable(changed, parts).message)
    assert len(list(parts.glob("*.pkl"))) == 3 + 3 + 1


@pytest.mark.processes
def test_fit_all_resumes_in_worker_processes_too(table, tmp_path):
    parts = tmp_path / "parts"
    fresh = _resumable(table, parts)
    (saved,) = parts.glob("pythia-70m-L1-*.pkl")
    _mark(saved)
    for p in parts.glob("*-L2-*.pkl"):
        p.unlink()
    resumed = _resumable(table, parts, n_jobs=2)
    assert list(resumed.message == "read back") == [True, False, False]
    pd.testing.assert_frame_equal(resumed.iloc[1:], fresh.iloc[1:])
