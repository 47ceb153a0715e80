"""Extraction on a local Ray instance (2 CPU workers): the in-process table, retries without
duplicates, failures reported with their reason, nothing redone over a finished suite."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from massive_activations.measurement import ray_executor
from massive_activations.measurement.extract import extract, main
from massive_activations.measurement.ray_executor import (
    ExtractionFailed,
    RayExecutor,
    UnitFailure,
    connect,
)
from massive_activations.measurement.sources import Checkpoint, local_checkpoints
from massive_activations.measurement.store import ActivationStore, read_table


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module (starting one takes ~15 s here)."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray, started = connect(RayExecutor(num_cpus=2))
    assert started
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def inprocess(tiny_suite, tiny_ids, tmp_path_factory):
    """The in-process table of the tiny local suite (8 checkpoints) and its folder."""
    root = tmp_path_factory.mktemp("inprocess")
    table = extract(local_checkpoints(tiny_suite), tiny_ids, ActivationStore(root, "mini"),
                    progress=False)  # fmt: skip
    return table, root


def test_local_instance_is_on_loopback_only(local_ray):
    nodes = local_ray.nodes()
    assert [n["NodeManagerAddress"] for n in nodes] == ["127.0.0.1"]
    assert local_ray.cluster_resources()["CPU"] == 2


def test_ray_table_equals_the_inprocess_table(local_ray, inprocess, tiny_suite, tiny_ids, tmp_path):
    expected, root = inprocess
    store = ActivationStore(tmp_path, "mini")
    table = extract(local_checkpoints(tiny_suite), tiny_ids, store, executor="ray", progress=False)
    pd.testing.assert_frame_equal(table, expected)
    pd.testing.assert_frame_equal(read_table(store.table_path), expected)
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "mini" / "checkpoints.parquet"),
        pd.read_parquet(root / "mini" / "checkpoints.parquet"),
    )
    # a second run over the finished suite does no work: Ray is not even asked
    parts = {p: p.stat().st_mtime_ns for p in store.parts_dir.rglob("*.parquet")}

    def refuse(*args, **kwargs):
        raise AssertionError("a finished suite must not start units")

    original = ray_executor.connect
    ray_executor.connect = refuse
    try:
        again = extract(local_checkpoints(tiny_suite), tiny_ids, store, executor="ray",
                        progress=False)  # fmt: skip
    finally:
        ray_executor.connect = original
    pd.testing.assert_frame_equal(again, expected)
    assert {p: p.stat().st_mtime_ns for p in store.parts_dir.rglob("*.parquet")} == parts


def test_failed_and_killed_tasks_are_retried_without_duplicates(
    local_ray, inprocess, tiny_suite, tiny_ids, tmp_path
):
    """One task raises on its first attempt, another's worker process dies (os._exit)."""
    marks = tmp_path / "marks"
    marks.mkdir()

    @dataclasses.dataclass(frozen=True)
    class Flaky(Checkpoint):
        mode: str = ""

        def load(self, **kwargs):
            mark = marks / f"{self.model}-{self.step}"
            if self.mode and not mark.exists():
                mark.write_text(self.mode)
                if self.mode == "die":
                    os._exit(1)
                raise RuntimeError("injected failure")
            return super().load(**kwargs)

    modes = {("a", 1): "raise", ("b", 2): "die"}
    ckpts = [
        Flaky(c.model, c.step, c.location, mode=modes.get(c.key, ""))
        for c in local_checkpoints(tiny_suite)
    ]
    store = ActivationStore(tmp_path, "mini")
    table = extract(ckpts, tiny_ids, store, executor=RayExecutor(retries=1), progress=False)
    assert sorted(p.name for p in marks.iterdir()) == ["a-1", "b-2"]  # both failed once
    pd.testing.assert_frame_equal(table, inprocess[0])
    assert not table.duplicated(["model", "step", "dtype", "variant", "layer", "sequence"]).any()
    assert len(list(store.parts_dir.rglob("*.parquet"))) == 8


def test_a_unit_that_always_fails_is_reported_and_the_rest_complete(
    local_ray, inprocess, tiny_suite, tiny_ids, tmp_path
):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_suite / "a" / "step2", broken / "c" / "step2")
    (broken / "c" / "step2" / "model.safetensors").write_bytes(b"not a safetensors file")
    ckpts = local_checkpoints(None, {"a": tiny_suite / "a", "c": broken / "c"})
    store = ActivationStore(tmp_path, "mini")
    with pytest.raises(ExtractionFailed, match=r"1 unit\(s\) failed") as raised:
        extract(ckpts, tiny_ids, store, executor=RayExecutor(retries=2), progress=False)
    (failure,) = raised.value.failures
    assert isinstance(failure, UnitFailure)
    assert (failure.model, failure.step, failure.dtype, failure.attempts) == ("c", 2, "float32", 3)
    assert failure.reason.startswith("CheckpointError: Cannot load checkpoint")
    expected = inprocess[0][inprocess[0].model == "a"].reset_index(drop=True)
    pd.testing.assert_frame_equal(raised.value.table, expected)
    pd.testing.assert_frame_equal(read_table(store.table_path), expected)
    assert not store.part_path("c", 2, "float32").exists()


def test_command_line(local_ray, inprocess, tiny_suite, tiny_ids, tmp_path, capsys):
    import numpy as np

    ids = tmp_path / "ids.npy"
    np.save(ids, tiny_ids.numpy())
    args = ["extract", "--suite", "mini", "--data-dir", str(tmp_path), "--local", str(tiny_suite)]
    args += ["--tokens", str(ids), "--n-sequences", "3", "--seq-len", "16", "--no-progress"]
    assert main([*args, "--address", "ray://nowhere:1"]) == 2
    assert "--address need --executor ray" in capsys.readouterr().err
    assert main([*args, "--executor", "ray", "--gpus-per-task", "2"]) == 2
    assert "gpus_per_task must be in (0, 1]" in capsys.readouterr().err
    assert main([*args, "--executor", "ray", "--retries", "1"]) == 0
    pd.testing.assert_frame_equal(read_table(Path(tmp_path) / "mini" / "activations.parquet"),
                                  inprocess[0])  # fmt: skip


def test_gpu_share_per_task(tiny_suite, tiny_ids):
    """The share asked of Ray: none off CUDA, the executor's, or derived (no GPU needed)."""
    units = local_checkpoints(tiny_suite, ["a"], [0, 1])
    shared = {"input_ids": tiny_ids, "dtype": "float16", "device": "cuda", "batch_size": 1}
    assert ray_executor._gpus(units, shared, RayExecutor()) == {"a": 0.125}  # a tiny model
    assert ray_executor._gpus(units, shared, RayExecutor(gpus_per_task=0.5)) == {"a": 0.5}
    assert ray_executor._gpus(units, {**shared, "device": "cpu"}, RayExecutor()) == {"a": 0.0}
    with pytest.raises(ValueError, match="pass --device cuda, not cuda:1"):
        ray_executor._gpus(units, {**shared, "device": "cuda:1"}, RayExecutor())
    with pytest.raises(ValueError, match="more than one GPU of 1 GiB"):
        ray_executor._gpus(units, shared, RayExecutor(gpu_memory_gib=1.0))
