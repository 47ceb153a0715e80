"""The interactive trajectory figure: embedded data, determinism, clear errors.

That it renders and responds in a browser is checked in tests/test_browser.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from massive_activations.interactive import PLOTLY_JS, trajectory_explorer

ROOT = Path(__file__).resolve().parents[1]


def example_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    steps = [0, 1000, 10000, 143000]
    rows, curves = [], []
    for model, n_layers in (("L2-d128-h4", 2), ("L4-d128-h4", 4)):
        for layer in range(1, n_layers + 1):
            for s in steps:
                v = layer * np.log1p(s) + 1 / 3
                rows.append((model, layer, s, v, v - 0.5, v + 0.5))
            for hyp in ("eq9", "step1"):
                for s in np.linspace(0, 143000, 5):
                    v = layer * np.log1p(s) + (0.1 if hyp == "eq9" else 0.2)
                    curves.append((model, layer, hyp, s, v, v - 1, v + 1))
    points = pd.DataFrame(rows, columns=["model", "layer", "step", "value", "lo", "hi"])
    fits = pd.DataFrame(
        curves, columns=["model", "layer", "hypothesis", "step", "value", "lo", "hi"]
    )
    return points, fits


def embedded(fig) -> dict:
    match = re.search(r'<script type="application/json" class="ma-explorer-data">(.*?)</script>',
                      fig.html, flags=re.S)  # fmt: skip
    return json.loads(match.group(1).replace("<\\/", "</"))


def test_embedded_data_hold_every_model_layer_and_hypothesis_rounded():
    points, fits = example_tables()
    fig = trajectory_explorer(points, fits, digits=3)
    data = embedded(fig)
    assert data["models"] == ["L2-d128-h4", "L4-d128-h4"]
    assert data["layers"] == {"L2-d128-h4": ["1", "2"], "L4-d128-h4": ["1", "2", "3", "4"]}
    assert data["hypotheses"] == ["eq9", "step1"]
    p = data["points"]["L4-d128-h4"]["3"]
    assert p["s"] == [0, 1000, 10000, 143000]
    expected = 3 * np.log1p(np.array(p["s"], float)) + 1 / 3
    assert p["v"] == [float(f"{v:.3g}") for v in expected]
    assert p["lo"][0] == pytest.approx(1 / 3 - 0.5, rel=1e-2)
    c = data["curves"]["L2-d128-h4"]["2"]["step1"]
    assert c["s"] == [0, 35750, 71500, 107250, 143000] and len(c["hi"]) == 5
    assert fig.data_bytes == len(json.dumps(data, separators=(",", ":"), sort_keys=True))
    assert "2 model(s), 6 layer(s)" in repr(fig)


def test_same_data_same_html_and_distinct_data_distinct_ids():
    points, fits = example_tables()
    a = trajectory_explorer(points, fits)
    b = trajectory_explorer(points.copy(), fits.copy())
    assert a.html == b.html and a._repr_html_() == a.html
    c = trajectory_explorer(points.assign(value=points.value + 1), fits)
    assert c.element_id != a.element_id
    assert trajectory_explorer(points, name="fig-traj").element_id == "fig-traj"
    assert 'id="fig-traj"' in trajectory_explorer(points, name="fig-traj").html


def test_figure_has_controls_and_no_network_reference():
    points, fits = example_tables()
    page = trajectory_explorer(points, fits).html
    for control in ('select name="model"', 'select name="layer"', 'select name="hypothesis"'):
        assert control in page
    assert "http://" not in page and "https://" not in page
    assert 'select name="hypothesis"' not in trajectory_explorer(points).html
    # nothing in the data can close the script element early
    evil = points.assign(model=points.model.str.replace("L2", "</script><b>"))
    assert "</script><b>" not in trajectory_explorer(evil).html


def test_missing_values_become_null_and_log_axis_drops_step_zero():
    points, _ = example_tables()
    points.loc[1, "value"] = np.nan
    points.loc[2, "hi"] = np.inf
    fig = trajectory_explorer(points, log_x=True)
    data = embedded(fig)
    p = data["points"]["L2-d128-h4"]["1"]
    assert p["s"] == [1000, 10000, 143000]
    assert p["v"][0] is None and p["hi"][1] is None
    assert "6 point(s) at step 0 are not shown" in fig.html


def test_bad_tables_are_refused_with_the_fix():
    points, fits = example_tables()
    with pytest.raises(ValueError, match=r"points lacks the columns \['value'\].*rename"):
        trajectory_explorer(points.rename(columns={"value": "ratio"}))
    with pytest.raises(ValueError, match="only one of lo and hi"):
        trajectory_explorer(points.drop(columns="hi"))
    with pytest.raises(ValueError, match=r"curves has .* pairs with no points"):
        trajectory_explorer(points[points.model == "L2-d128-h4"], fits)
    with pytest.raises(ValueError, match="points has no rows"):
        trajectory_explorer(points.iloc[:0])
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        trajectory_explorer(points.to_dict())
    with pytest.raises(ValueError, match="not a valid element id"):
        trajectory_explorer(points, name="1 bad")


def test_the_book_serves_the_vendored_plotly_bundle():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    listed = [e if isinstance(e, str) else e[0] for e in config["html_js_files"]]
    assert PLOTLY_JS in listed
    static = [ROOT / p for p in config["html_static_path"]]
    bundle = [s / PLOTLY_JS for s in static if (s / PLOTLY_JS).is_file()]
    assert bundle, f"{PLOTLY_JS} is not in {config['html_static_path']}"
    assert (bundle[0].parent / "LICENSE").is_file()
    head = bundle[0].read_text()[:200]
    assert "plotly.js" in head and "MIT" in head
