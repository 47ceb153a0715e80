"""Reading a suite's data folder, the recipe comparison, and the notebooks' table loaders."""

import json

import pandas as pd
import pytest

from massive_activations import reference
from massive_activations.datasets import activations as activation_data
from massive_activations.suite import data as suite_data
from massive_activations.suite.configs import get_suite


def _fake_folder(root, suite="smoke"):
    folder = root / suite
    folder.mkdir(parents=True)
    rows = [
        {"suite": suite, "model": "m", "step": s, "layer": 1, "sequence": 0, "top1": 1.0 + s,
         "top2": 1.0, "top3": 1.0, "median": 0.5, "variant": v}
        for s in (0, 1, 2, 4, 8, 100)
        for v in ("raw", "eot_first")
    ]  # fmt: skip
    pd.DataFrame(rows).to_parquet(folder / "activations.parquet")
    pd.DataFrame({"model": ["m"], "step": [1], "train_loss": [3.0]}).to_parquet(
        folder / "training_log.parquet"
    )
    pd.DataFrame({"model": ["m"], "n_layers": [1]}).to_parquet(folder / "architectures.parquet")
    (folder / "manifest.json").write_text(json.dumps({"suite": {"name": suite}}))
    return folder


def test_read_suite_data_names_missing_files_and_the_fix(tmp_path):
    folder = _fake_folder(tmp_path)
    (folder / "training_log.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks \['training_log.parquet'\].*make_data"):
        suite_data.read_suite_data(folder)


def test_reuse_reads_the_folder_without_training(tmp_path, monkeypatch):
    _fake_folder(tmp_path)

    def boom(*args, **kwargs):
        raise AssertionError("make_data must not run when reuse=True and the data exist")

    monkeypatch.setattr("massive_activations.suite.make_data.make_data", boom)
    data = suite_data.load_suite_data("smoke", tmp_path, reuse=True)
    assert not data.built_now
    assert len(data.activations) == 12 and data.timings == {}  # 6 steps x 2 variants


def test_no_reuse_builds(tmp_path, monkeypatch):
    calls = []

    def fake_make_data(suite, *, out, cache, device, progress):
        calls.append((suite, out, device))
        _fake_folder(tmp_path)

    monkeypatch.setattr("massive_activations.suite.make_data.make_data", fake_make_data)
    data = suite_data.load_suite_data("smoke", tmp_path, reuse=False, device="cpu")
    assert calls == [("smoke", tmp_path, "cpu")] and data.built_now


def test_recipe_comparison_reads_both_sides_from_their_sources():
    table = suite_data.recipe_comparison("default")
    recipe = get_suite("default").recipe
    pt = reference.entry("pythia_architectures")["training"]
    assert table.loc["sequence length", "ours"] == f"{recipe.seq_len:,}"
    assert table.loc["sequence length", "pythia"] == f"{pt['seq_len']:,}"
    assert table.loc["tokens per step", "pythia"] == f"{pt['tokens_per_step']:,}"
    assert table.loc["models", "ours"] == str(len(get_suite("default").models))
    assert not table.isna().any().any()


def test_suite_activations_selects_checkpoints(tmp_path):
    _fake_folder(tmp_path)
    log = activation_data.suite_activations("smoke", tmp_path, checkpoints="log")
    assert sorted(log.step.unique()) == [0, 1, 2, 4, 8]
    picked = activation_data.suite_activations("smoke", tmp_path, checkpoints=[0, 100])
    assert sorted(picked.step.unique()) == [0, 100]
    assert set(picked.variant) == {"raw"}  # the paper's variant unless asked
    both = activation_data.suite_activations("smoke", tmp_path, variant=None)
    assert set(both.variant) == {"raw", "eot_first"}
    with pytest.raises(ValueError, match=r"no measurements of variant 'x'.*eot_first"):
        activation_data.suite_activations("smoke", tmp_path, variant="x")


def test_unknown_suite_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"Unknown suite 'mini'.*'default'.*pythia-70m"):
        activation_data.suite_activations("mini")


def test_evaluation_text_is_offline_and_stable():
    text = activation_data.evaluation_text()
    assert len(text) > 100_000 and text == activation_data.evaluation_text()
