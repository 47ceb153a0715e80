"""The book: execute the notebooks, annotate them, write the status page and data card, build.

Modules, lowest first: :mod:`~massive_activations.book.execute` (papermill runs, profiles),
:mod:`~massive_activations.book.status` (the execution-status page),
:mod:`~massive_activations.book.annotate` (provenance cell and cell notes),
:mod:`~massive_activations.book.cells` (which code cells a reader sees),
:mod:`~massive_activations.book.html_check` (no stderr, warning or traceback on a page),
:mod:`~massive_activations.book.browse` (every chapter page in headless Chromium),
:mod:`~massive_activations.book.data_card` (the data-card page),
:mod:`~massive_activations.book.sphinx_ext` (the book's Sphinx extension) and
:mod:`~massive_activations.book.build` (the whole build; ``python -m massive_activations.book``).
"""

from massive_activations.book.annotate import (
    annotate_notebook,
    jupytext_code_cells,
)
from massive_activations.book.build import (
    BOOK_SOURCES,
    build_book,
    data_folders,
    main,
)
from massive_activations.book.cells import (
    HIDING_TAGS,
    CodeCell,
    cell_visibility,
    unhidden_display_cells,
    visible_code_lines,
)
from massive_activations.book.data_card import (
    data_card_page,
    file_summary,
)
from massive_activations.book.execute import (
    NotebookRun,
    check_parameters,
    execute_notebooks,
    load_profile,
    notebook_order,
    parameter_defaults,
    read_notebook,
    repo_root,
)
from massive_activations.book.html_check import html_problems, page_problems
from massive_activations.book.status import (
    RECORDED_PACKAGES,
    environment_record,
    git_state,
    status_page,
)

__all__ = [
    "BOOK_SOURCES",
    "HIDING_TAGS",
    "RECORDED_PACKAGES",
    "CodeCell",
    "NotebookRun",
    "annotate_notebook",
    "build_book",
    "cell_visibility",
    "check_parameters",
    "data_card_page",
    "data_folders",
    "environment_record",
    "execute_notebooks",
    "file_summary",
    "git_state",
    "html_problems",
    "jupytext_code_cells",
    "load_profile",
    "main",
    "notebook_order",
    "page_problems",
    "parameter_defaults",
    "read_notebook",
    "repo_root",
    "status_page",
    "unhidden_display_cells",
    "visible_code_lines",
]
