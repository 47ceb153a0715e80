"""The paper's reported values and the Pythia facts, read from ``paper_values.yml``.

That file is the only place where numbers of the paper are typed; each entry names its
source (table, figure or section of arXiv 2508.03616v2).  Reading it is recorded in the
provenance log (:func:`massive_activations.provenance.record`).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import pandas as pd
import yaml

from massive_activations import provenance

__all__ = ["entry", "table", "values"]


@cache
def values() -> dict:
    """The whole reference file as a dictionary."""
    source = resources.files(__package__).joinpath("paper_values.yml")
    text = source.read_text()
    with resources.as_file(source) as path:
        provenance.record(path, "read")
    return yaml.safe_load(text)


def entry(name: str) -> dict:
    """One entry (``{"source": ..., "values": ...}``), with a clear error for a bad name."""
    data = values()
    if name not in data:
        raise KeyError(f"No reference entry {name!r}; paper_values.yml has {sorted(data)}.")
    return data[name]


def table(name: str) -> pd.DataFrame:
    """An entry as a table: rows are its keys (models or targets), with a ``source`` attr.

    Entries with ``columns`` give one column each; entries whose values are lists in model
    order (Table 5) get the model names as columns; flat mappings give one ``value`` column.
    """
    e = entry(name)
    vals = e["values"]
    first = next(iter(vals.values()))
    if isinstance(first, list) and "columns" in e:
        df = pd.DataFrame.from_dict(vals, orient="index", columns=e["columns"])
    elif isinstance(first, list):
        df = pd.DataFrame.from_dict(vals, orient="index", columns=values()["models"])
    else:
        df = pd.DataFrame({"value": pd.Series(vals)})
    df.attrs["source"] = e["source"]
    return df
