"""A built page in a real headless browser: it loads, the interactive figure renders and
responds, nothing logs an error, tagged code is behind toggles, figures are numbered.

A two-page book is built with the real ``_config.yml`` and ``book/static`` (so the vendored
plotly.js is what the page loads): one page with a table, an interactive figure in a
numbered ``{glue:figure}`` and cells tagged as the chapters tag them; one page whose cells
write to stderr, to check :func:`massive_activations.book.html_problems` on real myst-nb
output.  The pages are served on 127.0.0.1 and opened in Debian's Chromium through
chromedriver (``make browser`` installs them; ``MA_CHROMIUM`` and ``MA_CHROMEDRIVER`` point
elsewhere).  A missing browser fails the test: it is part of ``make test``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from massive_activations.book import build_book, html_problems, repo_root
from massive_activations.book.browse import browse_book, chromium, serve

pytestmark = pytest.mark.browser

ROOT = repo_root()

PAGE = """# %% [markdown]
# # Browser check
#
# A table, and an interactive figure in a numbered caption: {numref}`fig-explorer`. The page
# opens with prose, as a chapter does, before any code cell that a reader sees on it.

# %% tags=["parameters"]
n_steps = 6

# %% tags=["hide-input"]
import numpy as np
import pandas as pd
from myst_nb import glue

from massive_activations.interactive import trajectory_explorer
from massive_activations.tables import book_table

# %%
rows, curves = [], []
for model, n_layers in (("L2-d128-h4", 2), ("L4-d128-h4", 4)):
    for layer in range(1, n_layers + 1):
        for s in np.geomspace(1, 143000, n_steps).round():
            v = n_layers * layer * np.log1p(s) / (1 + s / 50000) + 1
            rows.append((model, layer, s, v, 0.9 * v, 1.1 * v))
        for hyp, k in (("eq9", 1.0), ("step1", 0.8)):
            for s in np.geomspace(1, 143000, 40):
                v = k * n_layers * layer * np.log1p(s) / (1 + s / 50000) + 1
                curves.append((model, layer, hyp, s, v, v - 0.5, v + 0.5))
points = pd.DataFrame(rows, columns=["model", "layer", "step", "value", "lo", "hi"])
fits = pd.DataFrame(curves, columns=["model", "layer", "hypothesis", "step", "value", "lo", "hi"])
VISIBLE_COMPUTATION = len(points)

# %% tags=["remove-cell"]
REMOVED_BOOKKEEPING = "removed-bookkeeping-marker"
glue("explorer", trajectory_explorer(points, fits, log_x=True, name="explorer"), display=False)

# %% tags=["hide-input"]
book_table(points.head(3).assign(empty=np.nan), table="activations.parquet",
           units={"value": "ratio"})

# %% [markdown]
# ```{glue:figure} explorer
# :name: fig-explorer
#
# Measured points (bars: spread over sequences) and the fits of each hypothesis with their
# band, for the model and layer picked above.
# ```
"""

NOISY = """# %% [markdown]
# # Noisy page

# %% tags=["parameters"]
x = 1

# %%
import sys
import warnings

warnings.warn("overflow encountered in divide", RuntimeWarning, stacklevel=1)
print("progress 3/10", file=sys.stderr)
"""


def _mini_book(root: Path) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "book").mkdir()
    shutil.copy2(ROOT / "_config.yml", root / "_config.yml")
    shutil.copytree(ROOT / "book" / "static", root / "book" / "static")
    shutil.copy2(ROOT / "book" / "references.bib", root / "book" / "references.bib")
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n"
        "  - file: notebooks/page\n  - file: notebooks/noisy\n"
    )
    (root / "book" / "intro.md").write_text("# Intro\n\nA test book.\n")
    (root / "notebooks" / "profiles.yml").write_text("smoke: {}\n")
    (root / "notebooks" / "page.py").write_text(PAGE)
    (root / "notebooks" / "noisy.py").write_text(NOISY)
    return root


@pytest.fixture(scope="module")
def mini_html(tmp_path_factory) -> Path:
    root = _mini_book(tmp_path_factory.mktemp("minibook"))
    return build_book("smoke", out=root, root=root)


@pytest.fixture(scope="module")
def server(mini_html):
    with serve(mini_html) as base:
        yield base


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    try:
        with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
            yield driver
    except FileNotFoundError as exc:  # a missing browser fails the test, with the fix
        pytest.fail(str(exc), pytrace=False)


def _wait(driver, condition, what: str, timeout: float = 20.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition(d), message=what)


def _plot_state(driver) -> dict:
    return driver.execute_script(
        """
        const root = document.getElementById("explorer");
        const plot = root.querySelector(".ma-explorer-plot");
        const title = root.querySelector(".gtitle");
        return {
          svg: root.querySelectorAll("svg.main-svg").length,
          traces: root.querySelectorAll(".scatterlayer .trace").length,
          title: title ? title.textContent : "",
          paths: Array.from(root.querySelectorAll(".scatterlayer path"))
                   .map(p => p.getAttribute("d") || "").join("|"),
          layers: Array.from(root.querySelectorAll('select[name="layer"] option'))
                   .map(o => o.value),
          n_data: plot.data ? plot.data.length : 0,
        };
        """
    )


def _select(driver, name: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    element = driver.find_element(By.CSS_SELECTOR, f'#explorer select[name="{name}"]')
    Select(element).select_by_value(value)


def test_page_loads_and_the_figure_renders_and_responds(browser, server):
    start = time.perf_counter()
    browser.get(f"{server}/notebooks/page.html")
    assert "Browser check" in browser.title
    _wait(browser, lambda d: _plot_state(d)["traces"] > 0, "the figure never rendered")
    first = _plot_state(browser)
    assert first["svg"] >= 1 and first["title"] == "L2-d128-h4 · layer 1"
    assert first["layers"] == ["1", "2"]
    assert first["n_data"] == 4  # band (2 traces), the fit line, the measured points

    _select(browser, "layer", "2")
    _wait(browser, lambda d: _plot_state(d)["title"].endswith("layer 2"), "layer not redrawn")
    second = _plot_state(browser)
    assert second["paths"] != first["paths"]

    _select(browser, "model", "L4-d128-h4")
    _wait(browser, lambda d: _plot_state(d)["title"].startswith("L4"), "model not redrawn")
    third = _plot_state(browser)
    assert third["layers"] == ["1", "2", "3", "4"] and third["title"] == "L4-d128-h4 · layer 2"
    assert third["paths"] != second["paths"]

    _select(browser, "hypothesis", "step1")
    _wait(browser, lambda d: _plot_state(d)["paths"] != third["paths"], "hypothesis not redrawn")
    _select(browser, "hypothesis", "__all__")
    _wait(browser, lambda d: _plot_state(d)["n_data"] == 3, "all hypotheses not drawn")
    print(f"\n[browser] page load, render and four redraws: {time.perf_counter() - start:.1f} s")


def test_no_console_error_and_nothing_fetched_from_the_network(browser, server):
    browser.get_log("browser")  # drop what earlier tests logged
    browser.get(f"{server}/book/intro.html")
    browser.get(f"{server}/notebooks/page.html")
    _wait(browser, lambda d: _plot_state(d)["traces"] > 0, "the figure never rendered")
    _select(browser, "layer", "2")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(r => r.name)"
    )
    assert any("plotly-basic.min.js" in r for r in resources)
    outside = [r for r in resources if not r.startswith(server) and not r.startswith("data:")]
    assert not outside, f"the page fetched {outside}"


def test_tagged_code_is_behind_toggles_and_removed_cells_are_gone(browser, server):
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/notebooks/page.html")
    assert "removed-bookkeeping-marker" not in browser.page_source
    hidden = browser.find_elements(By.CSS_SELECTOR, "div.cell.tag_hide-input")
    assert len(hidden) == 2
    for cell in hidden:
        code = cell.find_element(By.CSS_SELECTOR, ".cell_input")
        assert not code.is_displayed()
        cell.find_element(By.CSS_SELECTOR, "summary").click()
        _wait(browser, lambda d, c=code: c.is_displayed(), "the toggle does not open")
    visible = [
        c
        for c in browser.find_elements(By.CSS_SELECTOR, "div.cell")
        if "VISIBLE_COMPUTATION" in c.text
    ]
    assert (
        len(visible) == 1 and visible[0].find_element(By.CSS_SELECTOR, ".cell_input").is_displayed()
    )
    # the table under its hidden code: units in the header, the empty column named below
    table = browser.find_element(By.CSS_SELECTOR, "table.book-table")
    assert table.is_displayed() and "value (ratio)" in table.text
    assert "Column empty has no value" in browser.page_source


def test_the_figure_has_a_numbered_caption(browser, server):
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/notebooks/page.html")
    caption = browser.find_element(By.CSS_SELECTOR, "figure#fig-explorer figcaption")
    assert caption.text.startswith("Fig. 1") and "spread over sequences" in caption.text
    link = browser.find_element(By.CSS_SELECTOR, 'a[href="#fig-explorer"]')
    assert link.text == "Fig. 1"


def test_html_check_finds_the_real_stderr_of_a_page(mini_html):
    problems = html_problems(mini_html)
    assert problems, "the noisy page's stderr was not found"
    assert all(p.startswith("notebooks/noisy.html: ") for p in problems), problems
    assert "notebooks/noisy.html: a stderr output" in problems
    assert any("RuntimeWarning: overflow encountered in divide" in p for p in problems)


def test_browse_book_checks_every_chapter_page(mini_html):
    rows, problems = browse_book(mini_html)
    by_page = {r["page"]: r for r in rows}
    assert set(by_page) == {"notebooks/page.html", "notebooks/noisy.html"}
    page = by_page["notebooks/page.html"]
    assert page["interactive"] == 1 and page["figures"] == 1
    # visible: the parameters cell and the computation; hidden: the imports and the table
    assert page["hidden_code_cells"] == 2 and page["visible_code_cells"] == 2
    # the noisy page opens with a code cell, not prose: named, and only it
    assert problems == ["notebooks/noisy.html: the page opens with code, not prose"], problems
