"""Data folders match their manifests: the committed ones, and verify_manifest itself."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from massive_activations import provenance, registry
from massive_activations.book import repo_root

ROOT = repo_root()


def committed_data_folders() -> list[Path]:
    """Folders ``data/<suite>/`` whose ``manifest.json`` is tracked by git."""
    out = subprocess.run(
        ["git", "ls-files", "data"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return sorted({(ROOT / p).parent for p in out if Path(p).name == "manifest.json"})


def test_committed_data_folders_match_their_manifests():
    """Runs (and passes) with no committed data too: then there is nothing to contradict."""
    problems = {str(f): provenance.verify_manifest(f) for f in committed_data_folders()}
    assert problems == {str(f): [] for f in committed_data_folders()}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def folder(tmp_path) -> Path:
    """A data folder as ``make data`` writes it (small stand-in files)."""
    folder = tmp_path / "data" / "mini"
    folder.mkdir(parents=True)
    pd.DataFrame({"a": [1, 2]}).to_parquet(folder / "activations.parquet")
    (folder / "settings.json").write_text('{"n": 1}\n')
    (folder / "eval_tokens.npy").write_bytes(b"\x93NUMPY fake")
    files = {p.name: _sha(p) for p in sorted(folder.iterdir())}
    (folder / "manifest.json").write_text(json.dumps({"files": files}, indent=1) + "\n")
    (folder / "timings.json").write_text("{}\n")
    # ignored: dotfiles, parts/, shard tables
    (folder / ".activations.parquet.123.tmp").write_text("half-written")
    (folder / "parts" / "m" / "float32").mkdir(parents=True)
    (folder / "parts" / "m" / "float32" / "step0.parquet").write_text("part")
    (folder / "activations.shard-0-of-2.parquet").write_text("shard")
    return folder


def test_a_folder_as_written_has_no_problem(folder):
    assert provenance.verify_manifest(folder) == []


def test_a_changed_file_is_named_with_both_digests_and_the_fix(folder):
    path = folder / "settings.json"
    old = _sha(path)
    path.write_text('{"n": 2}\n')
    (problem,) = provenance.verify_manifest(folder)
    assert str(path) in problem
    assert old in problem and _sha(path) in problem
    assert "rerun `make data` or the notebook that writes it" in problem


def test_a_missing_file_is_named(folder):
    (folder / "eval_tokens.npy").unlink()
    (problem,) = provenance.verify_manifest(folder)
    assert "eval_tokens.npy is listed in" in problem and "but missing" in problem


def test_an_unlisted_file_is_named(folder):
    (folder / "extra.csv").write_text("x\n")
    (problem,) = provenance.verify_manifest(folder)
    assert "extra.csv is not listed in" in problem and "update_manifest" in problem


def test_a_folder_without_manifest_is_one_problem(tmp_path):
    (problem,) = provenance.verify_manifest(tmp_path)
    assert "has no manifest.json" in problem and "make data" in problem


def test_derived_files_are_recorded_by_their_writers(folder, monkeypatch):
    monkeypatch.setenv(provenance.NOTEBOOK_ENV, "04_fitting")
    path = registry.path("fits.parquet", folder.parent, folder.name)
    registry.atomic_write(path, pd.DataFrame({"r2": [0.5]}).to_parquet)
    provenance.update_manifest(folder, path)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["derived"] == {
        "fits.parquet": {"sha256": _sha(path), "written_by": "04_fitting"}
    }
    assert "fits.parquet" not in manifest["files"]
    assert provenance.verify_manifest(folder) == []
    # rewritten by hand afterwards: detected, naming the notebook that wrote it
    pd.DataFrame({"r2": [0.9]}).to_parquet(path)
    (problem,) = provenance.verify_manifest(folder)
    assert "fits.parquet has sha256" in problem and "written by 04_fitting" in problem


def test_update_manifest_defaults_to_python_and_leaves_other_folders_alone(folder, tmp_path):
    (folder / "features.parquet").write_text("f")
    entry = provenance.update_manifest(folder, folder / "features.parquet")
    assert entry == {"sha256": _sha(folder / "features.parquet"), "written_by": "python"}
    assert provenance.verify_manifest(folder) == []
    assert not [p for p in folder.iterdir() if p.name.startswith(".manifest")]  # atomic
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "fits.parquet").write_text("x")
    assert provenance.update_manifest(loose, loose / "fits.parquet") is None
    assert sorted(p.name for p in loose.iterdir()) == ["fits.parquet"]


def test_every_derived_writer_updates_the_manifest(folder):
    from massive_activations import prediction

    feats = prediction.layer_features("L2-d32-h2")
    registry.write(feats, "features.parquet", folder.parent, folder.name)
    results = pd.DataFrame([dict.fromkeys(prediction.RESULT_COLUMNS, 0)])
    registry.write(results, "predictor.parquet", folder.parent, folder.name)
    derived = json.loads((folder / "manifest.json").read_text())["derived"]
    assert sorted(derived) == ["features.parquet", "predictor.parquet"]
    assert provenance.verify_manifest(folder) == []
