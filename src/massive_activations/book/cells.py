"""Which code cells of a chapter a reader sees, and which ones should be behind a toggle.

A chapter page shows prose and figures first.  The calls into the package that produce a
result stay visible; the rest is tagged in the Jupytext file (``# %% tags=["hide-input"]``):

* ``hide-input``: imports, plotting code and ``glue`` calls whose outputs are shown: the
  output stays, the code is one click away (Jupyter Book's toggle);
* ``remove-cell``: pure bookkeeping with no output worth showing (e.g. ``glue(...,
  display=False)`` of numbers quoted in the prose); the cell stays in the downloadable
  notebook;
* ``remove-input``: an output that needs no code at all on the page.

:func:`cell_visibility` lists a notebook's code cells with what they do, and
:func:`unhidden_display_cells` the visible ones that draw a figure, call ``glue`` or only
import: a test asserts it is empty for every chapter.  :func:`visible_code_lines` counts
the code lines a reader sees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from massive_activations.book.annotate import jupytext_code_cells

__all__ = [
    "HIDING_TAGS",
    "REASONS",
    "CodeCell",
    "cell_visibility",
    "unhidden_display_cells",
    "visible_code_lines",
]

#: Tags that keep a cell's code off the page.
HIDING_TAGS = ("hide-input", "remove-cell", "remove-input")

#: What a cell does that calls for a tag, and how it is recognised in its code.
REASONS = {
    "draws a figure": re.compile(
        r"\bplt\.|\bsns\.|\bplot_\w+\(|\.plot\(|\bax(es)?\b\s*[.\[]|\bfig\w*\s*,\s*ax"
        r"|\btrajectory_explorer\(|\.savefig\("
    ),
    "calls glue": re.compile(r"\bglue\("),
}
_IMPORT = re.compile(r"^(import\s|from\s+\S+\s+import\s)")


@dataclass(frozen=True)
class CodeCell:
    """One code cell of a Jupytext notebook.

    Attributes
    ----------
    number : int
        1-based among code cells (as the book's "Produced by code cell k" notes count).
    lines : tuple of int
        First and last line in the Jupytext file.
    tags : tuple of str
    reasons : tuple of str
        What it does that calls for a hiding tag (keys of :data:`REASONS`, and
        ``"only imports"``).
    code_lines : int
        Non-blank lines of code.
    """

    number: int
    lines: tuple[int, int]
    tags: tuple[str, ...]
    reasons: tuple[str, ...]
    code_lines: int

    @property
    def visible(self) -> bool:
        """Whether the page shows its code."""
        return not any(t in HIDING_TAGS for t in self.tags)


def _reasons(source: str) -> tuple[str, ...]:
    code = [ln for ln in source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    text = "\n".join(ln.split("  #")[0] for ln in code)
    found = [name for name, pattern in REASONS.items() if pattern.search(text)]
    statements = [ln for ln in code if not ln.startswith((" ", "\t", ")"))]
    if statements and all(_IMPORT.match(ln) for ln in statements):
        found.append("only imports")
    return tuple(found)


def cell_visibility(path: str | Path) -> list[CodeCell]:
    """The code cells of a Jupytext (percent) notebook, with tags and what they do."""
    import jupytext

    path = Path(path)
    text = path.read_text()
    nb = jupytext.reads(text, fmt="py:percent")
    code = [c for c in nb.cells if c.cell_type == "code"]
    spans = jupytext_code_cells(text)
    if len(spans) != len(code):
        raise ValueError(
            f"{path} has {len(code)} code cells for jupytext but {len(spans)} `# %%` code "
            "markers: start every cell with a `# %%` marker."
        )
    return [
        CodeCell(
            number=k + 1,
            lines=spans[k],
            tags=tuple(cell.metadata.get("tags", [])),
            reasons=_reasons(cell.source),
            code_lines=sum(1 for ln in cell.source.splitlines() if ln.strip()),
        )
        for k, cell in enumerate(code)
    ]


def unhidden_display_cells(path: str | Path) -> list[str]:
    """Visible code cells that draw a figure, call ``glue`` or only import, one line each.

    Each line names the cell, its lines and what it does, and says which tag to add; the
    ``parameters`` cell is left alone (readers see what the chapter was run with).
    """
    path = Path(path)
    out = []
    for cell in cell_visibility(path):
        if not cell.visible or "parameters" in cell.tags or not cell.reasons:
            continue
        first, last = cell.lines
        out.append(
            f"{path.name} code cell {cell.number} (lines {first}-{last}) "
            f"{' and '.join(cell.reasons)}: tag it "
            '`# %% tags=["hide-input"]` (or "remove-cell" when it shows nothing)'
        )
    return out


def visible_code_lines(path: str | Path) -> int:
    """Non-blank code lines that a reader sees on the page (cells without a hiding tag)."""
    return sum(c.code_lines for c in cell_visibility(path) if c.visible)
