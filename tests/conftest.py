"""Shared fixtures: tiny random GPT-NeoX and Llama models (built once per session)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

TINY_VOCAB = 128


def _tiny_neox(seed: int):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    config = GPTNeoXConfig(
        vocab_size=TINY_VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        rotary_pct=0.25,
    )
    return GPTNeoXForCausalLM(config).eval()


def _tiny_llama(seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=TINY_VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def make_tiny_neox():
    """Factory ``seed -> GPTNeoXForCausalLM`` (hidden 32, 2 layers, vocab 128)."""
    return _tiny_neox


@pytest.fixture(scope="session")
def tiny_neox():
    """One tiny random GPT-NeoX causal LM (seed 0); do not modify it in a test."""
    return _tiny_neox(0)


@pytest.fixture(scope="session")
def tiny_llama():
    """One tiny random Llama causal LM (seed 0); do not modify it in a test."""
    return _tiny_llama(0)


@pytest.fixture(scope="session")
def tiny_ids():
    """Token ids, shape (3, 16), seed 0."""
    return torch.randint(0, TINY_VOCAB, (3, 16), generator=torch.Generator().manual_seed(0))


def save_tiny_suite(root, models=("a", "b"), steps=(0, 1, 2, 4)):
    """Save tiny GPT-NeoX checkpoints as ``<root>/<model>/step<N>/`` (the suite cache layout)."""
    for i, model in enumerate(models):
        for step in steps:
            _tiny_neox(1000 * i + step).save_pretrained(root / model / f"step{step}")
    return root


def _commit(text: str) -> str:
    import hashlib

    return hashlib.sha1(text.encode()).hexdigest()


@pytest.fixture(scope="session")
def tiny_suite(tmp_path_factory):
    """A local suite folder: models ``a`` and ``b``, steps 0, 1, 2, 4 (seed 1000*i + step)."""
    return save_tiny_suite(tmp_path_factory.mktemp("suite") / "mini")


@pytest.fixture(scope="session")
def fake_hub(tmp_path_factory):
    """A Hugging Face cache laid out as the hub lays it out, holding a tiny stand-in for
    ``EleutherAI/pythia-14m`` at revisions ``step0`` (seed 0) and ``step1000`` (seed 1000):
    ``models--EleutherAI--pythia-14m/refs/step<N>`` holds a commit hash whose files are in
    ``snapshots/<commit>/``.  Use it with ``cache_dir=fake_hub`` and HF_HUB_OFFLINE=1.
    """
    cache = tmp_path_factory.mktemp("hf_cache")
    repo = cache / "models--EleutherAI--pythia-14m"
    (repo / "refs").mkdir(parents=True)
    for step in (0, 1000):
        commit = _commit(f"pythia-14m step{step}")
        _tiny_neox(step).save_pretrained(repo / "snapshots" / commit)
        (repo / "refs" / f"step{step}").write_text(commit)
    return cache


def _git_blob_sha1(data: bytes) -> str:
    import hashlib

    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lay_out_hub_cache(cache, repo_id: str, revisions: dict) -> None:
    """Lay out ``{revision: folder}`` as the hub cache does for ``repo_id`` under ``cache``.

    Each file goes to ``blobs/`` once, named as the hub names it (weight files by their
    sha256, as LFS files; others by their git blob sha1), and ``snapshots/<commit>/<file>``
    links to it; ``refs/<revision>`` holds the commit.
    """
    import hashlib
    import os
    from pathlib import Path

    repo = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    for revision, folder in revisions.items():
        commit = _commit(f"{repo_id}@{revision}")
        snapshot = repo / "snapshots" / commit
        snapshot.mkdir(parents=True)
        for path in sorted(Path(folder).iterdir()):
            data = path.read_bytes()
            weight = path.suffix in (".safetensors", ".bin")
            name = hashlib.sha256(data).hexdigest() if weight else _git_blob_sha1(data)
            blob = repo / "blobs" / name
            if not blob.exists():
                blob.write_bytes(data)
            os.symlink(os.path.join("..", "..", "blobs", name), snapshot / path.name)
        (repo / "refs" / revision).write_text(commit)


@pytest.fixture(scope="session")
def dup_hub(tmp_path_factory):
    """A hub cache whose step branches share weights, as EleutherAI/pythia issues 205/206 report.

    ``EleutherAI/pythia-70m`` (one ``model.safetensors``): step0 (seed 0); step1, step143000
    and main hold the same weights (seed 9); step2 and step1000 hold the same weights
    (seed 2).  ``EleutherAI/pythia-160m`` (three shards ``model-0000i-of-00003.safetensors``):
    step0 (seed 10), step2000 (seed 12), step143000 = main (seed 19), and step1000 (seed 11)
    whose first shard is main's.
    """
    import shutil

    saved = tmp_path_factory.mktemp("saved")
    cache = tmp_path_factory.mktemp("dup_hub")

    def save(seed: int, shards: bool = False):
        folder = saved / (f"seed{seed}" + ("-sharded" if shards else ""))
        if not folder.exists():
            kwargs = {"max_shard_size": "40KB"} if shards else {}
            _tiny_neox(seed).save_pretrained(folder, **kwargs)
        return folder

    whole = {"step0": save(0), "step1": save(9), "step2": save(2), "step1000": save(2)}
    whole.update({"step143000": save(9), "main": save(9)})
    lay_out_hub_cache(cache, "EleutherAI/pythia-70m", whole)
    mixed = saved / "seed11-with-main-shard1"
    shutil.copytree(save(11, True), mixed)
    first = "model-00001-of-00003.safetensors"
    shutil.copyfile(save(19, True) / first, mixed / first)
    sharded = {"step0": save(10, True), "step1000": mixed, "step2000": save(12, True)}
    sharded.update({"step143000": save(19, True), "main": save(19, True)})
    lay_out_hub_cache(cache, "EleutherAI/pythia-160m", sharded)
    return cache


def pytest_collection_modifyitems(config, items):
    """Under ``make mutation``, run a mutant's fastest tests first.

    mutmut runs the tests that reach a mutant with ``-x`` in the order of a set, which
    interleaves test files (rebuilding their module fixtures) and may start with the slow
    ones.  Here, while a mutant is under test, the files run fastest first (by the sum of
    their tests' durations that mutmut recorded in ``mutmut-stats.json``) and, within a
    file, the tests fastest first: a mutant dies at its cheapest failing test.  Outside
    mutation testing the order is pytest's.
    """
    import json
    from pathlib import Path

    if "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", ""):
        return
    stats = Path("mutmut-stats.json")  # mutmut runs the tests from mutants/
    try:
        durations = json.loads(stats.read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return
    per_file: dict[str, float] = {}
    for item in items:
        path = item.nodeid.split("::")[0]
        per_file[path] = per_file.get(path, 0.0) + durations.get(item.nodeid, 1.0)
    items.sort(key=lambda it: (per_file[it.nodeid.split("::")[0]], durations.get(it.nodeid, 1.0)))
