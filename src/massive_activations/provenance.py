"""Provenance of data files: which files a notebook read and wrote, and the data manifests.

Two independent tools.

**The provenance log.**  :func:`record` appends one JSON line per file read or written,
``{"path", "action", "sha256", "bytes"}``, to the file named by the environment variable
``MA_PROVENANCE_LOG`` (:data:`LOG_ENV`); when it is unset, :func:`record` returns at once
and hashes nothing.  ``path`` is relative to the current working directory when the file
lies inside it, else absolute.  The book build (:mod:`massive_activations.book`) sets the
variable to a fresh file for each notebook it executes (the kernel inherits it), reads the
lines back with :func:`read_log` and lists them on the execution-status page.  The package
calls :func:`record` where it reads or writes data: :func:`massive_activations.registry.atomic_write`
(every table written), the readers of the activation table, the suite's data folder, the
fits and the predictor results, the model loaders (GGUF files and local checkpoint folders)
and the reference values.  Within one process a file's digest is computed once per
(size, modification time).

**The data manifest.**  ``make data`` writes ``<data>/<suite>/manifest.json`` whose
``"files"`` maps every file of the folder (but ``manifest.json`` and ``timings.json``) to its
sha256.  Chapters that later write derived tables into the same folder (``fits.parquet``,
``features.parquet``, ``predictor.parquet``) call :func:`update_manifest`, which adds them
under ``"derived"`` with the sha256 and the notebook that wrote them (environment variable
``MA_NOTEBOOK``, :data:`NOTEBOOK_ENV`, set by the book build).  :func:`verify_manifest`
compares a folder with its manifest and returns the problems, each naming the file and the
fix.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = [
    "ACTIONS",
    "LOG_ENV",
    "NOTEBOOK_ENV",
    "UNLISTED_OK",
    "dedupe",
    "paused",
    "read_log",
    "record",
    "record_checkpoint",
    "sha256_file",
    "update_manifest",
    "verify_manifest",
]

#: Environment variable naming the provenance log (one JSON object per line).
LOG_ENV = "MA_PROVENANCE_LOG"
#: Environment variable naming the notebook being executed (``"python"`` when unset).
NOTEBOOK_ENV = "MA_NOTEBOOK"
#: The actions :func:`record` accepts.
ACTIONS = ("read", "write")
#: Files of a data folder that its manifest does not list: the manifest itself, the wall
#: times (written after it) and the regeneration drift (a comparison of two regenerations,
#: written after both).
UNLISTED_OK = ("manifest.json", "timings.json", "drift.json")
#: Weight and configuration files of a ``save_pretrained`` checkpoint folder.
CHECKPOINT_FILES = ("config.json", "*.safetensors", "*.bin", "*.gguf")

_SHARD = re.compile(r"^activations\.shard-[0-9]+-of-[0-9]+\.parquet$")
_DIGESTS: dict[tuple[str, int, int], str] = {}
_PAUSED = 0


def sha256_file(path: str | Path) -> str:
    """The sha256 (hex) of a file, read in 1 MiB blocks; cached per (path, size, mtime)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def _shown_path(path: Path) -> str:
    absolute = path.absolute()
    try:
        return absolute.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return absolute.as_posix()


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Suspend :func:`record` inside the block (e.g. while a run writes temporary files)."""
    global _PAUSED
    _PAUSED += 1
    try:
        yield
    finally:
        _PAUSED -= 1


def record(path: str | Path, action: str) -> dict | None:
    """Append a file's record to the provenance log, if ``MA_PROVENANCE_LOG`` is set.

    Parameters
    ----------
    path : str or Path
        The file read or written (it must exist).
    action : {"read", "write"}
        What was done with it.

    Returns
    -------
    dict or None
        The record ``{"path", "action", "sha256", "bytes"}``, or None when no log is set
        (nothing is hashed then), recording is :func:`paused` or the file does not exist.

    Raises
    ------
    ValueError
        If ``action`` is neither ``"read"`` nor ``"write"``.
    """
    if action not in ACTIONS:
        raise ValueError(f"Provenance action {action!r} must be one of {ACTIONS}.")
    log = os.environ.get(LOG_ENV)
    if not log or _PAUSED:
        return None
    path = Path(path)
    if not path.is_file():
        return None
    entry = {
        "path": _shown_path(path),
        "action": action,
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
    }
    with open(log, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
    return entry


def record_checkpoint(folder: str | Path, action: str = "read") -> list[dict]:
    """Record the configuration and weight files of a checkpoint folder, one record each.

    Only :data:`CHECKPOINT_FILES` directly inside ``folder`` are recorded (tokenizer files
    and sub-folders are not); nothing is hashed when no log is set.
    """
    if not os.environ.get(LOG_ENV) or _PAUSED:
        return []
    folder = Path(folder)
    if not folder.is_dir():
        return []
    paths = sorted({p for pattern in CHECKPOINT_FILES for p in folder.glob(pattern)})
    return [r for p in paths if (r := record(p, action)) is not None]


def read_log(path: str | Path) -> list[dict]:
    """The records of a provenance log, in order; ``[]`` when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def dedupe(records: Iterable[dict]) -> list[dict]:
    """One record per (path, action), the last one kept, in order of first appearance."""
    out: dict[tuple[str, str], dict] = {}
    for r in records:
        key = (r["path"], r["action"])
        out[key] = {**out.get(key, {}), **r}
    return list(out.values())


# --------------------------------------------------------------------------- manifests


def _write_json(path: Path, data: dict) -> None:
    """Write ``data`` as the manifest is written (sorted, indent 1), atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def update_manifest(folder: str | Path, path: str | Path) -> dict | None:
    """Record a derived file in ``folder/manifest.json`` under ``"derived"``.

    Parameters
    ----------
    folder : str or Path
        A data folder written by ``make data`` (``<data>/<suite>/``).
    path : str or Path
        The derived file just written (inside ``folder``).

    Returns
    -------
    dict or None
        The entry ``{"sha256", "written_by"}`` (``written_by``: the environment variable
        ``MA_NOTEBOOK``, else ``"python"``), or None when ``folder`` has no manifest (a
        folder that ``make data`` did not write is left alone).
    """
    folder, path = Path(folder), Path(path)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        return None
    manifest = json.loads(manifest_path.read_text())
    entry = {"sha256": sha256_file(path), "written_by": os.environ.get(NOTEBOOK_ENV, "python")}
    manifest.setdefault("derived", {})[path.name] = entry
    _write_json(manifest_path, manifest)
    record(manifest_path, "write")
    return entry


def _ignored(name: str) -> bool:
    return (
        name.startswith(".")
        or name in UNLISTED_OK
        or name == "parts"
        or _SHARD.match(name) is not None
    )


def verify_manifest(folder: str | Path) -> list[str]:
    """Compare a data folder with its ``manifest.json``; return the problems found.

    Checks every file of ``"files"`` (written by ``make data``) and of ``"derived"``
    (written by :func:`update_manifest`): it must exist and have the recorded sha256.  A file
    of the folder listed in neither is a problem too, except dotfiles, ``parts/``, shard
    tables ``activations.shard-<i>-of-<n>.parquet`` and :data:`UNLISTED_OK`.

    Returns
    -------
    list of str
        Human-readable problems, each naming the file and the fix; ``[]`` when the folder
        matches its manifest.
    """
    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        return [
            f"{folder} has no manifest.json: rerun `make data` (or `python -m "
            f"massive_activations.suite.make_data --suite {folder.name}`) to write the folder."
        ]
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        return [f"{manifest_path} is not valid JSON ({exc}): rerun `make data`."]
    listed: dict[str, tuple[str, str]] = {}
    for name, digest in (manifest.get("files") or {}).items():
        listed[name] = (digest, "rerun `make data` or the notebook that writes it")
    for name, entry in (manifest.get("derived") or {}).items():
        writer = entry.get("written_by", "python")
        fix = f"rerun `make data` or the notebook that writes it (it was written by {writer})"
        listed[name] = (entry.get("sha256", ""), fix)
    problems = []
    for name, (digest, fix) in sorted(listed.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{path} is listed in {manifest_path} but missing: {fix}.")
            continue
        actual = sha256_file(path)
        if actual != digest:
            problems.append(
                f"{path} has sha256 {actual} but {manifest_path} records {digest}: the file "
                f"changed after the manifest was written; {fix}."
            )
    for path in sorted(folder.iterdir()):
        if _ignored(path.name) or path.name in listed:
            continue
        kind = "folder" if path.is_dir() else "file"
        problems.append(
            f"{kind} {path} is not listed in {manifest_path}: write derived files with the "
            "package's writers (they call provenance.update_manifest), or delete it; rerun "
            "`make data` or the notebook that writes it."
        )
    return problems
