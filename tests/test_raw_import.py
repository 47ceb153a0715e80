"""Importer of the paper's raw exp2_* files (Python literal, n_sequences x 4 x L)."""

from __future__ import annotations

import numpy as np
import pytest

from massive_activations.measurement.extract import main
from massive_activations.measurement.raw_import import MalformedRawFile, import_raw, read_raw_file
from massive_activations.measurement.store import TABLE_COLUMNS, ActivationStore, read_table


def _stats(seed: int, n_layers: int, n_seq: int = 10) -> list:
    """Statistics in the release's layout: [sequence][top1, top2, top3, median][layer]."""
    rng = np.random.default_rng(seed)
    top = -np.sort(-rng.uniform(1, 500, size=(n_seq, 3, n_layers)), axis=1)
    median = rng.uniform(0.01, 0.5, size=(n_seq, 1, n_layers))
    return np.concatenate([top, median], axis=1).tolist()


@pytest.fixture
def release(tmp_path):
    """A release-shaped folder: two models, three good files, three malformed ones."""
    stats = tmp_path / "pythia_70m" / "stats"
    stats.mkdir(parents=True)
    for step in (0, 1000):
        (stats / f"exp2_pythia_70m_step{step}").write_text(repr(_stats(step, 6)))
    big = tmp_path / "pythia_1b" / "stats"
    big.mkdir(parents=True)
    (big / "exp2_pythia_1b_step1000").write_text(repr(_stats(7, 16)))
    (big / "exp2_pythia_1b_step0").write_text(repr(_stats(8, 16))[:-40])  # truncated
    (big / "exp2_pythia_1b_step2000").write_text(repr(np.ones((10, 16, 4)).tolist()))
    (big / "exp2_pythia_1b_step3000").write_text("[[[1.0, nan]]]")
    return tmp_path


def test_read_raw_file_values(release):
    path = release / "pythia_70m" / "stats" / "exp2_pythia_70m_step1000"
    rows = read_raw_file(path)
    stats = np.array(_stats(1000, 6))
    assert (rows.model == "pythia-70m").all() and (rows.step == 1000).all()
    assert len(rows) == 10 * 6
    row = rows[(rows.layer == 4) & (rows.sequence == 7)].iloc[0]
    np.testing.assert_array_equal(row[["top1", "top2", "top3", "median"]], stats[7, :, 3])
    assert row.top1_position == -1 and row.status == "ok"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("exp2_pythia_1b_step0", "not a numeric Python literal"),
        ("exp2_pythia_1b_step2000", r"shape \(10, 16, 4\), expected"),
        ("exp2_pythia_1b_step3000", "not a numeric Python literal"),
    ],
)
def test_malformed_files_are_named(release, name, reason):
    with pytest.raises(MalformedRawFile, match=reason):
        read_raw_file(release / "pythia_1b" / "stats" / name)


def test_import_skips_malformed_and_writes_the_table(release, tmp_path):
    store = ActivationStore(tmp_path / "data", "paper")
    table, skipped = import_raw([release], store)
    assert sorted(p.name for p, _ in skipped) == [
        "exp2_pythia_1b_step0",
        "exp2_pythia_1b_step2000",
        "exp2_pythia_1b_step3000",
    ]
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert len(table) == 2 * 10 * 6 + 10 * 16
    assert set(zip(table.model, table.step, strict=True)) == {
        ("pythia-70m", 0),
        ("pythia-70m", 1000),
        ("pythia-1b", 1000),
    }
    assert (table.dtype == "float16").all() and (table.suite == "paper").all()
    again, _ = import_raw([release], store)  # idempotent: no duplicate rows
    assert again.equals(table)


def test_import_cli_reports_skipped_files(release, tmp_path, capsys):
    code = main(["import", "--suite", "paper", "--data-dir", str(tmp_path / "d"), str(release)])
    assert code == 0
    err = capsys.readouterr().err
    assert "skipped malformed file" in err and "exp2_pythia_1b_step0" in err
    assert len(read_table(tmp_path / "d" / "paper" / "activations.parquet")) == 280
    assert main(["import", "--suite", "paper", "--data-dir", str(tmp_path), "/no/such"]) == 2
