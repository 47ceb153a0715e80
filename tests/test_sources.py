"""Checkpoint sources: schedules, hub revisions from a hub-shaped cache, local suites, errors."""

from __future__ import annotations

import shutil

import pytest
import torch

from massive_activations.measurement.sources import (
    Checkpoint,
    CheckpointError,
    local_checkpoints,
    parse_dtype,
    pythia_checkpoints,
    select_steps,
)
from massive_activations.schedule import pythia_steps


def test_select_steps_schedules():
    steps = pythia_steps()
    assert select_steps(steps, "all") == steps
    assert select_steps(steps, "log") == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    every = select_steps(steps, "every-50")
    assert every == [0, 40000, 90000, 140000, 143000]  # every 50th from the first, plus the last
    assert select_steps(steps, "step0,1000, 143000") == [0, 1000, 143000]
    assert select_steps(steps, [2000, 1000, 1000]) == [1000, 2000]
    with pytest.raises(ValueError, match=r"\[1500\] are not checkpoints"):
        select_steps(steps, [1000, 1500])
    with pytest.raises(ValueError, match="every-K with K >= 1"):
        select_steps(steps, "every-0")
    with pytest.raises(ValueError, match="'all', 'log', 'every-K'"):
        select_steps(steps, "most")


def test_pythia_names_and_revisions(tmp_path):
    ckpts = pythia_checkpoints("1b-deduped", "log", cache_dir=tmp_path)
    assert ckpts[0] == Checkpoint(
        "pythia-1b-deduped", 0, "EleutherAI/pythia-1b-deduped", "step0", cache_dir=str(tmp_path)
    )
    assert [c.revision for c in ckpts][-1] == "step512"
    assert len(pythia_checkpoints("EleutherAI/pythia-70m")) == 154
    with pytest.raises(ValueError, match=r"Unknown Pythia model 'pythia-71m'.*14m, 70m"):
        pythia_checkpoints("pythia-71m")


def test_hub_revisions_resolve_offline(fake_hub, make_tiny_neox):
    """The Pythia code path resolves refs/step<N> -> snapshots/<commit> in a hub-shaped cache."""
    ckpts = pythia_checkpoints("pythia-14m", [0, 1000], cache_dir=fake_hub)
    for ckpt in ckpts:
        model = ckpt.load()
        expected = make_tiny_neox(ckpt.step).gpt_neox.embed_in.weight
        torch.testing.assert_close(model.gpt_neox.embed_in.weight, expected, rtol=0, atol=0)
        assert not model.training
    half = ckpts[0].load(dtype="fp16")
    assert half.gpt_neox.embed_in.weight.dtype == torch.float16


def test_hub_errors_name_the_input_and_the_fix(fake_hub, tmp_path):
    missing_revision = pythia_checkpoints("pythia-14m", [2000], cache_dir=fake_hub)[0]
    with pytest.raises(CheckpointError, match=r"'step2000'.*cached revisions: step0, step1000"):
        missing_revision.load()
    not_cached = pythia_checkpoints("pythia-70m", [0], cache_dir=fake_hub)[0]
    with pytest.raises(CheckpointError, match=r"pythia-70m.*not in the Hugging Face cache"):
        not_cached.load()
    broken = tmp_path / "hub"
    shutil.copytree(fake_hub, broken)
    for weights in broken.rglob("model.safetensors"):
        weights.write_bytes(b"not a safetensors file")
    corrupt = pythia_checkpoints("pythia-14m", [0], cache_dir=broken)[0]
    with pytest.raises(CheckpointError, match=r"Cannot load checkpoint .*step0.*delete"):
        corrupt.load()


def test_local_checkpoints(tiny_suite):
    ckpts = local_checkpoints(tiny_suite)
    assert [c.key for c in ckpts] == [(m, s) for m in "ab" for s in (0, 1, 2, 4)]
    assert [c.key for c in local_checkpoints(tiny_suite, ["b"], "log")] == [
        ("b", 0),
        ("b", 1),
        ("b", 2),
        ("b", 4),
    ]
    model = local_checkpoints(tiny_suite, ["b"], [2])[0].load(dtype="bf16")
    assert model.gpt_neox.embed_in.weight.dtype == torch.bfloat16
    with pytest.raises(
        CheckpointError, match=r"\['c'\] have no step<N>/ checkpoints.*\['a', 'b'\]"
    ):
        local_checkpoints(tiny_suite, ["c"])
    with pytest.raises(CheckpointError, match="No checkpoint folder"):
        local_checkpoints(tiny_suite / "nope")
    runs = local_checkpoints(None, {"run-b": tiny_suite / "b"}, [0, 4])  # runs kept elsewhere
    assert [(c.model, c.step, c.location) for c in runs] == [
        ("run-b", 0, str(tiny_suite / "b" / "step0")),
        ("run-b", 4, str(tiny_suite / "b" / "step4")),
    ]
    with pytest.raises(CheckpointError, match=r"\['x'\] have no step<N>/ checkpoints"):
        local_checkpoints(None, {"x": tiny_suite / "nope", "a": tiny_suite / "a"})
    with pytest.raises(CheckpointError, match="No checkpoint folder"):
        Checkpoint("a", 3, str(tiny_suite / "a" / "step3")).load()


def test_names_and_dtypes():
    assert parse_dtype("bf16") == ("bfloat16", torch.bfloat16)
    assert parse_dtype(torch.float16) == ("float16", torch.float16)
    with pytest.raises(ValueError, match="Unknown dtype 'int8'; use one of float32"):
        parse_dtype("int8")
    with pytest.raises(ValueError, match="letters, digits"):
        Checkpoint("a/b", 0, "x")
