"""A byte-level BPE tokenizer trained locally, the fixed held-out split, and the token streams.

* :func:`split_documents`: a document is held out when a hash of (seed, its name) falls below
  the held-out fraction, so the split is fixed, independent of document order, and adding a
  document never moves another one.
* :func:`train_tokenizer`: byte-level BPE (:mod:`tokenizers`) trained on the training
  documents only, with one special token, :data:`EOT`, that separates documents.
* :func:`encode_documents`: one token stream per split, documents joined by :data:`EOT`.
* :func:`prepare_tokens`: all three, cached under ``<cache>/tokens/<key>/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from massive_activations.suite.corpus import Corpus, Document, cache_root

__all__ = [
    "EOT",
    "TokenData",
    "encode_documents",
    "hf_tokenizer",
    "prepare_tokens",
    "split_documents",
    "train_tokenizer",
]

#: The end-of-text token: between documents, and (in the suite's second regime) first in
#: every training sequence.  Its id is 0.
EOT = "<|endoftext|>"

#: Bumped whenever tokenizer training or encoding changes, so that caches are rebuilt.
TOKENIZER_VERSION = 1


def split_documents(
    documents: Sequence[Document], heldout_fraction: float, seed: int
) -> tuple[list[Document], list[Document]]:
    """Split documents into training and held-out sets, fixed by ``seed``.

    Parameters
    ----------
    documents : sequence of Document
        The corpus documents (unique names).
    heldout_fraction : float
        Expected fraction of documents held out, in (0, 1).
    seed : int
        Changes which documents are held out.

    Returns
    -------
    (train, heldout) : two lists of Document
        In the input order.  At least one document in each.
    """
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be in (0, 1); got {heldout_fraction}.")
    train, heldout = [], []
    for d in documents:
        digest = hashlib.sha256(f"{seed}\0{d.name}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        (heldout if u < heldout_fraction else train).append(d)
    if not train or not heldout:
        raise ValueError(
            f"Splitting {len(documents)} documents with heldout_fraction={heldout_fraction} "
            f"and seed={seed} leaves {len(train)} for training and {len(heldout)} held out; "
            "use more documents or another fraction."
        )
    return train, heldout


def train_tokenizer(documents: Sequence[Document], vocab_size: int):
    """Train a byte-level BPE tokenizer with the special token :data:`EOT` (id 0).

    Parameters
    ----------
    documents : sequence of Document
        Training documents (never the held-out ones).
    vocab_size : int
        Vocabulary size including the 256 byte tokens and :data:`EOT`.

    Returns
    -------
    tokenizers.Tokenizer
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < 258:
        raise ValueError(f"vocab_size must be >= 258 (256 bytes + EOT + 1); got {vocab_size}.")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((d.text for d in documents), trainer, length=len(documents))
    return tok


def hf_tokenizer(tokenizer):
    """Wrap a :class:`tokenizers.Tokenizer` for ``save_pretrained`` next to a checkpoint.

    :data:`EOT` is the BOS, EOS and padding token; no special tokens are added on encoding
    (as Pythia's tokenizer).
    """
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=EOT, eos_token=EOT, pad_token=EOT
    )


def encode_documents(tokenizer, documents: Sequence[Document], *, batch: int = 256) -> np.ndarray:
    """One token stream: every document followed by :data:`EOT`, as ``uint16``.

    Parameters
    ----------
    tokenizer : tokenizers.Tokenizer
        From :func:`train_tokenizer`.
    documents : sequence of Document
        In the order they are joined.
    batch : int
        Documents encoded per call (in parallel by :mod:`tokenizers`).

    Returns
    -------
    numpy.ndarray of uint16
    """
    eot = tokenizer.token_to_id(EOT)
    if tokenizer.get_vocab_size() > 2**16:
        raise ValueError("encode_documents stores uint16 ids; the vocabulary exceeds 65,536.")
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    parts = []
    for start in range(0, len(documents), batch):
        texts = [d.text for d in documents[start : start + batch]]
        for enc in encode(texts, add_special_tokens=False):
            parts.append(np.asarray(enc.ids, dtype=np.uint16))
            parts.append(np.asarray([eot], dtype=np.uint16))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)


@dataclass
class TokenData:
    """A trained tokenizer, the held-out split and both token streams.

    Attributes
    ----------
    tokenizer : tokenizers.Tokenizer
    train, heldout : numpy.ndarray of uint16
        Token streams (documents joined by :data:`EOT`).
    heldout_documents : list of Document
        The held-out documents (for Sun et al.'s evaluation sequences).
    key : str
        Cache key: hashes the corpus, the split and the tokenizer settings.
    info : dict
        Corpus name and sha256, document and token counts, the tokenizer's sha256.
    """

    tokenizer: object
    train: np.ndarray
    heldout: np.ndarray
    heldout_documents: list[Document]
    key: str
    info: dict

    @property
    def eot_id(self) -> int:
        """Token id of :data:`EOT`."""
        return int(self.tokenizer.token_to_id(EOT))

    @property
    def vocab_size(self) -> int:
        """Number of tokens in the vocabulary."""
        return int(self.tokenizer.get_vocab_size())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def prepare_tokens(
    corpus: Corpus,
    vocab_size: int,
    *,
    heldout_fraction: float,
    split_seed: int,
    cache: Path | str | None = None,
) -> TokenData:
    """Split, train the tokenizer and encode both splits, or load them from the cache.

    Parameters
    ----------
    corpus : Corpus
        From :func:`massive_activations.suite.corpus.load_corpus`.
    vocab_size : int
        BPE vocabulary size.
    heldout_fraction, split_seed
        See :func:`split_documents`.
    cache : path, optional
        Cache root (default :func:`~massive_activations.suite.corpus.cache_root`); results go to
        ``<cache>/tokens/<key>/``.

    Returns
    -------
    TokenData
    """
    from tokenizers import Tokenizer

    settings = {
        "corpus": corpus.name,
        "corpus_sha256": corpus.sha256(),
        "vocab_size": int(vocab_size),
        "heldout_fraction": float(heldout_fraction),
        "split_seed": int(split_seed),
        "version": TOKENIZER_VERSION,
    }
    key = _sha256(json.dumps(settings, sort_keys=True).encode())[:12]
    folder = (Path(cache) if cache is not None else cache_root()) / "tokens" / key
    train_docs, heldout_docs = split_documents(corpus.documents, heldout_fraction, split_seed)
    if not (folder / "info.json").is_file():
        tok = train_tokenizer(train_docs, vocab_size)
        train_ids = encode_documents(tok, train_docs)
        heldout_ids = encode_documents(tok, heldout_docs)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".tmp-{key}-"))
        tok.save(str(tmp / "tokenizer.json"))
        np.save(tmp / "train.npy", train_ids)
        np.save(tmp / "heldout.npy", heldout_ids)
        info = {
            **settings,
            "documents": len(corpus.documents),
            "train_documents": len(train_docs),
            "heldout_documents": len(heldout_docs),
            "chars": corpus.n_chars,
            "train_tokens": int(train_ids.size),
            "heldout_tokens": int(heldout_ids.size),
            "tokenizer_sha256": _sha256((tmp / "tokenizer.json").read_bytes()),
        }
        (tmp / "info.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    info = json.loads((folder / "info.json").read_text())
    return TokenData(
        tokenizer=Tokenizer.from_file(str(folder / "tokenizer.json")),
        train=np.load(folder / "train.npy"),
        heldout=np.load(folder / "heldout.npy"),
        heldout_documents=heldout_docs,
        key=key,
        info=info,
    )
