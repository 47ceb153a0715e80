"""Interactive trajectories for the static book: pick a model and layer, see points and fits.

:func:`trajectory_explorer` turns two plain tables into a self-contained HTML figure:

* ``points``: the measured trajectory, one row per (model, layer, step), columns ``model,
  layer, step, value`` and optionally ``lo, hi``, the spread over evaluation sequences drawn
  as error bars (e.g. ``value -+ sd`` of the per-sequence ratios);
* ``curves`` (optional): fitted curves evaluated on a grid of steps, one row per
  (model, layer, hypothesis, step), columns ``model, layer, hypothesis, step, value`` and
  optionally ``lo, hi``, the curve's interval band.

The reader picks the model and the layer (and the hypothesis, or all of them, when curves
are given) from drop-down menus; the figure redraws in the browser with plotly.js.  The data
are embedded once, compactly (values rounded to ``digits`` significant digits), in a
``<script type="application/json">`` block; nothing is fetched.  The library itself is not
embedded: the book serves it from ``book/static/`` (:data:`PLOTLY_JS`, listed in
``_config.yml``'s ``html_js_files``), so the pages work with no kernel and no network.  Where
plotly.js is not loaded (e.g. in JupyterLab), the figure says so instead of failing.

The same inputs give the same HTML (the element id is a digest of the data unless ``name``
is given), so executed notebooks do not change between builds.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd

__all__ = [
    "CURVE_COLUMNS",
    "PLOTLY_JS",
    "POINT_COLUMNS",
    "Explorer",
    "trajectory_explorer",
]

#: The vendored plotly.js bundle, relative to the book's ``_static`` folder.
PLOTLY_JS = "plotly/plotly-basic.min.js"
#: Columns ``points`` must have (``lo``, ``hi`` optional).
POINT_COLUMNS = ("model", "layer", "step", "value")
#: Columns ``curves`` must have (``lo``, ``hi`` optional).
CURVE_COLUMNS = ("model", "layer", "hypothesis", "step", "value")

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Explorer:
    """A self-contained interactive figure (shown by its ``text/html``).

    Attributes
    ----------
    html : str
        The figure: controls, plot area, embedded data and the script that draws it.
    element_id : str
        The id of its outer ``<div>``.
    data_bytes : int
        Size of the embedded JSON data.
    summary : str
        One line describing what it holds (its plain-text representation).
    """

    html: str
    element_id: str
    data_bytes: int
    summary: str

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.summary


def _check_columns(df, required, label: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{label} must be a pandas DataFrame, got {type(df).__name__}.")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(
            f"{label} lacks the columns {missing}; it needs {list(required)} (and optionally "
            f"lo, hi). It has {list(df.columns)}: rename its columns first."
        )
    if ("lo" in df.columns) != ("hi" in df.columns):
        raise ValueError(f"{label} has only one of lo and hi; give both or neither.")
    if df.empty:
        raise ValueError(f"{label} has no rows: there is nothing to draw.")
    return df


def _rounded(values, digits: int) -> list:
    """Floats rounded to ``digits`` significant digits; NaN and infinities become null."""
    out = []
    for v in np.asarray(values, dtype=float):
        out.append(float(f"{v:.{digits}g}") if np.isfinite(v) else None)
    return out


def _steps(values) -> list:
    v = np.asarray(values, dtype=float)
    if np.all(v == np.round(v)):
        return [int(x) for x in v]
    return _rounded(v, 8)


def _series(df: pd.DataFrame, digits: int) -> dict:
    df = df.sort_values("step", kind="stable")
    out = {"s": _steps(df["step"]), "v": _rounded(df["value"], digits)}
    if "lo" in df.columns:
        out["lo"] = _rounded(df["lo"], digits)
        out["hi"] = _rounded(df["hi"], digits)
    return out


def _layer_key(layer) -> str:
    return str(int(layer)) if float(layer) == int(layer) else str(layer)


def trajectory_explorer(
    points: pd.DataFrame,
    curves: pd.DataFrame | None = None,
    *,
    y_label: str = "top-1 / median ratio",
    x_label: str = "training step",
    spread_label: str = "spread over sequences",
    band_label: str = "95 % band",
    log_x: bool = False,
    log_y: bool = False,
    digits: int = 4,
    name: str | None = None,
    height: int = 440,
) -> Explorer:
    """An interactive figure of measured trajectories and their fits (module docstring).

    Parameters
    ----------
    points : pandas.DataFrame
        Columns ``model, layer, step, value`` (+ ``lo, hi``): the measured points.
    curves : pandas.DataFrame, optional
        Columns ``model, layer, hypothesis, step, value`` (+ ``lo, hi``): fitted curves on a
        grid of steps (60-100 steps per curve is enough to look smooth); every (model,
        layer) must have points.
    y_label, x_label : str
        Axis titles.
    spread_label, band_label : str
        Legend names of the error bars and of the curves' band.
    log_x, log_y : bool
        Logarithmic axes; with ``log_x``, rows at step <= 0 are left out (the figure's note
        says how many).
    digits : int
        Significant digits kept in the embedded data.
    name : str, optional
        The element id (letters, digits, ``-``, ``_``); by default a digest of the data.
        Give distinct names to two figures of the same data on one page.
    height : int
        Plot height in pixels.

    Returns
    -------
    Explorer

    Raises
    ------
    ValueError
        If a table lacks a column, has no rows, or ``curves`` names a (model, layer) that
        ``points`` lacks; if ``name`` is not a valid id.
    """
    points = _check_columns(points, POINT_COLUMNS, "points")
    if curves is not None:
        curves = _check_columns(curves, CURVE_COLUMNS, "curves")
    if name is not None and not _NAME.match(name):
        raise ValueError(
            f"name {name!r} is not a valid element id: use letters, digits, '-' and '_', "
            "starting with a letter."
        )
    if not 2 <= digits <= 15:
        raise ValueError(f"digits must be between 2 and 15, got {digits!r}.")
    dropped = 0
    if log_x:
        dropped = int((points["step"] <= 0).sum())
        points = points[points["step"] > 0]
        if curves is not None:
            curves = curves[curves["step"] > 0]
    models = list(dict.fromkeys(str(m) for m in points["model"]))
    layers: dict[str, list[str]] = {}
    by_point: dict[str, dict] = {}
    for (model, layer), group in points.groupby(["model", "layer"], sort=False):
        key = _layer_key(layer)
        by_point.setdefault(str(model), {})[key] = _series(group, digits)
    for model in models:
        layers[model] = sorted(by_point[model], key=float)
    hypotheses: list[str] = []
    by_curve: dict[str, dict] = {}
    if curves is not None:
        hypotheses = list(dict.fromkeys(str(h) for h in curves["hypothesis"]))
        unknown = set()
        for (model, layer, hyp), group in curves.groupby(
            ["model", "layer", "hypothesis"], sort=False
        ):
            key = _layer_key(layer)
            if key not in by_point.get(str(model), {}):
                unknown.add((str(model), key))
                continue
            by_curve.setdefault(str(model), {}).setdefault(key, {})[str(hyp)] = _series(
                group, digits
            )
        if unknown:
            raise ValueError(
                f"curves has (model, layer) pairs with no points: {sorted(unknown)[:5]}; "
                "give the measured points of every fitted layer."
            )
    note = ""
    if dropped:
        note = f"{dropped} point(s) at step 0 are not shown on the logarithmic step axis."
    payload = {
        "models": models,
        "layers": layers,
        "hypotheses": hypotheses,
        "points": by_point,
        "curves": by_curve,
        "labels": {
            "x": x_label,
            "y": y_label,
            "spread": spread_label,
            "band": band_label,
            "log_x": bool(log_x),
            "log_y": bool(log_y),
        },
    }
    data = json.dumps(payload, separators=(",", ":"), sort_keys=True, allow_nan=False)
    element_id = name or "ma-explorer-" + hashlib.sha256(data.encode()).hexdigest()[:12]
    page = _render(element_id, data, hypotheses, note, height)
    n_layers = sum(len(v) for v in layers.values())
    summary = (
        f"Trajectory explorer: {len(models)} model(s), {n_layers} layer(s)"
        + (f", hypotheses {hypotheses}" if hypotheses else "")
        + f"; {len(data) / 1000:.1f} kB of data (renders in the built book)."
    )
    return Explorer(page, element_id, len(data), summary)


def _script() -> str:
    return resources.files("massive_activations").joinpath("interactive.js").read_text()


def _render(element_id: str, data: str, hypotheses: list[str], note: str, height: int) -> str:
    esc = html.escape
    hyp = ""
    if hypotheses:
        hyp = (
            '<label>Hypothesis <select name="hypothesis">'
            + "".join(f'<option value="{esc(h)}">{esc(h)}</option>' for h in hypotheses)
            + ('<option value="__all__">all (curves only)</option>' if len(hypotheses) > 1 else "")
            + "</select></label>"
        )
    safe_data = data.replace("</", "<\\/")
    note_html = f'<p class="ma-explorer-note"><small>{esc(note)}</small></p>' if note else ""
    return (
        f'<div class="ma-explorer" id="{element_id}">\n'
        '<div class="ma-explorer-controls" style="display:flex;gap:1em;flex-wrap:wrap">'
        '<label>Model <select name="model"></select></label>'
        f'<label>Layer <select name="layer"></select></label>{hyp}</div>\n'
        f'<div class="ma-explorer-plot" style="width:100%;height:{int(height)}px"></div>\n'
        '<p class="ma-explorer-status" role="status"></p>\n'
        f"{note_html}"
        "<noscript>This interactive figure needs JavaScript.</noscript>\n"
        f'<script type="application/json" class="ma-explorer-data">{safe_data}</script>\n'
        f'<script>{_script()}("{element_id}");</script>\n'
        "</div>"
    )
