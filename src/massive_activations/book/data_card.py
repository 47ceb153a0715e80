"""The data card: what every file and column of a suite's data folder holds, and its origin.

What each file holds and each column's unit and meaning come from the registry of data files
(:mod:`massive_activations.registry`, ``reference/data_files.yml``).

:func:`data_card_page` writes the book's data-card page (``book/data_card.md``, generated
while the book is built, as the status page is) for the data folders the build used: per
folder, each file with its rows, columns, size and sha256 and each table's columns; how it
was produced (corpus sources, seeds, suite configuration, device, threads, git commit,
package versions, all from ``manifest.json``); the licences; and the regeneration drift
(``drift.json``, when it has been measured).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from massive_activations import registry

__all__ = ["data_card_page", "file_summary"]


def file_summary(path: str | Path) -> dict:
    """Rows, columns (name and type), size and sha256 of a data file.

    Parquet files are summarised from their footer (no data read), CSV files by reading
    them, ``.npy`` from the header (its shape), JSON files by their top-level keys.
    """
    from massive_activations.provenance import sha256_file

    path = Path(path)
    out: dict = {
        "name": path.name,
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "rows": None,
        "columns": [],
    }
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        meta = pq.read_metadata(path)
        out["rows"] = meta.num_rows
        schema = meta.schema.to_arrow_schema()
        out["columns"] = [(f.name, str(f.type)) for f in schema]
    elif path.suffix == ".csv":
        import pandas as pd

        table = pd.read_csv(path)
        out["rows"] = len(table)
        out["columns"] = [(str(c), str(t)) for c, t in table.dtypes.items()]
    elif path.suffix == ".npy":
        import numpy as np

        arr = np.load(path, mmap_mode="r")
        out["rows"] = int(arr.shape[0]) if arr.ndim else 1
        out["shape"] = tuple(int(s) for s in arr.shape)
        out["dtype"] = str(arr.dtype)
    elif path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            out["keys"] = sorted(data)
    return out


def _flat(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return " ".join(text.split())


def _cell(value) -> str:
    """Plain text safe inside a MyST table cell (no markup, no math, no substitution)."""
    text = _flat(value).replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|")
    return text.replace("$", "\\$").replace("{{", "{ {").replace("`", "'") or " "


def _code(value) -> str:
    """Inline code safe inside a MyST table cell."""
    text = _flat(value).replace("`", "'").replace("|", "\\|")
    return f"`{text}`" if text else " "


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _records(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(r, dict) for r in value)


def _keyed(value) -> bool:
    return (
        isinstance(value, dict) and bool(value) and all(isinstance(v, dict) for v in value.values())
    )


def _free_table(data) -> list[str]:
    """A free-form JSON value (``drift.json``) as markdown tables.

    A list of objects is one table (a column per key); an object of objects one table (a
    row per key); any other object a key/value table, followed by a table for each of its
    values that is a list of objects or an object of objects.
    """
    if _records(data):
        cols = list(dict.fromkeys(k for r in data for k in r))
        return _table([_cell(c) for c in cols], ([_cell(r.get(c, "")) for c in cols] for r in data))
    if _keyed(data):
        cols = list(dict.fromkeys(k for v in data.values() for k in v))
        return _table(
            ["key", *(_cell(c) for c in cols)],
            ([_cell(k), *(_cell(v.get(c, "")) for c in cols)] for k, v in data.items()),
        )
    if isinstance(data, dict):
        nested = {k: v for k, v in data.items() if _records(v) or _keyed(v)}
        flat = {k: v for k, v in data.items() if k not in nested}
        lines = (
            _table(["key", "value"], ([_cell(k), _cell(v)] for k, v in flat.items()))
            if flat
            else []
        )
        for key, value in nested.items():
            lines += [f"{_code(key)}:", "", *_free_table(value)]
        return lines
    return _table(["value"], [[_cell(data)]])


def _folder_section(folder: Path, label: str) -> list[str]:
    manifest = json.loads((folder / "manifest.json").read_text())
    name = folder.name
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    summaries = [file_summary(p) for p in files]
    derived = manifest.get("derived") or {}
    lines = [f"## Data folder `{label}`", ""]
    commit = manifest.get("git_commit", "unknown")
    if _is_regrowth(manifest):
        config = manifest["config"].get("name", "default")
        lines += [
            f"The regrowth experiment (chapter 9), configuration `{config}` (model "
            f"`{manifest['config'].get('model', '?')}`), written by `make regrowth` (`python -m "
            f"massive_activations.regrowth.run --config {config}`) at git commit `{commit}`; "
            "it holds measurements, never weights. The sha256 of every file is recorded in its "
            "`manifest.json` and checked by `tests/test_manifest.py`.",
            "",
            f"### Files of `{name}`",
            "",
        ]
    else:
        lines += [
            f"Suite `{name}`, written by `make data` (`python -m massive_activations.suite.make_data "
            f"--suite {name}`) at git commit `{commit}`; the "
            "chapters add the derived tables"
            + (
                " ("
                + ", ".join(f"`{k}` by `{v.get('written_by', '?')}`" for k, v in derived.items())
                + ")"
                if derived
                else ""
            )
            + ". The sha256 of every file is recorded in its `manifest.json` and checked by "
            "`tests/test_manifest.py`.",
            "",
            f"### Files of `{name}`",
            "",
        ]
    rows = []
    for s in summaries:
        if s["columns"]:
            shape = f"{len(s['columns'])} columns"
        elif "shape" in s:
            shape = f"shape {s['shape']}, {s['dtype']}"
        elif "keys" in s:
            shape = f"{len(s['keys'])} keys"
        else:
            shape = " "
        rows.append(
            [
                f"`{s['name']}`",
                f"{s['rows']:,}" if s["rows"] is not None else " ",
                shape,
                f"{s['bytes']:,}",
                f"`{s['sha256']}`",
                _cell(registry.files().get(s["name"], {}).get("holds", "other")),
            ]
        )
    lines += _table(["file", "rows", "columns", "bytes", "sha256", "holds"], rows)
    for s in summaries:
        if not s["columns"]:
            continue
        lines += [f"### Columns of `{name}/{s['name']}`", ""]
        table_rows, shown = [], set()
        for col, dtype in s["columns"]:
            key, unit, meaning = registry.describe(s["name"], col) or (col, "?", "undocumented")
            if key in shown:  # a pattern, shown once
                continue
            shown.add(key)
            table_rows.append([_code(key), _code(dtype), _cell(unit), _cell(meaning)])
        lines += _table(["column", "type", "unit", "meaning"], table_rows)
        if any(k.startswith("<param>") for k in shown):
            params = ", ".join(f"`{p}`" for p in registry.param_names())
            lines += [f"`<param>` stands for each of {params} (one column each).", ""]
    lines += _produced(manifest, name)
    lines += _licence(manifest, name)
    lines += _drift(folder, name)
    return lines


def _produced(manifest: dict, name: str) -> list[str]:
    corpus = manifest.get("corpus") or {}
    lines = [f"### How `{name}` was produced", ""]
    lines += [
        f"- Corpus `{corpus.get('name', '?')}`: {corpus.get('documents', '?')} documents, "
        f"{corpus.get('chars', 0):,} characters, sha256 `{corpus.get('sha256', '?')}`.",
        f"- Seeds: {', '.join(f'{k} {v}' for k, v in (manifest.get('seeds') or {}).items())}.",
        f"- Device `{manifest.get('device', '?')}`, "
        + (
            "torch threads per run below"
            if isinstance(manifest.get("run_threads"), dict)
            else f"{manifest.get('torch_threads', '?')} torch threads"
        )
        + f" (results depend on them through floating-point rounding), Python "
        f"{manifest.get('python', '?')}.",
        f"- Git commit `{manifest.get('git_commit', 'unknown')}`.",
    ]
    if isinstance(manifest.get("run_threads"), dict):
        per_run = ", ".join(f"`{k}` {v}" for k, v in manifest["run_threads"].items())
        lines.append(f"- Torch threads of each training run: {per_run}.")
    lines.append("")
    sources = corpus.get("sources") or []
    if sources:
        lines += ["Corpus sources:", ""]
        lines += _table(
            ["package", "version", "licence", "sha256"],
            (
                [_code(s.get("name", "?")), _cell(s.get("version", "?")),
                 _cell(s.get("licence", "?")),
                 _code(s["sha256"]) if s.get("sha256") else "(a Python package, no archive)"]
                for s in sources
            ),
        )  # fmt: skip
    packages = manifest.get("packages") or {}
    if packages:
        lines += ["Package versions:", ""]
        lines += _table(["package", "version"], ([_cell(k), _cell(v)] for k, v in packages.items()))
    if manifest.get("suite"):
        lines += ["Suite configuration (`manifest.json`, key `suite`):", "", "```json"]
        lines += [json.dumps(manifest["suite"], indent=1, sort_keys=True), "```", ""]
    if _is_regrowth(manifest):
        lines += ["Experiment configuration (`manifest.json`, key `config`):", "", "```json"]
        lines += [json.dumps(manifest["config"], indent=1, sort_keys=True), "```", ""]
    return lines


def _is_regrowth(manifest: dict) -> bool:
    """A regrowth folder's manifest has the experiment's ``config``, not a ``suite``."""
    return isinstance(manifest.get("config"), dict) and not manifest.get("suite")


def _licence(manifest: dict, name: str) -> list[str]:
    lines = [f"### Licence of `{name}`", ""]
    lines += [
        "- Code, and the tables it computes: MIT (the repository's `LICENSE` file).",
    ]
    for s in (manifest.get("corpus") or {}).get("sources") or []:
        lines.append(
            f"- Corpus text from `{_cell(s.get('name', '?'))}` "
            f"{_cell(s.get('version', ''))}: {_cell(s.get('licence', 'not recorded'))}."
        )
    return [*lines, ""]


def _drift(folder: Path, name: str) -> list[str]:
    lines = [f"### Regeneration drift of `{name}`", ""]
    path = folder / "drift.json"
    if not path.is_file():
        return [
            *lines,
            f"Not measured: `{name}/drift.json` does not exist (it would compare two "
            "regenerations of this folder).",
            "",
        ]
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        return [*lines, f"`{name}/drift.json` is not valid JSON ({_cell(str(exc))}).", ""]
    return [*lines, f"From `{name}/drift.json`:", "", *_free_table(data)]


def data_card_page(folders: Sequence[str | Path], *, root: str | Path | None = None) -> str:
    """Markdown of the data-card page for the data folders a build used.

    Parameters
    ----------
    folders : sequence of path
        Candidate data folders (``<data_dir>/<suite>``); those holding a ``manifest.json``
        get a section, the others are named as not found.
    root : path, optional
        Folder the paths are shown relative to (the repository root).

    Returns
    -------
    str
        The page, valid MyST (one H1, then H2 per folder and H3 sections).
    """
    root = Path(root) if root is not None else None

    def label(p: Path) -> str:
        if root is not None:
            try:
                return p.resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                pass
        return p.as_posix()

    seen: list[Path] = []
    for f in map(Path, folders):
        if f.resolve() not in {s.resolve() for s in seen}:
            seen.append(f)
    found = [f for f in seen if (f / "manifest.json").is_file()]
    missing = [f for f in seen if f not in found]
    lines = [
        "# Data card",
        "",
        "Generated by `python -m massive_activations.book` while this book was built, from "
        "the data folders its notebooks read: every file with its size and sha256, every "
        "column with its unit and meaning (the dictionary is the registry `reference/data_files.yml`), "
        "and how the data were produced. Units: `|activation|` is the absolute value of a "
        "residual-stream element (the model's own units); losses are in nats per token; "
        "`steps` are optimiser steps.",
        "",
    ]
    if not found:
        lines += [
            "No data folder with a `manifest.json` was used by this build"
            + (": looked for " + ", ".join(f"`{label(f)}`" for f in missing) if missing else "")
            + ". Run `make data` (or `python -m massive_activations.suite.make_data --suite NAME`) to "
            "write one.",
            "",
        ]
    elif missing:
        lines += [
            "Folders named by the notebooks' parameters that hold no `manifest.json` (not "
            "described here): " + ", ".join(f"`{label(f)}`" for f in missing) + ".",
            "",
        ]
    for folder in found:
        lines += _folder_section(folder, label(folder))
    return "\n".join(lines).rstrip() + "\n"
