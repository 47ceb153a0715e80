"""Import the paper's released raw files into the activation table.

The release (the book's page "Reading the paper", section on the released statistics) holds ``pythia_{size}/stats/exp2_pythia_{size}_step{N}``: a
text file with a Python literal of shape ``n_sequences x 4 x L`` (10 sequences;
``[top1, top2, top3, median]``; L layers), as Sun et al.'s ``exp2`` writes it.  The files
record no location of the top-1, so ``top1_position``, ``top1_channel`` and ``top1_token`` are
-1.  A malformed file (not a literal, wrong shape, non-numeric, or values not ordered
``top1 >= top2 >= top3 >= median >= 0``) is reported by name and skipped.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from massive_activations.measurement.sources import parse_dtype
from massive_activations.measurement.store import ActivationStore

__all__ = ["RAW_NAME", "MalformedRawFile", "find_raw_files", "import_raw", "read_raw_file"]

#: File names of the release: ``exp2_<model>_step<N>`` (an extension such as .txt allowed).
RAW_NAME = re.compile(r"^exp2_(?P<model>.+?)_step(?P<step>[0-9]+)(?:\.[A-Za-z0-9]+)?$")


class MalformedRawFile(ValueError):
    """A raw file that cannot be read as ``n_sequences x 4 x L`` statistics."""


def read_raw_file(path: str | Path) -> pd.DataFrame:
    """Read one ``exp2_<model>_step<N>`` file as table rows.

    Parameters
    ----------
    path : str or Path
        The file.  ``<model>`` becomes the model name with ``_`` replaced by ``-``
        (``exp2_pythia_70m_step1000`` -> ``pythia-70m``, step 1000).

    Returns
    -------
    pandas.DataFrame
        Columns model, step, layer (1..L), sequence, top1, top2, top3, median,
        top1_position, top1_channel, top1_token (-1), status ("ok").

    Raises
    ------
    MalformedRawFile
        With the reason, if the name or the content does not follow the format.
    """
    path = Path(path)
    match = RAW_NAME.match(path.name)
    if match is None:
        raise MalformedRawFile(f"name does not match exp2_<model>_step<N>: {path.name}")
    try:
        value = ast.literal_eval(path.read_text(encoding="utf-8"))
        data = np.asarray(value, dtype=np.float64)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as error:
        raise MalformedRawFile(f"not a numeric Python literal ({type(error).__name__})") from None
    if data.ndim != 3 or data.shape[1] != 4 or data.shape[0] < 1 or data.shape[2] < 1:
        raise MalformedRawFile(f"shape {data.shape}, expected (n_sequences, 4, n_layers)")
    if not np.isfinite(data).all():
        raise MalformedRawFile("holds non-finite values")
    top1, top2, top3, median = data.transpose(1, 2, 0)  # each (layers, sequences)
    if not ((top1 >= top2) & (top2 >= top3) & (top3 >= median) & (median >= 0)).all():
        raise MalformedRawFile(
            "values are not ordered top1 >= top2 >= top3 >= median >= 0 (is the layout "
            "n_sequences x 4 x n_layers?)"
        )
    n_layers, n_seq = top1.shape
    return pd.DataFrame(
        {
            "model": match["model"].replace("_", "-"),
            "step": int(match["step"]),
            "layer": np.repeat(np.arange(1, n_layers + 1), n_seq),
            "sequence": np.tile(np.arange(n_seq), n_layers),
            "top1": top1.ravel(),
            "top2": top2.ravel(),
            "top3": top3.ravel(),
            "median": median.ravel(),
            "top1_position": -1,
            "top1_channel": -1,
            "top1_token": -1,
            "status": "ok",
        }
    )


def find_raw_files(paths: Sequence[str | Path]) -> list[Path]:
    """The ``exp2_*`` files among ``paths`` and (recursively) inside the folders among them."""
    files: set[Path] = set()
    for path in map(Path, paths):
        if path.is_dir():
            files.update(p for p in path.rglob("exp2_*") if p.is_file())
        elif path.is_file():
            files.add(path)
        else:
            raise FileNotFoundError(f"No file or folder at {path}; check the path.")
    if not files:
        raise FileNotFoundError(f"No exp2_* files in {', '.join(map(str, paths))}.")
    return sorted(files)


def import_raw(
    paths: Sequence[str | Path],
    store: ActivationStore,
    *,
    dtype: str = "float16",
    progress: bool = False,
) -> tuple[pd.DataFrame, list[tuple[Path, str]]]:
    """Import raw files into ``store`` (one unit per file) and write its table.

    Parameters
    ----------
    paths : sequence of str or Path
        Files or folders (searched recursively for ``exp2_*``).
    store : ActivationStore
        The suite to write.
    dtype : str, default "float16"
        Dtype the statistics were measured in (the release used fp16, as Sun et al.'s code loads Pythia).
    progress : bool, default False
        Show a progress bar.

    Returns
    -------
    table : pandas.DataFrame
        The suite's whole table after the import.
    skipped : list of (Path, str)
        Malformed files and why.
    """
    dtype_name, _ = parse_dtype(dtype)
    store.check_settings({"source": "raw exp2 files"})
    done = store.done_units()
    skipped: list[tuple[Path, str]] = []
    seen: dict[tuple[str, int], Path] = {}
    for path in tqdm(find_raw_files(paths), desc="import", unit="file", disable=not progress):
        try:
            rows = read_raw_file(path)
        except MalformedRawFile as error:
            skipped.append((path, str(error)))
            continue
        key = (rows.model.iloc[0], int(rows.step.iloc[0]))
        if key in seen:
            raise ValueError(f"{seen[key]} and {path} both hold {key}; import one of them.")
        seen[key] = path
        if (*key, dtype_name) not in done:
            store.write_part(rows.assign(dtype=dtype_name, variant="raw"))
    return store.consolidate(), skipped
