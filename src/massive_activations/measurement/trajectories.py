"""Per-layer trajectories of the top-k / median ratio over training (paper Eq. 8, Table 2).

The activation table holds one row per (suite, model, dtype, step, layer, sequence) with the
sequence's ``top1``, ``top2``, ``top3`` and ``median`` of ``|h_l|`` (see
:mod:`massive_activations.measurement.store`).  Over the ``n`` sequences of a (model, step, layer) this
module computes:

* ``ratio``: the ratio of means, ``mean(top1) / mean(median)``, as the paper writes Eq. 8.
  This is the quantity fitted by default;
* ``ratio_mean``: the mean of per-sequence ratios, ``mean(top1 / median)``, the other reading
  of Eq. 8 (the book's page "Reading the paper");
* ``ratio_top2``, ``ratio_top3``: ratios of means for the second and third largest values
  (paper Fig. 4);
* ``cv_pct``: the across-sequence coefficient of variation of the per-sequence ratio
  ``top1 / median`` in percent, ``100 * sd / mean`` with the sample standard deviation
  (``ddof=1``);
* ``sem_pct = cv_pct / sqrt(n)`` and ``ci95_pct = t(0.975, n - 1) * sem_pct``: the standard
  error of the mean and the half-width of the t-based 95 % confidence interval, in percent of
  the mean, as in paper Table 2 (for ``n = 10``: ``SEM = CV / 3.162``, ``CI = 2.262 * SEM``).

Rows whose ``status`` is not ``"ok"`` (an overflowing or non-finite layer output) are left out
and counted in ``n_excluded``.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from massive_activations import reference

__all__ = [
    "PAPER_TABLE2",
    "QUANTITIES",
    "LayerSequences",
    "layer_sequences",
    "layer_summary",
    "paper_model_key",
    "peak_table",
    "position0_share",
    "sequence_ratio",
    "top1_location",
    "trajectories",
    "variability_summary",
]

#: Trajectory quantities that can be fitted: ratio of means (Eq. 8) and mean of ratios.
QUANTITIES = ("ratio", "ratio_mean")

#: Paper Table 2: across-sequence CV %, SEM % and 95 % CI half-width % per Pythia model.
PAPER_TABLE2 = reference.table("table2_variability").rename(index=str.lower).rename_axis("size")

_NEEDED = ("model", "step", "layer", "sequence", "top1", "top2", "top3", "median")
_SIZE = re.compile(r"(?:^|[-_/])(?P<size>[0-9]+(?:\.[0-9]+)?[mb])(?:$|[-_])", re.IGNORECASE)


def paper_model_key(model: str) -> str | None:
    """The Pythia size the paper reports a model under (``"pythia-1.4b-deduped"`` -> ``"1.4b"``).

    Returns ``None`` when the name holds no size token such as ``70m`` or ``1.4b``.
    """
    match = _SIZE.search(str(model))
    return match["size"].lower() if match else None


def sequence_ratio(top, median, quantity: str = "ratio", axis: int = -1) -> np.ndarray:
    """Combine per-sequence ``top`` and ``median`` values into one trajectory value.

    Parameters
    ----------
    top, median : array_like
        Per-sequence statistics; sequences run along ``axis``.  Missing sequences are NaN
        and are skipped.
    quantity : {"ratio", "ratio_mean"}
        ``"ratio"``: ``mean(top) / mean(median)`` (ratio of means, paper Eq. 8);
        ``"ratio_mean"``: ``mean(top / median)`` (mean of per-sequence ratios).
    axis : int
        The sequence axis.

    Returns
    -------
    numpy.ndarray
        The input with ``axis`` reduced; NaN where no sequence is available.
    """
    top = np.asarray(top, dtype=float)
    median = np.asarray(median, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        if quantity == "ratio":
            both = np.isfinite(top) & np.isfinite(median)
            num = np.where(both, top, 0.0).sum(axis=axis)
            den = np.where(both, median, 0.0).sum(axis=axis)
            return np.where(both.any(axis=axis), num / den, np.nan)
        if quantity == "ratio_mean":
            r = top / median
            ok = np.isfinite(r)
            n = ok.sum(axis=axis)
            return np.where(n > 0, np.where(ok, r, 0.0).sum(axis=axis) / np.maximum(n, 1), np.nan)
    raise ValueError(f"quantity must be one of {QUANTITIES}, got {quantity!r}.")


def _select(table: pd.DataFrame, dtype: str | None) -> tuple[pd.DataFrame, pd.Series]:
    """Check columns, pick one dtype, and split off the rows not usable (status != ok)."""
    missing = [c for c in _NEEDED if c not in table.columns]
    if missing:
        raise ValueError(
            f"The activation table lacks columns {missing}; it needs {list(_NEEDED)} "
            "(read it with massive_activations.measurement.store.read_table)."
        )
    if "dtype" in table.columns:
        dtypes = sorted(table["dtype"].astype(str).unique())
        if dtype is None and len(dtypes) > 1:
            raise ValueError(
                f"The activation table holds several dtypes {dtypes}: pass dtype=... to choose "
                "the one whose trajectories to compute."
            )
        if dtype is not None:
            if dtype not in dtypes:
                raise ValueError(f"dtype={dtype!r} is not in the table (it holds {dtypes}).")
            table = table[table["dtype"].astype(str) == dtype]
    elif dtype is not None:
        raise ValueError(f"dtype={dtype!r} given but the table has no 'dtype' column.")
    if "variant" in table.columns and table["variant"].nunique() > 1:
        raise ValueError(
            f"The activation table holds several evaluation variants "
            f"{sorted(table['variant'].unique())}: keep one, e.g. "
            "table[table.variant == 'raw'] or suite_activations(..., variant='raw')."
        )
    ok = pd.Series(True, index=table.index)
    if "status" in table.columns:
        ok = table["status"].astype(str) == "ok"
    values = table[["top1", "top2", "top3", "median"]].to_numpy(float)
    ok &= np.isfinite(values).all(axis=1) & (table["median"].to_numpy(float) > 0)
    return table, ok


def trajectories(table: pd.DataFrame, *, dtype: str | None = None) -> pd.DataFrame:
    """Per (model, step, layer) trajectory values from the activation table.

    Parameters
    ----------
    table : pandas.DataFrame
        The activation table (columns ``model, step, layer, sequence, top1, top2, top3,
        median`` and optionally ``suite``, ``dtype``, ``status``).
    dtype : str, optional
        The dtype to use when the table holds several.

    Returns
    -------
    pandas.DataFrame
        One row per (model, step, layer), sorted, with columns ``suite`` (when present),
        ``model, step, layer, n_sequences, n_excluded``, the sequence means ``top1, top2, top3,
        median``, ``ratio`` (ratio of means, Eq. 8), ``ratio_mean`` (mean of ratios),
        ``ratio_top2, ratio_top3`` (ratios of means), and ``cv_pct, sem_pct, ci95_pct``
        (Table 2 definitions, of the per-sequence top-1 / median ratio; NaN when fewer than
        two sequences).
    """
    table, ok = _select(table, dtype)
    keys = [k for k in ("suite", "model", "step", "layer") if k in table.columns]
    df = table[[*keys, "top1", "top2", "top3", "median"]].copy()
    df["_ok"] = ok.to_numpy()
    for c in ("top1", "top2", "top3", "median"):
        df[c] = df[c].where(df["_ok"])
    df["_r"] = df["top1"] / df["median"]
    g = df.groupby(keys, sort=True)
    out = g[["top1", "top2", "top3", "median"]].mean()
    n = g["_ok"].sum().astype(int)
    out.insert(0, "n_excluded", g["_ok"].size() - n)
    out.insert(0, "n_sequences", n)
    out["ratio"] = out["top1"] / out["median"]
    out["ratio_mean"] = g["_r"].mean()
    out["ratio_top2"] = out["top2"] / out["median"]
    out["ratio_top3"] = out["top3"] / out["median"]
    sd = g["_r"].std(ddof=1)
    cv = 100.0 * sd / out["ratio_mean"]
    out["cv_pct"] = cv.where(n >= 2)
    out["sem_pct"] = out["cv_pct"] / np.sqrt(n.where(n >= 2))
    tq = pd.Series(stats.t.ppf(0.975, np.maximum(n - 1, 1)), index=n.index).where(n >= 2)
    out["ci95_pct"] = tq * out["sem_pct"]
    return out.reset_index()


def variability_summary(traj: pd.DataFrame, *, min_step: int = 0) -> pd.DataFrame:
    """Paper Table 2 on our data: per model, the mean over (step, layer) of CV, SEM and CI.

    Parameters
    ----------
    traj : pandas.DataFrame
        Output of :func:`trajectories`.
    min_step : int
        Only rows with ``step >= min_step`` count (the paper does not say whether step 0,
        where massive activations are absent, is included; the default includes it).

    Returns
    -------
    pandas.DataFrame
        Indexed by model: ``n_rows`` (step-layer pairs with >= 2 sequences),
        ``n_sequences`` (median), ``cv_pct, sem_pct, ci95_pct`` (means), and the paper's
        values ``paper_cv_pct, paper_sem_pct, paper_ci95_pct`` (NaN for models the paper
        does not report).
    """
    rows = traj[(traj["step"] >= min_step) & traj["cv_pct"].notna()]
    g = rows.groupby("model", sort=True)
    out = pd.DataFrame(
        {
            "n_rows": g.size(),
            "n_sequences": g["n_sequences"].median(),
            "cv_pct": g["cv_pct"].mean(),
            "sem_pct": g["sem_pct"].mean(),
            "ci95_pct": g["ci95_pct"].mean(),
        }
    )
    paper = PAPER_TABLE2.reindex([paper_model_key(m) for m in out.index])
    for c in ("cv_pct", "sem_pct", "ci95_pct"):
        out[f"paper_{c}"] = paper[c].to_numpy()
    return out


@dataclass(frozen=True)
class LayerSequences:
    """The per-sequence statistics of one (model, layer) over training.

    Attributes
    ----------
    model : str
    layer : int
    steps : numpy.ndarray
        Sorted training steps, shape ``(n_steps,)``.
    sequences : numpy.ndarray
        Sequence ids, shape ``(n_seq,)``.
    top1, top2, top3, median : numpy.ndarray
        Shape ``(n_steps, n_seq)``; NaN where a (step, sequence) is missing or excluded.
    """

    model: str
    layer: int
    steps: np.ndarray
    sequences: np.ndarray
    top1: np.ndarray
    top2: np.ndarray
    top3: np.ndarray
    median: np.ndarray

    def series(self, quantity: str = "ratio", resample=None, top: str = "top1") -> np.ndarray:
        """The trajectory, optionally on resampled sequences.

        Parameters
        ----------
        quantity : {"ratio", "ratio_mean"}
            See :func:`sequence_ratio`.
        resample : array_like of int, optional
            Sequence column indices, shape ``(n_seq,)`` or ``(B, n_seq)`` (a bootstrap
            draw with replacement).
        top : {"top1", "top2", "top3"}

        Returns
        -------
        numpy.ndarray
            Shape ``(n_steps,)``, or ``(B, n_steps)`` for a 2-d ``resample``.
        """
        values = getattr(self, top)
        if resample is None:
            return sequence_ratio(values, self.median, quantity)
        idx = np.asarray(resample, dtype=int)
        return sequence_ratio(values[:, idx], self.median[:, idx], quantity).T

    def sem(self, quantity: str = "ratio") -> np.ndarray:
        """Standard error of the trajectory value per step, from the sequences.

        For ``"ratio_mean"`` the standard error of the mean of per-sequence ratios; for
        ``"ratio"`` the delta-method standard error of a ratio of means,
        ``sd(top1 - R * median) / (sqrt(n) * mean(median))``.  NaN with < 2 sequences.
        """
        if quantity not in QUANTITIES:
            raise ValueError(f"quantity must be one of {QUANTITIES}, got {quantity!r}.")
        n = np.sum(np.isfinite(self.top1) & np.isfinite(self.median), axis=1)
        # a step with < 2 sequences is NaN by design: numpy's "degrees of freedom" warning
        # about it is not for the reader
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if quantity == "ratio_mean":
                r = self.top1 / self.median
                sd = np.nanstd(r, axis=1, ddof=1)
                return np.where(n >= 2, sd / np.sqrt(n), np.nan)
            R = self.series("ratio")
            d = self.top1 - R[:, None] * self.median
            sd = np.nanstd(d, axis=1, ddof=1)
            return np.where(n >= 2, sd / (np.sqrt(n) * np.nanmean(self.median, axis=1)), np.nan)


def layer_sequences(
    table: pd.DataFrame, model: str, layer: int, *, dtype: str | None = None
) -> LayerSequences:
    """Collect one (model, layer)'s per-sequence statistics as step x sequence arrays.

    Raises
    ------
    ValueError
        If the table holds no rows for ``(model, layer)``; the message lists what it holds.
    """
    table, ok = _select(table, dtype)
    sel = (table["model"].astype(str) == str(model)) & (table["layer"] == int(layer))
    rows = table[sel]
    if rows.empty:
        models = sorted(table["model"].astype(str).unique())
        layers = sorted(table.loc[table["model"].astype(str) == str(model), "layer"].unique())
        raise ValueError(
            f"No rows for model={model!r}, layer={layer!r}. The table holds models {models}"
            + (f"; {model!r} has layers {[int(v) for v in layers]}." if layers else ".")
        )
    dup = rows.duplicated(["step", "sequence"])
    if dup.any():
        first = rows[dup].iloc[0]
        raise ValueError(
            f"model={model!r}, layer={layer!r} has {int(dup.sum())} duplicate (step, sequence) "
            f"rows, e.g. step={int(first['step'])}, sequence={int(first['sequence'])}: pass "
            "dtype=... or de-duplicate the table (store.merge_tables keeps one per unit)."
        )
    steps = np.sort(rows["step"].unique())
    seqs = np.sort(rows["sequence"].unique())
    i = np.searchsorted(steps, rows["step"].to_numpy())
    j = np.searchsorted(seqs, rows["sequence"].to_numpy())
    good = ok[sel].to_numpy()
    arrays = {}
    for c in ("top1", "top2", "top3", "median"):
        a = np.full((steps.size, seqs.size), np.nan)
        a[i[good], j[good]] = rows[c].to_numpy(float)[good]
        arrays[c] = a
    return LayerSequences(str(model), int(layer), steps.astype(np.int64), seqs, **arrays)


def position0_share(table: pd.DataFrame, model: str) -> pd.DataFrame:
    """Share of sequences whose top-1 sits at position 0, as a (layer x step) table."""
    rows = table[table["model"] == model]
    if rows.empty:
        raise ValueError(
            f"No rows for model {model!r}; the table has {sorted(table.model.unique())}."
        )
    return rows.assign(at0=rows["top1_position"] == 0).pivot_table(
        index="layer", columns="step", values="at0", aggfunc="mean"
    )


def top1_location(table: pd.DataFrame, model: str, step: int) -> pd.DataFrame:
    """Where the top-1 sits, per layer, at one checkpoint of one model.

    Returns
    -------
    pandas.DataFrame
        Indexed by layer: ``top1_channel`` (the channel holding the top-1 in most sequences,
        the lowest on ties), ``channel_share`` (the share of sequences where it does),
        ``position0_share`` and ``mean_top1``.
    """
    rows = table[(table["model"] == model) & (table["step"] == step)]
    if rows.empty:
        raise ValueError(f"No rows for model {model!r} at step {step}.")

    def modal(s: pd.Series) -> int:
        return int(s.mode().iloc[0])

    return rows.groupby("layer").agg(
        top1_channel=("top1_channel", modal),
        channel_share=("top1_channel", lambda s: float((s == modal(s)).mean())),
        position0_share=("top1_position", lambda s: float((s == 0).mean())),
        mean_top1=("top1", "mean"),
    )


def _position_counts(positions: pd.Series) -> str:
    counts = positions.astype(int).value_counts().sort_index()
    return ", ".join(f"{p}: {n}" for p, n in counts.items())


def layer_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per-layer summary of a one-checkpoint measurement (e.g. SmolLM2-135M).

    Returns ``top1`` and ``median`` (means over sequences), ``ratio`` (ratio of means),
    ``ratio_min``/``ratio_max`` (over sequences), ``position0`` (share of sequences whose
    top-1 sits at position 0), ``positions`` (each top-1 position with its count of
    sequences, e.g. ``"0: 9, 1: 1"``) and ``channel`` (the most common top-1 channel), per
    layer.
    """
    t = table.assign(_r=table["top1"] / table["median"])
    out = t.groupby("layer").agg(
        top1=("top1", "mean"),
        median=("median", "mean"),
        ratio_min=("_r", "min"),
        ratio_max=("_r", "max"),
        position0=("top1_position", lambda s: float((s == 0).mean())),
        positions=("top1_position", _position_counts),
        channel=("top1_channel", lambda s: int(s.mode().iloc[0])),
    )
    out.insert(2, "ratio", out["top1"] / out["median"])
    return out


def peak_table(traj: pd.DataFrame, quantity: str = "ratio") -> pd.DataFrame:
    """Per (model, layer): the largest value of a trajectory and when it happened.

    Returns ``model, layer, n_layers, relative_depth`` (``layer / n_layers``), ``peak``
    (largest value over the checkpoints), ``peak_step`` (first checkpoint reaching it),
    ``final`` (value at the model's last checkpoint), ``last_step`` and ``peak_inside``
    (the peak is strictly before the last checkpoint): the data behind paper Fig. 5.
    """
    if quantity not in traj.columns:
        raise ValueError(f"The trajectories lack column {quantity!r}; have {list(traj.columns)}.")
    t = traj.sort_values(["model", "layer", "step"])
    g = t.groupby(["model", "layer"], sort=True)
    idx = g[quantity].idxmax()
    out = t.loc[idx, ["model", "layer", "step", quantity]].rename(
        columns={"step": "peak_step", quantity: "peak"}
    )
    last = g.tail(1).set_index(["model", "layer"])
    out = out.set_index(["model", "layer"])
    out["final"] = last[quantity]
    out["last_step"] = last["step"]
    out = out.reset_index()
    out.insert(2, "n_layers", out.groupby("model")["layer"].transform("max"))
    out.insert(3, "relative_depth", out["layer"] / out["n_layers"])
    out["peak_inside"] = out["peak_step"] < out["last_step"]
    return out
