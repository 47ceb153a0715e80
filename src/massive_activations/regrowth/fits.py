"""The regrowth runs' trajectories and their fits with chapter 4's machinery.

* :func:`regrowth_trajectories`: per run, step and layer, the top-1/median ratio (ratio of
  means, paper Eq. 8, and the rest of
  :func:`massive_activations.measurement.trajectories.trajectories`), plus the outlier
  element: its mean absolute value, the MLP's and attention's writes there, the share of
  windows whose top-1 sits on it, the attention to position 0, and the held-out loss;
* :func:`original_values`: the same per layer for the original model (the control at step 0),
  the reference every figure and decision compares with;
* :func:`fit_regrowth`: each (run, layer) ratio trajectory fitted with Eq. 9 and the step
  responses (:func:`massive_activations.fitting.fit_all.fit_layer`, chapter 4's ``"ours"``
  procedure with covariance intervals, Eq. 9 profiles on confirmed early peaks, and a
  bootstrap over windows where asked),
  as rows of ``fits.parquet``'s format plus ``run``;
* :func:`best_hypotheses`: per (run, layer), which hypothesis the AIC prefers and by how much;
* :func:`explorer_tables`: the runs' points and fitted curves for the interactive explorer,
  each run as a "model" (:mod:`massive_activations.fitting.bands`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from massive_activations.datasets.activations import suite_activations
from massive_activations.fitting.bands import curve_values, fit_curves, trajectory_points
from massive_activations.fitting.fit_all import fit_layer, fit_row
from massive_activations.fitting.procedures import FitResult
from massive_activations.measurement.trajectories import layer_sequences, trajectories
from massive_activations.suite.data import FILES as SUITE_FILES

__all__ = [
    "AIC_MARGIN",
    "HYPOTHESES",
    "RegrowthFits",
    "best_hypotheses",
    "curve_values",
    "explorer_tables",
    "featured_layers",
    "fit_regrowth",
    "original_values",
    "regrowth_trajectories",
    "suite_curves",
]

#: Chapter 4's hypotheses that the regrowth is tested with: Eq. 9 and the two step responses
#: (Eq. 14 is Eq. 9 reparametrised: the same curves).
HYPOTHESES = ("eq9", "step1", "step2")

#: An AIC lower by more than this prefers one hypothesis to another (Burnham and Anderson's
#: rule of thumb: a difference under 2 is no evidence either way).
AIC_MARGIN = 2.0


def _as_table(activations: pd.DataFrame) -> pd.DataFrame:
    """The activation table with each run as a model (what the trajectory code groups by)."""
    return activations.drop(columns="model").rename(columns={"run": "model"})


def regrowth_trajectories(
    activations: pd.DataFrame, element: dict, log: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per (run, step, layer) trajectory values and the outlier element's.

    Parameters
    ----------
    activations : pandas.DataFrame
        ``regrowth_activations.parquet``.
    element : dict
        The tracked element's ``position`` and ``channel`` (the data's ``writer``).
    log : pandas.DataFrame, optional
        ``regrowth_log.parquet``; adds ``heldout_loss``.

    Returns
    -------
    pandas.DataFrame
        :func:`~massive_activations.measurement.trajectories.trajectories`' columns with
        ``run`` in place of ``model``, plus ``element_abs`` (mean over windows of
        ``|tracked_value|``), ``mlp_write`` and ``attn_write`` (means, signed),
        ``at_element`` (share of windows whose top-1 sits on the tracked element),
        ``attn_first_pos`` (mean) and, with ``log``, ``heldout_loss``.
    """
    traj = trajectories(_as_table(activations)).rename(columns={"model": "run"})
    ok = activations["status"] == "ok"
    a = activations.assign(
        element_abs=activations["tracked_value"].abs(),
        at_element=(
            ok
            & (activations["top1_position"] == int(element["position"]))
            & (activations["top1_channel"] == int(element["channel"]))
        ).astype(float),
    )
    columns = ["element_abs", "mlp_write", "attn_write", "attn_first_pos", "at_element"]
    extra = a.groupby(["run", "step", "layer"])[columns].mean().reset_index()
    traj = traj.merge(extra, on=["run", "step", "layer"], how="left")
    if log is not None:
        losses = log.dropna(subset=["heldout_loss"])[["run", "step", "heldout_loss"]]
        traj = traj.merge(losses, on=["run", "step"], how="left")
    return traj


def original_values(traj: pd.DataFrame) -> pd.DataFrame:
    """The original model per layer: the control run at step 0 (indexed by layer)."""
    original = traj[(traj["run"] == "control") & (traj["step"] == 0)]
    if original.empty:
        raise ValueError("The trajectories hold no control run at step 0 (the original model).")
    return original.set_index("layer")


def featured_layers(traj: pd.DataFrame, writer: dict, n: int = 6) -> list[int]:
    """Layers worth a panel: the writer's and the next, the ablated run's largest ratio at
    the last step, the last two layers, and evenly spaced others up to ``n``."""
    layers = sorted(traj["layer"].unique())
    ablated = traj[traj["run"] == "ablated"]
    last = ablated[ablated["step"] == ablated["step"].max()]
    top = int(last.loc[last["ratio"].idxmax(), "layer"])
    w = int(writer["layer"])
    chosen = [w, w + 1, top, layers[-2] if len(layers) > 1 else layers[-1], layers[-1]]
    chosen = [c for c in dict.fromkeys(chosen) if c in layers]
    for layer in np.linspace(layers[0], layers[-1], n).round().astype(int):
        if len(chosen) >= n:
            break
        if int(layer) not in chosen:
            chosen.append(int(layer))
    return sorted(chosen[:n])


@dataclass
class RegrowthFits:
    """:func:`fit_regrowth`'s table and the fit objects behind it (for curves and bands)."""

    table: pd.DataFrame
    results: dict = field(default_factory=dict)

    def result(self, run: str, layer: int, hypothesis: str) -> FitResult:
        """The fit of one (run, layer, hypothesis)."""
        return self.results[(run, int(layer), hypothesis)]


def fit_regrowth(
    activations: pd.DataFrame,
    *,
    runs: Sequence[str] = ("ablated", "control"),
    layers: Sequence[int] | None = None,
    hypotheses: Sequence[str] = HYPOTHESES,
    procedure: str = "ours",
    n_bootstrap: int = 0,
    bootstrap_layers: Sequence[int] = (),
    seed: int = 0,
    suite: str = "regrowth",
) -> RegrowthFits:
    """Fit each (run, layer) ratio trajectory with chapter 4's hypotheses and procedure.

    Parameters
    ----------
    activations : pandas.DataFrame
        ``regrowth_activations.parquet``.
    runs : sequence of str
        The runs to fit.
    layers : sequence of int, optional
        The layers (default: all).
    hypotheses : sequence of str
        Default :data:`HYPOTHESES`.
    procedure : {"ours", "paper"}
        Chapter 4's procedure (``"ours"``: bounds, multi-start, relative weights, the window
        from the early minimum).
    n_bootstrap : int
        Bootstrap replicates over the windows, for Eq. 9 on ``bootstrap_layers``.
    bootstrap_layers : sequence of int
        Layers that get the bootstrap.
    seed : int
        Bootstrap seed (combined with run and layer, as chapter 4 does).
    suite : str
        The ``suite`` column (the data folder's name).

    Returns
    -------
    RegrowthFits
        ``table``: one row per (run, layer, hypothesis) in ``fits.parquet``'s format
        (:func:`massive_activations.fitting.fit_all.fit_row`; ``model`` is the base model)
        plus ``run``; ``results``: the :class:`~massive_activations.fitting.procedures.FitResult` objects.
    """
    table = _as_table(activations)
    model = str(activations["model"].iloc[0])
    n_layers = int(activations["layer"].max())
    chosen = sorted(activations["layer"].unique()) if layers is None else list(layers)
    rows, results = [], {}
    for run in runs:
        if run not in set(table["model"]):
            raise ValueError(f"No run {run!r} in the table; it holds {sorted(set(table.model))}.")
        for layer in chosen:
            seqs = layer_sequences(table, run, int(layer))
            fits = fit_layer(
                seqs,
                hypotheses=tuple(hypotheses),
                procedures=(procedure,),
                profile=("eq9",),
                n_bootstrap=n_bootstrap if layer in set(bootstrap_layers) else 0,
                bootstrap=("eq9",),
                seed=seed,
            )
            for fit in fits:
                results[(run, int(layer), fit.hypothesis)] = fit
                row = fit_row(
                    fit,
                    suite=suite,
                    model=model,
                    run=run,
                    layer=int(layer),
                    n_layers=n_layers,
                    relative_depth=int(layer) / n_layers,
                    quantity="ratio",
                )
                rows.append(row)
    out = pd.DataFrame(rows)
    for column in [c for c in out.columns if c.endswith("_identified")]:
        out[column] = out[column].astype("boolean")
    return RegrowthFits(out, results)


def best_hypotheses(fits: pd.DataFrame, margin: float = AIC_MARGIN) -> pd.DataFrame:
    """Per (run, layer): the hypothesis with the lowest AIC among the fits that succeeded.

    Returns
    -------
    pandas.DataFrame
        ``run, layer, best, aic_eq9, aic_step`` (the better step response's AIC),
        ``delta_aic`` (``aic_step - aic_eq9``: positive when Eq. 9 is better) and
        ``verdict``: ``"eq9"`` when Eq. 9's AIC is lower by more than ``margin``,
        ``"step response"`` when a step response's is, ``"indistinguishable"`` otherwise,
        ``"no fit"`` when neither side converged.
    """
    ok = fits[fits["status"].isin(["ok", "at_bound"]) & np.isfinite(fits["aic"])]
    out = []
    for run, layer in (
        fits[["run", "layer"]]
        .drop_duplicates()
        .sort_values(["run", "layer"])
        .itertuples(index=False)
    ):
        good = ok[(ok["run"] == run) & (ok["layer"] == layer)]
        eq9 = good.loc[good["hypothesis"] == "eq9", "aic"]
        steps = good.loc[good["hypothesis"].str.startswith("step"), "aic"]
        a9 = float(eq9.min()) if len(eq9) else np.nan
        a_step = float(steps.min()) if len(steps) else np.nan
        best = str(good.loc[good["aic"].idxmin(), "hypothesis"]) if len(good) else "none"
        delta = a_step - a9
        if np.isnan(a9) and np.isnan(a_step):
            verdict = "no fit"
        elif np.isnan(a_step) or delta > margin:
            verdict = "eq9" if not np.isnan(a9) else "step response"
        elif np.isnan(a9) or delta < -margin:
            verdict = "step response"
        else:
            verdict = "indistinguishable"
        out.append(
            {
                "run": run,
                "layer": int(layer),
                "best": best,
                "aic_eq9": a9,
                "aic_step": a_step,
                "delta_aic": delta,
                "verdict": verdict,
            }
        )
    return pd.DataFrame(out)


def explorer_tables(
    activations: pd.DataFrame, fits: pd.DataFrame, *, spread: str = "range95"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(points, curves)`` of every run and layer for
    :func:`~massive_activations.interactive.trajectory_explorer`, the run in the ``model``
    column.

    Parameters
    ----------
    activations : pandas.DataFrame
        ``regrowth_activations.parquet``.
    fits : pandas.DataFrame
        :func:`fit_regrowth`'s table (``regrowth_fits.parquet``).
    spread : str
        The error bars (:data:`massive_activations.fitting.bands.SPREADS`).
    """
    points = trajectory_points(_as_table(activations), spread=spread)
    curves = fit_curves(fits.drop(columns="model").rename(columns={"run": "model"}))
    return points, curves


def suite_curves(suite: str, data_dir: Path | str = "data"):
    """The mini suite's trajectories for the comparison, read only, never trained.

    Returns
    -------
    (pandas.DataFrame or None, str or None, str)
        The trajectories (:func:`~massive_activations.measurement.trajectories.trajectories`
        of :func:`~massive_activations.datasets.activations.suite_activations`, the paper's
        raw variant), the suite's deepest model, and an empty note; or ``(None, None,
        why)`` when the suite's data folder is incomplete or unreadable (e.g. while it is
        being regenerated).
    """
    folder = Path(data_dir) / suite
    missing = [f for f in SUITE_FILES if not (folder / f).is_file()]
    if missing:
        return None, None, f"{folder} lacks {missing} (build it with `make data`)."
    try:
        table = suite_activations(suite, data_dir, reuse=True)
    except (FileNotFoundError, ValueError, KeyError, OSError) as error:
        return None, None, f"{folder} could not be read ({error})."
    model = str(table.groupby("model")["layer"].max().idxmax())
    return trajectories(table), model, ""
