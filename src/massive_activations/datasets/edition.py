"""Which data a page shows: the notice at the top of a chapter, labels, and Pythia's recipe.

The book has two editions: the default one on our mini suite (``data/default``) and the
Pythia edition on the paper's released statistics (suite ``paper``, ``make book
PROFILE=paper``).  A chapter computes what it shows from the table it analyses:

* :func:`data_kind` sorts a table into ``"synthetic"`` (a stand-in of the release,
  ``table.attrs["synthetic"]``, :mod:`~massive_activations.datasets.standin`), ``"release"``
  (the paper's release), ``"pythia"`` (Pythia checkpoints extracted here) or ``"ours"``;
* :func:`data_notice` is the admonition a page shows at its top (HTML, as a cell output): a
  stand-in's says "synthetic stand-in" and that none of its numbers are the paper's;
* :func:`models_label` names the models in captions and legends;
* :func:`edition_note` says, in a sentence or two of Markdown, which data a book built with
  given suites shows (the intro and status pages);
* :func:`pythia_recipe` is Pythia's training recipe from the reference file, for chapter 2
  of the Pythia edition (which trains our suite, not Pythia).
"""

from __future__ import annotations

import html
from collections.abc import Iterable

import pandas as pd

from massive_activations import reference
from massive_activations.datasets.release import PAPER_SUITE
from massive_activations.suite.configs import SUITES

__all__ = [
    "DATA_KINDS",
    "admonition",
    "data_kind",
    "data_notice",
    "edition_note",
    "models_label",
    "pythia_recipe",
]

_PAPER_RELEASE = "the paper's release"

#: What a table can hold, as :func:`data_kind` names it.
DATA_KINDS = {
    "synthetic": "a synthetic stand-in of the paper's release (made-up numbers)",
    "release": "the paper's released statistics of Pythia",
    "pythia": "Pythia checkpoints extracted by this package",
    "ours": "our own mini suite",
}


def data_kind(table: pd.DataFrame, suite: str) -> str:
    """``"synthetic"``, ``"release"``, ``"pythia"`` or ``"ours"`` (see :data:`DATA_KINDS`).

    A table flagged synthetic is ``"synthetic"`` whatever its suite's name: a stand-in is
    never named as the paper's data.
    """
    if bool(table.attrs.get("synthetic")):
        return "synthetic"
    if suite == PAPER_SUITE:
        return "release"
    if suite in SUITES:
        return "ours"
    if suite == "pythia" or suite.startswith("pythia-"):
        return "pythia"
    raise ValueError(
        f"Unknown suite {suite!r}: use one of {sorted(SUITES)}, 'paper', 'pythia' or "
        "'pythia-<size>'."
    )


def admonition(kind: str, title: str, body: str) -> str:
    """A Sphinx-styled admonition as HTML (a cell output): ``kind`` is its class (``"note"``,
    ``"warning"``, ``"danger"``), ``body`` is HTML."""
    return (
        f'<div class="admonition {kind}">'
        f'<p class="admonition-title">{html.escape(title)}</p>'
        f"<p>{body}</p></div>"
    )


def data_notice(table: pd.DataFrame, suite: str) -> str:
    """The admonition a chapter shows at its top, as HTML (empty for our own suites).

    For a stand-in: a red admonition titled "Synthetic stand-in: not the paper's data" that
    says none of the page's numbers are the paper's or Pythia's; for the release: which
    release (``table.attrs["release"]``) and that its values are fp16 as released; for
    Pythia extracted here: which suite.
    """
    kind = data_kind(table, suite)
    label = html.escape(str(table.attrs.get("release", "")))
    if kind == "synthetic":
        return admonition(
            "danger",
            "Synthetic stand-in: not the paper's data",
            f"This page was built from {label or 'a synthetic stand-in of the release'}: a "
            "synthetic stand-in with the release's layout and made-up numbers, written to "
            "test the Pythia edition's path. None of the numbers below are the paper's or "
            "Pythia's; where the paper's printed values appear beside them, the two are not "
            "comparable, and no verdict below says anything about the paper.",
        )
    if kind == "release":
        return admonition(
            "note",
            "The paper's own data",
            f"This page shows {label or html.escape(_PAPER_RELEASE)}: the statistics the "
            "paper's authors measured on Pythia's checkpoints (top-1, top-2, top-3 and median "
            "per layer and sequence), fp16 values as released, analysed here. Where the "
            "paper prints a value it is shown beside ours.",
        )
    if kind == "pythia":
        return admonition(
            "note",
            "Pythia, extracted here",
            f"This page shows Pythia checkpoints extracted by this package (suite "
            f"<code>{html.escape(suite)}</code>), not the paper's release.",
        )
    return ""


def models_label(table: pd.DataFrame, suite: str) -> str:
    """How captions and legends name the table's models (Markdown)."""
    return {
        "synthetic": "the synthetic stand-in's models (not Pythia)",
        "release": "Pythia (the paper's release, analysed here)",
        "pythia": f"Pythia (`{suite}`, extracted here)",
        "ours": f"our `{suite}` models",
    }[data_kind(table, suite)]


def edition_note(kinds: Iterable[str], release: str | None = None) -> str:
    """Markdown saying which data a book shows, from the data kinds of its chapters.

    Parameters
    ----------
    kinds : iterable of str
        :func:`data_kind` of the tables the chapters analyse (``"ours"`` for our suites).
    release : str, optional
        The release's label (:attr:`~massive_activations.datasets.release.ReleaseInfo.label`).
    """
    kinds = set(kinds)
    unknown = kinds - set(DATA_KINDS)
    if unknown:
        raise ValueError(f"Unknown data kinds {sorted(unknown)}; use {sorted(DATA_KINDS)}.")
    if "synthetic" in kinds:
        return (
            "**Synthetic stand-in: not the paper's data.** This build of the Pythia edition "
            f"analyses {release or 'a synthetic stand-in of the release'} in chapters 3-6, a "
            "synthetic stand-in with made-up numbers, to test the edition's path. None of its "
            "numbers are the paper's; the other chapters show our own mini suite."
        )
    if "release" in kinds:
        return (
            f"**The Pythia edition.** Chapters 3-6 analyse {release or _PAPER_RELEASE}: "
            "the statistics the paper's authors measured on Pythia, refit here. Chapter 2 "
            "trains our own mini suite, which chapters 7 and 9 use; the default edition shows "
            "that suite in every chapter."
        )
    return (
        "**The default edition.** Every chapter analyses our own mini suite, trained here "
        "with Pythia's recipe scaled down. The Pythia edition (`make book PROFILE=paper`) "
        "analyses the paper's released statistics instead; where the book is published, it "
        "sits beside this one under `pythia/`."
    )


def pythia_recipe() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pythia's architectures and training settings, from the reference file.

    Returns
    -------
    architectures : pandas.DataFrame
        One row per model (``n_layers, d_model, n_heads, d_head, d_ff, vocab, n_params,
        lr``).
    training : pandas.DataFrame
        ``setting, value``: sequence length, tokens per step, final step, warm-up, Adam's
        betas, weight decay, clipping, corpus, tokenizer, initialisation, first token.
    """
    entry = reference.entry("pythia_architectures")
    training = pd.DataFrame(
        {
            "setting": [k.replace("_", " ") for k in entry["training"]],
            "value": [
                ", ".join(map(str, v)) if isinstance(v, list) else str(v)
                for v in entry["training"].values()
            ],
        }
    )
    archs = reference.table("pythia_architectures").rename_axis("model")
    return archs, training
