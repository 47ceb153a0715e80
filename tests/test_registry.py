"""The registry of data files: paths, reads, checked writes, and a column dictionary that
covers every table the code writes."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_manifest import committed_data_folders

from massive_activations import registry
from massive_activations.measurement import store
from massive_activations.registry import undocumented


def test_the_pattern_names_are_the_fits_parameter_names():
    from massive_activations.fitting.fit_all import PARAM_NAMES

    assert registry.param_names() == PARAM_NAMES


def test_every_file_make_data_writes_is_registered():
    from massive_activations.suite.data import FILES
    from massive_activations.suite.make_data import DETERMINISTIC_FILES

    for name in (*DETERMINISTIC_FILES, *FILES, "timings.json"):
        registry.entry(name)


def test_an_unknown_file_names_the_registry_and_its_files():
    with pytest.raises(KeyError, match=r"data_files\.yml.*fits\.parquet"):
        registry.path("fit.parquet", "data", "default")


def test_a_missing_file_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        registry.read("fits.parquet", tmp_path, "mini")
    assert str(tmp_path / "mini" / "fits.parquet") in str(info.value)
    assert "execute chapter 4 first" in str(info.value)
    with pytest.raises(FileNotFoundError, match="--suite mini"):
        registry.read("training_log.parquet", tmp_path, "mini")
    assert registry.read_optional("fits.parquet", tmp_path, "mini") is None


def test_write_checks_columns_against_the_registry(tmp_path):
    table = pd.DataFrame({c: ["x"] for c in registry.required_columns("ledger.csv")})
    path = registry.write(table, "ledger.csv", tmp_path, "mini")
    assert path == registry.path("ledger.csv", tmp_path, "mini")
    pd.testing.assert_frame_equal(registry.read("ledger.csv", tmp_path, "mini"), table)
    with pytest.raises(ValueError, match=r"missing columns \['verdict'\]"):
        registry.write(table.drop(columns="verdict"), "ledger.csv", tmp_path, "mini")
    with pytest.raises(ValueError, match=r"undocumented columns \['mood'\]"):
        registry.write(table.assign(mood="ok"), "ledger.csv", tmp_path, "mini")
    assert not list(path.parent.glob(".*tmp"))  # nothing half-written


def test_write_records_the_file_in_the_folders_manifest(tmp_path):
    folder = tmp_path / "mini"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"files": {}}))
    table = pd.DataFrame({c: ["x"] for c in registry.required_columns("ledger.csv")})
    registry.write(table, "ledger.csv", tmp_path, "mini")
    derived = json.loads((folder / "manifest.json").read_text())["derived"]
    assert list(derived) == ["ledger.csv"] and len(derived["ledger.csv"]["sha256"]) == 64


def test_every_column_of_every_committed_table_is_documented():
    """Runs with no committed data too; the tests below cover the tables the code makes."""
    missing = {}
    for folder in committed_data_folders():
        for path in sorted(folder.glob("*.parquet")):
            names = pq.read_schema(path).names
            if gaps := undocumented(path.name, names):
                missing[str(path)] = gaps
    assert missing == {}


def test_activation_table_columns_are_documented():
    assert undocumented("activations.parquet", [*store.TABLE_COLUMNS, "attn_first_pos"]) == []


def test_training_log_columns_are_documented():
    from massive_activations.suite.train import _log_frame

    log = _log_frame({"step": [1], "loss": [3.0], "lr": [1e-3], "grad_norm": [1.0]}, {0: 4.0})
    assert undocumented("training_log.parquet", ["model", *log.columns]) == []


def test_architecture_columns_are_documented():
    from massive_activations.suite.configs import get_suite
    from massive_activations.suite.make_data import _architectures

    suite = get_suite("smoke")
    data = SimpleNamespace(vocab_size=64, eot_id=0)
    folders = {m.name: Path(f"runs/{m.name}-abc123") for m in suite.models}
    logs = pd.DataFrame(
        [
            {"model": m.name, "step": s, "train_loss": 3.0, "val_loss": 3.1}
            for m in suite.models
            for s in (0, 1)
        ]
    )
    table = _architectures(suite, data, folders, logs)
    assert undocumented("architectures.parquet", table.columns) == []


def test_fits_columns_are_documented():
    from massive_activations import curve
    from massive_activations.fitting.fit_all import fit_row
    from massive_activations.fitting.hypotheses import HYPOTHESES
    from massive_activations.fitting.procedures import fit_series

    steps = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000], float)
    y = curve.eq9(steps, A=50.0, lam=0.02, gam=0.002, t0=1.0, K=20.0)
    keys = dict(suite="s", model="m", layer=1, n_layers=2, relative_depth=0.5, quantity="ratio")
    columns = set()
    for hypothesis in HYPOTHESES:
        fit = fit_series(steps, y, hypothesis=hypothesis, procedure="ours")
        columns |= set(fit_row(fit, **keys))
    assert undocumented("fits.parquet", sorted(columns)) == []
    assert undocumented("fits.parquet", ["A_nonsense", "nonsense_stderr"]) == [
        "A_nonsense",
        "nonsense_stderr",
    ]


def test_predictor_features_importance_and_ledger_columns_are_documented():
    from massive_activations import audit, prediction
    from massive_activations.prediction import importance

    assert undocumented("predictor.parquet", prediction.RESULT_COLUMNS) == []
    assert undocumented("features.parquet", prediction.layer_features("L2-d32-h2").columns) == []
    assert undocumented("importance.parquet", importance._COLUMNS) == []
    assert undocumented("ledger.csv", audit.LEDGER_COLUMNS) == []


def test_every_entry_says_what_it_holds_who_writes_it_and_each_column_unit_and_meaning():
    chapters = {p.stem for p in Path(__file__).parents[1].joinpath("notebooks").glob("*.py")}
    for name, record in registry.files().items():
        for key in ("holds", "written_by", "chapter", "fix"):
            assert str(record.get(key, "")).strip(), (name, key)
        assert record["chapter"] in chapters, (name, record["chapter"])
        for column, c in (record.get("columns") or {}).items():
            assert c["unit"].strip() and c["meaning"].strip(), (name, column)
