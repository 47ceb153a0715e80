"""Weight digests before extraction: revisions serving another step's weights are named and
skipped (or measured and flagged), whole files and single shards, hub cache and hub API."""

from __future__ import annotations

import hashlib
import re
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import httpx2
import numpy as np
import pandas as pd
import pytest
from huggingface_hub.errors import RevisionNotFoundError
from huggingface_hub.hf_api import BlobLfsInfo, RepoSibling

from massive_activations.measurement.extract import extract, main
from massive_activations.measurement.integrity import identical_statistics
from massive_activations.measurement.sources import (
    CheckpointError,
    local_checkpoints,
    pythia_checkpoints,
)
from massive_activations.measurement.store import ActivationStore
from massive_activations.measurement.weights import (
    DuplicateWeightsWarning,
    cached_digests,
    flagged_checkpoints,
    hub_digests,
    loaded_weight_files,
    read_record,
    weight_record,
    with_flags,
)

SHARD1 = "model-00001-of-00003.safetensors"


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _snapshot(cache: Path, repo: str, revision: str) -> Path:
    folder = cache / ("models--" + repo.replace("/", "--"))
    return folder / "snapshots" / (folder / "refs" / revision).read_text()


def test_loaded_weight_files():
    names = [
        "config.json",
        "pytorch_model.bin",
        "model.safetensors",
        "model.safetensors.index.json",
    ]
    assert loaded_weight_files(names) == ["model.safetensors"]
    shards = ["pytorch_model-00002-of-00002.bin", "pytorch_model-00001-of-00002.bin", "x.bin"]
    assert loaded_weight_files(shards) == shards[1::-1]
    assert loaded_weight_files(["config.json"]) == []


def test_cached_digests_are_the_files_sha256(dup_hub):
    for repo, revision in [("EleutherAI/pythia-70m", "step2"), ("EleutherAI/pythia-160m", "main")]:
        digests = cached_digests(repo, revision, dup_hub)
        snapshot = _snapshot(dup_hub, repo, revision)
        files = sorted(p.name for p in snapshot.iterdir() if p.suffix == ".safetensors")
        assert sorted(digests) == files
        assert digests == {name: _sha(snapshot / name) for name in files}
    with pytest.raises(CheckpointError, match=r"'step5'.*cached revisions: main, step0"):
        cached_digests("EleutherAI/pythia-70m", "step5", dup_hub)


def test_whole_file_duplicates_are_named_and_not_measured(dup_hub, tiny_ids, tmp_path):
    ckpts = pythia_checkpoints("pythia-70m", [0, 1, 2, 1000, 143000], cache_dir=dup_hub)
    store = ActivationStore(tmp_path, "p")
    with pytest.warns(DuplicateWeightsWarning, match="3 checkpoint") as caught:
        table = extract(ckpts, tiny_ids, store, progress=False)
    text = str(caught[0].message)
    assert "pythia-70m step 1: same weights as main; also step143000" in text
    assert "pythia-70m step 2: same weights as step1000" in text
    assert "pythia-70m step 1000: same weights as step2" in text
    assert sorted(table.step.unique()) == [0, 143000]
    record = read_record(tmp_path, "p")
    assert len(record) == 5 and (record.weights_file == "model.safetensors").all()
    for row in record.itertuples():
        snapshot = _snapshot(dup_hub, "EleutherAI/pythia-70m", f"step{row.step}")
        assert row.weights_sha256 == _sha(snapshot / "model.safetensors")
    assert dict(zip(record.step, record.duplicate_of, strict=True)) == {
        0: "",
        1: "main; also step143000",
        2: "step1000",
        1000: "step2",
        143000: "",
    }


def test_allow_duplicates_measures_and_flags(dup_hub, tiny_ids, tmp_path):
    ckpts = pythia_checkpoints("pythia-70m", [0, 1, 2, 1000, 143000], cache_dir=dup_hub)
    store = ActivationStore(tmp_path, "p")
    with pytest.warns(DuplicateWeightsWarning, match="measured anyway"):
        table = extract(ckpts, tiny_ids, store, progress=False, allow_duplicates=True)
    assert sorted(table.step.unique()) == [0, 1, 2, 1000, 143000]
    flagged = with_flags(table, read_record(tmp_path, "p"))
    assert len(flagged) == len(table)
    by_step = flagged.groupby("step").duplicate_of.first()
    assert by_step.to_dict() == {
        0: "",
        1: "main; also step143000",
        2: "step1000",
        1000: "step2",
        143000: "",
    }
    # the statistics check finds the same pairs without the weights
    found = identical_statistics(table)
    assert sorted(found.steps) == [(1, 143000), (2, 1000)]
    assert (found.model == "pythia-70m").all()
    assert found.detail.str.contains("bit-identical at all 2 layers x 3 sequences").all()


def test_one_shared_shard_is_named(dup_hub, tiny_ids, tmp_path):
    ckpts = pythia_checkpoints("pythia-160m", [0, 1000, 2000, 143000], cache_dir=dup_hub)
    store = ActivationStore(tmp_path, "p")
    with pytest.warns(DuplicateWeightsWarning, match="1 checkpoint") as caught:
        table = extract(ckpts, tiny_ids, store, progress=False)
    assert f"step 1000: same weights as {SHARD1} = main; also step143000" in str(caught[0].message)
    assert sorted(table.step.unique()) == [0, 2000, 143000]
    record = read_record(tmp_path, "p")
    assert len(record) == 4 * 3  # one row per shard
    shared = record[record.duplicate_of != ""]
    assert list(zip(shared.step, shared.weights_file, strict=True)) == [(1000, SHARD1)]
    assert flagged_checkpoints(record).to_dict("records") == [
        {"model": "pythia-160m", "step": 1000, "duplicate_of": f"{SHARD1} = main; also step143000"}
    ]
    main_digest = _sha(_snapshot(dup_hub, "EleutherAI/pythia-160m", "main") / SHARD1)
    assert record.set_index(["step", "weights_file"]).loc[(1000, SHARD1)].weights_sha256 == (
        main_digest
    )


def test_command_line_names_the_duplicates(dup_hub, tmp_path, capsys):
    ids = tmp_path / "ids.npy"
    np.save(ids, np.random.default_rng(0).integers(0, 128, size=64))
    args = ["extract", "--suite", "p", "--data-dir", str(tmp_path), "--pythia", "pythia-70m"]
    args += ["--steps", "0,1,143000", "--cache-dir", str(dup_hub), "--tokens", str(ids)]
    args += ["--n-sequences", "2", "--seq-len", "8", "--no-progress"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert re.search(r"not measured.*\n  pythia-70m step 1: same weights as main", err, re.S)
    table = pd.read_parquet(tmp_path / "p" / "activations.parquet")
    assert sorted(table.step.unique()) == [0, 143000]
    assert main([*args, "--allow-duplicates"]) == 0
    table = pd.read_parquet(tmp_path / "p" / "activations.parquet")
    assert sorted(table.step.unique()) == [0, 1, 143000]


def test_local_series_are_hashed_and_compared(tiny_suite, tmp_path):
    record = weight_record(local_checkpoints(tiny_suite))
    assert len(record) == 8 and (record.duplicate_of == "").all()
    for row in record.itertuples():
        assert row.weights_sha256 == _sha(
            tiny_suite / row.model / f"step{row.step}" / row.weights_file
        )
    copy = tmp_path / "mini"
    shutil.copytree(tiny_suite / "b", copy / "b")
    shutil.copytree(copy / "b" / "step2", copy / "b" / "step3")  # a step saved twice
    record = weight_record(local_checkpoints(copy))
    assert dict(zip(record.step, record.duplicate_of, strict=True)) == {
        0: "",
        1: "",
        2: "step3",
        3: "step2",
        4: "",
    }


class _FakeApi:
    """``model_info(files_metadata=True)`` as the hub answers it, from a table of revisions."""

    def __init__(self, revisions):
        self.revisions = revisions
        self.calls = []

    def model_info(self, repo_id, *, revision, files_metadata):
        self.calls.append((repo_id, revision, files_metadata))
        if revision not in self.revisions:
            response = httpx2.Response(404, request=httpx2.Request("GET", "https://hub"))
            raise RevisionNotFoundError("no such revision", response=response)
        siblings = [RepoSibling(rfilename="config.json", size=700, blob_id="a" * 40)]
        for name, sha in self.revisions[revision].items():
            lfs = BlobLfsInfo(size=10, sha256=sha, pointer_size=130)
            siblings.append(RepoSibling(rfilename=name, size=10, blob_id="b" * 40, lfs=lfs))
        return SimpleNamespace(siblings=siblings)


def test_hub_api_metadata(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr("massive_activations.measurement.weights.is_offline_mode", lambda: False)

    def shards(first: str, second: str, third: str) -> dict:
        names = [f"pytorch_model-0000{i}-of-00003.bin" for i in (1, 2, 3)]
        return {n: c * 64 for n, c in zip(names, (first, second, third), strict=True)}

    api = _FakeApi(
        {
            "step49000": shards("1", "2", "3"),
            "step50000": shards("f", "5", "6"),  # the final first shard, as pythia-12b's
            "step143000": shards("f", "8", "9"),
            "main": shards("f", "8", "9"),
        }
    )
    assert hub_digests("EleutherAI/pythia-12b", "step49000", api=api) == shards("1", "2", "3")
    assert api.calls[-1] == ("EleutherAI/pythia-12b", "step49000", True)
    record = weight_record(pythia_checkpoints("pythia-12b", [49000, 50000, 143000]), api=api)
    assert len(record) == 9
    assert flagged_checkpoints(record).to_dict("records") == [
        {
            "model": "pythia-12b",
            "step": 50000,
            "duplicate_of": "pytorch_model-00001-of-00003.bin = main; also step143000",
        }
    ]
    with pytest.raises(CheckpointError, match="has no revision 'step7'"):
        hub_digests("EleutherAI/pythia-12b", "step7", api=api)


def test_main_unknown_offline_is_said(fake_hub):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = weight_record(pythia_checkpoints("pythia-14m", [0, 1000], cache_dir=fake_hub))
    assert any("main are not known" in str(w.message) for w in caught)
    assert (record.duplicate_of == "").all() and len(record) == 2
