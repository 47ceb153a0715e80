import pytest

from massive_activations import reference


def test_every_entry_names_its_source():
    for name, e in reference.values().items():
        if isinstance(e, dict) and name not in ("paper",):
            assert e.get("source"), f"{name} has no source"


def test_tables_have_the_paper_shapes():
    models = reference.values()["models"]
    assert list(reference.table("table1_mean_r2").index) == models
    t2 = reference.table("table2_variability")
    assert list(t2.columns) == ["cv_pct", "sem_pct", "ci95_pct"]
    # SEM = CV / sqrt(10) in the paper's own numbers, to its rounding
    assert ((t2.cv_pct / 10**0.5 - t2.sem_pct).abs() < 0.006).all()
    t5 = reference.table("table5_mean_r2_by_hypothesis")
    assert list(t5.columns) == models and list(t5.index) == ["eq9", "eq14", "step1", "step2"]
    # Table 1 is Table 5's reparametrised row, to the paper's rounding (2.8B differs)
    t1 = reference.table("table1_mean_r2")["value"]
    assert (t1 - t5.loc["eq14"]).abs().max() < 0.006
    assert reference.table("pythia_architectures").loc["1B", "n_layers"] == 16
    # the release's row count and the headline's layer count follow from the Pythia table
    arch = reference.table("pythia_architectures")
    ckpts = reference.table("release_checkpoints")["value"]
    assert (ckpts * arch.n_layers).sum() == reference.entry("release_checkpoints")["total_rows"]
    assert arch.n_layers.sum() == reference.entry("headline_mean_r2")["n_layers"]


def test_unknown_entry_error_names_the_choices():
    with pytest.raises(KeyError, match=r"No reference entry 'tabel1'.*table1_mean_r2"):
        reference.entry("tabel1")
