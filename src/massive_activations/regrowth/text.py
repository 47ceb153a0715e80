"""The regrowth experiment's text: training windows and held-out evaluation windows.

The corpus (:func:`massive_activations.suite.corpus.load_corpus`; by default the Debian-docs
corpus) is split into training and held-out documents by
:func:`massive_activations.suite.tokenizer.split_documents`, so no training window shares a
document with an evaluation window:

* evaluation: ``n_eval`` windows, each the first ``seq_len`` tokens of a different held-out
  document (documents taken in an order drawn from ``data_seed``; shorter ones skipped);
  they give both the activation statistics and the held-out loss;
* training: the training documents in an order drawn from ``data_seed``, each followed by
  the end-of-text token, tokenized until the stream holds one pass of every step's windows
  (no window is seen twice); :class:`massive_activations.suite.train.Batches` then cuts it
  into windows and draws each step's batch.

With ``prepend_eos`` every window starts with the end-of-text token.  Tokenized text is
cached under ``<cache>/regrowth/text-<key>/`` (``key`` hashes the corpus, the tokenizer and
the settings), written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from massive_activations.regrowth.config import RegrowthConfig
from massive_activations.regrowth.models import Encoder, encoder_for
from massive_activations.suite.configs import Recipe
from massive_activations.suite.corpus import cache_root, load_corpus
from massive_activations.suite.tokenizer import split_documents
from massive_activations.suite.train import Batches

__all__ = ["RegrowthText", "batches", "prepare_text", "training_tokens_needed"]

#: Documents tokenized per call.
_CHUNK_DOCS = 64


@dataclass
class RegrowthText:
    """Tokenized text of one configuration.

    Attributes
    ----------
    train : numpy.ndarray
        The training token stream (documents joined by end-of-text).
    eval_ids : torch.LongTensor
        Evaluation windows, shape ``(n_eval, seq_len)``.
    eval_documents : list of str
        The held-out document of each evaluation window.
    eos_id : int
        The end-of-text token.
    key : str
        Cache key (corpus, tokenizer, settings).
    info : dict
        Corpus name, sha256, document counts and sources; tokenizer; token counts.
    """

    train: np.ndarray
    eval_ids: torch.Tensor
    eval_documents: list[str]
    eos_id: int
    key: str
    info: dict


def training_tokens_needed(config: RegrowthConfig) -> int:
    """Tokens of the training stream: one window per sequence of every step, plus one."""
    chunk = config.seq_len - int(config.prepend_eos)
    return (config.steps * config.batch_size + 1) * chunk


def _order(n: int, seed: int, stream: int) -> np.ndarray:
    return np.random.default_rng([seed, stream]).permutation(n)


def _eval_windows(docs, encoder: Encoder, config: RegrowthConfig) -> tuple[list, list[str]]:
    need = config.seq_len - int(config.prepend_eos)
    order = _order(len(docs), config.data_seed, 1)
    windows, names = [], []
    for start in range(0, len(order), _CHUNK_DOCS):
        chosen = [docs[i] for i in order[start : start + _CHUNK_DOCS]]
        for doc, ids in zip(chosen, encoder.encode([d.text for d in chosen]), strict=True):
            if len(ids) >= need:
                head = [encoder.eos_id] if config.prepend_eos else []
                windows.append(head + list(ids[:need]))
                names.append(doc.name)
            if len(windows) == config.n_eval:
                return windows, names
    raise ValueError(
        f"Only {len(windows)} held-out documents have {need} tokens or more, fewer than "
        f"n_eval={config.n_eval}: raise heldout_fraction (now {config.heldout_fraction}), or "
        "lower n_eval or seq_len."
    )


def _train_stream(docs, encoder: Encoder, config: RegrowthConfig) -> tuple[np.ndarray, int]:
    need = training_tokens_needed(config)
    order = _order(len(docs), config.data_seed, 2)
    parts, total, used = [], 0, 0
    for start in range(0, len(order), _CHUNK_DOCS):
        chosen = [docs[i] for i in order[start : start + _CHUNK_DOCS]]
        for ids in encoder.encode([d.text for d in chosen]):
            parts.append(np.asarray([*ids, encoder.eos_id], dtype=np.int64))
            total += len(ids) + 1
            used += 1
            if total >= need:
                dtype = np.uint16 if encoder.vocab_size <= 2**16 else np.int32
                return np.concatenate(parts).astype(dtype), used
    raise ValueError(
        f"The training documents hold {total} tokens, fewer than the {need} that {config.steps} "
        f"steps of {config.batch_size} x {config.seq_len} need: lower steps or batch_size, or use "
        "the large corpus."
    )


def prepare_text(
    config: RegrowthConfig,
    cache: Path | str | None = None,
    *,
    encoder: Encoder | None = None,
    progress: bool = True,
) -> RegrowthText:
    """Tokenize (or read from the cache) the configuration's training and evaluation text.

    Parameters
    ----------
    config : RegrowthConfig
    cache : path, optional
        Cache root (default :func:`massive_activations.suite.corpus.cache_root`); the large
        corpus is built there if missing (needs ``apt-get``).
    encoder : Encoder, optional
        The tokenizer (default :func:`massive_activations.regrowth.models.encoder_for`).
    progress : bool
        Progress bar while the large corpus is built.
    """
    root = Path(cache) if cache is not None else cache_root()
    encoder = encoder or encoder_for(config, root)
    corpus = load_corpus(config.corpus, cache=root, progress=progress)
    settings = {
        "corpus": corpus.name,
        "corpus_sha256": corpus.sha256(),
        "tokenizer": encoder.name,
        "eos_id": encoder.eos_id,
        "vocab_size": encoder.vocab_size,
        "heldout_fraction": config.heldout_fraction,
        "split_seed": config.split_seed,
        "n_eval": config.n_eval,
        "seq_len": config.seq_len,
        "prepend_eos": config.prepend_eos,
        "data_seed": config.data_seed,
        "train_tokens_needed": training_tokens_needed(config),
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    folder = root / "regrowth" / f"text-{key}"
    if not (folder / "info.json").is_file():
        train_docs, heldout_docs = split_documents(
            corpus.documents, config.heldout_fraction, config.split_seed
        )
        windows, names = _eval_windows(heldout_docs, encoder, config)
        stream, used = _train_stream(train_docs, encoder, config)
        info = {
            **settings,
            "documents": len(corpus.documents),
            "train_documents": len(train_docs),
            "heldout_documents": len(heldout_docs),
            "train_documents_used": used,
            "train_tokens": int(stream.size),
            "eval_documents": names,
            "sources": corpus.sources,
        }
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".text-{key}-"))
        np.save(tmp / "train.npy", stream)
        np.save(tmp / "eval.npy", np.asarray(windows, dtype=np.int64))
        (tmp / "info.json").write_text(json.dumps(info, indent=1) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    info = json.loads((folder / "info.json").read_text())
    return RegrowthText(
        train=np.load(folder / "train.npy"),
        eval_ids=torch.from_numpy(np.load(folder / "eval.npy")),
        eval_documents=list(info["eval_documents"]),
        eos_id=int(info["eos_id"]),
        key=key,
        info=info,
    )


def batches(text: RegrowthText, config: RegrowthConfig) -> Batches:
    """Each step's training windows (:class:`massive_activations.suite.train.Batches`: the
    stream cut into windows, visited in an order drawn from ``data_seed``)."""
    recipe = Recipe(
        corpus=config.corpus,
        vocab_size=int(text.info["vocab_size"]),
        seq_len=config.seq_len,
        batch_size=config.batch_size,
        lr=config.lr,
        n_linear=1,
        prepend_eot=config.prepend_eos,
        data_seed=config.data_seed,
    )
    return Batches(text.train, recipe, text.eos_id)
