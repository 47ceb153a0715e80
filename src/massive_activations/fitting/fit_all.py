"""Fit every layer of a suite: the ``fits.parquet`` table and paper Tables 1 and 5.

:func:`fit_all` fits each (model, layer) trajectory of the activation table with every
requested hypothesis and procedure (:mod:`~massive_activations.fitting.procedures`), adds the
uncertainty of :mod:`~massive_activations.fitting.uncertainty` and returns one row per
(model, layer, hypothesis, procedure), failed fits included (``status``, ``message``).
:func:`~massive_activations.fitting.suite_fits.suite_fits` stores it atomically as
``<root>/<suite>/fits.parquet``, with a record of what made it.

Randomness is only in the bootstrap; its seed is derived from ``seed`` and the
(model, layer), so a row does not depend on which other layers are fitted or in what order
or how many processes, and all hypotheses and procedures of a layer see the same
resampled sequences.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from massive_activations import provenance, reference, registry
from massive_activations.fitting.hypotheses import HYPOTHESES
from massive_activations.fitting.procedures import FitResult, fit_series, get_procedure
from massive_activations.fitting.regimes import model_free_regime
from massive_activations.fitting.uncertainty import assess, is_identified, t_peak_identified
from massive_activations.measurement.trajectories import (
    LayerSequences,
    layer_sequences,
    paper_model_key,
)

__all__ = [
    "CONVERGED",
    "PAPER_TABLE1",
    "PAPER_TABLE5",
    "PARAM_NAMES",
    "compare_procedures",
    "fit_all",
    "fit_layer",
    "fit_row",
    "recovery_table",
    "regime_table",
    "table1",
    "table5",
    "window_effect",
]

#: Every parameter name of every hypothesis (the per-parameter columns of ``fits.parquet``).
PARAM_NAMES = tuple(dict.fromkeys(n for h in HYPOTHESES.values() for n in h.names))

#: Paper Table 1: mean over layers of the best R^2 of Eq. 9, per Pythia model (lower-case
#: sizes, as :func:`~massive_activations.measurement.trajectories.paper_model_key` spells them).
PAPER_TABLE1 = (
    reference.table("table1_mean_r2")["value"]
    .rename(index=str.lower)
    .rename_axis("size")
    .rename("paper_r2")
)
#: Paper Table 5: mean R^2 per hypothesis (rows) and Pythia model (columns, size order).
PAPER_TABLE5 = (
    reference.table("table5_mean_r2_by_hypothesis")
    .rename(columns=str.lower)
    .rename_axis(index="hypothesis", columns="size")
)

_PER_PARAM = ("stderr", "cov_lo", "cov_hi", "prof_lo", "prof_hi", "boot_lo", "boot_hi")


def _layer_seed(seed: int, model: str, layer: int) -> int:
    key = zlib.crc32(f"{model}|{int(layer)}".encode())
    return int(np.random.SeedSequence([int(seed), key]).generate_state(1)[0])


def fit_layer(
    seqs: LayerSequences,
    *,
    hypotheses: Sequence[str] = tuple(HYPOTHESES),
    procedures: Sequence[str] = ("paper", "ours"),
    quantity: str = "ratio",
    window: str | int | None = None,
    profile: Sequence[str] = ("eq9",),
    n_bootstrap: int = 200,
    bootstrap: Sequence[str] = ("eq9", "eq14"),
    seed: int = 0,
    level: float = 0.95,
    profile_all: bool = False,
) -> list[FitResult]:
    """Fit one (model, layer) with every hypothesis and procedure, with uncertainty.

    Parameters
    ----------
    seqs : LayerSequences
    hypotheses, procedures : sequence of str
    quantity : {"ratio", "ratio_mean"}
        The trajectory fitted (ratio of means, paper Eq. 8, by default).
    window : {"full", "from_min"} or int, optional
        Overrides the ``"ours"`` procedure's fit window (the paper's is always ``"full"``).
    profile : sequence of str
        Hypotheses that get profile intervals (of their default parameters: ``K, lam`` for
        Eq. 9); ``()`` for none.  Profiles cost ~0.1-3 s per fit, the bulk of the time, so
        Eq. 9 / Eq. 14 fits get them only where they can change what is identified: on a
        confirmed early peak (see :func:`~massive_activations.fitting.uncertainty.assess`).
    profile_all : bool
        Profile every converged fit of ``profile``'s hypotheses all the same.
    n_bootstrap : int
        Bootstrap replicates (0: none).
    bootstrap : sequence of str
        Hypotheses that get the bootstrap.  Every fit gets the covariance.
    seed : int
        Base seed (combined with model and layer).
    level : float
        Confidence level of every interval.
    """
    y = seqs.series(quantity)
    sem = seqs.sem(quantity)
    layer_seed = _layer_seed(seed, seqs.model, seqs.layer)
    free = model_free_regime(seqs.steps, y)
    out = []
    for proc in procedures:
        p = get_procedure(proc, window if proc != "paper" else None)
        for hyp in hypotheses:
            fit = fit_series(seqs.steps, y, hypothesis=hyp, procedure=p, sem=sem)
            assess(
                fit,
                seqs,
                quantity=quantity,
                profile=hyp in profile,
                n_bootstrap=n_bootstrap if hyp in bootstrap else 0,
                seed=layer_seed,
                level=level,
                model_free=free,
                profile_unconfirmed=profile_all,
            )
            fit.model_free = free  # also on failed fits, which assess leaves unchanged
            out.append(fit)
    return out


def fit_row(fit: FitResult, **keys) -> dict:
    """One ``fits.parquet`` row of a fit (``keys``: suite, model, layer, ... put first)."""
    row = dict(keys)
    row.update(
        hypothesis=fit.hypothesis,
        procedure=fit.procedure,
        status=fit.status,
        message=fit.message,
        n_points=fit.n_points,
        window_start=fit.window_start,
        t_max=fit.t_max,
    )
    cov = fit.covariance_ci() if fit.params else {}
    boot = fit.bootstrap
    for n in PARAM_NAMES:
        here = n in fit.names and bool(fit.params)
        row[n] = fit.params[n] if here else np.nan
        row[f"{n}_lo"], row[f"{n}_hi"] = fit.intervals.get(n, (np.nan, np.nan))
        row[f"{n}_stderr"] = fit.stderr.get(n, np.nan) if here else np.nan
        row[f"{n}_cov_lo"], row[f"{n}_cov_hi"] = cov.get(n, (np.nan, np.nan))
        lo, hi, _ = fit.profile.get(n, (np.nan, np.nan, ""))
        row[f"{n}_prof_lo"], row[f"{n}_prof_hi"] = lo, hi
        if here and boot is not None and boot.n_ok >= 0.5 * boot.n:
            row[f"{n}_boot_lo"], row[f"{n}_boot_hi"] = boot.ci(fit.names.index(n))
        else:
            row[f"{n}_boot_lo"] = row[f"{n}_boot_hi"] = np.nan
        flags = fit.flags.get(n) if here else None
        row[f"{n}_flags"] = ";".join(flags) if flags else ""
        row[f"{n}_identified"] = is_identified(flags) if (here and n in fit.flags) else pd.NA
    free = fit.model_free
    row.update(
        t_peak=fit.t_peak,
        t_peak_lo=fit.intervals.get("t_peak", (np.nan, np.nan))[0],
        t_peak_hi=fit.intervals.get("t_peak", (np.nan, np.nan))[1],
        t_peak_identified=pd.NA if (tpi := t_peak_identified(fit)) is None else tpi,
        t_peak_delta_lo=fit.t_peak_delta[0],
        t_peak_delta_hi=fit.t_peak_delta[1],
        t_peak_boot_lo=fit.t_peak_boot[0],
        t_peak_boot_hi=fit.t_peak_boot[1],
        regime=fit.regime,
        mf_regime=free.get("regime", "undetermined"),
        drop_z=free.get("drop_z", np.nan),
        mf_peak_lo=free.get("peak_lo", np.nan),
        mf_peak_hi=free.get("peak_hi", np.nan),
        slope_z=free.get("slope_z", np.nan),
        r2=fit.r2,
        r2_all=fit.r2_all,
        chisqr=fit.chisqr,
        redchi=fit.redchi,
        aic=fit.aic,
        bic=fit.bic,
        nfev=fit.nfev,
        n_boot=boot.n if boot is not None else 0,
        n_boot_ok=boot.n_ok if boot is not None else 0,
    )
    corr_max, pair = np.nan, ""
    if fit.correl is not None:
        c = np.abs(np.nan_to_num(fit.correl)) - np.eye(len(fit.names))
        i, j = np.unravel_index(np.argmax(c), c.shape)
        corr_max, pair = float(c[i, j]), f"{fit.names[i]}~{fit.names[j]}"
    row.update(corr_max=corr_max, corr_pair=pair, param_names=list(fit.names))
    row["correlation"] = (
        [] if fit.correl is None else np.asarray(fit.correl, float).ravel().tolist()
    )
    row["fit_steps"] = [] if fit.steps is None else np.asarray(fit.steps, float).tolist()
    row["residuals"] = [] if fit.residuals is None else np.asarray(fit.residuals, float).tolist()
    return row


def _part_path(folder, unit, key: str) -> Path | None:
    """Where :func:`fit_all` saves one layer's rows: named by a digest of all its inputs."""
    if folder is None:
        return None
    seqs, keys, kwargs = unit
    digest = hashlib.sha256(pickle.dumps((seqs, keys, kwargs), protocol=5) + key.encode())
    name = re.sub(r"[^A-Za-z0-9._-]", "_", str(keys["model"]))
    return Path(folder) / f"{name}-L{keys['layer']}-{digest.hexdigest()[:16]}.pkl"


def _fit_unit(args) -> list[dict]:
    seqs, keys, kwargs = args
    return [fit_row(f, **keys) for f in fit_layer(seqs, **kwargs)]


def fit_all(
    table: pd.DataFrame,
    *,
    dtype: str | None = None,
    models: Sequence[str] | None = None,
    hypotheses: Sequence[str] = tuple(HYPOTHESES),
    procedures: Sequence[str] = ("paper", "ours"),
    quantity: str = "ratio",
    window: str | int | None = None,
    profile: Sequence[str] = ("eq9",),
    n_bootstrap: int = 200,
    bootstrap: Sequence[str] = ("eq9", "eq14"),
    seed: int = 0,
    n_jobs: int = 1,
    progress: bool = True,
    profile_all: bool = False,
    checkpoints: str | Path | None = None,
    checkpoint_key: str = "",
) -> pd.DataFrame:
    """Fit every (model, layer) of an activation table.

    Parameters
    ----------
    table : pandas.DataFrame
        The activation table (:func:`massive_activations.measurement.store.read_table`).
    dtype : str, optional
        Which dtype, when the table holds several.
    models : sequence of str, optional
        Restrict to these models.
    hypotheses, procedures, quantity, window, profile, n_bootstrap, bootstrap, seed, profile_all
        See :func:`fit_layer`.
    n_jobs : int
        Worker processes (1: in this process).  Results do not depend on it.
    progress : bool
        Show a tqdm progress bar over layers.
    checkpoints : path, optional
        A folder where each layer's fitted rows are saved as soon as they are done
        (atomically), and read instead of fitted again: a run killed midway resumes where it
        stopped.  A layer's file is named after a digest of its data, its arguments and
        ``checkpoint_key``, so a saved layer is read only for the very same fit.
    checkpoint_key : str
        Whatever else shapes the numbers (e.g. :func:`~massive_activations.fitting.suite_fits.fit_settings`
        as JSON: the procedures' constants, the code's version): part of each layer's digest.

    Returns
    -------
    pandas.DataFrame
        One row per (model, layer, hypothesis, procedure), sorted, with ``suite`` (when the
        table has it), ``model, layer, n_layers, relative_depth`` (``layer / n_layers``,
        layers counted from 1), ``quantity``, the fit's status and message, per parameter
        its value, ``_stderr``, covariance (``_cov_lo/_cov_hi``), profile
        (``_prof_lo/_prof_hi``) and bootstrap (``_boot_lo/_boot_hi``) 95 % bounds,
        ``_flags`` and ``_identified``, then ``t_peak`` with its delta and bootstrap
        intervals, ``regime``, ``r2, r2_all, chisqr, redchi, aic, bic``, ``n_points``,
        bootstrap counts, the strongest correlation, and the fitted steps and residuals.
    """
    if models is not None:
        missing = sorted(set(models) - set(table["model"].astype(str)))
        if missing:
            raise ValueError(f"Models {missing} are not in the table.")
        table = table[table["model"].astype(str).isin(list(models))]
    pairs = table[["model", "layer"]].drop_duplicates().sort_values(["model", "layer"])
    n_layers = table.groupby("model")["layer"].max()
    suite = str(table["suite"].iloc[0]) if "suite" in table.columns and len(table) else None
    kwargs = dict(
        hypotheses=tuple(hypotheses),
        procedures=tuple(procedures),
        quantity=quantity,
        window=window,
        profile=tuple(profile),
        n_bootstrap=n_bootstrap,
        bootstrap=tuple(bootstrap),
        seed=seed,
        profile_all=profile_all,
    )
    units = []
    for model, layer in pairs.itertuples(index=False):
        keys = {"suite": suite} if suite is not None else {}
        L = int(n_layers[model])
        keys.update(
            model=str(model),
            layer=int(layer),
            n_layers=L,
            relative_depth=int(layer) / L,
            quantity=quantity,
        )
        seqs = layer_sequences(table, model, layer, dtype=dtype)
        units.append((seqs, keys, kwargs))
    bar = tqdm(total=len(units), desc="fitting layers", unit="layer", disable=not progress)
    parts = [_part_path(checkpoints, unit, checkpoint_key) for unit in units]
    done: list[list[dict] | None] = [None] * len(units)
    for i, path in enumerate(parts):
        if path is not None and path.is_file():
            done[i] = pickle.loads(path.read_bytes())
            bar.update()
    todo = [i for i, rows in enumerate(done) if rows is None]

    def keep(i: int, rows: list[dict]) -> None:
        done[i] = rows
        if parts[i] is not None:
            data = pickle.dumps(rows, protocol=5)
            with provenance.paused():  # a transient file: not one of the data files read
                registry.atomic_write(parts[i], lambda tmp: tmp.write_bytes(data))
        bar.update()

    if n_jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=n_jobs) as pool:
            for i, rows in zip(todo, pool.map(_fit_unit, [units[i] for i in todo]), strict=True):
                keep(i, rows)
    else:
        for i in todo:
            keep(i, _fit_unit(units[i]))
    bar.close()
    rows = [row for unit_rows in done for row in unit_rows]
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    for n in (*PARAM_NAMES, "t_peak"):
        df[f"{n}_identified"] = df[f"{n}_identified"].astype("boolean")
    order = {h: i for i, h in enumerate(HYPOTHESES)}
    df["_h"] = df["hypothesis"].map(order)
    df = df.sort_values(["model", "layer", "_h", "procedure"], kind="stable")
    return df.drop(columns="_h").reset_index(drop=True)


def _paper_col(models, values: pd.Series) -> list:
    return [values.get(paper_model_key(m), np.nan) for m in models]


#: Fit statuses whose numbers are averaged (the optimiser stopped at a minimum, possibly on
#: a bound); the others are counted, never averaged.
CONVERGED = ("ok", "at_bound")


def _status_counts(status: pd.Series) -> dict:
    return {
        "n_converged": int(status.isin(CONVERGED).sum()),
        "n_not_converged": int((status == "not_converged").sum()),
        "n_failed": int((status == "failed").sum()),
    }


def table1(fits: pd.DataFrame) -> pd.DataFrame:
    """Paper Table 1 on our data: mean over layers of Eq. 9's R^2, per model and procedure.

    R^2 on every checkpoint (``r2_all``, the paper's statistic), averaged over converged fits
    only (:data:`CONVERGED`): ``r2_eq9`` of Eq. 9, ``r2_best`` of the per-layer better of
    Eq. 9 and Eq. 14 (one reading of the paper's "best R^2").  ``n_layers``, and the Eq. 9
    fits that converged, did not converge (stopped at the evaluation budget) and failed, are
    counted beside them.  ``paper_r2`` is the paper's value.
    """
    eq = fits[fits["hypothesis"].isin(["eq9", "eq14"]) & fits["status"].isin(CONVERGED)]
    best = eq.groupby(["model", "procedure", "layer"])["r2_all"].max()
    e9 = fits[fits["hypothesis"] == "eq9"]
    rows = []
    for (model, proc), g in e9.groupby(["model", "procedure"]):
        ok = g[g["status"].isin(CONVERGED)]
        rows.append(
            {
                "model": model,
                "procedure": proc,
                "n_layers": g["layer"].nunique(),
                **_status_counts(g["status"]),
                "r2_eq9": ok["r2_all"].mean(),
                "r2_best": best.loc[(model, proc)].mean() if (model, proc) in best else np.nan,
            }
        )
    out = pd.DataFrame(rows)
    out["paper_r2"] = _paper_col(out["model"], PAPER_TABLE1)
    return out


def table5(fits: pd.DataFrame) -> pd.DataFrame:
    """Paper Table 5 on our data: per model, procedure and hypothesis, mean R^2 and AIC.

    Means over converged fits only, with the fits that converged, did not converge and
    failed counted.  ``aic_best_share`` is the share of layers, among those where every
    hypothesis converged, where the hypothesis has the lowest AIC (a per-layer comparison,
    more telling than a mean AIC over layers of different scales).  ``paper_r2`` is the
    paper's mean R^2.
    """
    keys = ["model", "procedure", "hypothesis"]
    rows = []
    for key, g in fits.groupby(keys, sort=False):
        ok = g[g["status"].isin(CONVERGED)]
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "n": len(g),
                **_status_counts(g["status"]),
                "r2_mean": ok["r2"].mean(),
                "aic_mean": ok["aic"].mean(),
            }
        )
    out = pd.DataFrame(rows).set_index(keys)
    conv = fits[fits["status"].isin(CONVERGED)].dropna(subset=["aic"])
    n_hyp = fits.groupby(["model", "procedure"])["hypothesis"].nunique().rename("n_hyp")
    have = conv.groupby(["model", "procedure", "layer"])["hypothesis"].nunique()
    have = have.rename("have").reset_index().join(n_hyp, on=["model", "procedure"])
    full = have.loc[have["have"] == have["n_hyp"], ["model", "procedure", "layer"]]
    conv = conv.merge(full, on=["model", "procedure", "layer"])
    winners = conv.loc[conv.groupby(["model", "procedure", "layer"])["aic"].idxmin()]
    wins = winners.groupby(keys).size()
    per = winners.groupby(["model", "procedure"])["layer"].nunique()
    out["aic_best_share"] = [
        wins.get(k, 0) / per[k[:2]] if k[:2] in per.index else np.nan for k in out.index
    ]
    out = out.reset_index()
    out["paper_r2"] = [
        PAPER_TABLE5[paper_model_key(m)].get(h, np.nan)
        if paper_model_key(m) in PAPER_TABLE5.columns
        else np.nan
        for m, h in zip(out["model"], out["hypothesis"], strict=True)
    ]
    order = {h: i for i, h in enumerate(HYPOTHESES)}
    return out.sort_values(
        ["model", "procedure", "hypothesis"],
        key=lambda s: s.map(order) if s.name == "hypothesis" else s,
        kind="stable",
    ).reset_index(drop=True)


def compare_procedures(fits: pd.DataFrame) -> pd.DataFrame:
    """The two procedures side by side, per model and hypothesis.

    Per (model, hypothesis, procedure): mean ``r2`` (fitted window) and ``r2_all`` (every
    checkpoint), the shares of fits by status, the share whose every parameter is
    identified (:func:`~massive_activations.fitting.uncertainty.identifiability`), and the median
    reduced chi-square.
    """
    ident = fits[[f"{n}_identified" for n in PARAM_NAMES]]
    all_ident = ident.fillna(True).all(axis=1) & ident.notna().any(axis=1)
    df = fits.assign(_ident=all_ident.astype(float).where(ident.notna().any(axis=1)))
    g = df.groupby(["model", "hypothesis", "procedure"])
    out = pd.DataFrame(
        {
            "n": g.size(),
            "r2": g["r2"].mean(),
            "r2_all": g["r2_all"].mean(),
            "redchi_median": g["redchi"].median(),
            "share_identified": g["_ident"].mean(),
        }
    )
    for status in ("ok", "at_bound", "not_converged", "failed"):
        out[f"share_{status}"] = g["status"].agg(lambda s, v=status: float((s == v).mean()))
    return out.reset_index()


def regime_table(
    fits: pd.DataFrame, hypothesis: str = "eq9", procedure: str = "ours"
) -> pd.DataFrame:
    """Each layer's regime beside the paper's depth claim.

    ``paper_claim`` is our reading of the paper: ``"early_peak"`` for the first three and
    the last two layers of a model, ``"log_rise"`` for the others (the paper says "the
    first 1-3 and last 1-2 layers"; Pythia-1B: layers 1-3 and 16).
    """
    rows = fits[(fits["hypothesis"] == hypothesis) & (fits["procedure"] == procedure)]
    cols = [
        "model",
        "layer",
        "n_layers",
        "relative_depth",
        "status",
        "t_peak",
        "t_peak_boot_lo",
        "t_peak_boot_hi",
        "t_peak_delta_lo",
        "t_peak_delta_hi",
        "regime",
        *[
            c
            for c in (
                "t_peak_lo",
                "t_peak_hi",
                "mf_regime",
                "drop_z",
                "slope_z",
                "mf_peak_lo",
                "mf_peak_hi",
            )
            if c in rows
        ],
    ]
    out = rows[cols].copy()
    early = (out["layer"] <= 3) | (out["layer"] >= out["n_layers"] - 1)
    out["paper_claim"] = np.where(early, "early_peak", "log_rise")
    out["agrees"] = (out["regime"] == out["paper_claim"]).where(out["regime"] != "undetermined")
    return out.reset_index(drop=True)


def recovery_table(fits: pd.DataFrame, truths: dict) -> pd.DataFrame:
    """Fits of trajectories with known parameters against the truth (a certified-value check).

    Parameters
    ----------
    fits : pandas.DataFrame
        :func:`fit_all` output for a synthetic table whose model names are ``truths``' keys.
    truths : dict
        ``{model: {parameter: true value}}``; ``t_peak`` may be among them.

    Returns
    -------
    pandas.DataFrame
        Indexed by (model, parameter): ``true``, ``median_estimate``, ``n_fits``,
        ``n_identified`` (flagged identified; for ``t_peak``: ``t_peak_identified``),
        ``n_covered`` (the reported 95 % interval, ``<name>_lo/_hi``, holds the truth) and
        ``n_covered_identified`` (the same among the identified ones).
    """
    rows = []
    for model, params in truths.items():
        f = fits[fits["model"] == model]
        for name, true in params.items():
            lo, hi = f[f"{name}_lo"], f[f"{name}_hi"]
            covered = (lo <= true) & (true <= hi)
            ident = f[f"{name}_identified"].fillna(False).astype(bool)
            rows.append(
                {
                    "model": model,
                    "parameter": name,
                    "true": true,
                    "median_estimate": float(f[name].median()),
                    "n_fits": len(f),
                    "n_identified": int(ident.sum()),
                    "n_covered": int(covered.sum()),
                    "n_covered_identified": int((covered & ident).sum()),
                }
            )
    return pd.DataFrame(rows).set_index(["model", "parameter"])


def window_effect(
    table: pd.DataFrame,
    windows: Sequence = ("full", "from_min"),
    *,
    procedure: str = "ours",
    models: Sequence[str] | None = None,
    seed: int = 0,
    n_jobs: int = 1,
) -> pd.DataFrame:
    """How the fit window (the treatment of the early dip) changes the Eq. 9 fits.

    Refits Eq. 9 with ``procedure`` once per window (profiles, no bootstrap) on every layer
    of ``models`` (default: every model; an unknown name is an error) and returns,
    per window: layers, mean ``r2`` (on the fitted points) and ``r2_all`` (on every
    checkpoint), the share of fits with status ``ok``, the share of layers whose five
    parameters are all identified, and the count of each regime.
    """
    rows = []
    for w in windows:
        f = fit_all(table, models=models, hypotheses=("eq9",), procedures=(procedure,), window=w,
                    n_bootstrap=0, seed=seed, n_jobs=n_jobs, progress=False)  # fmt: skip
        ident = f[[f"{n}_identified" for n in HYPOTHESES["eq9"].names]].astype("boolean")
        row = {
            "window": str(w),
            "layers": len(f),
            "r2": f["r2"].mean(),
            "r2_all": f["r2_all"].mean(),
            "share_ok": float((f["status"] == "ok").mean()),
            "share_all_identified": float(ident.fillna(False).all(axis=1).mean()),
        }
        row.update({f"n_{k}": int(v) for k, v in f["regime"].value_counts().items()})
        rows.append(row)
    return pd.DataFrame(rows).fillna(0)
