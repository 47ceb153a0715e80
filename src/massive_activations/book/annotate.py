"""Annotations of an executed notebook: a provenance cell with download links and the git
commit, and after every figure (image or interactive figure) or table a note naming the cell
and its lines in the Jupytext source; a figure shown by a ``{glue:figure}`` directive gets the
note of the code cell that glued it, after the markdown cell that shows it.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "annotate_notebook",
    "jupytext_code_cells",
]

_MARKER = re.compile(r"^# %%(?:[ \t]|$)")
_NON_CODE = re.compile(r"^# %%.*\[(?:markdown|md|raw)\]")
_IMAGES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
_GLUE_FIGURE = re.compile(r"\{glue:figure\}(?:`([^`]+)`|[ \t]+(\S+))")


def jupytext_code_cells(text: str) -> list[tuple[int, int]]:
    """Line spans ``(first, last)`` (1-based, inclusive) of the code cells of a Jupytext file.

    Cells are delimited by ``# %%`` markers (percent format); a code cell's span runs from
    the first to the last non-blank line after its marker (the marker line itself when the
    cell is empty).  Markdown and raw cells (``# %% [markdown]``) are skipped.
    """
    lines = text.splitlines()
    markers = [i for i, line in enumerate(lines) if _MARKER.match(line)]
    spans = []
    for k, i in enumerate(markers):
        if _NON_CODE.match(lines[i]):
            continue
        end = markers[k + 1] if k + 1 < len(markers) else len(lines)
        body = [j for j in range(i + 1, end) if lines[j].strip()]
        spans.append((body[0] + 1, body[-1] + 1) if body else (i + 1, i + 1))
    return spans


def _shows_figure_or_table(cell) -> bool:
    tags = cell.get("metadata", {}).get("tags", [])
    if "remove-output" in tags or "remove-cell" in tags:
        return False
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if any(m in data for m in _IMAGES):
            return True
        html = data.get("text/html", "")
        html = "".join(html) if isinstance(html, list) else html
        if "<table" in html or 'class="ma-explorer"' in html:  # a table, an interactive figure
            return True
    return False


def _glued_by(code) -> dict[str, int]:
    """``{glue key: index of the code cell that glued it}`` (myst-nb's ``scrapbook`` output
    metadata; the first cell wins)."""
    out: dict[str, int] = {}
    for k, cell in enumerate(code):
        for output in cell.get("outputs", []):
            key = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if key:
                out.setdefault(key, k)
    return out


def annotate_notebook(ipynb: Path, source: Path, commit: str, dirty: bool = False) -> int:
    """Add provenance cells to an executed notebook, in place; return the notes added.

    The first cell (tagged ``provenance``) links the Jupytext source and the executed
    notebook (``{download}`` roles, relative to the notebook, so ``source`` must be copied
    beside it) and names the git commit.  After every code cell that shows an image or an
    HTML table, and after every markdown cell that shows a glued figure
    (``{glue:figure} key``), a note gives the cell's number and line span in
    ``notebooks/<name>.py``:
    the k-th code cell of the Jupytext file is the k-th code cell of the notebook, not
    counting the cell papermill injects (tagged ``injected-parameters``).

    Raises
    ------
    ValueError
        If the notebook and the Jupytext file have different numbers of code cells.
    """
    import nbformat

    nb = nbformat.read(ipynb, as_version=4)
    spans = jupytext_code_cells(source.read_text())
    name = source.stem
    code = [
        c
        for c in nb.cells
        if c.cell_type == "code"
        and "injected-parameters" not in c.get("metadata", {}).get("tags", [])
    ]
    if len(code) != len(spans):
        raise ValueError(
            f"{ipynb} has {len(code)} code cells but notebooks/{name}.py has {len(spans)} "
            "`# %%` code cells: start every cell of the Jupytext file with a `# %%` marker "
            "(no code before the first marker)."
        )
    cells = []
    notes = 0
    position = {id(c): k for k, c in enumerate(code)}
    glued = _glued_by(code)

    def note_for(ks: list[int]):
        parts = []
        for k in ks:
            first, last = spans[k]
            lines = f"line {first}" if first == last else f"lines {first}-{last}"
            parts.append(f"code cell {k + 1} of `notebooks/{name}.py` ({lines})")
        note = nbformat.v4.new_markdown_cell(f"<small>Produced by {'; '.join(parts)}.</small>")
        note.metadata["tags"] = ["provenance"]
        return note

    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type == "markdown":
            keys = [a or b for a, b in _GLUE_FIGURE.findall(cell.source)]
            ks = sorted({glued[key] for key in keys if key in glued})
            if ks:
                cells.append(note_for(ks))
                notes += 1
            continue
        k = position.get(id(cell))
        if k is None or not _shows_figure_or_table(cell):
            continue
        cells.append(note_for([k]))
        notes += 1
    header = nbformat.v4.new_markdown_cell(
        f"Source: {{download}}`notebooks/{name}.py <{name}.py>` (Jupytext) and the "
        f"{{download}}`executed notebook <{name}.ipynb>`, executed at git commit `{commit}`"
        + (" with uncommitted changes." if dirty else ".")
    )
    header.metadata["tags"] = ["provenance"]
    nb.cells = [header, *cells]
    nbformat.write(nb, ipynb)
    return notes
