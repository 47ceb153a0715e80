"""The book pipeline: a smoke build of every notebook, then checks on the rendered HTML."""

from __future__ import annotations

import html as htmllib
import json
import re
from pathlib import Path

import nbformat
import pytest

from massive_activations import book
from massive_activations.book import build_book, notebook_order, repo_root
from massive_activations.book.execute import check_parameters

ROOT = repo_root()
GLUE_ROLE = re.compile(r"\{glue:text\}`([^`:]+)(?::([^`]*))?`")


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory) -> Path:
    """Execute every notebook with the smoke profile and build the book once."""
    out = tmp_path_factory.mktemp("smoke")
    build_book("smoke", out=out, root=ROOT)
    return out / "_build"


def _visible_text(page: str) -> str:
    return htmllib.unescape(re.sub(r"<[^>]+>", "", page))


def _glued_values(nb_path: Path) -> dict[str, str]:
    """``{key: text/plain}`` of every myst-nb glue output in an executed notebook."""
    nb = nbformat.read(nb_path, as_version=4)
    values = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            scrap = output.get("metadata", {}).get("scrapbook", {})
            if "name" in scrap:
                values[scrap["name"]] = output["data"][scrap["mime_prefix"] + "text/plain"]
    return values


@pytest.mark.book
def test_every_notebook_page_is_built(smoke_book):
    for name in notebook_order(ROOT):
        assert (smoke_book / "html" / "notebooks" / f"{name}.html").is_file(), name
    assert (smoke_book / "html" / "book" / "status.html").is_file()


@pytest.mark.book
def test_every_image_exists_on_disk(smoke_book):
    pages = list((smoke_book / "html").rglob("*.html"))
    n_images = 0
    for page in pages:
        for src in re.findall(r'<img[^>]+src="([^"]+)"', page.read_text()):
            if src.startswith("data:"):
                continue
            assert not src.startswith("http"), f"{page.name} loads an image from the network"
            target = (page.parent / src.split("?")[0]).resolve()
            assert target.is_file(), f"{page.name}: <img src={src}> is missing"
            n_images += 1
    assert n_images >= 2  # the curve-model chapter alone draws two figures


@pytest.mark.book
def test_no_error_output_in_any_page(smoke_book):
    """The check `make check-book` runs over the default build (book.html_problems)."""
    problems = book.html_problems(smoke_book / "html")
    assert not problems, "\n".join(problems)


@pytest.mark.book
def test_glued_numbers_are_rendered(smoke_book):
    """Every ``{glue:text}`` role in a notebook renders the value its notebook computed."""
    checked = 0
    for name in notebook_order(ROOT):
        source = (ROOT / "notebooks" / f"{name}.py").read_text()
        values = _glued_values(smoke_book / "source" / "notebooks" / f"{name}.ipynb")
        text = _visible_text((smoke_book / "html" / "notebooks" / f"{name}.html").read_text())
        for key, spec in GLUE_ROLE.findall(source):
            assert key in values, f"{name}: glue key {key!r} is used in prose but never glued"
            raw = values[key]
            if spec:
                number = int(raw) if re.fullmatch(r"-?\d+", raw) else float(raw)
                expected = format(number, spec)
            else:
                expected = raw.strip("'\"")
            assert expected in text, f"{name}: glued {key}={expected!r} not in the page"
            checked += 1
    assert checked >= 10


@pytest.mark.book
def test_curve_chapter_quotes_the_computed_peak(smoke_book):
    """An independent check of one glued number: Eq. 13 for the default early-peak example."""
    from massive_activations import curve

    expected = f"{float(curve.t_peak(0.02, 0.002, 1.0)):,.0f}"
    page = (smoke_book / "html" / "notebooks" / "01_curve_model.html").read_text()
    assert f"peaks at step\n{expected}" in _visible_text(page).replace(" \n", "\n")


@pytest.mark.book
def test_mathjax_is_vendored(smoke_book):
    page = (smoke_book / "html" / "notebooks" / "01_curve_model.html").read_text()
    scripts = re.findall(r'<script[^>]+src="([^"]*mathjax[^"]*)"', page, flags=re.I)
    assert scripts, "no MathJax script on the page"
    for src in scripts:
        assert not src.startswith("http"), f"MathJax loads from the network: {src}"
        assert (smoke_book / "html" / "notebooks" / src.split("?")[0]).resolve().is_file()


@pytest.mark.book
def test_status_page_records_the_run(smoke_book):
    record = json.loads((smoke_book / "execution_status.json").read_text())
    assert record["profile"] == "smoke"
    assert [r["name"] for r in record["runs"]] == notebook_order(ROOT)
    assert all(r["ok"] and r["seconds"] > 0 for r in record["runs"])
    status = _visible_text((smoke_book / "html" / "book" / "status.html").read_text())
    assert record["environment"]["git_commit"] in status
    for name in notebook_order(ROOT):
        assert name in status
    assert "torch" in status and "papermill" in status


@pytest.mark.book
def test_status_page_lists_the_data_files_of_each_notebook(smoke_book):
    record = json.loads((smoke_book / "execution_status.json").read_text())
    runs = {r["name"]: r for r in record["runs"]}
    written = {f["path"] for f in runs["04_fitting"]["files"] if f["action"] == "write"}
    assert "_build/data/smoke/fits.parquet" in written
    assert all(len(f["sha256"]) == 64 for r in runs.values() for f in r["files"])
    status = _visible_text((smoke_book / "html" / "book" / "status.html").read_text())
    assert "Data files read and written" in status
    assert "_build/data/smoke/fits.parquet" in status


@pytest.mark.book
def test_claims_ledger_has_every_claim_with_values_and_a_verdict(smoke_book):
    from massive_activations import reference
    from massive_activations.audit.verdicts import LEDGER_COLUMNS, VERDICTS

    page = (smoke_book / "html" / "notebooks" / "06_claims_ledger.html").read_text()
    tables = re.findall(r'<table id="T_claims".*?</table>', page, flags=re.S)
    assert len(tables) == 1, "the ledger table is missing from the page"
    header = [_visible_text(h).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", tables[0], re.S)]
    assert header == [c for c in LEDGER_COLUMNS if c != "key"]
    rows = re.findall(r"<tr>(.*?)</tr>", tables[0].split("</thead>")[1], flags=re.S)
    claims = reference.entry("claims")["values"]
    assert len(rows) == len(claims)
    for row in rows:
        cells = [_visible_text(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        assert len(cells) == len(header)
        assert all(c and c.lower() != "nan" for c in cells), cells
        by = dict(zip(header, cells, strict=True))
        assert by["verdict"] in VERDICTS
        assert by["paper_value"] and by["our_value"]
    assert {_visible_text(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tables[0])} >= {
        claims[k]["claim"] for k in claims
    }


@pytest.mark.book
def test_claims_ledger_page_shows_the_committed_regrowth_findings_apart(smoke_book):
    # chapter 6 reads data/regrowth's ledger (our own experiment, not a paper claim)
    import pandas as pd

    committed = pd.read_csv(ROOT / "data" / "regrowth" / "regrowth_ledger.csv")
    page = (smoke_book / "html" / "notebooks" / "06_claims_ledger.html").read_text()
    tables = re.findall(r'<table id="T_regrowth".*?</table>', page, flags=re.S)
    assert len(tables) == 1, "the regrowth findings table is missing from chapter 6"
    rows = re.findall(r"<tr>(.*?)</tr>", tables[0].split("</thead>")[1], flags=re.S)
    assert len(rows) == len(committed) > 0
    text = _visible_text(tables[0])
    assert all(claim in text for claim in committed["claim"])


@pytest.mark.book
def test_data_card_lists_the_smoke_data(smoke_book):
    folder = ROOT / "_build" / "data" / "smoke"
    manifest = json.loads((folder / "manifest.json").read_text())
    card = _visible_text((smoke_book / "html" / "book" / "data_card.html").read_text())
    for name, digest in {
        **manifest["files"],
        **{k: v["sha256"] for k, v in manifest["derived"].items()},
    }.items():
        assert name in card and digest in card, name
    assert "Regeneration drift" in card and "undocumented" not in card


@pytest.mark.book
def test_notebook_pages_link_their_sources_and_the_cells_behind_figures(smoke_book):
    for name in notebook_order(ROOT):
        page = (smoke_book / "html" / "notebooks" / f"{name}.html").read_text()
        links = re.findall(r'href="([^"]*_downloads/[^"]+)"', page)
        assert any(link.endswith(f"/{name}.py") for link in links), name
        assert any(link.endswith(f"/{name}.ipynb") for link in links), name
        for link in links:
            assert (smoke_book / "html" / "notebooks" / link).resolve().is_file(), link
    page = _visible_text((smoke_book / "html" / "notebooks" / "01_curve_model.html").read_text())
    assert "Produced by code cell" in page and "notebooks/01_curve_model.py (lines" in page


def _mini_repo(tmp_path: Path, notebook_source: str, profile: str = "") -> Path:
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "book").mkdir()
    (tmp_path / "_config.yml").write_text("title: t\nonly_build_toc_files: true\n")
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/nb\n"
    )
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    (tmp_path / "notebooks" / "profiles.yml").write_text(profile or "smoke: {}\n")
    (tmp_path / "notebooks" / "nb.py").write_text(notebook_source)
    return tmp_path


NB_HEADER = '# %% tags=["parameters"]\nx = 1\n\n# %%\n'


def test_a_notebook_that_raises_fails_the_build(tmp_path):
    root = _mini_repo(tmp_path, NB_HEADER + "raise ValueError('boom in cell')\n")
    with pytest.raises(RuntimeError, match=r"(?s)Notebook nb raised.*boom in cell"):
        build_book("smoke", out=tmp_path / "out", root=root)
    # the executed copy, with its traceback, is kept for the reader
    assert (tmp_path / "out" / "_build" / "source" / "notebooks" / "nb.ipynb").is_file()
    assert not (tmp_path / "out" / "_build" / "html").exists()


def test_unknown_parameter_is_refused(tmp_path):
    root = _mini_repo(tmp_path, NB_HEADER + "y = x\n", "smoke:\n  notebooks:\n    nb: {z: 3}\n")
    with pytest.raises(ValueError, match=r"\['z'\] are not defined.*defines \['x'\]"):
        book.execute_notebooks(root, "smoke", tmp_path / "out")


def test_notebook_without_parameters_cell_is_refused(tmp_path):
    root = _mini_repo(tmp_path, "# %%\ny = 1\n")
    with pytest.raises(ValueError, match="no cell tagged parameters"):
        book.execute_notebooks(root, "smoke", tmp_path / "out")


def test_unknown_profile_and_missing_notebook(tmp_path):
    root = _mini_repo(tmp_path, NB_HEADER)
    with pytest.raises(KeyError, match=r"Unknown profile 'nope'.*'smoke'"):
        book.load_profile(root, "nope")
    (root / "notebooks" / "nb.py").unlink()
    with pytest.raises(FileNotFoundError, match=r"_toc.yml lists notebooks/nb"):
        notebook_order(root)


def test_cli_reports_errors_without_a_traceback(tmp_path, capsys):
    assert book.main(["build", "--profile", "does-not-exist", "--out", str(tmp_path)]) == 1
    assert "Unknown profile 'does-not-exist'" in capsys.readouterr().err


def test_profiles_only_name_parameters_the_notebooks_define():
    import jupytext
    import yaml

    profiles = yaml.safe_load((ROOT / "notebooks" / "profiles.yml").read_text())
    assert {"default", "smoke"} <= set(profiles)
    for profile in profiles.values():
        for name, params in (profile.get("notebooks") or {}).items():
            nb = jupytext.read(ROOT / "notebooks" / f"{name}.py")
            check_parameters(name, nb, params or {})


def test_notebooks_open_with_what_they_reproduce_and_need():
    """Each notebook's first cell states the paper section, its needs and its parameters."""
    import jupytext

    for name in notebook_order(ROOT):
        nb = jupytext.read(ROOT / "notebooks" / f"{name}.py")
        first = nb.cells[0]
        assert first.cell_type == "markdown" and first.source.startswith("# ")
        for label in ("**Reproduces:**", "**Needs:**", "**Parameters (papermill):**"):
            assert label in first.source, f"{name} lacks {label}"


@pytest.mark.parametrize(("profile", "n_readers"), [("default", 5), ("paper", 1)])
def test_profiles_ask_the_committed_data_for_a_variant_it_holds(profile, n_readers):
    # a chapter that reads data/default with a variant the committed table lacks fails only
    # at the end of a long build (it did: chapter 7 of the paper profile)
    from massive_activations.book.execute import parameter_defaults, read_notebook
    from massive_activations.suite.data import read_suite_data

    root = repo_root()
    held = set(read_suite_data(root / "data" / "default").activations["variant"])
    spec = book.load_profile(root, profile)["notebooks"]
    checked = []
    for name in notebook_order(root):
        defaults = parameter_defaults(name, read_notebook(root / "notebooks" / f"{name}.py"))
        params = {**defaults, **spec.get(name, {})}
        if (
            "variant" in params
            and params.get("suite") == "default"
            and params["data_dir"] == "data"
        ):
            checked.append(name)
            assert params["variant"] in held, (
                f"{profile}: {name} reads variant {params['variant']!r} of data/default, "
                f"which holds {sorted(held)}; set its variant in notebooks/profiles.yml"
            )
    # the default book's chapters 3-7 read data/default; the paper edition's chapter 7
    assert len(checked) == n_readers, checked


def test_the_committed_fits_are_those_chapter_4_would_compute():
    # fits that chapter 4 would set aside (other settings, other procedure constants, other
    # activation values) make `make book` refit on a reader's machine and the page say so;
    # committed with the code that computes them, they are read as they are
    from massive_activations import registry
    from massive_activations.book.execute import parameter_defaults, read_notebook
    from massive_activations.datasets.activations import suite_activations
    from massive_activations.fitting import suite_fits as sf

    root = repo_root()
    spec = book.load_profile(root, "default")["notebooks"].get("04_fitting", {})
    defaults = parameter_defaults("04_fitting", read_notebook(root / "notebooks" / "04_fitting.py"))
    p = {**defaults, **spec}
    assert (p["suite"], p["data_dir"], p["refit"]) == ("default", "data", False)
    table = suite_activations("default", root / "data", reuse=True, variant=p["variant"])
    fits = registry.read(sf.FITS_FILE, root / "data", "default")
    settings = sf.fit_settings(window=p["window"], n_bootstrap=p["n_bootstrap"], seed=p["seed"])
    reason = sf._stale(fits, table, settings)
    assert reason == "", f"data/default: {reason}; run `make book` and commit data/default"


def test_the_committed_predictor_tables_derive_from_the_committed_fits():
    # a predictor table of other fits or settings is recomputed by chapter 5 on a reader's
    # machine (a quarter of an hour on 2 cores for the default suite): committed, they must be
    # current
    from massive_activations import registry
    from massive_activations.book.execute import parameter_defaults, read_notebook
    from massive_activations.fitting.suite_fits import FITS_FILE
    from massive_activations.prediction.features import suite_architectures
    from massive_activations.prediction.tables import PREDICTOR_FILES, _current, predictor_digest

    root = repo_root()
    name = "05_predicting"
    spec = book.load_profile(root, "default")["notebooks"].get(name, {})
    p = {**parameter_defaults(name, read_notebook(root / "notebooks" / f"{name}.py")), **spec}
    assert (p["suite"], p["data_dir"], p["recompute"]) == ("default", "data", False)
    fits = registry.read(FITS_FILE, root / "data", "default")
    keys = ("targets", "model_types", "seed", "n_permutations", "n_repeats", "n_replicates",
            "power_permutations", "power_protocols")  # fmt: skip
    digest = predictor_digest(
        fits, architectures=suite_architectures("default"), **{k: p[k] for k in keys}
    )
    stale = [f for f in PREDICTOR_FILES if not _current(root / "data" / "default" / f, f, digest)]
    assert stale == [], f"data/default: {stale} derive from other fits or settings; run `make book`"
