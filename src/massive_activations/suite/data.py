"""A suite's released data folder, as the notebooks read it (and build it when asked to).

``data/<suite>/`` holds what :func:`massive_activations.suite.make_data.make_data` writes:
``activations.parquet``, ``training_log.parquet``, ``architectures.parquet``,
``manifest.json`` (and ``timings.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from massive_activations import provenance, reference
from massive_activations.suite.configs import Suite, get_suite

__all__ = ["SuiteData", "load_suite_data", "read_suite_data", "recipe_comparison"]

FILES = ("activations.parquet", "training_log.parquet", "architectures.parquet", "manifest.json")


@dataclass
class SuiteData:
    """Tables and metadata of one suite's data folder."""

    name: str
    path: Path
    activations: pd.DataFrame
    training_log: pd.DataFrame
    architectures: pd.DataFrame
    manifest: dict
    timings: dict
    built_now: bool = False
    #: Set when the folder predates the ``variant`` column (see :func:`read_suite_data`).
    format_note: str = ""


def read_suite_data(folder: Path | str) -> SuiteData:
    """Read ``data/<suite>/``; a missing file is an error that says how to make it.

    Each file read is recorded in the provenance log
    (:func:`massive_activations.provenance.record`).
    """
    folder = Path(folder)
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} lacks {missing}. Build it with "
            f"`python -m massive_activations.suite.make_data --suite {folder.name} --out "
            f"{folder.parent}` (or `make data` for the default suite)."
        )
    timings = folder / "timings.json"
    activations, note = _with_variant(pd.read_parquet(folder / "activations.parquet"), folder)
    data = SuiteData(
        name=folder.name,
        path=folder,
        activations=activations,
        training_log=pd.read_parquet(folder / "training_log.parquet"),
        architectures=pd.read_parquet(folder / "architectures.parquet"),
        manifest=json.loads((folder / "manifest.json").read_text()),
        timings=json.loads(timings.read_text()) if timings.is_file() else {},
        format_note=note,
    )
    for name in (*FILES, "timings.json"):
        provenance.record(folder / name, "read")  # skips a missing timings.json
    return data


def _with_variant(table: pd.DataFrame, folder: Path) -> tuple[pd.DataFrame, str]:
    """Give a folder written before the ``variant`` column its variant, from its tokens.

    Such a folder measured one set of evaluation sequences, saved as ``eval_tokens.npy``:
    ``"eot_first"`` when every sequence starts with the same token, ``"raw"`` otherwise.
    Returns the table and a note saying what was inferred ("" for a current folder).
    """
    if "variant" in table.columns:
        return table, ""
    tokens_file = folder / "eval_tokens.npy"
    if not tokens_file.is_file():
        raise ValueError(
            f"{folder / 'activations.parquet'} has no 'variant' column and {folder} no "
            "eval_tokens.npy to infer it from; regenerate the folder with "
            f"`python -m massive_activations.suite.make_data --suite {folder.name}`."
        )
    provenance.record(tokens_file, "read")
    first = np.load(tokens_file)[:, 0]
    variant = "eot_first" if np.unique(first).size == 1 else "raw"
    note = (
        f"{folder} was written before the evaluation variants existed: one set of sequences, "
        f"{'all starting with token ' + str(int(first[0])) if variant == 'eot_first' else 'raw text slices'}"
        f", so its rows are variant {variant!r}. `make data` regenerates it with both variants."
    )
    return table.assign(variant=variant), note


def load_suite_data(
    suite: str,
    data_dir: Path | str = "data",
    *,
    reuse: bool = True,
    device: str = "cpu",
    cache: Path | str | None = None,
    progress: bool = True,
) -> SuiteData:
    """The suite's data: the committed folder when ``reuse`` and it exists, else built now.

    Building resumes whatever a previous, killed build left in the cache, and replaces
    ``<data_dir>/<suite>/`` atomically at the end.
    """
    folder = Path(data_dir) / suite
    built = False
    if not (reuse and (folder / "manifest.json").is_file()):
        from massive_activations.suite.make_data import make_data

        make_data(suite, out=data_dir, cache=cache, device=device, progress=progress)
        built = True
    data = read_suite_data(folder)
    data.built_now = built
    return data


def recipe_comparison(suite: Suite | str) -> pd.DataFrame:
    """Our training recipe beside Pythia's, one row per setting (columns ``ours``, ``pythia``).

    Pythia's column comes from the reference file (``pythia_architectures``), never typed here.
    """
    suite = get_suite(suite) if isinstance(suite, str) else suite
    r = suite.recipe
    ref = reference.entry("pythia_architectures")
    pt = ref["training"]
    arch = reference.table("pythia_architectures")
    models = suite.models

    def span(values) -> str:
        lo, hi = min(values), max(values)
        return f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}"

    rows = {
        "models": (f"{len(models)}", f"{len(arch)}"),
        "layers": (span([m.n_layers for m in models]), span(arch.n_layers.astype(int))),
        "width d": (span([m.d_model for m in models]), span(arch.d_model.astype(int))),
        "heads": (span([m.n_heads for m in models]), span(arch.n_heads.astype(int))),
        "MLP width": ("4 d", "4 d" if (arch.d_ff == 4 * arch.d_model).all() else "varies"),
        "vocabulary": (
            f"{r.vocab_size:,} (byte-level BPE, trained here)",
            f"{span(arch.vocab.astype(int))} ({pt['tokenizer']})",
        ),
        "sequence length": (f"{r.seq_len:,}", f"{pt['seq_len']:,}"),
        "tokens per step": (f"{r.seq_len * r.batch_size:,}", f"{pt['tokens_per_step']:,}"),
        "steps": (span([m.steps for m in models]), f"{pt['final_step']:,}"),
        "peak learning rate": (f"{r.lr:g}", f"{arch.lr.min():g}-{arch.lr.max():g}"),
        "warm-up, decay": (
            f"{r.warmup_fraction:.0%} linear, cosine to {r.min_lr_ratio:g} x LR",
            f"{pt['warmup_frac']:.0%} linear, cosine to {pt['min_lr_frac']:g} x LR",
        ),
        "optimiser": (
            f"AdamW ({r.beta1}, {r.beta2})",
            f"Adam ({pt['adam_betas'][0]}, {pt['adam_betas'][1]})",
        ),
        "weight decay": (f"{r.weight_decay:g}", f"{pt['weight_decay']:g}"),
        "gradient clip": (f"{r.grad_clip:g}", f"{pt['grad_clip']:g}"),
        "precision": ("bf16 autocast (CPU)" if r.bf16 else "fp32", "not recorded here"),
        "initialisation": (
            "N(0, 0.02)" if r.init == "normal" else "small_init / wang_init",
            pt["init"],
        ),
        "first token": ("end-of-text token" if r.prepend_eot else "text", pt["first_token"]),
        "corpus": (f"{r.corpus} (text shipped by packages)", pt["corpus"]),
    }
    return pd.DataFrame.from_dict(rows, orient="index", columns=["ours", "pythia"])
