"""Checks of the built HTML: no page shows stderr, a warning or a traceback.

myst-nb renders a code cell's outputs inside ``<div class="cell_output ...">``: stderr as
``<div class="output stderr">``, an error as ``<div class="output traceback">``.  A page is
clean when it has neither class and no output text that looks like a Python warning
(``RuntimeWarning: ...``) or a traceback.  Prose is not searched (a page may discuss a
warning).  ``make check-book`` runs :func:`html_problems` over ``_build/html`` after
``make book``; the smoke build's test runs it too::

    python -m massive_activations.book check _build/html
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

__all__ = [
    "WARNING_TEXT",
    "html_problems",
    "page_problems",
]

#: Output text that a warning or a traceback leaves (``UserWarning: ...``, ``Traceback ...``).
WARNING_TEXT = re.compile(
    r"\b[A-Z][A-Za-z]*Warning: |Traceback \(most recent call last\)|^\s*warnings\.warn\(",
    re.MULTILINE,
)
_BAD_CLASSES = ("stderr", "traceback")


class _Outputs(HTMLParser):
    """Collects the text of each ``cell_output`` block and the classes of bad outputs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0  # open <div>s
        self.output_depth: int | None = None
        self.texts: list[str] = []
        self.bad: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag != "div":
            return
        self.depth += 1
        classes = (dict(attrs).get("class") or "").split()
        if "output" in classes and any(c in classes for c in _BAD_CLASSES):
            self.bad.append(" ".join(c for c in classes if c in _BAD_CLASSES))
        if self.output_depth is None and "cell_output" in classes:
            self.output_depth = self.depth
            self.texts.append("")

    def handle_endtag(self, tag):
        if tag != "div":
            return
        if self.output_depth == self.depth:
            self.output_depth = None
        self.depth -= 1

    def handle_data(self, data):
        if self.output_depth is not None:
            self.texts[-1] += data


def page_problems(page: str) -> list[str]:
    """What a page's outputs show that a reader should not see (empty when clean).

    Parameters
    ----------
    page : str
        The HTML of one page.

    Returns
    -------
    list of str
        One line per stderr or traceback output and per output whose text holds a warning
        or a traceback, quoting the first line of it.
    """
    parser = _Outputs()
    parser.feed(page)
    parser.close()
    problems = [f"a {kind} output" for kind in parser.bad]
    for text in parser.texts:
        match = WARNING_TEXT.search(text)
        if match:
            start = text.rfind("\n", 0, match.start()) + 1
            end = text.find("\n", match.end())
            line = text[start : end if end >= 0 else len(text)].strip()
            problems.append(f"output text {line[:160]!r}")
    return problems


def html_problems(html_dir: str | Path) -> list[str]:
    """:func:`page_problems` of every page under ``html_dir``, as ``"<page>: <problem>"``.

    Raises
    ------
    FileNotFoundError
        If ``html_dir`` holds no HTML page (build the book first: ``make book``).
    """
    html_dir = Path(html_dir)
    pages = sorted(p for p in html_dir.rglob("*.html") if "_static" not in p.parts)
    if not pages:
        raise FileNotFoundError(
            f"No HTML page under {html_dir}: build the book first (`make book`)."
        )
    return [
        f"{page.relative_to(html_dir).as_posix()}: {problem}"
        for page in pages
        for problem in page_problems(page.read_text(encoding="utf-8"))
    ]
