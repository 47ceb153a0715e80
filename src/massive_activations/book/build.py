"""Execute the notebooks with papermill and build the Jupyter Book, failing loudly.

One entry point for the book and for the tests::

    python -m massive_activations.book build --profile default      # make book
    python -m massive_activations.book build --profile smoke --out /tmp/x
    python -m massive_activations.book check _build/html           # make check-book
    python -m massive_activations.book browse _build/html          # make check-book, too

Steps:

1. Read the notebook order from ``_toc.yml`` (entries ``notebooks/<name>``).
2. Convert each Jupytext ``notebooks/<name>.py`` and execute it with papermill, with the
   parameters and cell timeout of the named profile in ``notebooks/profiles.yml``; the
   working directory is the repository root.  An unknown parameter name is an error.  The
   kernel runs with ``MA_NOTEBOOK=<name>`` and ``MA_PROVENANCE_LOG`` naming a fresh file, in
   which :mod:`massive_activations.provenance` records every data file the notebook reads
   or writes (path, sha256, size).
3. Write the executed ``.ipynb`` files into a staging copy of the book sources
   (``<out>/_build/source``), never into ``notebooks/``, with a copy of the Jupytext source
   beside each.  Each executed notebook gets a first cell (tagged ``provenance``) with
   download links to both and the git commit, and after every cell that shows a figure or
   a table a small note naming the cell and its lines in the Jupytext file
   (:func:`annotate_notebook`).
4. Write the execution-status page (which data the book shows, wall time, parameters,
   package versions, git commit, and the data files each notebook read and wrote;
   ``<out>/_build/execution_status.json`` holds the same with full digests), a banner on the
   intro page saying which data the book shows (the default edition, the Pythia edition, or
   a synthetic stand-in of it), and the data card
   (:func:`massive_activations.book.data_card.data_card_page`) of the data folders the
   notebooks' parameters name.
5. Run ``jupyter-book build`` with execution off and ``-W -n --keep-going``, so a warning,
   a missing glue key or a broken reference fails the build.  A notebook that raised fails
   the command before the build (with execution off, Sphinx would render its traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import yaml

from massive_activations.book.annotate import annotate_notebook
from massive_activations.book.execute import (
    NotebookRun,
    execute_notebooks,
    parameter_defaults,
    read_notebook,
    repo_root,
)
from massive_activations.book.status import (
    edition_banner,
    edition_of,
    environment_record,
    status_page,
)

__all__ = [
    "BOOK_SOURCES",
    "build_book",
    "data_folders",
    "main",
]

BOOK_SOURCES = ("_config.yml", "_toc.yml", "book")

#: Packages whose versions the status page records.


def data_folders(root: Path, runs: list[NotebookRun]) -> list[Path]:
    """The data folders the executed notebooks' parameters name.

    ``<data_dir>/<suite>``, or for the regrowth chapter (a ``config`` parameter and no
    ``suite``) ``<data_dir>/<folder_name(config)>``.  Parameters come from the run (profile
    and overrides) over the notebook's own defaults; notebooks with neither, or no
    ``data_dir``, name none.
    """
    from massive_activations.regrowth.config import CONFIGS, folder_name

    folders: list[Path] = []
    for run in runs:
        nb = read_notebook(root / "notebooks" / f"{run.name}.py")
        params = {**parameter_defaults(run.name, nb), **run.parameters}
        suite, data_dir = params.get("suite"), params.get("data_dir")
        config = params.get("config")
        if not isinstance(suite, str) and isinstance(config, str) and config in CONFIGS:
            suite = folder_name(CONFIGS[config])
        if not isinstance(suite, str) or not isinstance(data_dir, str | os.PathLike):
            continue
        folder = Path(data_dir) / suite
        folder = folder if folder.is_absolute() else root / folder
        if folder not in folders:
            folders.append(folder)
    return folders


def build_book(
    profile: str = "default",
    out: Path | None = None,
    only: list[str] | None = None,
    overrides: dict | None = None,
    root: Path | None = None,
) -> Path:
    """Execute every notebook and build the HTML book; return the HTML folder.

    The staging copy of the sources is ``<out>/_build/source`` and the HTML lands in
    ``<out>/_build/html``; ``out`` defaults to the repository root.

    Raises
    ------
    RuntimeError
        If a notebook raised (naming it and its executed copy) or the build failed.
    """
    root = root or repo_root()
    out = Path(out or root).resolve()
    build = out / "_build"
    staging = build / "source"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for item in BOOK_SOURCES:
        src = root / item
        if src.is_dir():
            shutil.copytree(src, staging / item)
        else:
            shutil.copy2(src, staging / item)

    runs = execute_notebooks(
        root, profile, staging / "notebooks", only, overrides, log_dir=build / "provenance"
    )
    env = environment_record(root)
    record = {"profile": profile, "environment": env, "runs": [asdict(r) for r in runs]}
    build.mkdir(exist_ok=True)
    (build / "execution_status.json").write_text(json.dumps(record, indent=2, default=str))
    failed = [r for r in runs if not r.ok]
    if failed:
        raise RuntimeError(
            f"Notebook {failed[0].name} raised: {failed[0].error}\n"
            f"Its executed copy, with the traceback, is {failed[0].output}."
        )
    if only:  # a partial book: drop toc entries that were not executed
        _prune_toc(staging / "_toc.yml", set(only))
    for run in runs:
        source = root / "notebooks" / f"{run.name}.py"
        shutil.copy2(source, staging / "notebooks")
        annotate_notebook(Path(run.output), source, env["git_commit"], env["git_dirty"])
    edition = edition_of(root, runs)
    (staging / "book" / "status.md").write_text(status_page(profile, runs, env, edition))
    _add_banner(staging / "book" / "intro.md", edition_banner(edition))
    from massive_activations.book.data_card import data_card_page

    card = data_card_page(data_folders(root, runs), root=root)
    (staging / "book" / "data_card.md").write_text(card)

    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [
        str(jb) if jb.exists() else "jupyter-book", "build", str(staging),
        "--path-output", str(out), "-n", "--keep-going",
    ]  # fmt: skip
    if only:
        # links to the chapters that were not executed cannot resolve in a partial book
        print("[book] partial build (--only): warnings are shown but not fatal", flush=True)
    else:
        cmd.append("-W")
    print("[book] " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=staging)
    html = build / "html"
    if proc.returncode != 0:
        raise RuntimeError(
            f"jupyter-book build failed (exit {proc.returncode}); see the warnings above."
        )
    print(f"[book] open {html / 'index.html'}", flush=True)
    return html


def _add_banner(page: Path, banner: str) -> None:
    """Insert ``banner`` after the first heading of a Markdown page."""
    lines = page.read_text().splitlines(keepends=True)
    at = next((i + 1 for i, line in enumerate(lines) if line.startswith("# ")), 0)
    page.write_text("".join([*lines[:at], "\n", banner, "\n", *lines[at:]]))


def _prune_toc(toc_path: Path, keep: set[str]) -> None:
    toc = yaml.safe_load(toc_path.read_text())

    def prune(node):
        if isinstance(node, list):
            return [prune(n) for n in node if not _dropped(n, keep)]
        if isinstance(node, dict):
            return {k: prune(v) for k, v in node.items()}
        return node

    toc_path.write_text(yaml.safe_dump(prune(toc), sort_keys=False))


def _dropped(node, keep: set[str]) -> bool:
    entry = node.get("file", "") if isinstance(node, dict) else ""
    return entry.startswith("notebooks/") and entry.removeprefix("notebooks/") not in keep


def _check(html: Path) -> int:
    from massive_activations.book.html_check import html_problems

    try:
        problems = html_problems(html)
    except FileNotFoundError as exc:
        print(f"[book] error: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"[book] {problem}", file=sys.stderr)
    if problems:
        print(
            f"[book] {len(problems)} output(s) show stderr, a warning or a traceback: fix "
            "them at their cause in the notebooks or the package.",
            file=sys.stderr,
        )
        return 1
    print(f"[book] {html}: no stderr, warning or traceback on any page", flush=True)
    return 0


def _browse(html: Path) -> int:
    import pandas as pd

    from massive_activations.book.browse import browse_book

    try:
        rows, problems = browse_book(html)
    except FileNotFoundError as exc:
        print(f"[book] error: {exc}", file=sys.stderr)
        return 1
    print(pd.DataFrame(rows).to_string(index=False), flush=True)
    for problem in problems:
        print(f"[book] {problem}", file=sys.stderr)
    if problems:
        print(f"[book] {len(problems)} problem(s) in the browser.", file=sys.stderr)
        return 1
    print(f"[book] {html}: {len(rows)} chapter pages open cleanly in Chromium", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m massive_activations.book",
        description="Execute the notebooks with papermill and build the Jupyter Book.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="execute every notebook, then build the HTML book")
    b.add_argument("--profile", default="default", help="profile in notebooks/profiles.yml")
    b.add_argument("--out", type=Path, default=None, help="output folder (default: repo root)")
    b.add_argument("--only", nargs="*", help="execute and build only these notebooks")
    b.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NOTEBOOK:NAME=VALUE",
        help="override one parameter, e.g. -p 03_measuring:suite=pythia-70m (YAML value)",
    )
    c = sub.add_parser(
        "check", help="check the built HTML: no stderr, warning or traceback on any page"
    )
    c.add_argument("html", type=Path, nargs="?", default=None, help="default: _build/html")
    w = sub.add_parser(
        "browse",
        help="open every chapter page in headless Chromium: it loads without console errors, "
        "code is behind toggles, prose comes first, interactive figures respond",
    )
    w.add_argument("html", type=Path, nargs="?", default=None, help="default: _build/html")
    args = parser.parse_args(argv)
    if args.command == "check":
        return _check(args.html or repo_root() / "_build" / "html")
    if args.command == "browse":
        return _browse(args.html or repo_root() / "_build" / "html")
    overrides: dict = {}
    for item in args.param:
        try:
            nb_name, assignment = item.split(":", 1)
            key, value = assignment.split("=", 1)
        except ValueError:
            parser.error(f"--param {item!r} must look like NOTEBOOK:NAME=VALUE")
        overrides.setdefault(nb_name, {})[key] = yaml.safe_load(value)
    try:
        build_book(args.profile, args.out, args.only, overrides)
    except (RuntimeError, KeyError, ValueError, FileNotFoundError) as exc:
        print(f"[book] error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
