"""The Pythia edition's path, end to end, on a small synthetic stand-in of the release.

The ``paper-smoke`` profile (``notebooks/profiles.yml``) runs chapters 3-6 on the suite
``paper`` imported from ``_build/paper-standin``; this builds the whole book with it, as
``make standin && make book PROFILE=paper-smoke`` does.
"""

from __future__ import annotations

import re
import shutil

import pandas as pd
import pytest

from massive_activations import reference
from massive_activations.book import build_book, notebook_order, repo_root
from massive_activations.datasets.standin import SMOKE, write_standin

ROOT = repo_root()
PAPER_CHAPTERS = ("03_measuring", "04_fitting", "05_predicting", "06_claims_ledger")


@pytest.fixture(scope="module")
def paper_smoke_book(tmp_path_factory):
    """Write the smoke stand-in where the profile reads it, then build the book once."""
    standin = write_standin(ROOT / "_build" / "paper-standin", **SMOKE, overwrite=True)
    shutil.rmtree(ROOT / "_build" / "data" / "paper", ignore_errors=True)
    out = tmp_path_factory.mktemp("paper_smoke")
    build_book("paper-smoke", out=out, root=ROOT)
    return out / "_build", standin


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.mark.book
def test_every_page_is_built_and_the_paper_chapters_say_the_data_are_synthetic(
    paper_smoke_book,
):
    build, _ = paper_smoke_book
    for name in notebook_order(ROOT):
        page = build / "html" / "notebooks" / f"{name}.html"
        assert page.is_file(), name
        if name in PAPER_CHAPTERS:
            assert "synthetic stand-in" in _text(page.read_text()).lower(), name
    # the intro and status pages say which data this build shows
    for page in ("intro", "status"):
        text = _text((build / "html" / "book" / f"{page}.html").read_text()).lower()
        assert "synthetic stand-in" in text, page
    chapter2 = _text((build / "html" / "notebooks" / "02_training_suite.html").read_text())
    assert "this chapter trains our suite, not Pythia" in chapter2


@pytest.mark.book
def test_fits_cover_every_layer_and_the_ledger_every_claim(paper_smoke_book):
    _, standin = paper_smoke_book
    data = ROOT / "_build" / "data" / "paper"
    fits = pd.read_parquet(data / "fits.parquet")
    layers = set(zip(fits.model, fits.layer, strict=True))
    assert layers == {
        (model, layer) for model, n in standin.n_layers.items() for layer in range(1, n + 1)
    }
    ledger = pd.read_csv(data / "ledger.csv")
    assert set(ledger["key"]) == set(reference.entry("claims")["values"])
    assert ledger["paper_value"].notna().all()
