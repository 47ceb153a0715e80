"""Execute the notebooks with papermill and build the Jupyter Book, failing loudly.

One entry point for the book and for the tests::

    python -m massive_activations.book build --profile default      # make book
    python -m massive_activations.book build --profile smoke --out /tmp/x

Steps:

1. Read the notebook order from ``_toc.yml`` (entries ``notebooks/<name>``).
2. Convert each Jupytext ``notebooks/<name>.py`` and execute it with papermill, with the
   parameters and cell timeout of the named profile in ``notebooks/profiles.yml``; the
   working directory is the repository root.  An unknown parameter name is an error.
3. Write the executed ``.ipynb`` files into a staging copy of the book sources
   (``<out>/_build/source``), never into ``notebooks/``.
4. Write the execution-status page (wall time, parameters, package versions, git commit).
5. Run ``jupyter-book build`` with execution off and ``-W -n --keep-going``, so a warning,
   a missing glue key or a broken reference fails the build.  A notebook that raised fails
   the command before the build (with execution off, Sphinx would render its traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import yaml

__all__ = [
    "NotebookRun",
    "build_book",
    "execute_notebooks",
    "load_profile",
    "main",
    "notebook_order",
    "repo_root",
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
    """What happened when one notebook was executed."""

    name: str
    parameters: dict
    seconds: float
    ok: bool
    error: str = ""
    output: str = ""
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def _read_notebook(path: Path):
    import jupytext

    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def _check_parameters(name: str, nb, params: dict) -> None:
    """Refuse parameters that the notebook's ``parameters`` cell does not define."""
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ValueError(
            f"notebooks/{name}.py has no cell tagged parameters; add "
            '`# %% tags=["parameters"]` above its parameter assignments.'
        )
    namespace: dict = {}
    exec(compile(cells[0].source, f"{name}:parameters", "exec"), namespace)
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

    Returns
    -------
    list of NotebookRun
        One record per notebook; execution stops at the first failure.
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
    runs: list[NotebookRun] = []
    for name in names:
        params = {**spec["notebooks"].get(name, {}), **(overrides or {}).get(name, {})}
        nb = _read_notebook(root / "notebooks" / f"{name}.py")
        _check_parameters(name, nb, params)
        out = dest / f"{name}.ipynb"
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
            runs.append(
                NotebookRun(name, params, time.perf_counter() - start, False, f"{exc}", str(out))
            )
            print(f"[book] FAILED notebooks/{name}.py; executed copy: {out}\n{exc}", flush=True)
            break
        runs.append(NotebookRun(name, params, time.perf_counter() - start, True, "", str(out)))
        print(f"[book]   done in {runs[-1].seconds:.1f} s", flush=True)
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
    """Markdown for the execution-status page."""
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
    lines += ["", f"Total execution time: {total:.1f} s.", "", "## Package versions", ""]
    lines += ["| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in env["packages"].items()]
    return "\n".join(lines) + "\n"


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

    runs = execute_notebooks(root, profile, staging / "notebooks", only, overrides)
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
    (staging / "book" / "status.md").write_text(status_page(profile, runs, env))

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
