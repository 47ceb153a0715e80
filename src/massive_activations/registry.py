"""The one registry of data files: what each file of ``<data>/<suite>/`` holds, and its I/O.

``reference/data_files.yml`` (beside the paper's values, read the same way) lists every file a
data folder may hold: what it holds, which stage writes it, how to make it when it is missing,
and each table's columns with their unit and meaning.  Everything about data files is
generated from it or checked against it:

* :func:`path`: where a file lives (``<root>/<suite>/<name>``);
* :func:`read`: a missing file is an error naming the file and the registry's ``fix``;
* :func:`write`: atomic (:func:`atomic_write`), columns checked against the registry (a
  required column missing or an undocumented column is an error), the file's sha256 added to
  the folder's ``manifest.json`` under ``"derived"`` when there is one;
* :func:`describe` and :func:`undocumented`: the column dictionary the data card shows.

In a column name ``<param>`` stands for each name of the registry's ``patterns`` entry
(``<param>_stderr`` is ``A_stderr``, ``lam_stderr``, ...).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from functools import cache
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from massive_activations import provenance

__all__ = [
    "atomic_write",
    "describe",
    "entry",
    "files",
    "param_names",
    "path",
    "read",
    "read_optional",
    "required_columns",
    "undocumented",
    "write",
]

_PATTERN = "<param>"


def atomic_write(path: str | Path, write_to: Callable[[Path], object]) -> Path:
    """Call ``write_to(tmp)`` on a temporary path beside ``path``, then move it into place.

    A run killed at any point leaves the complete file or none.  The written file is recorded
    in the provenance log (:func:`massive_activations.provenance.record`, a no-op unless
    ``MA_PROVENANCE_LOG`` is set).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write_to(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    provenance.record(path, "write")
    return path


@cache
def _load() -> dict:
    source = resources.files("massive_activations.reference").joinpath("data_files.yml")
    text = source.read_text()
    with resources.as_file(source) as p:
        provenance.record(p, "read")
    return yaml.safe_load(text)


def files() -> dict[str, dict]:
    """Every registered file: ``{name: {holds, written_by, chapter, fix, columns?}}``."""
    return _load()["files"]


def param_names() -> tuple[str, ...]:
    """The names ``<param>`` stands for in column names."""
    return tuple(_load()["patterns"][_PATTERN])


def entry(name: str) -> dict:
    """The registry's record of file ``name``; a clear error for a file it does not know."""
    known = files()
    if name not in known:
        raise KeyError(
            f"No data file {name!r} in the registry (reference/data_files.yml); it knows "
            f"{sorted(known)}. Add an entry there before writing a new kind of file."
        )
    return known[name]


def path(name: str, root: str | Path, suite: str) -> Path:
    """``<root>/<suite>/<name>`` for a registered file ``name``."""
    entry(name)
    return Path(root) / suite / name


def _column_key(name: str, column: str) -> str | None:
    columns = entry(name).get("columns") or {}
    if column in columns:
        return column
    for key in columns:
        if key.startswith(_PATTERN):
            suffix = key[len(_PATTERN) :]
            if column.endswith(suffix) and column[: len(column) - len(suffix)] in param_names():
                return key
    return None


def describe(name: str, column: str) -> tuple[str, str, str] | None:
    """``(key, unit, meaning)`` of a column of file ``name``, or None when undocumented.

    ``key`` is the column's own name or the ``<param>...`` pattern that documents it.
    """
    key = _column_key(name, column)
    if key is None:
        return None
    record = entry(name)["columns"][key]
    return key, record["unit"], record["meaning"]


def undocumented(name: str, columns: Iterable[str]) -> list[str]:
    """The columns among ``columns`` that the registry does not describe for ``name``."""
    return [c for c in columns if describe(name, c) is None]


def required_columns(name: str) -> list[str]:
    """The documented columns of ``name`` that every table must have (not patterns, not
    marked ``optional``)."""
    columns = entry(name).get("columns") or {}
    return [c for c, r in columns.items() if not c.startswith(_PATTERN) and not r.get("optional")]


def check_columns(name: str, columns: Iterable[str]) -> None:
    """Raise ValueError when ``columns`` lack a required column or hold an undocumented one."""
    columns = list(columns)
    missing = [c for c in required_columns(name) if c not in columns]
    extra = undocumented(name, columns)
    if missing or extra:
        raise ValueError(
            f"Table for {name} does not match the registry (reference/data_files.yml): "
            + (f"missing columns {missing}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"undocumented columns {extra}" if extra else "")
            + ". Build it with the stage that writes it "
            f"({entry(name)['written_by']}), or document a new column in the registry."
        )


def write(table: pd.DataFrame, name: str, root: str | Path, suite: str) -> Path:
    """Write a table the chapters derive, beside the suite's data, checked and atomically.

    Parquet, or CSV for a ``.csv`` name.  When the folder holds a ``manifest.json`` (written
    by ``make data``), the file's sha256 is added to it under ``"derived"``
    (:func:`massive_activations.provenance.update_manifest`).
    """
    target = path(name, root, suite)
    check_columns(name, table.columns)
    if target.suffix == ".csv":
        atomic_write(target, lambda tmp: table.to_csv(tmp, index=False))
    else:
        atomic_write(target, lambda tmp: table.to_parquet(tmp, index=False))
    provenance.update_manifest(target.parent, target)
    return target


def read(name: str, root: str | Path, suite: str) -> pd.DataFrame:
    """Read a registered table (recorded in the provenance log).

    Raises
    ------
    FileNotFoundError
        Naming the path and how to make the file (the registry's ``fix``).
    """
    source = path(name, root, suite)
    if not source.is_file():
        fix = entry(name)["fix"].replace("SUITE", suite)
        raise FileNotFoundError(f"No file at {source}: {fix}.")
    table = pd.read_csv(source) if source.suffix == ".csv" else pd.read_parquet(source)
    provenance.record(source, "read")
    return table


def read_optional(name: str, root: str | Path, suite: str) -> pd.DataFrame | None:
    """:func:`read`, or None when the file does not exist (a chapter's optional input: the
    page then says what is missing instead of stopping)."""
    return read(name, root, suite) if path(name, root, suite).is_file() else None
