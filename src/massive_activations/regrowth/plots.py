"""Figures of the regrowth chapter (matplotlib, labelled axes with units).

Step 0 is drawn at :data:`massive_activations.plots.STEP0_AT` on the log-scaled step axes;
the original model's values (the control run at step 0) are dashed reference lines.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from massive_activations.fitting.uncertainty import covariance_band
from massive_activations.plots import STEP0_AT
from massive_activations.regrowth.fits import RegrowthFits, curve_values, original_values

__all__ = [
    "RUN_COLORS",
    "plot_ablation",
    "plot_beside_suite",
    "plot_element_map",
    "plot_fits",
    "plot_locate",
    "plot_losses",
    "plot_runs",
]

#: Colours of the runs and of the original model's reference lines.
RUN_COLORS = {"ablated": "C3", "control": "C0", "original": "0.3"}
_STEP_LABEL = f"continued-training step (log scale; step 0 drawn at {STEP0_AT})"


def _x(steps) -> np.ndarray:
    return np.maximum(np.asarray(steps, dtype=float), STEP0_AT)


def plot_locate(locate: pd.DataFrame, ax=None) -> plt.Axes:
    """Per layer: |attention write|, |MLP write| and |layer output| at the outlier element."""
    ax = ax or plt.subplots(figsize=(9, 3.8))[1]
    position, channel = int(locate["position"].iloc[0]), int(locate["channel"].iloc[0])
    styles = {"output": ("k", "-", "o"), "attention": ("C1", "--", "^"), "mlp": ("C2", "--", "s")}
    for kind, (color, ls, marker) in styles.items():
        rows = locate[locate["submodule"] == kind]
        label = "layer output $|h_\\ell|$" if kind == "output" else f"|{kind} write|"
        ax.plot(rows["layer"], rows["abs_value"], color=color, ls=ls, marker=marker, label=label)
    writer = locate[locate["writer"]]
    if len(writer):
        w = writer.iloc[0]
        ax.plot(w["layer"], w["abs_value"], "*", color="C3", ms=18, zorder=5,
                label=f"writer: layer {int(w['layer'])} {w['submodule']}")  # fmt: skip
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("decoder layer $\\ell$")
    ax.set_ylabel("mean |value| at the element (residual units, log)")
    ax.set_title(f"Who writes position {position}, channel {channel}")
    ax.legend(fontsize=8)
    return ax


def plot_ablation(traj: pd.DataFrame):
    """Original vs just-ablated, per layer: the ratio and the attention to position 0."""
    original = original_values(traj)
    ablated = traj[(traj["run"] == "ablated") & (traj["step"] == 0)].set_index("layer")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), constrained_layout=True)
    for ax, column, label, log in (
        (axes[0], "ratio", "top-1 / median ratio (dimensionless, log)", True),
        (axes[1], "attn_first_pos", "attention on position 0 (weight, 0-1)", False),
    ):
        ax.plot(original.index, original[column], "o-", color=RUN_COLORS["original"],
                label="original")  # fmt: skip
        ax.plot(ablated.index, ablated[column], "s-", color=RUN_COLORS["ablated"],
                label="just ablated (step 0)")  # fmt: skip
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("decoder layer $\\ell$")
        ax.set_ylabel(label)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.suptitle("What the ablation does, before any training")
    return fig


def plot_runs(
    traj: pd.DataFrame,
    layers: Sequence[int],
    quantity: str = "ratio",
    ylabel: str = "top-1 / median ratio (dimensionless, log)",
    log: bool = True,
    ncols: int = 3,
):
    """One panel per layer: both runs over the steps, the original as a dashed line."""
    original = original_values(traj)
    nrows = int(np.ceil(len(layers) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.1 * nrows),
                             squeeze=False, constrained_layout=True)  # fmt: skip
    for ax, layer in zip(axes.flat, layers, strict=False):
        for run in ("control", "ablated"):
            rows = traj[(traj["run"] == run) & (traj["layer"] == layer)]
            ax.plot(_x(rows["step"]), rows[quantity], "o-", ms=3, color=RUN_COLORS[run],
                    label=run)  # fmt: skip
        ax.axhline(original.loc[layer, quantity], color=RUN_COLORS["original"], ls="--",
                   lw=1, label="original")  # fmt: skip
        ax.set_xscale("log")
        if log:
            ax.set_yscale("log")
        ax.set_title(f"layer {layer}")
        ax.set_xlabel(_STEP_LABEL, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
    for ax in list(axes.flat)[len(layers) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    return fig


def plot_element_map(traj: pd.DataFrame, quantity: str = "element_abs"):
    """Heat maps (layer x step) of the element's |value| in both runs, one colour scale."""
    from matplotlib.colors import LogNorm

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True, sharey=True)
    values = traj[quantity].clip(lower=1e-3)
    norm = LogNorm(vmin=float(values.min()), vmax=float(values.max()))
    for ax, run in zip(axes, ("control", "ablated"), strict=True):
        grid = traj[traj["run"] == run].pivot(index="layer", columns="step", values=quantity)
        image = ax.imshow(grid.clip(lower=1e-3).to_numpy(), aspect="auto", origin="lower",
                          norm=norm, cmap="magma",
                          extent=(-0.5, grid.shape[1] - 0.5, grid.index.min() - 0.5,
                                  grid.index.max() + 0.5))  # fmt: skip
        ticks = np.linspace(0, grid.shape[1] - 1, min(8, grid.shape[1])).round().astype(int)
        ax.set_xticks(ticks, [str(grid.columns[i]) for i in ticks])
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(False)
        ax.set_xlabel("continued-training step (measured steps, log-spaced)")
        ax.set_title(run)
    axes[0].set_ylabel("decoder layer $\\ell$")
    fig.colorbar(image, ax=axes, label="mean |value| at the element (residual units, log)")
    return fig


def plot_losses(traj: pd.DataFrame, log: pd.DataFrame, ax=None) -> plt.Axes:
    """Held-out loss at the measured steps and the training loss (50-step mean), both runs."""
    ax = ax or plt.subplots(figsize=(8, 3.6))[1]
    points = traj.drop_duplicates(["run", "step"])
    for run in ("control", "ablated"):
        rows = points[points["run"] == run]
        ax.plot(_x(rows["step"]), rows["heldout_loss"], "o-", color=RUN_COLORS[run],
                label=f"{run}: held-out")  # fmt: skip
        train = log[(log["run"] == run) & log["train_loss"].notna()]
        smooth = train["train_loss"].rolling(50, min_periods=1).mean()
        ax.plot(_x(train["step"]), smooth, color=RUN_COLORS[run], lw=0.8, alpha=0.6,
                label=f"{run}: training (50-step mean)")  # fmt: skip
    original = original_values(traj)["heldout_loss"].iloc[0]
    ax.axhline(original, color=RUN_COLORS["original"], ls="--", lw=1, label="original")
    ax.set_xscale("log")
    ax.set_xlabel(_STEP_LABEL)
    ax.set_ylabel("cross-entropy (nats per token)")
    ax.legend(fontsize=8)
    return ax


def plot_fits(fits: RegrowthFits, traj: pd.DataFrame, run: str, layers: Sequence[int]):
    """Measured ratios of one run with every fitted hypothesis; Eq. 9 with its 95% band
    (covariance, delta method); the y range is the data's, halved and doubled."""
    styles = {"eq9": ("C3", "-"), "step1": ("C0", "--"), "step2": ("C2", ":")}
    fig, axes = plt.subplots(1, len(layers), figsize=(4.4 * len(layers), 3.4),
                             squeeze=False, constrained_layout=True)  # fmt: skip
    for ax, layer in zip(axes[0], layers, strict=True):
        rows = traj[(traj["run"] == run) & (traj["layer"] == layer)]
        steps = rows["step"].to_numpy(float)
        grid = np.unique(np.concatenate([steps, np.geomspace(1, max(steps.max(), 1), 200)]))
        measured = rows["ratio"].to_numpy(float)
        ax.plot(_x(steps), measured, "ko", ms=4, label="measured")
        table = fits.table[(fits.table["run"] == run) & (fits.table["layer"] == layer)]
        for row in table.itertuples(index=False):
            if row.status not in ("ok", "at_bound", "not_converged"):
                continue
            color, ls = styles.get(row.hypothesis, ("C7", "-"))
            row = row._asdict()
            status = "" if row["status"] == "ok" else f", {row['status']}"
            ax.plot(_x(grid), curve_values(row, grid), color=color, ls=ls,
                    label=f"{row['hypothesis']} (AIC {row['aic']:.0f}{status})")  # fmt: skip
            if row["hypothesis"] == "eq9":
                _, lo, hi = covariance_band(fits.result(run, layer, "eq9"), grid, sigma=1.96)
                if np.all(np.isfinite(lo)):
                    ax.fill_between(_x(grid), lo, hi, color=color, alpha=0.15, lw=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        finite = measured[np.isfinite(measured) & (measured > 0)]
        if finite.size:  # the data decide the range, not a band that may blow up
            ax.set_ylim(finite.min() / 2, finite.max() * 2)
        ax.set_title(f"{run}, layer {layer}")
        ax.set_xlabel(_STEP_LABEL, fontsize=8)
        ax.set_ylabel("top-1 / median ratio (dimensionless, log)", fontsize=8)
        ax.legend(fontsize=7)
    return fig


def plot_beside_suite(
    traj: pd.DataFrame,
    layers: Sequence[int],
    suite_traj: pd.DataFrame | None,
    suite_model: str | None = None,
):
    """The ablated run's ratios beside the mini suite's birth of the phenomenon.

    Left: the ablated run's layers over continued training, with the original's values
    dashed; right: every layer of the suite's model over its training from scratch (or a
    note when the suite's data is not available).
    """
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), constrained_layout=True)
    original = original_values(traj)
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(layers)))
    for layer, color in zip(layers, colors, strict=True):
        rows = traj[(traj["run"] == "ablated") & (traj["layer"] == layer)]
        axes[0].plot(_x(rows["step"]), rows["ratio"], "o-", ms=3, color=color,
                     label=f"layer {layer}")  # fmt: skip
        axes[0].axhline(original.loc[layer, "ratio"], color=color, ls="--", lw=0.8)
    axes[0].set_title("regrowth: ablated model, continued training")
    axes[0].legend(fontsize=7, ncol=2)
    if suite_traj is not None and suite_model is not None:
        rows = suite_traj[suite_traj["model"] == suite_model]
        n = int(rows["layer"].max())
        for layer, color in zip(range(1, n + 1), plt.cm.viridis(np.linspace(0, 0.9, n)),
                                strict=True):  # fmt: skip
            r = rows[rows["layer"] == layer]
            axes[1].plot(_x(r["step"]), r["ratio"], "-", color=color, label=f"layer {layer}")
        axes[1].set_title(f"birth: mini suite's {suite_model}, training from scratch")
        axes[1].legend(fontsize=7, ncol=2)
    else:
        axes[1].text(0.5, 0.5, "the mini suite's data is not available", ha="center",
                     va="center", transform=axes[1].transAxes)  # fmt: skip
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training step (log scale; step 0 drawn at 0.5)")
        ax.set_ylabel("top-1 / median ratio (dimensionless, log)")
    return fig
