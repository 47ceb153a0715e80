"""Book tables: significant digits, units from the registry, no empty columns or bare index."""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest

from massive_activations import registry
from massive_activations.tables import book_table, format_number


@pytest.mark.parametrize(
    ("value", "digits", "expected"),
    [
        (40.29930, 3, "40.3"),
        (4.029930e01, 4, "40.30"),
        (0.00213456, 3, "0.00213"),
        (2.1e-5, 3, "2.10 × 10⁻⁵"),
        (123456.7, 3, "123,000"),
        (9.996, 3, "10.0"),  # rounding carries into the next power of ten
        (999_999.9, 3, "1.00 × 10⁶"),
        (-40.29, 2, "-40"),
        (1234.5, 3, "1230"),  # four integer digits: no separator
        (0.0, 3, "0"),
        (np.nan, 3, "—"),
        (np.inf, 3, "∞"),
        (-np.inf, 3, "−∞"),
    ],
)
def test_format_number_gives_significant_digits(value, digits, expected):
    assert format_number(value, digits) == expected


def test_format_number_refuses_zero_digits():
    with pytest.raises(ValueError, match="digits must be >= 1"):
        format_number(1.0, 0)


def _cells(page: str) -> tuple[list[str], list[list[str]]]:
    header = re.findall(r"<th[^>]*>(.*?)</th>", page)
    rows = [
        re.findall(r"<td[^>]*>(.*?)</td>", r)
        for r in re.findall(r"<tr>(.*?)</tr>", page.split("<tbody>")[1])
    ]
    return header, rows


def fits_like() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": ["L2-d128-h4", "L4-d128-h4"],
            "layer": [1, 3],
            "t_peak": [40299.30, np.nan],
            "r2": [0.987654, 0.5],
            "paper_r2": [np.nan, np.nan],  # all missing for our suite
            "lam_identified": [True, False],
            "n_boot_ok": [200.0, np.nan],  # a count stored as float because of the NaN
            "top1": [4.029930e01, 1.5e-4],
        }
    )


def test_table_drops_empty_columns_and_says_which():
    t = book_table(fits_like(), table="fits.parquet")
    assert t.dropped == ("paper_r2",)
    assert "paper_r2" not in " ".join(t.frame.columns)
    assert t.note == "Column paper_r2 has no value for these data and is not shown."
    assert "Column paper_r2 has no value" in t.to_html()
    assert "Column paper_r2 has no value" in repr(t)
    kept = book_table(fits_like(), drop_empty=False)
    assert "paper_r2" in kept.frame.columns and kept.note == ""


def test_table_shows_units_from_the_registry_and_readable_values():
    t = book_table(fits_like(), table="fits.parquet", units={"top1": "ratio"})
    header, rows = _cells(t.to_html())
    # units: steps from the registry; labels, indices, counts and "1" get none
    assert header == ["model", "layer", "t_peak (steps)", "r2", "lam_identified", "n_boot_ok",
                      "top1 (ratio)"]  # fmt: skip
    assert rows[0] == ["L2-d128-h4", "1", "40,300", "0.988", "yes", "200", "40.3"]
    assert rows[1] == ["L4-d128-h4", "3", "—", "0.500", "no", "—", "1.50 × 10⁻⁴"]
    page = t.to_html()
    assert "e+0" not in page and "nan" not in page.lower().replace("dataframe", "")
    # the registry's meaning is the header's tooltip
    _, _, meaning = registry.describe("fits.parquet", "t_peak")
    assert f'title="{html.escape(meaning)}"' in page


def test_units_of_the_activation_table_and_explicit_overrides():
    df = pd.DataFrame({"step": [0, 143000], "top1": [1.0, 2.0], "status": ["ok", "ok"]})
    t = book_table(df, table="activations.parquet", units={"step": ""})
    assert list(t.frame.columns) == ["step", "top1 (|activation| (residual-stream units))",
                                     "status"]  # fmt: skip
    assert list(t.frame["step"]) == ["0", "143,000"]


def test_default_index_is_hidden_and_a_meaningful_one_is_shown():
    df = pd.DataFrame({"x": [1.5, 2.5]})
    assert list(book_table(df).frame.columns) == ["x"]
    assert list(book_table(df.iloc[[1, 0]]).frame.columns) == ["x"]  # positions after a sort
    labelled = df.set_axis(["eq9", "eq14"])
    assert list(book_table(labelled).frame.columns) == ["index", "x"]
    named = df.set_axis(pd.Index(["eq9", "eq14"], name="hypothesis"))
    t = book_table(named)
    assert list(t.frame.columns) == ["hypothesis", "x"]
    assert list(t.frame["hypothesis"]) == ["eq9", "eq14"]
    multi = pd.DataFrame(
        {"v": [1.0]}, index=pd.MultiIndex.from_tuples([("a", 1)], names=["m", "l"])
    )
    assert list(book_table(multi).frame.columns) == ["m", "l", "v"]
    assert list(book_table(named, index=False).frame.columns) == ["x"]


def test_digits_per_column():
    df = pd.DataFrame({"a": [3.14159], "b": [3.14159]})
    t = book_table(df, digits={"a": 5})
    assert t.frame.iloc[0].tolist() == ["3.1416", "3.14"]
    assert book_table(df, digits=2).frame.iloc[0].tolist() == ["3.1", "3.1"]


def test_html_is_deterministic_and_escaped():
    df = fits_like().assign(model=["<b>x</b>", "a & b"])
    first = book_table(df, table="fits.parquet", caption="Table 1").to_html()
    assert first == book_table(df.copy(), table="fits.parquet", caption="Table 1").to_html()
    assert "&lt;b&gt;x&lt;/b&gt;" in first and "a &amp; b" in first
    assert "<caption>Table 1</caption>" in first
    assert book_table(df)._repr_html_() == book_table(df).to_html()


def test_lists_and_strings_are_values_and_empty_tables_keep_their_columns():
    df = pd.DataFrame({"names": [["A", "lam"], None], "s": ["x", None]})
    t = book_table(df)
    assert t.frame["names"].tolist() == ["['A', 'lam']", "—"]
    assert t.frame["s"].tolist() == ["x", "—"]
    empty = book_table(pd.DataFrame({"a": pd.Series([], dtype=float)}))
    assert list(empty.frame.columns) == ["a"] and empty.dropped == ()


def test_bad_input_is_refused_clearly():
    with pytest.raises(TypeError, match=r"needs a pandas DataFrame.*to_frame"):
        book_table(pd.Series([1.0]))
    with pytest.raises(KeyError, match=r"No data file 'nope\.parquet' in the registry"):
        book_table(fits_like(), table="nope.parquet")
    with pytest.raises(ValueError, match=r"shown as 't_peak \(steps\)'"):
        book_table(pd.DataFrame({"t_peak": [1.0], "t_peak (steps)": [2.0]}), table="fits.parquet")
