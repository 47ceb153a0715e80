import matplotlib

matplotlib.use("Agg")

import numpy as np

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
