"""The held-out split, the byte-level BPE tokenizer, token streams and their cache."""

from __future__ import annotations

import numpy as np
import pytest

from massive_activations.suite import tokenizer as tokenizer_module
from massive_activations.suite.corpus import Corpus, Document, load_corpus
from massive_activations.suite.tokenizer import (
    EOT,
    encode_documents,
    hf_tokenizer,
    prepare_tokens,
    split_documents,
    train_tokenizer,
)


@pytest.fixture(scope="module")
def docs():
    """Twelve documents of the small corpus, cut to 8,000 characters (fast to train on)."""
    small = load_corpus("small").documents
    return [Document(d.name, d.text[:8000]) for d in small[::10]]


@pytest.fixture(scope="module")
def tok(docs):
    return train_tokenizer(docs, 300)


def test_split_is_fixed_by_seed_and_order_free():
    documents = [Document(f"doc{i}", "x") for i in range(2000)]
    train, heldout = split_documents(documents, 0.1, seed=0)
    assert len(train) + len(heldout) == 2000
    assert 150 < len(heldout) < 250
    assert not {d.name for d in train} & {d.name for d in heldout}
    _, again = split_documents(documents[::-1], 0.1, seed=0)
    assert {d.name for d in again} == {d.name for d in heldout}
    _, other = split_documents(documents, 0.1, seed=1)
    assert {d.name for d in other} != {d.name for d in heldout}
    # adding a document never moves another one
    _, more = split_documents([*documents, Document("new", "y")], 0.1, seed=0)
    assert {d.name for d in heldout} <= {d.name for d in more}


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_split_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match="heldout_fraction must be in"):
        split_documents([Document("a", "x")], fraction, seed=0)


def test_tokenizer_is_byte_level_with_eot_and_deterministic(docs, tok):
    assert tok.get_vocab_size() == 300
    assert tok.token_to_id(EOT) == 0
    text = "Wherefore art thou — naïve café? 🎭 def f(x): return x**2"
    assert tok.decode(tok.encode(text).ids) == text  # bytes never fall out of the vocabulary
    assert EOT not in tok.decode(tok.encode("plain text").ids)
    assert train_tokenizer(docs, 300).to_str() == tok.to_str()
    assert train_tokenizer(docs, 280).to_str() != tok.to_str()


def test_tokenizer_rejects_tiny_vocab(docs):
    with pytest.raises(ValueError, match="vocab_size must be >= 258"):
        train_tokenizer(docs, 100)


def test_encode_documents_joins_with_eot(docs, tok):
    ids = encode_documents(tok, docs[:3])
    assert ids.dtype == np.uint16
    ends = np.flatnonzero(ids == 0)
    assert len(ends) == 3 and ends[-1] == len(ids) - 1
    first = tok.encode(docs[0].text).ids
    assert ids[: len(first)].tolist() == first and ends[0] == len(first)


def test_hf_tokenizer_matches(tok):
    wrapped = hf_tokenizer(tok)
    text = "To be, or not to be"
    assert wrapped(text, add_special_tokens=False)["input_ids"] == tok.encode(text).ids
    assert wrapped.eos_token == EOT and wrapped.bos_token == EOT


def test_prepare_tokens_caches(docs, tmp_path, monkeypatch):
    corpus = Corpus("small", docs)
    first = prepare_tokens(corpus, 300, heldout_fraction=0.25, split_seed=0, cache=tmp_path)
    assert first.vocab_size == 300 and first.eot_id == 0
    assert first.info["train_tokens"] == first.train.size
    assert first.info["heldout_documents"] == len(first.heldout_documents) > 0

    def refuse(*args, **kwargs):
        raise AssertionError("retrained although cached")

    monkeypatch.setattr(tokenizer_module, "train_tokenizer", refuse)
    again = prepare_tokens(corpus, 300, heldout_fraction=0.25, split_seed=0, cache=tmp_path)
    assert again.key == first.key
    assert np.array_equal(again.train, first.train)
    assert np.array_equal(again.heldout, first.heldout)
    assert again.tokenizer.to_str() == first.tokenizer.to_str()
    with pytest.raises(AssertionError, match="retrained"):  # another split is another key
        prepare_tokens(corpus, 300, heldout_fraction=0.25, split_seed=1, cache=tmp_path)
