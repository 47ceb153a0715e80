"""Execute the notebooks with papermill, in ``_toc.yml``'s order, with a profile's parameters.

The working directory is the repository root; an unknown parameter name is an error.  The
kernel runs with ``MA_NOTEBOOK=<name>`` and ``MA_PROVENANCE_LOG`` naming a fresh file, in
which :mod:`massive_activations.provenance` records every data file the notebook reads or
writes (path, sha256, size).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from massive_activations import provenance

__all__ = [
    "NotebookRun",
    "check_parameters",
    "execute_notebooks",
    "load_profile",
    "notebook_order",
    "parameter_defaults",
    "read_notebook",
    "repo_root",
]


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


def read_notebook(path: Path):
    import jupytext

    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def parameter_defaults(name: str, nb) -> dict:
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


def check_parameters(name: str, nb, params: dict) -> None:
    """Refuse parameters that the notebook's ``parameters`` cell does not define."""
    namespace = parameter_defaults(name, nb)
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
            nb = read_notebook(root / "notebooks" / f"{name}.py")
            check_parameters(name, nb, params)
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
