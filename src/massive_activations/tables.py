"""Tables formatted for reading in the book: significant digits, units, no clutter.

:func:`book_table` turns a DataFrame into a :class:`BookTable`, which a notebook shows as an
HTML table (myst-nb renders its ``text/html``) and prints as aligned text:

* numbers are shown with a few significant digits (``40.3``, ``0.00213``, ``1.2 × 10⁻⁷``),
  integers and integral float columns as counts (``143,000``), booleans as ``yes``/``no``,
  missing values as ``—`` and infinities as ``∞``;
* each header carries the column's unit, ``t_peak (steps)``, taken from the registry of
  data files (:func:`massive_activations.registry.describe`) when ``table`` names the file
  the columns come from, or from ``units``; the registry's meaning becomes the header's
  tooltip.  Labels, counts and dimensionless units (``1``, ``1 (ratio)``) get no unit;
* an unnamed integer index (the positions a filter or a sort leaves) is not shown; a
  meaningful index (named, a MultiIndex, or labels) becomes ordinary leading columns;
* columns with no value at all are dropped and the note under the table names them.

The HTML is the same for the same input (no random ids), so executed notebooks do not
change between builds.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from massive_activations import registry

__all__ = [
    "HIDDEN_UNITS",
    "BookTable",
    "book_table",
    "format_number",
]

#: Registry units not shown in headers: labels, identifiers and counts carry none.
HIDDEN_UNITS = (
    "",
    "label",
    "labels",
    "text",
    "index",
    "boolean",
    "JSON",
    "hex digest",
    "count",
    "rank",
    "units of the parameter",
)

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_MISSING = "—"


def format_number(value, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits, as a reader expects to see it.

    Fixed notation from ``1e-3`` to below ``1e6`` (``0.00213``, ``40.3``, ``12,300``), with a
    thousands separator from five integer digits on; scientific notation with a unicode
    power of ten outside (``2.13 × 10⁻⁵``).  ``nan`` is ``—``, ``inf`` is ``∞``.

    Parameters
    ----------
    value : float
    digits : int
        Significant digits, at least 1.
    """
    if digits < 1:
        raise ValueError(f"digits must be >= 1, got {digits!r}.")
    v = float(value)
    if math.isnan(v):
        return _MISSING
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v == 0:
        return "0"
    mantissa, exponent = f"{v:.{digits - 1}e}".split("e")
    e = int(exponent)  # after rounding: 9.996 at 3 digits is 1.00e+01
    if -3 <= e < 6:
        decimals = max(digits - 1 - e, 0)
        rounded = float(f"{mantissa}e{e}")
        return f"{rounded:,.{decimals}f}" if e >= 4 else f"{rounded:.{decimals}f}"
    return f"{mantissa} × 10{str(e).translate(_SUPERSCRIPT)}"


def _format_integer(value) -> str:
    if pd.isna(value):
        return _MISSING
    v = int(value)
    return f"{v:,}" if abs(v) >= 10_000 else str(v)


def _is_bool_column(s: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(s):
        return True
    values = s.dropna()
    return (
        s.dtype == object
        and len(values) > 0
        and all(isinstance(v, bool | np.bool_) for v in values)
    )


def _is_integral(s: pd.Series) -> bool:
    """Integer dtype, or floats that are all whole numbers below 1e15 (counts with NaN)."""
    if pd.api.types.is_bool_dtype(s):
        return False
    if pd.api.types.is_integer_dtype(s):
        return True
    if not pd.api.types.is_float_dtype(s):
        return False
    v = s.to_numpy(dtype=float, na_value=np.nan)
    v = v[np.isfinite(v)]
    return v.size > 0 and bool(np.all(v == np.round(v))) and bool(np.all(np.abs(v) < 1e15))


def _format_column(s: pd.Series, digits: int) -> tuple[list[str], bool]:
    """Display strings of a column and whether it is numeric (right-aligned)."""
    if _is_bool_column(s):
        return [_MISSING if pd.isna(v) else ("yes" if v else "no") for v in s], False
    if _is_integral(s):
        return [_format_integer(v) for v in s], True
    if pd.api.types.is_numeric_dtype(s):
        return [format_number(v, digits) for v in s.to_numpy(dtype=float, na_value=np.nan)], True
    return [_MISSING if _is_missing(v) else str(v) for v in s], False


def _is_missing(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):  # lists and arrays are values, not missing
        return False


def _unit_of(column: str, table: str | None, units: Mapping[str, str]) -> tuple[str, str]:
    """``(unit shown in the header, meaning for the tooltip)`` of a column."""
    meaning = ""
    unit = ""
    if table is not None:
        described = registry.describe(table, column)
        if described is not None:
            _, unit, meaning = described
    if column in units:
        unit = units[column]
    if unit in HIDDEN_UNITS or unit == "1" or unit.startswith("1 ("):
        unit = ""
    return unit, meaning


@dataclass(frozen=True)
class BookTable:
    """A table ready to show: display strings, headers with units, and a note.

    Attributes
    ----------
    frame : pandas.DataFrame
        The display strings, with the headers as shown (units included).
    numeric : tuple of bool
        Per column: right-aligned (numbers).
    tooltips : tuple of str
        Per column: the registry's meaning of the column ('' when undocumented).
    dropped : tuple of str
        Columns left out because they hold no value.
    caption : str
        Shown above the table ('' for none).
    """

    frame: pd.DataFrame
    numeric: tuple[bool, ...]
    tooltips: tuple[str, ...]
    dropped: tuple[str, ...] = ()
    caption: str = ""

    @property
    def note(self) -> str:
        """The sentence under the table naming the dropped columns ('' when none)."""
        if not self.dropped:
            return ""
        names = ", ".join(self.dropped)
        if len(self.dropped) == 1:
            return f"Column {names} has no value for these data and is not shown."
        return f"Columns {names} have no value for these data and are not shown."

    def to_html(self) -> str:
        """The table as HTML (``<table class="dataframe book-table">``) and its note."""
        esc = html.escape
        out = ['<table class="dataframe book-table">']
        if self.caption:
            out.append(f"<caption>{esc(self.caption)}</caption>")
        out.append("<thead>\n<tr>")
        for name, num, tip in zip(self.frame.columns, self.numeric, self.tooltips, strict=True):
            attrs = ' style="text-align: right"' if num else ' style="text-align: left"'
            if tip:
                attrs += f' title="{esc(tip)}"'
            out.append(f"<th{attrs}>{esc(str(name))}</th>")
        out.append("</tr>\n</thead>\n<tbody>")
        for row in self.frame.itertuples(index=False):
            cells = "".join(
                f'<td style="text-align: {"right" if num else "left"}">{esc(v)}</td>'
                for v, num in zip(row, self.numeric, strict=True)
            )
            out.append(f"<tr>{cells}</tr>")
        out.append("</tbody>\n</table>")
        if self.note:
            out.append(f'<p class="book-table-note"><small>{esc(self.note)}</small></p>')
        return "\n".join(out)

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        text = self.frame.to_string(index=False) if len(self.frame.columns) else "(no columns)"
        parts = [self.caption, text, self.note]
        return "\n".join(p for p in parts if p)


def _meaningful_index(df: pd.DataFrame) -> bool:
    """A named index, a MultiIndex or labels (not integers) mean something; the integer
    positions left by ``reset_index``, filtering or sorting do not."""
    index = df.index
    if isinstance(index, pd.MultiIndex) or any(n is not None for n in index.names):
        return True
    return not pd.api.types.is_integer_dtype(index)


def book_table(
    df: pd.DataFrame,
    *,
    table: str | None = None,
    units: Mapping[str, str] | None = None,
    digits: int | Mapping[str, int] = 3,
    caption: str = "",
    index: bool | None = None,
    drop_empty: bool = True,
) -> BookTable:
    """Format ``df`` for reading in the book (see the module docstring).

    Parameters
    ----------
    df : pandas.DataFrame
    table : str, optional
        A registered file (e.g. ``"fits.parquet"``) whose columns ``df`` has: their units
        and meanings come from :func:`massive_activations.registry.describe`.
    units : mapping, optional
        ``{column: unit}``, over the registry's (``""`` shows none).
    digits : int or mapping
        Significant digits of float columns: one number, or ``{column: digits}`` (3 for
        columns not named).
    caption : str
        Shown above the table.
    index : bool, optional
        Show the index as leading columns; by default only when it means something (named,
        a MultiIndex, or labels rather than integer positions).
    drop_empty : bool
        Leave out columns that hold no value (named in the note); not for a table with no
        rows.

    Returns
    -------
    BookTable

    Raises
    ------
    TypeError
        If ``df`` is not a DataFrame.
    KeyError
        If ``table`` is not a registered file.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"book_table needs a pandas DataFrame, got {type(df).__name__}; "
            "wrap a Series with .to_frame()."
        )
    if table is not None:
        registry.entry(table)  # a clear error for a file the registry does not know
    units = dict(units or {})
    show_index = _meaningful_index(df) if index is None else index
    frame = df.reset_index() if show_index else df.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    dropped: list[str] = []
    if drop_empty and len(frame):
        dropped = [c for c in frame.columns if all(_is_missing(v) for v in frame[c])]
        frame = frame.drop(columns=dropped)
    per_column = digits if isinstance(digits, Mapping) else {}
    default_digits = 3 if isinstance(digits, Mapping) else int(digits)
    shown: dict[str, list[str]] = {}
    numeric, tooltips = [], []
    for column in frame.columns:
        values, is_num = _format_column(frame[column], per_column.get(column, default_digits))
        unit, meaning = _unit_of(column, table, units)
        header = f"{column} ({unit})" if unit else column
        if header in shown:
            raise ValueError(f"Two columns would be shown as {header!r}; rename one.")
        shown[header] = values
        numeric.append(is_num)
        tooltips.append(meaning)
    return BookTable(
        frame=pd.DataFrame(shown, columns=list(shown), dtype=object),
        numeric=tuple(numeric),
        tooltips=tuple(tooltips),
        dropped=tuple(dropped),
        caption=caption,
    )
