import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from massive_activations import curve, plots


def test_peak_surface_masks_exactly_the_no_peak_region():
    lam, gam = np.logspace(-5, 0, 30), np.logspace(-5, 0, 25)
    s = plots.peak_surface(lam, gam, 5.0, 143_000)  # t0 = 5: all three regimes
    assert s["t_peak"].shape == (25, 30)
    inside = s["regime"] == "early_peak"
    tp = s["t_peak"]
    assert np.all((tp[inside] > 0) & (tp[inside] <= 143_000))
    assert not np.any((tp[~inside] > 0) & (tp[~inside] <= 143_000))
    assert set(np.unique(s["regime"])) == set(curve.REGIMES)
    fig = plots.plot_peak_surface(s, 5.0, 143_000)
    masked = fig.axes[1].collections[0].get_array()
    assert np.ma.count_masked(masked) == (~inside).sum()
    for ax in fig.axes[:2]:
        assert ax.get_xlabel() and ax.get_ylabel()


def test_regime_examples_mark_only_peaks_inside_the_window():
    early = {"A": 50.0, "lam": 0.02, "gam": 0.002, "t0": 1.0, "K": 20.0}
    rise = {"A": 20.0, "lam": 1e-6, "gam": 0.01, "t0": 1.0, "K": 5.0}
    ax = plots.plot_regime_examples({"a": early, "b": rise}, 143_000, [0, 1, 2, 1000])
    markers = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(markers) == 1
    assert markers[0].get_xdata()[0] == float(curve.t_peak(0.02, 0.002, 1.0))
    assert "training step" in ax.get_xlabel() and "ratio" in ax.get_ylabel()


def _traj():
    import pandas as pd

    rows = []
    for model, L in (("L2-d64-h4", 2), ("L4-d64-h4", 4)):
        for layer in range(1, L + 1):
            for step in (0, 1, 2, 4, 8, 100, 1000):
                peak = 10.0 * layer if layer == 1 else 5.0 * layer
                value = peak if step == (8 if layer == 1 else 1000) else 3.0 + 0.001 * step
                rows.append({"model": model, "layer": layer, "step": step, "ratio": value,
                             "ratio_top2": value / 2, "ratio_top3": value / 3})  # fmt: skip
    return pd.DataFrame(rows)


def test_peak_table_finds_the_peak_and_its_step():
    from massive_activations.measurement.trajectories import peak_table

    peaks = peak_table(_traj()).set_index(["model", "layer"])
    assert peaks.loc[("L4-d64-h4", 1), "peak"] == 10.0
    assert peaks.loc[("L4-d64-h4", 1), "peak_step"] == 8
    assert bool(peaks.loc[("L4-d64-h4", 1), "peak_inside"])
    assert not bool(peaks.loc[("L4-d64-h4", 3), "peak_inside"])  # still rising at the end
    assert peaks.loc[("L4-d64-h4", 3), "relative_depth"] == 0.75
    assert peaks.loc[("L2-d64-h4", 2), "final"] == 10.0


def test_dynamics_figures_are_labelled():
    import pandas as pd

    from massive_activations.measurement.trajectories import peak_table

    traj = _traj()
    g = plots.plot_ratio_evolution(traj, "L4-d64-h4")
    assert len(g.axes.flat) == 4
    assert all(ax.get_xscale() == "log" for ax in g.axes.flat)
    final = pd.DataFrame({"model": ["a", "b"], "params": [1e5, 1e6], "ratio": [10.0, 30.0]})
    ref = pd.DataFrame({"model": ["P"], "params": [1.4e9], "ratio": [2350.0]})
    ax = plots.plot_size_scaling(final, ref)
    assert ax.get_xlabel() and ax.get_ylabel() and len(ax.collections) == 2
    fig = plots.plot_peak_heatmaps(peak_table(traj), n_bins=4)
    assert all(a.get_xlabel().startswith("relative depth") for a in fig.axes[:2])
    with pytest.raises(ValueError, match="No trajectories"):
        plots.plot_ratio_evolution(traj, "nope")
