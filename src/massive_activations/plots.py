"""Figures shared by the notebooks (matplotlib/seaborn, labelled axes with units)."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import ListedColormap, LogNorm

from massive_activations import curve

__all__ = [
    "peak_surface",
    "plot_final_ratios",
    "plot_layer_ratio",
    "plot_layer_statistics",
    "plot_peak_heatmaps",
    "plot_peak_surface",
    "plot_position0_share",
    "plot_r2_map",
    "plot_ratio_evolution",
    "plot_regime_examples",
    "plot_seed_trajectories",
    "plot_size_scaling",
    "plot_variant_comparison",
]

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


def plot_ratio_evolution(traj, model: str, col_wrap: int = 4):
    """Top-1, top-2 and top-3 over median per layer across training (paper Fig. 4).

    ``traj`` is :func:`massive_activations.measurement.trajectories.trajectories`' table; one panel per
    layer of ``model``, step on a log axis (step 0 drawn at :data:`STEP0_AT`).
    """
    rows = traj[traj["model"] == model]
    if rows.empty:
        raise ValueError(f"No trajectories of model {model!r}; have {sorted(set(traj['model']))}.")
    long = rows.melt(
        id_vars=["layer", "step"],
        value_vars=["ratio", "ratio_top2", "ratio_top3"],
        var_name="statistic",
        value_name="value",
    )
    long["statistic"] = long["statistic"].map(
        {"ratio": "top-1", "ratio_top2": "top-2", "ratio_top3": "top-3"}
    )
    long["step"] = np.maximum(long["step"], STEP0_AT)
    g = sns.relplot(
        data=long, x="step", y="value", hue="statistic", col="layer", kind="line",
        col_wrap=min(col_wrap, long["layer"].nunique()), height=2.6, aspect=1.2,
        facet_kws={"sharey": False},
    )  # fmt: skip
    g.set(xscale="log")
    g.set_axis_labels(f"training step (log scale; 0 drawn at {STEP0_AT})", "top-k / median")
    g.figure.suptitle(f"{model}: top-1, top-2 and top-3 over the median, per layer", y=1.02)
    return g


def plot_size_scaling(final, reference_points=None, ax=None, label: str = "our suite") -> plt.Axes:
    """Final ratio (largest over layers) against total parameters, log-log (paper Fig. 2).

    Parameters
    ----------
    final : pandas.DataFrame
        ``model, params, ratio`` (one row per model).
    reference_points : pandas.DataFrame, optional
        The same columns for the paper's models (drawn in another colour and labelled).
    label : str
        Legend entry of ``final``'s models.
    """
    ax = ax or plt.subplots(figsize=(7, 4.2))[1]
    ax.scatter(final["params"], final["ratio"], color="C0", label=label, zorder=3)
    for _, r in final.iterrows():
        ax.annotate(r["model"], (r["params"], r["ratio"]), xytext=(4, 3),
                    textcoords="offset points", fontsize=7)  # fmt: skip
    if reference_points is not None and len(reference_points):
        ax.scatter(reference_points["params"], reference_points["ratio"], color="C3",
                   marker="s", label="Pythia (paper Fig. 3, approximate)", zorder=3)  # fmt: skip
        for _, r in reference_points.iterrows():
            ax.annotate(r["model"], (r["params"], r["ratio"]), xytext=(4, 3),
                        textcoords="offset points", fontsize=7, color="C3")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("total parameters (log scale)")
    ax.set_ylabel("final top-1 / median, largest over layers (log scale)")
    ax.legend(loc="upper left")
    return ax


def plot_peak_heatmaps(peaks, n_bins: int = 8):
    """Peak ratio and step of the peak over relative depth x model (paper Fig. 5).

    ``peaks`` is :func:`massive_activations.measurement.trajectories.peak_table`'s table; relative depth
    ``layer / n_layers`` is cut into ``n_bins`` equal bins (a bin without a layer stays
    blank).
    """
    edges = np.linspace(0, 1, n_bins + 1)
    labels = [f"{hi:.2f}" for hi in edges[1:]]
    p = peaks.assign(
        depth=pd.cut(peaks["relative_depth"], edges, labels=labels, include_lowest=True)
    )
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.5 * p["model"].nunique() + 2.2),
                             constrained_layout=True)  # fmt: skip
    for ax, (col, title, fmt, norm) in zip(
        axes,
        [("peak", "peak top-1 / median", ".0f", None),
         ("peak_step", "step of the peak (log colour scale)", ".0f", LogNorm())],
        strict=True,
    ):  # fmt: skip
        grid = p.pivot_table(index="model", columns="depth", values=col, aggfunc="mean",
                             observed=False)  # fmt: skip
        data = grid.clip(lower=1) if norm is not None else grid
        sns.heatmap(data, annot=True, fmt=fmt, cmap="magma", ax=ax, norm=norm,
                    annot_kws={"fontsize": 7}, cbar_kws={"label": title})  # fmt: skip
        ax.set_xlabel("relative depth $\\ell / L$ (upper edge of the bin)")
        ax.set_ylabel("model")
        ax.set_title(title)
    return fig


def plot_layer_statistics(stats: pd.DataFrame, model: str):
    """Mean top-1, top-2, top-3 and median per layer at two or more steps (paper Figs. 1a, 3).

    ``stats``: one row per (step, layer) with ``top1, top2, top3, median`` (means over
    sequences); one panel per step, log scale.
    """
    steps = sorted(stats["step"].unique())
    fig, axes = plt.subplots(1, len(steps), figsize=(5.5 * len(steps), 3.8), sharey=True,
                             constrained_layout=True, squeeze=False)  # fmt: skip
    for ax, step in zip(axes[0], steps, strict=True):
        g = stats[stats["step"] == step]
        for statistic, marker in zip(("top1", "top2", "top3", "median"), "o^sD", strict=True):
            ax.plot(g["layer"], g[statistic], marker=marker, label=statistic)
        ax.set_yscale("log")
        ax.set_title(f"step {step}")
        ax.set_xlabel("decoder layer $\\ell$")
        ax.set_xticks(g["layer"])
    axes[0][0].set_ylabel("mean |activation| (model units, log scale)")
    axes[0][-1].legend(title="statistic")
    fig.suptitle(f"{model}: top-3 and median per layer")
    return fig


def plot_final_ratios(ours: pd.Series, paper: pd.Series, label: str) -> plt.Axes:
    """Horizontal bars: our models' final ratio (blue) beside the paper's Pythia values (red),
    log scale (paper Fig. 3)."""
    both = pd.concat([ours, paper.rename(lambda m: f"Pythia-{m} (paper)")])
    _, ax = plt.subplots(figsize=(8, 0.28 * len(both) + 1.5))
    ax.barh(both.index, both.to_numpy(), color=["C0"] * len(ours) + ["C3"] * len(paper))
    ax.set_xscale("log")
    ax.set_xlabel("top-1 / median, largest over layers at the last step (log scale)")
    ax.set_title(f"Final ratio: {label} (blue) and Pythia (red, paper Fig. 3)")
    return ax


def plot_position0_share(share: pd.DataFrame, model: str) -> plt.Axes:
    """Heatmap of the share of sequences whose top-1 sits at position 0 (layer x step)."""
    _, ax = plt.subplots(figsize=(10, 0.5 * len(share) + 1.8))
    sns.heatmap(share, vmin=0, vmax=1, cmap="rocket_r", ax=ax,
                cbar_kws={"label": "share of sequences with top-1 at position 0"})  # fmt: skip
    ax.set_xlabel("checkpoint step")
    ax.set_ylabel("decoder layer")
    ax.set_title(f"{model}: does the top-1 sit on the first token?")
    return ax


def plot_variant_comparison(comparison: pd.DataFrame) -> plt.Axes:
    """Final ratio per model under each evaluation variant (raw slices vs EOT first)."""
    cols = [c for c in ("ratio_raw", "ratio_eot_first") if c in comparison.columns]
    data = comparison.set_index("model")[cols].rename(
        columns={"ratio_raw": "raw text slices (the paper's)", "ratio_eot_first": "EOT first"}
    )
    ax = data.plot.barh(figsize=(8, 0.35 * len(data) + 1.5), logx=True)
    ax.set_xlabel("top-1 / median, largest over layers at the last step (log scale)")
    ax.set_ylabel("model")
    ax.legend(title="evaluation sequences")
    return ax


def plot_seed_trajectories(traj: pd.DataFrame, archs: pd.DataFrame, quantity: str = "ratio"):
    """Largest ratio over layers across training, one panel per architecture with several
    seeds, one line per seed (the packing model, when present, dashed)."""
    a = archs.set_index("model")
    per = traj.groupby(["model", "step"])[quantity].max().reset_index()
    per = per.join(a[["architecture", "seed", "packing"]], on="model")
    groups = [g for g, d in per.groupby("architecture") if d["model"].nunique() > 1]
    if not groups:
        raise ValueError("No architecture has more than one model (seed or packing).")
    fig, axes = plt.subplots(1, len(groups), figsize=(4.6 * len(groups), 3.6), squeeze=False,
                             constrained_layout=True)  # fmt: skip
    for ax, arch in zip(axes[0], groups, strict=True):
        for _, d in per[per["architecture"] == arch].groupby("model"):
            packed = bool(d["packing"].iloc[0])
            label = "packing" if packed else f"seed {int(d['seed'].iloc[0])}"
            ax.plot(np.maximum(d["step"], STEP0_AT), d[quantity], ls="--" if packed else "-",
                    label=label)  # fmt: skip
        ax.set_xscale("log")
        ax.set_title(arch)
        ax.set_xlabel(f"training step (log scale; 0 drawn at {STEP0_AT})")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("top-1 / median, largest over layers")
    return fig


def plot_layer_ratio(per_layer: pd.DataFrame, reference: float, label: str, title: str):
    """One checkpoint's ratio per layer (log scale) with a reference line."""
    _, ax = plt.subplots(figsize=(9, 3.8))
    ax.plot(per_layer.index, per_layer["ratio"], "o-", label=title)
    ax.axhline(reference, color="C1", ls="--", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("decoder layer $\\ell$")
    ax.set_ylabel("top-1 / median ratio (log scale)")
    ax.legend()
    return ax


#: Beyond this many layers the R^2 map leaves out the numbers in its cells.
R2_MAP_ANNOTATE_MAX = 16


def plot_r2_map(r2: pd.DataFrame, title: str) -> plt.Axes:
    """R^2 per model (rows) and decoder layer (columns), the paper's Fig. 7.

    Cells hold the value when there are at most :data:`R2_MAP_ANNOTATE_MAX` layers; wider
    maps (Pythia's 6 to 36 layers) keep the colour only and a width that fits a page.
    """
    n_rows, n_cols = r2.shape
    annotate = n_cols <= R2_MAP_ANNOTATE_MAX
    width = min(1.1 * n_cols + 3, 14.0) if annotate else min(0.3 * n_cols + 4, 14.0)
    _, ax = plt.subplots(figsize=(width, 0.55 * n_rows + 1.6))
    sns.heatmap(r2, annot=annotate, fmt=".2f", vmin=0, vmax=1, cmap="viridis", ax=ax,
                cbar_kws={"label": "R² of Eq. 9"})  # fmt: skip
    ax.set_xlabel("decoder layer")
    ax.set_ylabel("model")
    ax.set_title(title)
    return ax
