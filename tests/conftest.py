"""Shared fixtures: tiny random GPT-NeoX and Llama models (built once per session)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

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
