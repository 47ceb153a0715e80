"""Every chapter page of a built book, opened in headless Chromium as a reader would.

``python -m massive_activations.book browse _build/html`` (``make check-book`` runs it after
the HTML check) serves the built book on 127.0.0.1, opens each chapter page
(``notebooks/*.html``) in Chromium through chromedriver and checks, per page:

* it loads, with no console error and nothing fetched from outside the book;
* the code tagged ``hide-input`` is behind a toggle (its input not displayed) and opens when
  the toggle is clicked;
* prose comes first: the first thing the page shows is text, not a code cell;
* every interactive trajectory figure (:mod:`massive_activations.interactive`) renders and
  redraws when another layer (or model) is picked.

It prints one row per page (visible and hidden code cells, figures, interactive figures,
seconds) and returns the problems found.  Chromium and chromedriver come from Debian
(``make browser``); ``MA_CHROMIUM`` and ``MA_CHROMEDRIVER`` point elsewhere.
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
import time
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["browse_book", "chromium", "serve"]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@contextmanager
def serve(html: Path):
    """Serve ``html`` on 127.0.0.1 (a free port); yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(html))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def chromium(profile_dir: Path | None = None):
    """A headless Chromium driven by chromedriver (``MA_CHROMIUM``, ``MA_CHROMEDRIVER``).

    Raises FileNotFoundError naming the missing program and the fix.
    """
    binary = os.environ.get("MA_CHROMIUM", "/usr/bin/chromium")
    driver_path = os.environ.get("MA_CHROMEDRIVER", "/usr/bin/chromedriver")
    missing = [p for p in (binary, driver_path) if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(
            f"The browser check needs Chromium and chromedriver; {missing} not found. Run "
            "`make browser` (apt-get install chromium chromium-driver) or set MA_CHROMIUM "
            "and MA_CHROMEDRIVER."
        )
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium must not look for drivers online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="ma-chromium-") as tmp:
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for arg in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1280,1000",
            f"--user-data-dir={profile_dir or tmp}",
        ):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(driver_path))
        driver.set_page_load_timeout(120)
        try:
            yield driver
        finally:
            driver.quit()


def wait_for(driver, condition, what: str, timeout: float = 30.0):
    """Wait until ``condition(driver)`` is true; a TimeoutException says ``what``."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition(d), message=what)


_EXPLORERS = """
return Array.from(document.querySelectorAll(".ma-explorer")).map(root => ({
  id: root.id,
  traces: root.querySelectorAll(".scatterlayer .trace").length,
  title: (root.querySelector(".gtitle") || {}).textContent || "",
  paths: Array.from(root.querySelectorAll(".scatterlayer path"))
           .map(p => p.getAttribute("d") || "").join("|"),
  layers: Array.from(root.querySelectorAll('select[name="layer"] option')).map(o => o.value),
  models: Array.from(root.querySelectorAll('select[name="model"] option')).map(o => o.value),
}));
"""

_FIRST_SHOWN = """
const main = document.querySelector("main") || document.body;
const items = main.querySelectorAll("section > p, section > div.cell, div.cell, p");
for (const el of items) {
  if (el.offsetParent === null || !el.textContent.trim()) continue;
  if (el.closest("div.cell")) {
    const cell = el.closest("div.cell");
    const input = cell.querySelector(".cell_input");
    if (input && input.offsetParent !== null) return "code";
    continue;
  }
  return "prose";
}
return "nothing";
"""


def _explorers(driver) -> list[dict]:
    return driver.execute_script(_EXPLORERS)


def _pick_other(driver, explorer_id: str, state: dict) -> str | None:
    """Pick another layer (else another model) in one explorer; returns what was picked."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    for name, values in (("layer", state["layers"]), ("model", state["models"])):
        if len(values) > 1:
            element = driver.find_element(By.CSS_SELECTOR, f'#{explorer_id} select[name="{name}"]')
            current = Select(element).first_selected_option.get_attribute("value")
            other = next(v for v in values if v != current)
            Select(element).select_by_value(other)
            return f"{name} {other}"
    return None


def check_page(driver, url: str, base: str) -> tuple[dict, list[str]]:
    """Open one page and check it (see the module docstring); returns its row and problems."""
    from selenium.webdriver.common.by import By

    name = url.removeprefix(base + "/")
    problems: list[str] = []
    start = time.perf_counter()
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(url)
    explorers = _explorers(driver)
    try:
        wait_for(
            driver,
            lambda d: all(e["traces"] > 0 for e in _explorers(d)),
            f"{name}: an interactive figure never rendered",
        )
    except Exception as exc:  # selenium's TimeoutException
        problems.append(str(getattr(exc, "msg", exc)))
    for before in _explorers(driver) if not problems else []:
        picked = _pick_other(driver, before["id"], before)
        if picked is None:
            continue
        try:
            wait_for(
                driver,
                lambda d, b=before: (
                    next(e for e in _explorers(d) if e["id"] == b["id"])["paths"] != b["paths"]
                ),
                f"{name}: the figure {before['id']} did not redraw after picking {picked}",
            )
        except Exception as exc:
            problems.append(str(getattr(exc, "msg", exc)))
    hidden = driver.find_elements(By.CSS_SELECTOR, "div.cell.tag_hide-input")
    shown_code = [
        c for c in hidden if c.find_element(By.CSS_SELECTOR, ".cell_input").is_displayed()
    ]
    if shown_code:
        problems.append(f"{name}: {len(shown_code)} hide-input cell(s) show their code")
    if hidden:  # one toggle opens
        cell = hidden[0]
        code = cell.find_element(By.CSS_SELECTOR, ".cell_input")
        toggle = cell.find_element(By.CSS_SELECTOR, "summary")
        # out from under the sticky header (picking in a figure's menu scrolls the page)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", toggle)
        toggle.click()
        try:
            wait_for(driver, lambda d: code.is_displayed(), f"{name}: a toggle does not open")
        except Exception as exc:
            problems.append(str(getattr(exc, "msg", exc)))
        toggle.click()
    cells = driver.find_elements(By.CSS_SELECTOR, "div.cell")
    visible = [
        c
        for c in cells
        if c.find_elements(By.CSS_SELECTOR, ".cell_input")
        and c.find_element(By.CSS_SELECTOR, ".cell_input").is_displayed()
    ]
    first = driver.execute_script(_FIRST_SHOWN)
    if first != "prose":
        problems.append(f"{name}: the page opens with {first}, not prose")
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    problems += [f"{name}: console error: {m}" for m in errors]
    resources = driver.execute_script(
        "return performance.getEntriesByType('resource').map(r => r.name)"
    )
    outside = [r for r in resources if not r.startswith(base) and not r.startswith("data:")]
    if outside:
        problems.append(f"{name}: fetched from outside the book: {outside}")
    row = {
        "page": name,
        "visible_code_cells": len(visible),
        "hidden_code_cells": len(hidden),
        "figures": len(driver.find_elements(By.CSS_SELECTOR, "figure")),
        "interactive": len(explorers),
        "seconds": round(time.perf_counter() - start, 1),
    }
    return row, problems


def browse_book(html: str | Path, pages: str = "notebooks/*.html") -> tuple[list[dict], list]:
    """Open every page of ``html`` matching ``pages`` in headless Chromium and check it.

    Returns ``(rows, problems)``: one row per page (see :func:`check_page`) and every
    problem found, each naming its page.  Raises FileNotFoundError when ``html`` holds no
    such page (build the book first) or the browser is missing.
    """
    html = Path(html)
    found = sorted(html.glob(pages))
    if not found:
        raise FileNotFoundError(f"No {pages} under {html}: build the book first (make book).")
    rows, problems = [], []
    with serve(html) as base, chromium() as driver:
        for page in found:
            row, found_problems = check_page(driver, f"{base}/{page.relative_to(html)}", base)
            rows.append(row)
            problems += found_problems
    return rows, problems
