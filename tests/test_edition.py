"""The Pythia edition's pages: which data a page says it shows, the magnitude claim on
Pythia's own data, and a suite's fits read only when they cover its table."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from massive_activations import audit, reference, registry
from massive_activations.book.build import _add_banner
from massive_activations.book.execute import NotebookRun
from massive_activations.book.status import edition_banner, edition_of, status_page
from massive_activations.datasets.edition import (
    data_kind,
    data_notice,
    edition_note,
    models_label,
    pythia_recipe,
)
from massive_activations.datasets.release import import_release
from massive_activations.datasets.standin import write_standin
from massive_activations.fitting import suite_fits as suite_fits_mod
from massive_activations.fitting.suite_fits import missing_layers, suite_fits
from massive_activations.fitting.synthetic import simulate_table

ENV = {
    "date": "2026-01-01",
    "git_commit": "abc",
    "git_dirty": False,
    "python": "3.11",
    "platform": "linux",
    "cpu_count": 2,
    "packages": {},
}


def _table(**attrs) -> pd.DataFrame:
    t = pd.DataFrame({"model": ["pythia-70m"], "layer": [1]})
    t.attrs.update(attrs)
    return t


def _visible(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


@pytest.fixture(scope="module")
def standin_import(tmp_path_factory):
    """A two-model stand-in imported into a data folder."""
    tmp = tmp_path_factory.mktemp("edition")
    standin = write_standin(tmp / "release", sizes=("14m", "70m"), checkpoints=5)
    table, info = import_release(tmp / "data", standin.folder)
    return tmp, table, info


def test_a_stand_in_is_named_synthetic_whatever_its_suite():
    synthetic = _table(synthetic=True, release="a SYNTHETIC stand-in")
    for suite in ("paper", "default", "pythia-70m"):
        assert data_kind(synthetic, suite) == "synthetic"
        notice = data_notice(synthetic, suite)
        assert 'class="admonition danger"' in notice
        assert "synthetic stand-in" in _visible(notice).lower()
        assert "None of the numbers below are the paper's" in _visible(notice)
        assert "not Pythia" in models_label(synthetic, suite)
    release = _table(synthetic=False, release="the paper's release (X at abc1234)")
    assert data_kind(release, "paper") == "release"
    assert "the paper&#x27;s release (X at abc1234)" in data_notice(release, "paper")
    assert "synthetic" not in data_notice(release, "paper").lower()
    assert data_kind(_table(), "default") == "ours" and data_notice(_table(), "default") == ""
    assert models_label(_table(), "smoke") == "our `smoke` models"
    assert data_kind(_table(), "pythia-1b") == "pythia"
    with pytest.raises(ValueError, match="Unknown suite 'nope'"):
        data_kind(_table(), "nope")


def test_edition_note_follows_the_data_kinds():
    assert "Synthetic stand-in" in edition_note({"synthetic", "ours"}, "X")
    assert "The Pythia edition" in edition_note({"release", "ours"}, "R")
    assert "The default edition" in edition_note({"ours"})
    assert "pythia/" in edition_note(set())
    with pytest.raises(ValueError, match="Unknown data kinds"):
        edition_note({"mystery"})


def test_pythia_recipe_is_the_reference_file():
    archs, training = pythia_recipe()
    ref = reference.entry("pythia_architectures")
    assert list(archs.index) == list(ref["values"])
    assert archs.loc["1B", "n_layers"] == ref["values"]["1B"][0]
    settings = dict(zip(training["setting"], training["value"], strict=True))
    assert settings["final step"] == str(ref["training"]["final_step"])
    assert settings["adam betas"] == "0.9, 0.95"


def test_edition_of_reads_the_imported_manifest(standin_import, tmp_path):
    tmp, _, info = standin_import
    runs = [
        NotebookRun("03_measuring", {"suite": "paper", "data_dir": str(tmp / "data")}, 1.0, True),
        NotebookRun("02_training_suite", {"suite": "smoke", "data_dir": "x"}, 1.0, True),
    ]
    note = edition_of(tmp, runs)
    assert "synthetic stand-in" in note.lower() and info.label in note
    banner = edition_banner(note)
    assert banner.startswith(":::{admonition}") and ":class: danger" in banner
    assert note in status_page("paper-smoke", runs, ENV, note)
    page = tmp_path / "intro.md"
    page.write_text("# Title\n\nText.\n")
    _add_banner(page, banner)
    lines = page.read_text().splitlines()
    assert lines[0] == "# Title" and lines[2].startswith(":::{admonition}")
    assert lines[-1] == "Text."
    # no import in a data folder: the suite is not counted; our suites alone are the default
    ours = edition_of(tmp, [NotebookRun("x", {"suite": "paper", "data_dir": str(tmp_path)}, 1, 1)])
    assert "default edition" in ours
    assert ":class: note" in edition_banner(ours)


def _pythia_traj(final: dict) -> pd.DataFrame:
    rows = []
    for m, value in final.items():
        for step, v in ((0, 5.0), (143000, value)):
            rows.append({"model": m, "step": step, "layer": 1, "ratio": v, "ratio_mean": v})
    return pd.DataFrame(rows)


def test_magnitude_is_decided_on_pythia_and_untestable_on_our_suite():
    fig3 = reference.table("fig3_final_ratio")["value"]
    archs = pd.DataFrame({"model": ["pythia-14m", "pythia-1.4b", "pythia-70m"],
                          "params": [14e6, 1.4e9, 70e6]})  # fmt: skip
    close = {"pythia-14m": fig3["14M"] * 1.5, "pythia-1.4b": fig3["1.4B"] / 1.9, "pythia-70m": 50}
    row = audit.claim_magnitude(_pythia_traj(close), archs)
    assert row["verdict"] == audit.REPRODUCED, row
    assert "pythia-14m" in row["our_value"] and "x1.50" in row["our_value"]
    assert "pythia-70m" not in row["our_value"].split("; largest")[0]  # Fig. 3 omits 70M
    far = {**close, "pythia-1.4b": fig3["1.4B"] / 2.1}
    assert audit.claim_magnitude(_pythia_traj(far), archs)["verdict"] == audit.NOT_REPRODUCED
    small = {"pythia-14m": 60.0, "pythia-70m": 70.0}  # within 2x of 83 but never >= 100
    assert audit.claim_magnitude(_pythia_traj(small), archs)["verdict"] == audit.NOT_REPRODUCED
    ours = _pythia_traj({"L2-d64": 20.0, "L4-d64": 30.0})
    row = audit.claim_magnitude(ours, pd.DataFrame({"model": ["L2-d64", "L4-d64"],
                                                    "params": [1e5, 2e5]}))  # fmt: skip
    assert row["verdict"] == audit.NOT_TESTABLE
    deduped = _pythia_traj({"pythia-14m-deduped": fig3["14M"]})
    row = audit.claim_magnitude(deduped, pd.DataFrame({"model": ["pythia-14m-deduped"],
                                                       "params": [14e6]}))  # fmt: skip
    assert row["verdict"] == audit.NOT_TESTABLE


def test_scale_notice_per_data_kind():
    traj = _pythia_traj({"pythia-14m": 100.0, "pythia-1b": 2000.0})
    archs = pd.DataFrame({"model": ["pythia-14m", "pythia-1b"], "params": [14e6, 1.0e9]})
    assert "Synthetic stand-in" in audit.scale_notice(traj, archs, "synthetic")
    release = _visible(audit.scale_notice(traj, archs, "release"))
    assert "2 models of 14 million to 1.0 billion" in release and "2,000" in release
    ours = _visible(audit.scale_notice(traj, archs.assign(tokens=3e6), "ours"))
    assert "14.00 to 1000.00 million parameters and saw 3.0 million tokens" in ours
    with pytest.raises(ValueError, match="Unknown data kind"):
        audit.scale_notice(traj, archs, "other")


def test_suite_fits_reads_covering_fits_and_refits_otherwise(tmp_path, monkeypatch):
    p = {"A": 20.0, "lam": 0.05, "gam": 1e-4, "t0": 1.5, "K": 5.0}
    table = simulate_table({"m": {1: p, 2: p}}, [0, 1, 2, 4, 8, 16, 64, 256, 1000, 4000],
                           suite="s", n_sequences=3, seed=0)  # fmt: skip
    calls = []
    real = suite_fits_mod.fit_all

    def counting_fit_all(t, **kw):
        calls.append(sorted(set(zip(t.model, t.layer, strict=True))))
        assert kw["checkpoints"] == tmp_path / "s" / suite_fits_mod.CHECKPOINTS
        out = real(t, hypotheses=("eq9",), procedures=("ours",), profile=(), **kw)
        assert len(list(kw["checkpoints"].glob("*.pkl"))) == len(calls[-1])
        return out

    monkeypatch.setattr(suite_fits_mod, "fit_all", counting_fit_all)
    real_settings = suite_fits_mod.fit_settings
    monkeypatch.setattr(suite_fits_mod, "fit_settings", lambda **kw: real_settings(
        hypotheses=("eq9",), procedures=("ours",), profile=(), **kw))  # fmt: skip
    fits, source = suite_fits(table, tmp_path, "s", n_bootstrap=0, n_jobs=1)
    assert source == "fitted now" and len(calls) == 1
    assert set(zip(fits.model, fits.layer, strict=True)) == {("m", 1), ("m", 2)}
    assert registry.path("fits.parquet", tmp_path, "s").is_file()
    # each layer was saved on the way (a killed build resumes); the written table clears them
    assert not (tmp_path / "s" / suite_fits_mod.CHECKPOINTS).exists()
    again, source = suite_fits(table, tmp_path, "s", n_bootstrap=0, n_jobs=1)
    assert source == "read from fits.parquet" and len(calls) == 1
    pd.testing.assert_frame_equal(again, fits)
    _, source = suite_fits(table, tmp_path, "s", refit=True, n_bootstrap=0, n_jobs=1)
    assert source == "fitted now" and len(calls) == 2
    # fits of one layer only do not stand for a table of two
    registry.write(fits[fits.layer == 1], "fits.parquet", tmp_path, "s")
    assert missing_layers(fits[fits.layer == 1], table) == [("m", 2)]
    _, source = suite_fits(table, tmp_path, "s", n_bootstrap=0, n_jobs=1)
    assert source == "fitted now (fits.parquet lacked 1 of the table's layers)"
    assert len(calls) == 3
    # fits written before a column the registry now requires are fitted again
    old = fits.drop(columns=["mf_peak_lo", "mf_peak_hi"])
    old.to_parquet(registry.path("fits.parquet", tmp_path, "s"))  # as an older version wrote it
    _, source = suite_fits(table, tmp_path, "s", n_bootstrap=0, n_jobs=1)
    assert source == "fitted now (fits.parquet predates the columns ['mf_peak_lo', 'mf_peak_hi'])"
    assert len(calls) == 4


def test_suite_fits_refits_fits_of_other_settings_code_or_values(tmp_path, monkeypatch):
    from dataclasses import replace

    from massive_activations.fitting import procedures

    p = {"A": 20.0, "lam": 0.05, "gam": 1e-4, "t0": 1.5, "K": 5.0}
    table = simulate_table({"m": {1: p}}, [0, 1, 2, 4, 8, 16, 64, 256, 1000, 4000],
                           suite="s", n_sequences=3, seed=0)  # fmt: skip
    real, real_settings = suite_fits_mod.fit_all, suite_fits_mod.fit_settings
    few = dict(hypotheses=("eq9",), procedures=("ours",), profile=())
    monkeypatch.setattr(suite_fits_mod, "fit_all", lambda t, **kw: real(t, **few, **kw))
    monkeypatch.setattr(suite_fits_mod, "fit_settings", lambda **kw: real_settings(**few, **kw))

    def source(t=table, **kw):
        return suite_fits(t, tmp_path, "s", n_bootstrap=0, n_jobs=1, **kw)[1]

    recorded = real_settings(**few, n_bootstrap=0)
    assert recorded["procedures"]["ours"]["max_nfev"] == procedures.OURS.max_nfev
    assert (
        recorded["hypotheses"] == ["eq9"] and recorded["fit_version"] == suite_fits_mod.FIT_VERSION
    )
    assert recorded["n_bootstrap"] == 0 and recorded["window"] is None and "n_jobs" not in recorded
    with pytest.raises(TypeError, match=r"no argument\(s\) \['windows'\]"):
        real_settings(windows="full")
    assert source() == "fitted now"
    read = registry.read("fits.parquet", tmp_path, "s")  # the record survives the Parquet file
    assert read.attrs["fit_settings"] == real_settings(**few, n_bootstrap=0, window="from_min")
    assert read.attrs["input_digest"] == suite_fits_mod.input_digest(table)
    assert source() == "read from fits.parquet"
    # another setting of the call, another budget of a procedure, a new version of the code
    assert (
        source(seed=1) == "fitted now (fits.parquet was fitted with other settings: seed: 0 -> 1)"
    )
    ours = procedures.PROCEDURES["ours"]
    monkeypatch.setitem(procedures.PROCEDURES, "ours", replace(ours, max_nfev=ours.max_nfev + 1))
    assert source(seed=1) == (
        "fitted now (fits.parquet was fitted with other settings: procedures.ours.max_nfev: "
        f"{ours.max_nfev} -> {ours.max_nfev + 1})"
    )
    monkeypatch.setattr(suite_fits_mod, "FIT_VERSION", suite_fits_mod.FIT_VERSION + 1)
    assert source(seed=1).endswith(
        f"fit_version: {suite_fits_mod.FIT_VERSION - 1} -> {suite_fits_mod.FIT_VERSION})"
    )
    assert source(seed=1) == "read from fits.parquet"
    # other activation values (regenerated data) under the same models and layers
    louder = table.assign(top1=table["top1"] * 1.01)
    assert (
        source(louder, seed=1) == "fitted now (fits.parquet was fitted on other activation values)"
    )
    assert source(louder, seed=1) == "read from fits.parquet"
    # a file from before the record
    bare = registry.read("fits.parquet", tmp_path, "s")
    bare.attrs = {}
    bare.to_parquet(registry.path("fits.parquet", tmp_path, "s"), index=False)
    assert source(louder, seed=1) == (
        "fitted now (fits.parquet does not record the settings and data it was fitted with)"
    )
