"""Figures shared by the notebooks (matplotlib/seaborn, labelled axes with units)."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.colors import ListedColormap

from . import curve

__all__ = ["peak_surface", "plot_peak_surface", "plot_regime_examples"]

STEP0_AT = 0.5  # where step 0 is drawn on a log-scaled step axis


def plot_regime_examples(
    examples: Mapping[str, Mapping[str, float]], t_max: float, steps, ax=None
) -> plt.Axes:
    """Draw Eq. 9 curves with their baseline ``K`` and, when inside training, ``t_peak``.

    Parameters
    ----------
    examples : mapping
        ``{label: {"A", "lam", "gam", "t0", "K"}}``.
    t_max : float
        End of the training window (steps).
    steps : array_like
        Checkpoint steps to include in the plotted grid (e.g. Pythia's schedule).
    ax : matplotlib Axes, optional
    """
    ax = ax or plt.subplots(figsize=(8, 4.5))[1]
    t = np.unique(np.concatenate([np.asarray(steps, float), np.geomspace(1, t_max, 400)]))
    colors = sns.color_palette("deep", len(examples))
    for (label, p), color in zip(examples.items(), colors, strict=True):
        kind = curve.regime(p["A"], p["lam"], p["gam"], p["t0"], t_max)
        ax.plot(np.maximum(t, STEP0_AT), curve.eq9(t, **p), color=color,
                label=f"{label} (regime: {kind})")  # fmt: skip
        ax.axhline(p["K"], color=color, ls="--", lw=1)
        tp = float(curve.t_peak(p["lam"], p["gam"], p["t0"]))
        if 0 < tp <= t_max:
            y = float(curve.eq9(tp, **p))
            ax.plot(tp, y, "o", color=color, ms=8)
            ax.annotate(f"$t_{{peak}}$ = {tp:,.0f}", (tp, y), xytext=(8, 8),
                        textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel(f"training step $t$ (log scale; step 0 drawn at {STEP0_AT})")
    ax.set_ylabel("top-1 / median ratio $f(t)$ (dimensionless)")
    ax.legend(loc="upper left")
    return ax


def peak_surface(lam, gam, t0: float, t_max: float) -> dict[str, np.ndarray]:
    """``t_peak`` and the regime on the grid ``lam x gam`` at fixed ``t0`` (paper Fig. 8).

    Returns
    -------
    dict
        ``LAM``, ``GAM`` (meshgrids, gam along rows), ``t_peak`` and ``regime`` arrays.
    """
    LAM, GAM = np.meshgrid(np.asarray(lam, float), np.asarray(gam, float))
    return {
        "LAM": LAM,
        "GAM": GAM,
        "t_peak": curve.t_peak(LAM, GAM, t0),
        "regime": curve.regime(1.0, LAM, GAM, t0, t_max),
    }


def plot_peak_surface(surface: Mapping[str, np.ndarray], t0: float, t_max: float):
    """Two panels: the regime map, and ``log10 t_peak`` with the no-peak region masked.

    Returns
    -------
    matplotlib.figure.Figure
    """
    LAM, GAM, reg = surface["LAM"], surface["GAM"], surface["regime"]
    codes = {name: i for i, name in enumerate(curve.REGIMES)}
    reg_code = np.vectorize(codes.get)(reg)
    inside = reg == "early_peak"

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    palette = ListedColormap(sns.color_palette("pastel", len(codes)))
    ax0.pcolormesh(LAM, GAM, reg_code, cmap=palette, vmin=-0.5, vmax=len(codes) - 0.5,
                   shading="auto")  # fmt: skip
    for name, i in codes.items():
        ax0.plot([], [], "s", color=palette(i), ms=10, label=name.replace("_", " "))
    ax0.legend(loc="lower left", framealpha=0.9)
    ax0.set_title(f"regime over {t_max:,.0f} steps ($t_0$ = {t0:g})")

    log_tp = np.ma.masked_where(~inside, np.log10(np.where(inside, surface["t_peak"], 1.0)))
    mesh = ax1.pcolormesh(LAM, GAM, log_tp, cmap="viridis", shading="auto")
    ax1.set_facecolor("0.85")
    levels = [lv for lv in range(1, 9) if 10**lv <= t_max]
    if inside.sum() > 3 and levels:
        cs = ax1.contour(LAM, GAM, log_tp, levels=levels, colors="white", linewidths=0.8)
        ax1.clabel(cs, fmt=lambda v: f"$10^{{{v:.0f}}}$")
    fig.colorbar(mesh, ax=ax1, label=r"$\log_{10} t_\mathrm{peak}$ (steps)")
    ax1.set_title(r"$t_\mathrm{peak}$ inside training (grey: no peak in the window)")
    for ax in (ax0, ax1):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"decay rate $\lambda$ (per unit of $x$)")
        ax.set_ylabel(r"time scaling $\gamma$ (units of $x$ per step)")
    return fig
