"""The activation table on disk: parquet, written atomically, resumable per checkpoint.

Layout under ``<data>/<suite>/``:

* ``activations.parquet``: the suite's table (:data:`TABLE_COLUMNS`, plus ``attn_first_pos``
  when measured), sorted by model, dtype, variant, step, layer, sequence;
* ``parts/<model>/<dtype>/step<N>.parquet``: one finished unit of work, a (model, step,
  dtype), written as soon as it is measured;
* ``settings.json``: the measurement settings all units of the suite share;
* ``checkpoints.parquet``: the SHA-256 of each checkpoint's weight files, written by
  ``extract`` beside the table (:mod:`massive_activations.measurement.weights`);
* ``activations.shard-<i>-of-<n>.parquet``: the table of one shard of a sharded run.

Every file is written to a temporary file in the same folder and moved into place with
``os.replace``, so a run killed at any point leaves complete files or none.  A unit counts as
done when its part or its rows in ``activations.parquet`` exist, so a restarted run recomputes
nothing that finished and, as each unit is one file, never duplicates rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from massive_activations import provenance
from massive_activations.registry import atomic_write

__all__ = [
    "DEFAULT_VARIANT",
    "TABLE_COLUMNS",
    "UNIT",
    "VARIANTS",
    "ActivationStore",
    "find_shards",
    "merge_tables",
    "parse_shard",
    "read_table",
    "shard_jobs",
    "write_table",
]

#: Columns of the activation table, in order (``attn_first_pos`` may follow).
TABLE_COLUMNS = (
    "suite",
    "model",
    "step",
    "layer",
    "sequence",
    "top1",
    "top2",
    "top3",
    "median",
    "top1_position",
    "top1_channel",
    "top1_token",
    "dtype",
    "variant",
    "status",
)
#: Values of the ``variant`` column: how the evaluation sequences were taken.
VARIANTS = {
    "raw": "consecutive raw slices of text, nothing forced in front (the paper's and Sun et "
    "al.'s way: the first token is whatever the text holds)",
    "eot_first": "the end-of-text token forced in front of every slice (a fixed first token, "
    "as a BOS token gives)",
}
#: The paper's variant, used wherever a variant is not named.
DEFAULT_VARIANT = "raw"
#: Columns that identify a unit of work (one unit holds every variant measured on it).
UNIT = ("model", "step", "dtype")
_ORDER = ["suite", "model", "dtype", "variant", "step", "layer", "sequence"]
_INT = ("step", "layer", "sequence", "top1_position", "top1_channel", "top1_token")
_FLOAT = ("top1", "top2", "top3", "median", "attn_first_pos")
_STR = ("suite", "model", "dtype", "variant", "status")
_SHARD = re.compile(r"^activations\.shard-(?P<i>[0-9]+)-of-(?P<n>[0-9]+)\.parquet$")


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in TABLE_COLUMNS if c not in df.columns]
    if missing == ["variant"]:
        raise ValueError(
            "The activation table lacks the column 'variant' (how its evaluation sequences were "
            f"taken: one of {sorted(VARIANTS)}); it was written before variants existed. Add it, "
            "e.g. table['variant'] = 'raw' for raw text slices, and write it again."
        )
    if missing:
        raise ValueError(f"The activation table lacks columns {missing}.")
    extra = [c for c in df.columns if c not in TABLE_COLUMNS]
    if extra not in ([], ["attn_first_pos"]):
        raise ValueError(f"Unexpected columns {extra} in the activation table.")
    unknown = sorted(set(df["variant"].astype(str)) - set(VARIANTS))
    if unknown:
        raise ValueError(
            f"Unknown variant(s) {unknown} in the activation table; use {sorted(VARIANTS)}."
        )
    out = df[[*TABLE_COLUMNS, *extra]].copy()
    for c in out.columns:
        if c in _INT:
            out[c] = out[c].astype("int64")
        elif c in _FLOAT:
            out[c] = out[c].astype("float64")
        else:
            out[c] = out[c].astype(str)
    return out.sort_values(_ORDER, kind="stable").reset_index(drop=True)


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write an activation table to parquet atomically, columns checked and rows sorted."""
    table = _normalise(df)
    return atomic_write(path, lambda tmp: table.to_parquet(tmp, index=False))


def read_table(path: str | Path) -> pd.DataFrame:
    """Read an activation table written by :func:`write_table`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No activation table at {path}: run `python -m massive_activations.measurement.extract "
            "extract` (or `import`, or `merge` for shards) first."
        )
    table = _normalise(pd.read_parquet(path))
    provenance.record(path, "read")
    return table


def _concat(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=list(TABLE_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def _units(df: pd.DataFrame) -> set[tuple[str, int, str]]:
    if df.empty:
        return set()
    keys = df[list(UNIT)].drop_duplicates().itertuples(index=False)
    return {(str(m), int(s), str(d)) for m, s, d in keys}


def parse_shard(shard: str | tuple[int, int]) -> tuple[int, int]:
    """``"i/n"`` or ``(i, n)`` as ``(i, n)``, checked: 0 <= i < n."""
    if isinstance(shard, str):
        match = re.fullmatch(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*", shard)
        if match is None:
            raise ValueError(f"Bad shard {shard!r}: write i/n with 0 <= i < n, e.g. 0/4.")
        shard = (int(match[1]), int(match[2]))
    i, n = shard
    if not 0 <= i < n:
        raise ValueError(f"Bad shard {i}/{n}: need 0 <= i < n (shards are numbered from 0).")
    return i, n


def shard_jobs(jobs: Sequence, shard: str | tuple[int, int] | None) -> list:
    """The jobs of shard ``"i/n"`` (0 <= i < n): every n-th job starting at the i-th.

    Round robin, so every shard gets early and late checkpoints alike.
    """
    if shard is None:
        return list(jobs)
    i, n = parse_shard(shard)
    return list(jobs)[i::n]


class ActivationStore:
    """The activation data of one suite under ``<root>/<suite>/``.

    Parameters
    ----------
    root : str or Path
        Data folder (``data``).
    suite : str
        Suite name (a folder name).
    """

    def __init__(self, root: str | Path, suite: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", suite):
            raise ValueError(
                f"Suite name {suite!r} must be a folder name: letters, digits, '.', '_', '-'."
            )
        self.suite = suite
        self.dir = Path(root) / suite
        self.table_path = self.dir / "activations.parquet"
        self.parts_dir = self.dir / "parts"
        self.settings_path = self.dir / "settings.json"

    def shard_path(self, i: int, n: int) -> Path:
        """Path of shard ``i`` of ``n``'s table."""
        return self.dir / f"activations.shard-{i}-of-{n}.parquet"

    def part_path(self, model: str, step: int, dtype: str) -> Path:
        """Path of the part file of one unit."""
        return self.parts_dir / model / dtype / f"step{int(step)}.parquet"

    def check_settings(self, settings: dict) -> None:
        """Record ``settings`` on first use; afterwards require the same settings.

        Raises
        ------
        ValueError
            If the suite was measured with other settings; the message names the differences
            and the fix.
        """
        settings = json.loads(json.dumps(settings, sort_keys=True))
        if self.settings_path.is_file():
            old = json.loads(self.settings_path.read_text())
            diff = {k: (old.get(k), settings.get(k)) for k in {*old, *settings}}
            diff = {k: v for k, v in sorted(diff.items()) if v[0] != v[1]}
            if diff:
                shown = "; ".join(f"{k}: stored {a!r}, now {b!r}" for k, (a, b) in diff.items())
                raise ValueError(
                    f"Suite {self.suite!r} in {self.dir} was measured with other settings "
                    f"({shown}). Use another suite name, or delete {self.dir} to start over."
                )
            return
        text = json.dumps(settings, indent=2, sort_keys=True) + "\n"
        atomic_write(self.settings_path, lambda tmp: tmp.write_text(text))

    def done_units(self) -> set[tuple[str, int, str]]:
        """Units (model, step, dtype) with a part file or rows in ``activations.parquet``."""
        done = set()
        if self.parts_dir.is_dir():
            for path in self.parts_dir.glob("*/*/step*.parquet"):
                done.add((path.parent.parent.name, int(path.stem[4:]), path.parent.name))
        if self.table_path.is_file():
            done |= _units(pd.read_parquet(self.table_path, columns=list(UNIT)))
        return done

    def write_part(self, df: pd.DataFrame) -> Path:
        """Write the rows of one unit (all with the same model, step and dtype) atomically."""
        units = _units(df)
        if len(units) != 1:
            raise ValueError(f"A part holds exactly one (model, step, dtype); got {units}.")
        ((model, step, dtype),) = units
        return write_table(df.assign(suite=self.suite), self.part_path(model, step, dtype))

    def read_parts(self, units: Iterable[tuple[str, int, str]] | None = None) -> pd.DataFrame:
        """Concatenate part files (all, or those of ``units``)."""
        if units is None:
            paths = sorted(self.parts_dir.glob("*/*/step*.parquet"))
        else:
            paths = [self.part_path(*u) for u in sorted(units)]
        return _concat(pd.read_parquet(p) for p in paths)

    def rows(self, units: Iterable[tuple[str, int, str]]) -> pd.DataFrame:
        """The rows of ``units``, from their part files or else from ``activations.parquet``."""
        units = set(units)
        with_part = {u for u in units if self.part_path(*u).is_file()}
        frames = [self.read_parts(with_part)]
        rest = units - with_part
        if rest:
            table = read_table(self.table_path) if self.table_path.is_file() else None
            found = set() if table is None else _units(table) & rest
            if found != rest:
                raise ValueError(f"Units {sorted(rest - found)} are not stored in {self.dir}.")
            frames.append(table[table.set_index(list(UNIT)).index.isin(list(rest))])
        return _normalise(_concat(frames))

    def consolidate(self) -> pd.DataFrame:
        """Write ``activations.parquet``: its previous rows updated with every part file."""
        parts = self.read_parts()
        frames = [parts]
        if self.table_path.is_file():
            old = read_table(self.table_path)
            keep = ~old.set_index(list(UNIT)).index.isin(list(_units(parts)))
            frames.insert(0, old[keep])
        table = _normalise(_concat(frames))
        write_table(table, self.table_path)
        return table


def merge_tables(inputs: Sequence[str | Path], output: str | Path) -> pd.DataFrame:
    """Merge activation tables (e.g. shards) into ``output``, atomically.

    Rows already in ``output`` are kept unless an input holds the same unit
    (model, step, dtype), whose rows then replace them.

    Raises
    ------
    ValueError
        If two inputs hold the same unit (they would duplicate rows), or their columns differ.
    """
    if not inputs:
        raise ValueError("Nothing to merge: pass the shard tables to merge.")
    frames, owner = [], {}
    for path in inputs:
        df = read_table(path)
        for unit in _units(df):
            if unit in owner:
                raise ValueError(
                    f"{unit} is in both {owner[unit]} and {path}: merge each shard once."
                )
            owner[unit] = path
        frames.append(df)
    columns = {tuple(f.columns) for f in frames}
    if len(columns) > 1:
        raise ValueError(f"The tables to merge have different columns: {sorted(columns)}.")
    output = Path(output)
    if output.is_file() and output.resolve() not in {Path(p).resolve() for p in inputs}:
        old = read_table(output)
        frames.insert(0, old[~old.set_index(list(UNIT)).index.isin(list(owner))])
    table = _normalise(_concat(frames))
    write_table(table, output)
    return table


def find_shards(directory: str | Path) -> list[Path]:
    """The shard tables ``activations.shard-<i>-of-<n>.parquet`` in ``directory``, checked.

    Raises
    ------
    ValueError
        If there are none, they disagree on ``n``, or shards are missing.
    """
    found = {}
    for path in Path(directory).glob("activations.shard-*-of-*.parquet"):
        match = _SHARD.match(path.name)
        if match:
            found[(int(match["i"]), int(match["n"]))] = path
    if not found:
        raise ValueError(
            f"No shard tables activations.shard-<i>-of-<n>.parquet in {directory}: run "
            "`extract --shard i/n` first, or pass the tables to merge explicitly."
        )
    counts = {n for _, n in found}
    if len(counts) != 1:
        raise ValueError(f"Shard tables in {directory} come from different n: {sorted(counts)}.")
    (n,) = counts
    missing = sorted(set(range(n)) - {i for i, _ in found})
    if missing:
        raise ValueError(
            f"Shards {missing} of {n} are missing in {directory}: run `extract --shard i/{n}` "
            "for each of them (or pass the available tables explicitly to merge a subset)."
        )
    return [found[(i, n)] for i in range(n)]
