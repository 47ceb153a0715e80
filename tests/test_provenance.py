"""Provenance log, the status page's files table, and the notebooks' provenance cells."""

from __future__ import annotations

import hashlib
import json
import os

import nbformat
import pandas as pd
import pytest

from massive_activations import book, provenance
from massive_activations.book import NotebookRun, annotate_notebook, jupytext_code_cells
from massive_activations.measurement import store


@pytest.fixture
def log(tmp_path, monkeypatch):
    """A provenance log in ``tmp_path``, with the working directory at ``tmp_path``."""
    path = tmp_path / "prov.jsonl"
    monkeypatch.setenv(provenance.LOG_ENV, str(path))
    monkeypatch.chdir(tmp_path)
    return path


def test_record_does_nothing_without_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(provenance.LOG_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.txt").write_text("x")
    assert provenance.record("a.txt", "read") is None
    assert list(tmp_path.iterdir()) == [tmp_path / "a.txt"]


def test_record_appends_relative_path_sha256_and_size(tmp_path, log):
    data = tmp_path / "sub" / "t.bin"
    data.parent.mkdir()
    data.write_bytes(b"hello provenance")
    entry = provenance.record(data, "write")
    provenance.record(data.relative_to(tmp_path), "read")
    lines = provenance.read_log(log)
    assert lines == [entry, {**entry, "action": "read"}]
    assert entry == {
        "path": "sub/t.bin",
        "action": "write",
        "sha256": hashlib.sha256(b"hello provenance").hexdigest(),
        "bytes": 16,
    }


def test_record_keeps_absolute_paths_outside_the_working_directory(tmp_path, log):
    outside = tmp_path / "outside.txt"
    outside.write_text("o")
    (tmp_path / "cwd").mkdir()
    os.chdir(tmp_path / "cwd")  # monkeypatch.chdir (in the fixture) restores it
    entry = provenance.record(outside, "read")
    assert entry["path"] == outside.resolve().as_posix()


def test_record_refuses_unknown_actions_and_skips_missing_or_paused(tmp_path, log):
    with pytest.raises(ValueError, match=r"'delete' must be one of \('read', 'write'\)"):
        provenance.record(tmp_path / "x", "delete")
    assert provenance.record(tmp_path / "missing.parquet", "read") is None
    (tmp_path / "f").write_text("f")
    with provenance.paused():
        assert provenance.record(tmp_path / "f", "write") is None
    assert provenance.read_log(log) == []
    assert provenance.record(tmp_path / "f", "write") is not None


def test_a_digest_is_recomputed_when_the_file_changes(tmp_path, log):
    f = tmp_path / "f"
    f.write_text("one")
    first = provenance.record(f, "write")["sha256"]
    f.write_text("two, longer")
    assert provenance.record(f, "write")["sha256"] == hashlib.sha256(b"two, longer").hexdigest()
    assert first == hashlib.sha256(b"one").hexdigest()


def test_checkpoint_folders_record_config_and_weights_only(tmp_path, log):
    ckpt = tmp_path / "step4"
    ckpt.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json"):
        (ckpt / name).write_text(name)
    paths = [r["path"] for r in provenance.record_checkpoint(ckpt)]
    assert paths == ["step4/config.json", "step4/model.safetensors"]


def test_dedupe_keeps_one_record_per_path_and_action_the_last(tmp_path):
    records = [
        {"path": "a", "action": "write", "sha256": "1", "bytes": 1},
        {"path": "a", "action": "read", "sha256": "1", "bytes": 1},
        {"path": "a", "action": "write", "sha256": "2", "bytes": 2},
    ]
    assert provenance.dedupe(records) == [records[2], records[1]]


def test_store_records_tables_written_and_read(tmp_path, log):
    row = {c: 0 for c in store.TABLE_COLUMNS} | {
        "suite": "s",
        "model": "m",
        "dtype": "float32",
        "variant": "raw",
    }
    path = store.write_table(pd.DataFrame([row]), tmp_path / "s" / "activations.parquet")
    store.read_table(path)
    records = provenance.read_log(log)
    assert [(r["path"], r["action"]) for r in records] == [
        ("s/activations.parquet", "write"),
        ("s/activations.parquet", "read"),
    ]
    assert records[0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_reference_values_record_their_file(tmp_path, log):
    from massive_activations import reference

    reference.values.cache_clear()
    try:
        reference.values()
    finally:
        reference.values.cache_clear()
    (entry,) = provenance.read_log(log)
    assert entry["path"].endswith("reference/paper_values.yml") and entry["action"] == "read"


def _mini_repo(root, notebook_source: str):
    """A repository with one notebook ``nb`` and a ``smoke`` profile."""
    (root / "notebooks").mkdir(parents=True)
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n  - file: notebooks/nb\n"
    )
    (root / "notebooks" / "profiles.yml").write_text("smoke: {}\n")
    (root / "notebooks" / "nb.py").write_text(notebook_source)
    return root


# --------------------------------------------------------------------------- status page

ENV = {
    "date": "2026-01-01T00:00:00+00:00",
    "git_commit": "c0ffee",
    "git_dirty": False,
    "python": "3.11.7",
    "platform": "Linux",
    "cpu_count": 2,
    "packages": {"numpy": "2.0"},
}


def test_status_page_lists_the_files_each_notebook_read_and_wrote():
    digest = hashlib.sha256(b"x").hexdigest()
    runs = [
        NotebookRun("02_suite", {}, 1.0, True, files=[
            {"path": "data/smoke/activations.parquet", "action": "write", "sha256": digest,
             "bytes": 12468},
        ]),
        NotebookRun("04_fitting", {"suite": "smoke"}, 2.0, True, files=[
            {"path": "data/smoke/activations.parquet", "action": "read", "sha256": digest,
             "bytes": 12468},
            {"path": "data/smoke/fits.parquet", "action": "write", "sha256": "ab" * 32,
             "bytes": 5},
        ]),
    ]  # fmt: skip
    page = book.status_page("smoke", runs, ENV)
    assert "## Data files read and written" in page
    assert "| notebook | file | action | sha256 | bytes |" in page
    assert (
        f"| 02_suite | `data/smoke/activations.parquet` | write | `{digest[:12]}` | 12,468 |"
        in page
    )
    assert f"| 04_fitting | `data/smoke/activations.parquet` | read | `{digest[:12]}` |" in page
    assert "| 04_fitting | `data/smoke/fits.parquet` | write | `abababababab` | 5 |" in page
    assert page.index("## Data files") < page.index("## Package versions")


def test_status_page_says_when_no_file_was_recorded():
    page = book.status_page("smoke", [NotebookRun("01_curve", {}, 1.0, True)], ENV)
    assert "No notebook read or wrote a data file in this run." in page


def test_execute_notebooks_collects_each_notebooks_files(tmp_path, monkeypatch):
    """A notebook run by papermill records into its own log; the run keeps the records."""
    source = (
        '# %% tags=["parameters"]\nx = 1\n\n# %%\n'
        "import pandas as pd\nfrom massive_activations import registry\n"
        "import os\n"
        "df = pd.DataFrame({'a': [1, 2]})\n"
        "p = 'out/suite/fits.parquet'\n"
        "registry.atomic_write(p, lambda tmp: df.to_parquet(tmp))\n"
        "registry.read('fits.parquet', 'out', 'suite')\n"
        "registry.atomic_write(p, lambda tmp: df.assign(a=3).to_parquet(tmp))\n"
        "print(os.environ['MA_NOTEBOOK'])\n"
    )
    root = _mini_repo(tmp_path / "repo", source)
    monkeypatch.delenv(provenance.LOG_ENV, raising=False)
    (run,) = book.execute_notebooks(root, "smoke", tmp_path / "nbs", log_dir=tmp_path / "logs")
    assert run.ok, run.error
    written = root / "out" / "suite" / "fits.parquet"
    files = [f for f in run.files if f["path"].startswith("out/")]
    assert files == [
        {"path": "out/suite/fits.parquet", "action": "write",
         "sha256": hashlib.sha256(written.read_bytes()).hexdigest(),
         "bytes": written.stat().st_size},
        {"path": "out/suite/fits.parquet", "action": "read", "sha256": files[1]["sha256"],
         "bytes": files[1]["bytes"]},
    ]  # fmt: skip
    assert files[0]["sha256"] != files[1]["sha256"]  # the last write is kept
    assert provenance.LOG_ENV not in os.environ  # restored after the run
    nb = nbformat.read(tmp_path / "nbs" / "nb.ipynb", as_version=4)
    assert "nb" in "".join(o.get("text", "") for o in nb.cells[-1].outputs)


# --------------------------------------------------------------------------- notebook cells

JUPYTEXT = """\
# ---
# jupyter:
#   jupytext:
#     text_representation:
#       format_name: percent
# ---

# %% [markdown]
# # Title
#
# Text.

# %% tags=["parameters"]
n = 3

# %%
import matplotlib.pyplot as plt

plt.plot(range(n))


# %% [markdown]
# More text.

# %%
x = 1
# %%
import pandas as pd
pd.DataFrame({"a": [1]})
"""


def test_jupytext_code_cells_gives_each_code_cells_lines():
    import jupytext

    spans = jupytext_code_cells(JUPYTEXT)
    assert spans == [(14, 14), (17, 19), (26, 26), (28, 29)]
    lines = JUPYTEXT.splitlines()
    nb = jupytext.reads(JUPYTEXT, fmt="py:percent")
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert code == ["\n".join(lines[a - 1 : b]) for a, b in spans]


def test_jupytext_code_cells_match_the_books_notebooks():
    import jupytext

    root = book.repo_root()
    for name in book.notebook_order(root):
        text = (root / "notebooks" / f"{name}.py").read_text()
        nb = jupytext.reads(text, fmt="py:percent")
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        lines = text.splitlines()
        spans = jupytext_code_cells(text)
        assert len(spans) == len(code), name
        for (a, b), src in zip(spans, code, strict=True):
            assert "\n".join(lines[a - 1 : b]).strip() == src.strip(), (name, a, b)


def _executed(cells_outputs):
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# Title\n\nText."))
    for i, (tags, outputs) in enumerate(cells_outputs):
        cell = nbformat.v4.new_code_cell(f"cell {i}")
        cell.metadata["tags"] = tags
        cell.outputs = outputs
        nb.cells.append(cell)
    return nb


def test_annotate_notebook_adds_links_and_notes_with_line_numbers(tmp_path):
    png = nbformat.v4.new_output("display_data", data={"image/png": "iVBOR", "text/plain": "x"})
    table = nbformat.v4.new_output(
        "execute_result", data={"text/html": "<div><table></table></div>"}, execution_count=1
    )
    glued = nbformat.v4.new_output(
        "display_data", data={"application/papermill.record/image/png": "iVBOR"}
    )
    nb = _executed(
        [
            (["parameters"], []),
            (["injected-parameters"], []),
            ([], [png]),
            ([], [glued]),
            ([], [table]),
        ]
    )
    ipynb, source = tmp_path / "nb.ipynb", tmp_path / "nb.py"
    nbformat.write(nb, ipynb)
    source.write_text(JUPYTEXT)
    assert annotate_notebook(ipynb, source, "c0ffee", dirty=True) == 2
    out = nbformat.read(ipynb, as_version=4)
    nbformat.validate(out)
    header = out.cells[0]
    assert header.cell_type == "markdown" and header.metadata["tags"] == ["provenance"]
    assert "{download}`notebooks/nb.py <nb.py>`" in header.source
    assert "{download}`executed notebook <nb.ipynb>`" in header.source
    assert "`c0ffee` with uncommitted changes" in header.source
    kinds = [(c.cell_type, c.source) for c in out.cells[1:]]
    assert kinds[3] == ("code", "cell 2")
    assert kinds[4] == (
        "markdown",
        "<small>Produced by code cell 2 of `notebooks/nb.py` (lines 17-19).</small>",
    )
    assert kinds[5] == ("code", "cell 3")  # a glued (hidden) figure gets no note
    assert kinds[6] == ("code", "cell 4")
    assert kinds[7] == (
        "markdown",
        "<small>Produced by code cell 4 of `notebooks/nb.py` (lines 28-29).</small>",
    )
    assert len(out.cells) == 1 + 1 + 5 + 2


def test_a_glued_figure_gets_the_note_of_the_cell_that_glued_it(tmp_path):
    glued = nbformat.v4.new_output(
        "display_data",
        data={"image/png": "iVBOR", "text/plain": "x"},
        metadata={"scrapbook": {"name": "fig-b", "mime_prefix": ""}},
    )
    nb = _executed([(["parameters"], []), ([], []), (["remove-cell"], [glued]), ([], [])])
    nb.cells.append(
        nbformat.v4.new_markdown_cell("```{glue:figure} fig-b\n:name: fig-b\n\nCaption.\n```")
    )
    nb.cells.append(
        nbformat.v4.new_markdown_cell("Inline {glue:figure}`fig-b` and {glue:figure}`x`")
    )
    nb.cells.append(nbformat.v4.new_markdown_cell("```{glue:figure} unknown\n```"))
    ipynb, source = tmp_path / "nb.ipynb", tmp_path / "nb.py"
    nbformat.write(nb, ipynb)
    source.write_text(JUPYTEXT)
    assert annotate_notebook(ipynb, source, "c0ffee") == 2
    out = nbformat.read(ipynb, as_version=4)
    texts = [c.source for c in out.cells]
    note = "<small>Produced by code cell 3 of `notebooks/nb.py` (line 26).</small>"
    i = texts.index("```{glue:figure} fig-b\n:name: fig-b\n\nCaption.\n```")
    assert texts[i + 1] == note and texts[i + 3] == note  # after each cell that shows it
    assert texts[-1] == "```{glue:figure} unknown\n```"  # a key no cell glued: no note


def test_annotate_notebook_refuses_a_cell_count_mismatch(tmp_path):
    nb = _executed([(["parameters"], [])])
    nbformat.write(nb, tmp_path / "nb.ipynb")
    (tmp_path / "nb.py").write_text(JUPYTEXT)
    with pytest.raises(ValueError, match=r"1 code cells but notebooks/nb.py has 4"):
        annotate_notebook(tmp_path / "nb.ipynb", tmp_path / "nb.py", "c0ffee")


def test_data_folders_come_from_parameters_and_notebook_defaults(tmp_path):
    root = _mini_repo(tmp_path, '# %% tags=["parameters"]\nsuite = "default"\ndata_dir = "data"\n')
    runs = [NotebookRun("nb", {"suite": "smoke", "data_dir": "_build/data"}, 1.0, True)]
    assert book.data_folders(root, runs) == [root / "_build" / "data" / "smoke"]
    assert book.data_folders(root, [NotebookRun("nb", {}, 1.0, True)]) == [
        root / "data" / "default"
    ]
    assert json.dumps([str(p) for p in book.data_folders(root, runs * 2)]).count("smoke") == 1


def _git(root, *args):
    import subprocess

    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def test_only_tracked_changes_make_the_build_dirty(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    assert book.git_state(root) == ("unknown", False)  # not a checkout
    _git(root, "init", "-q")
    (root / "a.py").write_text("x = 1\n")
    _git(root, "add", "a.py")
    _git(root, "commit", "-q", "-m", "first")
    commit, dirty = book.git_state(root)
    assert len(commit) == 40 and not dirty
    (root / "make_data.log").write_text("untracked log\n")  # beside a fresh clone
    (root / "build").mkdir()
    (root / "build" / "out.html").write_text("<p>")
    assert book.git_state(root) == (commit, False)
    assert book.environment_record(root)["git_dirty"] is False
    (root / "a.py").write_text("x = 2\n")  # a tracked file differs from the commit
    assert book.git_state(root) == (commit, True)
    _git(root, "checkout", "-q", "a.py")
    (root / "b.py").write_text("y = 1\n")
    _git(root, "add", "b.py")  # staged: tracked now
    assert book.git_state(root) == (commit, True)
    _git(root, "rm", "-q", "--cached", "b.py")
    (root / "a.py").unlink()  # a tracked file deleted
    assert book.environment_record(root)["git_dirty"] is True


def test_the_provenance_header_ignores_untracked_files(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    (root / "nb.py").write_text(JUPYTEXT)
    _git(root, "add", "nb.py")
    _git(root, "commit", "-q", "-m", "first")
    (root / "run.log").write_text("untracked\n")
    nbformat.write(
        _executed([(["parameters"], []), ([], []), ([], []), ([], [])]), tmp_path / "nb.ipynb"
    )
    commit, dirty = book.git_state(root)
    annotate_notebook(tmp_path / "nb.ipynb", root / "nb.py", commit, dirty)
    header = nbformat.read(tmp_path / "nb.ipynb", as_version=4).cells[0].source
    assert f"executed at git commit `{commit}`." in header
    assert "uncommitted" not in header


def test_an_interactive_figure_gets_a_note_like_an_image(tmp_path):
    import pandas as pd

    from massive_activations.interactive import trajectory_explorer

    points = pd.DataFrame({"model": "m", "layer": 1, "step": [1, 2], "value": [1.0, 2.0]})
    explorer = trajectory_explorer(points)
    shown = nbformat.v4.new_output(
        "display_data", data={"text/html": explorer._repr_html_(), "text/plain": repr(explorer)}
    )
    nb = _executed([(["parameters"], []), ([], [shown]), ([], []), ([], [])])
    nbformat.write(nb, tmp_path / "nb.ipynb")
    (tmp_path / "nb.py").write_text(JUPYTEXT)
    assert annotate_notebook(tmp_path / "nb.ipynb", tmp_path / "nb.py", "c0ffee") == 1


def test_data_folders_name_the_regrowth_chapters_folder_from_its_configuration(tmp_path):
    root = _mini_repo(tmp_path, '# %% tags=["parameters"]\nconfig = "default"\ndata_dir = "data"\n')
    runs = [NotebookRun("nb", {}, 1.0, True)]
    assert book.data_folders(root, runs) == [root / "data" / "regrowth"]
    smoke = [NotebookRun("nb", {"config": "smoke", "data_dir": "_build/data"}, 1.0, True)]
    assert book.data_folders(root, smoke) == [root / "_build" / "data" / "regrowth-smoke"]
    # an unknown configuration names no folder (the notebook itself says why it fails)
    assert book.data_folders(root, [NotebookRun("nb", {"config": "nope"}, 1.0, True)]) == []
