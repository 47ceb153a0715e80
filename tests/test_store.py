"""The store: atomic parquet, resume after a failure or a kill, shards merge to the single run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch

from massive_activations.measurement import extract as extract_module
from massive_activations.measurement.extract import extract
from massive_activations.measurement.sources import Checkpoint, local_checkpoints
from massive_activations.measurement.store import (
    TABLE_COLUMNS,
    ActivationStore,
    find_shards,
    merge_tables,
    read_table,
    shard_jobs,
    write_table,
)


@pytest.fixture(scope="module")
def single_run(tiny_suite, tiny_ids, tmp_path_factory):
    """The uninterrupted, unsharded run over the tiny suite (8 checkpoints)."""
    store = ActivationStore(tmp_path_factory.mktemp("single"), "mini")
    return extract(local_checkpoints(tiny_suite), tiny_ids, store, progress=False)


def _count_loads(monkeypatch) -> list:
    loaded = []
    original = Checkpoint.load

    def counting(self, **kwargs):
        loaded.append(self.key)
        return original(self, **kwargs)

    monkeypatch.setattr(Checkpoint, "load", counting)
    return loaded


def test_table_layout(single_run):
    assert list(single_run.columns) == list(TABLE_COLUMNS)
    assert len(single_run) == 8 * 2 * 3  # checkpoints x layers x sequences
    assert not single_run.duplicated(["model", "step", "dtype", "layer", "sequence"]).any()
    assert (single_run.suite == "mini").all() and (single_run.dtype == "float32").all()


def test_resume_after_injected_failure(tiny_suite, tiny_ids, tmp_path, monkeypatch, single_run):
    store = ActivationStore(tmp_path, "mini")
    calls = []
    measure = extract_module.measure_inputs

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("injected failure")
        return measure(*args, **kwargs)

    monkeypatch.setattr(extract_module, "measure_inputs", failing)
    with pytest.raises(RuntimeError, match="injected"):
        extract(local_checkpoints(tiny_suite), tiny_ids, store, progress=False)
    assert len(store.done_units()) == 2 and not store.table_path.exists()
    monkeypatch.setattr(extract_module, "measure_inputs", measure)
    loaded = _count_loads(monkeypatch)
    resumed = extract(local_checkpoints(tiny_suite), tiny_ids, store, progress=False)
    assert len(loaded) == 6  # the two finished checkpoints are not recomputed
    pd.testing.assert_frame_equal(resumed, single_run)
    pd.testing.assert_frame_equal(read_table(store.table_path), single_run)
    loaded.clear()
    extract(local_checkpoints(tiny_suite), tiny_ids, store, progress=False)
    assert loaded == []  # a finished suite loads nothing


def test_resume_after_kill(tiny_suite, tiny_ids, tmp_path, monkeypatch, single_run):
    """SIGKILL a real run while it writes its third part file, then restart it."""
    ids_path = tmp_path / "ids.pt"
    torch.save(tiny_ids, ids_path)
    script = textwrap.dedent(
        f"""
        import os, signal
        import pandas as pd
        import torch
        from massive_activations.measurement.extract import extract
        from massive_activations.measurement.sources import local_checkpoints
        from massive_activations.measurement.store import ActivationStore

        writes = []
        original = pd.DataFrame.to_parquet

        def dying(self, path, *args, **kwargs):
            writes.append(path)
            if len(writes) == 3:
                with open(path, "wb") as f:
                    f.write(b"PAR1 half a file")
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, path, *args, **kwargs)

        pd.DataFrame.to_parquet = dying
        store = ActivationStore({str(tmp_path)!r}, "mini")
        extract(local_checkpoints({str(tiny_suite)!r}), torch.load({str(ids_path)!r}), store,
                progress=False)
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert run.returncode == -9, run.stderr.decode()[-2000:]
    store = ActivationStore(tmp_path, "mini")
    assert len(store.done_units()) == 2  # the half-written third part does not count
    assert list(store.parts_dir.rglob(".step*.tmp"))  # it was really killed mid-write
    loaded = _count_loads(monkeypatch)
    resumed = extract(local_checkpoints(tiny_suite), tiny_ids, store, progress=False)
    assert len(loaded) == 6
    pd.testing.assert_frame_equal(resumed, single_run)


def test_shards_merge_to_the_single_run(tiny_suite, tiny_ids, tmp_path, single_run):
    ckpts = local_checkpoints(tiny_suite)
    assert sorted(c.key for i in range(3) for c in shard_jobs(ckpts, f"{i}/3")) == sorted(
        c.key for c in ckpts
    )
    merged_store = ActivationStore(tmp_path / "merged", "mini")
    tables = []
    for i in range(3):  # independent machines: separate data folders
        store = ActivationStore(tmp_path / f"m{i}", "mini")
        shard = extract(ckpts, tiny_ids, store, shard=f"{i}/3", progress=False)
        assert 0 < len(shard) < len(single_run)
        path = store.shard_path(i, 3)
        tables.append(path)
    merged = merge_tables(tables, merged_store.table_path)
    pd.testing.assert_frame_equal(merged, single_run)
    with pytest.raises(ValueError, match="in both"):
        merge_tables([tables[0], tables[0]], tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="extract --shard"):
        find_shards(tmp_path / "nowhere")


def test_find_shards_reports_missing(tmp_path, single_run):
    store = ActivationStore(tmp_path, "mini")
    write_table(single_run, store.shard_path(0, 3))
    write_table(single_run.iloc[:0], store.shard_path(2, 3))
    with pytest.raises(ValueError, match=r"Shards \[1\] of 3 are missing"):
        find_shards(store.dir)
    write_table(single_run.iloc[:0], store.shard_path(1, 3))
    assert [p.name for p in find_shards(store.dir)][1] == "activations.shard-1-of-3.parquet"


def test_merge_keeps_other_units_and_settings_must_match(tmp_path, single_run):
    store = ActivationStore(tmp_path, "mini")
    write_table(single_run, store.table_path)
    update = single_run[single_run.model == "b"].assign(top1=1.0)
    write_table(update, tmp_path / "update.parquet")
    merged = merge_tables([tmp_path / "update.parquet"], store.table_path)
    assert len(merged) == len(single_run)
    assert (merged[merged.model == "b"].top1 == 1.0).all()
    pd.testing.assert_frame_equal(
        merged[merged.model == "a"].reset_index(drop=True),
        single_run[single_run.model == "a"].reset_index(drop=True),
    )
    store.check_settings({"seq_len": 16})
    store.check_settings({"seq_len": 16})
    with pytest.raises(ValueError, match=r"seq_len: stored 16, now 32.*delete"):
        store.check_settings({"seq_len": 32})


def test_write_table_is_checked_and_atomic(tmp_path, single_run):
    path = write_table(single_run.sample(frac=1, random_state=0), tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(read_table(path), single_run)  # sorted back
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]
    with pytest.raises(ValueError, match=r"lacks columns \['status'\]"):
        write_table(single_run.drop(columns="status"), tmp_path / "u.parquet")
    with pytest.raises(
        FileNotFoundError, match=r"run `python -m massive_activations\.measurement\.extract"
    ):
        read_table(tmp_path / "none.parquet")
    with pytest.raises(ValueError, match="Suite name"):
        ActivationStore(tmp_path, "../up")
