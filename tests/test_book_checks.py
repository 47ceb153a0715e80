"""Checks of the built book: stderr on a page (synthetic HTML) and cell visibility tags."""

from __future__ import annotations

from pathlib import Path

import pytest

from massive_activations.book import (
    cell_visibility,
    html_problems,
    main,
    notebook_order,
    page_problems,
    repo_root,
    unhidden_display_cells,
    visible_code_lines,
)

# The markup myst-nb 1.x writes for a code cell and its outputs (abridged from a built page).
CELL = """<div class="cell docutils container">
<div class="cell_input docutils container"><div class="highlight-ipython3 notranslate">
<div class="highlight"><pre><span></span>x = 1</pre></div></div></div>
<div class="cell_output docutils container">{output}</div>
</div>"""
STREAM = """<div class="output stream highlight-myst-ansi notranslate"><div class="highlight">
<pre><span></span>{text}</pre></div></div>"""
STDERR = """<div class="output stderr highlight-myst-ansi notranslate"><div class="highlight">
<pre><span></span>/home/builder/src/curve.py:240: RuntimeWarning: overflow encountered
  w = lambertw(1.0 / lam)</pre></div></div>"""
TRACEBACK = """<div class="output traceback highlight-ipythontb notranslate">
<div class="highlight"><pre><span></span>---------
ValueError                                Traceback (most recent call last)</pre></div></div>"""


def page(*cells: str, prose: str = "<p>Prose.</p>") -> str:
    body = "\n".join(CELL.format(output=c) for c in cells)
    return f"<html><body><main>{prose}\n{body}\n</main></body></html>"


def test_a_clean_page_has_no_problem():
    clean = page(STREAM.format(text="fitted 12 layers"), '<div class="output text_html"><table>'
                 "<tr><td>0.98</td></tr></table></div>")  # fmt: skip
    assert page_problems(clean) == []


def test_a_page_discussing_warnings_in_prose_is_clean():
    prose = "<p>A RuntimeWarning: overflow was printed before the fix.</p>"
    assert page_problems(page(STREAM.format(text="ok"), prose=prose)) == []


def test_stderr_traceback_and_printed_warnings_are_found():
    assert page_problems(page(STDERR)) == [
        "a stderr output",
        "output text '/home/builder/src/curve.py:240: RuntimeWarning: overflow encountered'",
    ]
    assert page_problems(page(TRACEBACK))[0] == "a traceback output"
    assert "Traceback (most recent call last)" in page_problems(page(TRACEBACK))[1]
    # a warning that reached stdout (e.g. through a logger) is found by its text
    printed = STREAM.format(text="step 3\nUserWarning: no positive values; log scale ignored")
    assert page_problems(page(printed)) == [
        "output text 'UserWarning: no positive values; log scale ignored'"
    ]


def test_html_problems_names_each_page_and_the_cli_fails(tmp_path, capsys):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_static").mkdir()
    (tmp_path / "index.html").write_text(page(STREAM.format(text="ok")))
    (tmp_path / "_static" / "vendor.html").write_text(page(STDERR))  # not a book page
    assert html_problems(tmp_path) == []
    assert main(["check", str(tmp_path)]) == 0
    (tmp_path / "notebooks" / "04_fitting.html").write_text(page(STREAM.format(text="ok"), STDERR))
    problems = html_problems(tmp_path)
    assert problems[0] == "notebooks/04_fitting.html: a stderr output"
    assert len(problems) == 2
    capsys.readouterr()
    assert main(["check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "notebooks/04_fitting.html: a stderr output" in err and "fix them at their cause" in err


def test_html_problems_needs_a_built_book(tmp_path):
    with pytest.raises(FileNotFoundError, match="make book"):
        html_problems(tmp_path)


NOTEBOOK = """# %% [markdown]
# # A chapter

# %% tags=["parameters"]
suite = "default"

# %%
import numpy as np
from myst_nb import glue

# %%
fits = fit_all(table)

# %% tags=["hide-input"]
fig, ax = plt.subplots()
ax.plot(x, y)

# %%
glue("n_fits", len(fits), display=False)

# %% tags=["remove-cell"]
glue("r2", 0.9, display=False)

# %%
plots.plot_curves(params)  # a figure

# %%
explorer = trajectory_explorer(points, curves)
"""


def test_cell_visibility_lists_untagged_figure_glue_and_import_cells(tmp_path):
    path = tmp_path / "ch.py"
    path.write_text(NOTEBOOK)
    cells = cell_visibility(path)
    assert [c.number for c in cells] == list(range(1, 9))
    assert cells[1].reasons == ("only imports",) and cells[1].lines == (8, 9)
    assert cells[2].reasons == () and cells[2].visible
    assert cells[3].reasons == ("draws a figure",) and not cells[3].visible
    assert cells[5].tags == ("remove-cell",)
    flagged = unhidden_display_cells(path)
    assert [line.split(" (")[0] for line in flagged] == [
        "ch.py code cell 2",
        "ch.py code cell 5",
        "ch.py code cell 7",
        "ch.py code cell 8",
    ]
    assert flagged[1] == (
        'ch.py code cell 5 (lines 19-19) calls glue: tag it `# %% tags=["hide-input"]` '
        '(or "remove-cell" when it shows nothing)'
    )
    # visible: parameters (1 line), imports (2), fit_all (1), glue (1), plot (1), explorer (1)
    assert visible_code_lines(path) == 7


def test_the_chapters_cells_can_be_read():
    """Every chapter parses; its visible code is counted (the lead's before/after report)."""
    root = repo_root()
    for name in notebook_order(root):
        path = Path(root / "notebooks" / f"{name}.py")
        cells = cell_visibility(path)
        assert cells and visible_code_lines(path) <= sum(c.code_lines for c in cells)


def test_sphinx_ext_keeps_one_copy_of_each_inline_script():
    from sphinx.builders.html._assets import _JavaScript

    from massive_activations.book.sphinx_ext import unique_scripts

    body = 'const THEBE_JS_URL = "x"'
    scripts = [
        _JavaScript("_static/doctools.js", priority=200),
        _JavaScript(None, body=body, priority=500),  # as app.add_js_file passes it
        _JavaScript("", body=body, priority=500),  # as the builder re-reads the registry
        _JavaScript("", body="var other = 1", priority=500),
        _JavaScript("_static/doctools.js", priority=200),
    ]
    assert unique_scripts(scripts) == [scripts[0], scripts[1], scripts[3]]


def test_every_chapter_hides_its_plotting_and_bookkeeping_code():
    """Chapters show the calls that compute results; figures, glue and imports are tagged."""
    from massive_activations.book import repo_root

    notebooks = sorted((repo_root() / "notebooks").glob("*.py"))
    assert notebooks
    flagged = [msg for p in notebooks for msg in unhidden_display_cells(p)]
    assert flagged == []
