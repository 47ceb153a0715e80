"""Execute the notebooks with papermill and build the Jupyter Book, failing loudly.

One entry point for the book and for the tests::

    python -m massive_activations.book build --profile default      # make book
    python -m massive_activations.book build --profile smoke --out /tmp/x

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
4. Write the execution-status page (wall time, parameters, package versions, git commit,
   and the data files each notebook read and wrote; ``<out>/_build/execution_status.json``
   holds the same with full digests) and the data card
   (:func:`massive_activations.book.data_card.data_card_page`) of the data folders the notebooks'
   parameters name.
5. Run ``jupyter-book build`` with execution off and ``-W -n --keep-going``, so a warning,
   a missing glue key or a broken reference fails the build.  A notebook that raised fails
   the command before the build (with execution off, Sphinx would render its traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import yaml

from massive_activations import provenance

__all__ = [
    "NotebookRun",
    "annotate_notebook",
    "build_book",
    "data_folders",
    "execute_notebooks",
    "jupytext_code_cells",
    "load_profile",
    "main",
    "notebook_order",
    "repo_root",
    "status_page",
]

#: Book sources copied into the staging folder next to the executed notebooks.
BOOK_SOURCES = ("_config.yml", "_toc.yml", "book")

#: Packages whose versions the status page records.
RECORDED_PACKAGES = (
    "massive-activations",
    "numpy",
    "scipy",
    "pandas",
    "matplotlib",
    "seaborn",
    "lmfit",
    "torch",
    "transformers",
    "tokenizers",
    "papermill",
    "jupytext",
    "jupyter-book",
    "myst-nb",
    "sphinx",
)


def repo_root() -> Path:
    """The repository root: the folder holding ``_toc.yml`` above this package."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "_toc.yml").is_file() and (parent / "notebooks").is_dir():
            return parent
    raise FileNotFoundError(
        f"No repository root (a folder with _toc.yml and notebooks/) above {here}. "
        "Install the package in editable mode from a checkout: pip install -e ."
    )


def notebook_order(root: Path) -> list[str]:
    """Notebook names in the order ``_toc.yml`` lists them (entries ``notebooks/<name>``)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    names: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            entry = node.get("file")
            if isinstance(entry, str) and entry.startswith("notebooks/"):
                names.append(entry.removeprefix("notebooks/"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    for name in names:
        if not (root / "notebooks" / f"{name}.py").is_file():
            raise FileNotFoundError(
                f"_toc.yml lists notebooks/{name} but notebooks/{name}.py does not exist. "
                "Add the Jupytext file or remove the entry from _toc.yml."
            )
    return names


def load_profile(root: Path, profile: str) -> dict:
    """Return the profile ``{"cell_timeout": s, "notebooks": {name: params}}``."""
    profiles = yaml.safe_load((root / "notebooks" / "profiles.yml").read_text())
    if profile not in profiles:
        raise KeyError(
            f"Unknown profile {profile!r}; notebooks/profiles.yml defines "
            f"{sorted(profiles)}. Pass one of those to --profile or add it there."
        )
    spec = profiles[profile] or {}
    return {
        "cell_timeout": int(spec.get("cell_timeout", 600)),
        "notebooks": {k: dict(v or {}) for k, v in (spec.get("notebooks") or {}).items()},
    }


@dataclass
class NotebookRun:
    """What happened when one notebook was executed.

    ``files`` lists the data files it read and wrote, one ``{"path", "action", "sha256",
    "bytes"}`` per (path, action) (:func:`massive_activations.provenance.dedupe`).
    """

    name: str
    parameters: dict
    seconds: float
    ok: bool
    error: str = ""
    output: str = ""
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    files: list = field(default_factory=list)


def _read_notebook(path: Path):
    import jupytext

    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def _parameter_defaults(name: str, nb) -> dict:
    """The names the notebook's ``parameters`` cell defines, with their values."""
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ValueError(
            f"notebooks/{name}.py has no cell tagged parameters; add "
            '`# %% tags=["parameters"]` above its parameter assignments.'
        )
    namespace: dict = {}
    exec(compile(cells[0].source, f"{name}:parameters", "exec"), namespace)
    return {k: v for k, v in namespace.items() if not k.startswith("__")}


def _check_parameters(name: str, nb, params: dict) -> None:
    """Refuse parameters that the notebook's ``parameters`` cell does not define."""
    namespace = _parameter_defaults(name, nb)
    unknown = sorted(set(params) - set(namespace))
    if unknown:
        known = sorted(k for k in namespace if not k.startswith("__"))
        raise ValueError(
            f"Parameters {unknown} are not defined in the parameters cell of "
            f"notebooks/{name}.py (it defines {known}). Fix the name in "
            "notebooks/profiles.yml or on the command line."
        )


def execute_notebooks(
    root: Path,
    profile: str,
    dest: Path,
    only: list[str] | None = None,
    overrides: dict | None = None,
    log_dir: Path | None = None,
) -> list[NotebookRun]:
    """Execute the notebooks of ``_toc.yml`` in order; write ``dest/<name>.ipynb``.

    Parameters
    ----------
    root : Path
        Repository root; also the kernel's working directory.
    profile : str
        Name of a profile in ``notebooks/profiles.yml``.
    dest : Path
        Folder for the executed notebooks.
    only : list of str, optional
        Execute only these notebook names.
    overrides : dict, optional
        ``{name: {param: value}}`` applied on top of the profile.
    log_dir : Path, optional
        Folder for the provenance logs ``<name>.jsonl`` (default ``<dest>/../provenance``).

    Returns
    -------
    list of NotebookRun
        One record per notebook, with the data files it read and wrote; execution stops at
        the first failure.
    """
    import papermill

    spec = load_profile(root, profile)
    names = notebook_order(root)
    if only:
        missing = sorted(set(only) - set(names))
        if missing:
            raise KeyError(f"Unknown notebooks {missing}; _toc.yml lists {names}.")
        names = [n for n in names if n in only]
    dest.mkdir(parents=True, exist_ok=True)
    # The kernels inherit this process's environment. tqdm.auto (imported by transformers)
    # warns on stderr that ipywidgets is missing; a static page cannot show widgets anyway.
    os.environ["PYTHONWARNINGS"] = "ignore:IProgress not found"
    log_dir = Path(log_dir) if log_dir is not None else dest.parent / "provenance"
    log_dir.mkdir(parents=True, exist_ok=True)
    saved = {k: os.environ.get(k) for k in (provenance.LOG_ENV, provenance.NOTEBOOK_ENV)}
    runs: list[NotebookRun] = []
    try:
        for name in names:
            params = {**spec["notebooks"].get(name, {}), **(overrides or {}).get(name, {})}
            nb = _read_notebook(root / "notebooks" / f"{name}.py")
            _check_parameters(name, nb, params)
            out = dest / f"{name}.ipynb"
            log = log_dir / f"{name}.jsonl"
            log.unlink(missing_ok=True)
            os.environ[provenance.LOG_ENV] = str(log)
            os.environ[provenance.NOTEBOOK_ENV] = name
            print(f"[book] executing notebooks/{name}.py ({profile}) ...", flush=True)
            start = time.perf_counter()
            try:
                papermill.execute_notebook(
                    nb,
                    str(out),
                    parameters=params,
                    cwd=str(root),
                    kernel_name="python3",
                    execution_timeout=spec["cell_timeout"],
                    progress_bar=False,
                )
            except Exception as exc:  # papermill saves the notebook with the error; keep it
                seconds = time.perf_counter() - start
                files = provenance.dedupe(provenance.read_log(log))
                runs.append(NotebookRun(name, params, seconds, False, f"{exc}", str(out)))
                runs[-1].files = files
                print(f"[book] FAILED notebooks/{name}.py; executed copy: {out}\n{exc}", flush=True)
                break
            seconds = time.perf_counter() - start
            runs.append(NotebookRun(name, params, seconds, True, "", str(out)))
            runs[-1].files = provenance.dedupe(provenance.read_log(log))
            print(f"[book]   done in {seconds:.1f} s", flush=True)
    finally:  # the rest of this process (and jupyter-book) records nothing
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return runs


def environment_record(root: Path) -> dict:
    """Python, platform, package versions and git commit of this run."""
    versions = {}
    for pkg in RECORDED_PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    commit, dirty = "unknown", False
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "git_commit": commit,
        "git_dirty": dirty,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "packages": versions,
    }


def status_page(profile: str, runs: list[NotebookRun], env: dict) -> str:
    """Markdown for the execution-status page.

    Lists every run (status, wall time, parameters), the data files each read and wrote
    (``run.files``; first 12 hex digits of the sha256, the full digest being in
    ``execution_status.json``) and the package versions.
    """
    lines = [
        "# Execution status",
        "",
        "Generated by `python -m massive_activations.book` while this book was built: every",
        "notebook below was executed with papermill in this run, with the parameters shown.",
        "",
        f"- Profile: `{profile}`",
        f"- Built: {env['date']}",
        f"- Git commit: `{env['git_commit']}`"
        + (" (uncommitted changes)" if env["git_dirty"] else ""),
        f"- Python {env['python']} on `{env['platform']}`, {env['cpu_count']} CPU cores",
        "",
        "| notebook | status | wall time (s) | parameters |",
        "|---|---|---:|---|",
    ]
    for run in runs:
        params = ", ".join(f"`{k}={v!r}`" for k, v in run.parameters.items()) or "defaults"
        status = "ok" if run.ok else "failed"
        lines.append(
            f"| {{doc}}`{run.name} </notebooks/{run.name}>` | {status} | {run.seconds:.1f} | {params} |"
        )
    total = sum(r.seconds for r in runs)
    lines += ["", f"Total execution time: {total:.1f} s.", ""]
    lines += _files_section(runs)
    lines += ["## Package versions", ""]
    lines += ["| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in env["packages"].items()]
    return "\n".join(lines) + "\n"


def _files_section(runs: list[NotebookRun]) -> list[str]:
    lines = [
        "## Data files read and written",
        "",
        "Every data file a notebook read or wrote through `massive_activations` (recorded by "
        "`massive_activations.provenance`; paths relative to the repository root). The "
        "sha256 column shows the first 12 hex digits of the digest; `execution_status.json`, "
        "written beside the HTML, holds the full digests.",
        "",
    ]
    rows = [(run.name, f) for run in runs for f in run.files]
    if not rows:
        return [*lines, "No notebook read or wrote a data file in this run.", ""]
    lines += ["| notebook | file | action | sha256 | bytes |", "|---|---|---|---|---:|"]
    for name, f in rows:
        path = str(f["path"]).replace("`", "'").replace("|", "\\|")
        lines.append(
            f"| {name} | `{path}` | {f['action']} | `{f['sha256'][:12]}` | {int(f['bytes']):,} |"
        )
    return [*lines, ""]


# --------------------------------------------------------------------------- annotations

_MARKER = re.compile(r"^# %%(?:[ \t]|$)")
_NON_CODE = re.compile(r"^# %%.*\[(?:markdown|md|raw)\]")
_IMAGES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")


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
        if "<table" in html:
            return True
    return False


def annotate_notebook(ipynb: Path, source: Path, commit: str, dirty: bool = False) -> int:
    """Add provenance cells to an executed notebook, in place; return the notes added.

    The first cell (tagged ``provenance``) links the Jupytext source and the executed
    notebook (``{download}`` roles, relative to the notebook, so ``source`` must be copied
    beside it) and names the git commit.  After every code cell that shows an image or an
    HTML table, a note gives the cell's number and line span in ``notebooks/<name>.py``:
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
    for cell in nb.cells:
        cells.append(cell)
        k = position.get(id(cell))
        if k is None or not _shows_figure_or_table(cell):
            continue
        first, last = spans[k]
        lines = f"line {first}" if first == last else f"lines {first}-{last}"
        note = nbformat.v4.new_markdown_cell(
            f"<small>Produced by code cell {k + 1} of `notebooks/{name}.py` ({lines}).</small>"
        )
        note.metadata["tags"] = ["provenance"]
        cells.append(note)
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


def data_folders(root: Path, runs: list[NotebookRun]) -> list[Path]:
    """The data folders ``<data_dir>/<suite>`` the executed notebooks' parameters name.

    Parameters come from the run (profile and overrides) over the notebook's own defaults;
    notebooks with no ``suite`` or no ``data_dir`` parameter name none.
    """
    folders: list[Path] = []
    for run in runs:
        nb = _read_notebook(root / "notebooks" / f"{run.name}.py")
        params = {**_parameter_defaults(run.name, nb), **run.parameters}
        suite, data_dir = params.get("suite"), params.get("data_dir")
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
    (staging / "book" / "status.md").write_text(status_page(profile, runs, env))
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
    args = parser.parse_args(argv)
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
