"""Claims about the curve fits: regimes per layer, quality of Eq. 9, Eq. 9 against step responses.

Regimes count only where two independent calls agree: Eq. 9's (our procedure; a fit that did
not converge or sits at a bound is undetermined, :func:`massive_activations.fitting.
uncertainty.assess`) and the model-free one (drop from the peak and end slope against the
checkpoint noise, :mod:`massive_activations.fitting.regimes`).  Fit quality is the paper's
statistic: per layer the better of Eq. 9 and Eq. 14, R^2 on every checkpoint, from converged
fits; fits that did not converge are counted in the row, never averaged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from massive_activations import reference
from massive_activations.audit.verdicts import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    NOT_TESTABLE,
    REPRODUCED,
    all_of,
    consensus,
    ledger_row,
    majority,
    share,
    untestable,
)
from massive_activations.fitting.fit_all import CONVERGED, regime_table
from massive_activations.fitting.regimes import agreed_regime

__all__ = [
    "MAX_FAILED_SHARE",
    "agreed_regimes",
    "best_r2",
    "claim_early_peak_edges",
    "claim_eq9_beats_steps",
    "claim_eq9_fits",
    "claim_log_rise_middle",
]

#: Above this share of layers without a converged fit, a favourable quality verdict is
#: inconclusive: the failed layers could be the badly fitted ones.
MAX_FAILED_SHARE = 0.10


def agreed_regimes(fits: pd.DataFrame) -> pd.DataFrame:
    """Per layer: Eq. 9's regime, the model-free one and the agreed one.

    ``agreed`` is :func:`~massive_activations.fitting.regimes.agreed_regime`: the common call
    when both calls name the same regime (for an early peak, the model-free peak region
    ``mf_peak_lo``-``mf_peak_hi`` must also overlap the ``t_peak`` interval), else
    ``"undetermined"``; a table without the model-free columns has no agreed regime.
    ``position`` is ``"first"``, ``"last"`` or ``"middle"`` (a one-layer model's layer is
    both first and last: ``"first"``).
    """
    rt = regime_table(fits, "eq9", "ours")
    for col, empty in (
        ("mf_regime", "undetermined"),
        ("mf_peak_lo", np.nan),
        ("mf_peak_hi", np.nan),
        ("t_peak_lo", np.nan),
        ("t_peak_hi", np.nan),
    ):
        if col not in rt.columns:
            rt[col] = empty
    rt["agreed"] = [
        agreed_regime(r.regime, {"regime": r.mf_regime, "peak_lo": r.mf_peak_lo,
                                 "peak_hi": r.mf_peak_hi}, (r.t_peak_lo, r.t_peak_hi))
        for r in rt.itertuples()
    ]  # fmt: skip
    rt["position"] = np.select(
        [rt["layer"] == 1, rt["layer"] == rt["n_layers"]], ["first", "last"], "middle"
    )
    return rt


def _regime_counts(rows: pd.DataFrame, regime: str) -> tuple[int, int, str]:
    det = rows[rows["agreed"] != "undetermined"]
    k, n = int((det["agreed"] == regime).sum()), len(det)
    eq9_only = int(((rows["regime"] != "undetermined") & (rows["agreed"] == "undetermined")).sum())
    und = int((rows["regime"] == "undetermined").sum())
    note = f"{len(rows) - n} undetermined ({und} by Eq. 9, {eq9_only} where the calls disagree)"
    return k, n, note


def claim_early_peak_edges(fits: pd.DataFrame) -> dict:
    """First and last layers, each group separately: do most peak early?"""
    key, chapter = "early_peak_edges", "04_fitting"
    test = (
        "first layers and last layers, separately: most of those with an agreed regime (Eq. 9 "
        "and the model-free call) peak early, the 95% Wilson interval of the share above 50%; "
        "both groups must"
    )
    rt = agreed_regimes(fits)
    parts, values, shares = [], [], []
    for group in ("first", "last"):
        k, n, note = _regime_counts(rt[rt["position"] == group], "early_peak")
        parts.append(majority(k, n))
        values.append(f"{group} layers: {k} of {n} agreed calls peak early; {note}")
        shares.append(f"{group} {share(k, n)}" if n else f"{group}: none agreed")
    if all(v == NOT_TESTABLE for v in parts):
        _, _, note = _regime_counts(rt[rt["position"] != "middle"], "early_peak")
        return untestable(
            key, f"no first or last layer has an agreed regime ({note})", test, chapter
        )
    return ledger_row(
        key,
        our_value="; ".join(values),
        uncertainty="; ".join(shares),
        test=test,
        verdict=all_of(*parts),
        reading=(
            "edges = the first and the last layer of each model (the claim's minimum); a "
            "layer counts only where Eq. 9 (our procedure, converged, not at a bound, t_peak "
            "interval the union of the delta-method and bootstrap ones) and the drop/slope "
            "test agree"
        ),
        chapter=chapter,
    )


def claim_log_rise_middle(fits: pd.DataFrame) -> dict:
    """Middle layers: do most still rise at the end of training?"""
    key, chapter = "log_rise_middle", "04_fitting"
    test = (
        "most middle layers with an agreed regime rise to the end: the 95% Wilson interval "
        "of the share lies above 50%"
    )
    rt = agreed_regimes(fits)
    mid = rt[rt["position"] == "middle"]
    if mid.empty:
        return untestable(key, "the models have no middle layers", test, chapter)
    k, n, note = _regime_counts(mid, "log_rise")
    if n == 0:
        return untestable(key, f"no middle layer has an agreed regime ({note})", test, chapter)
    return ledger_row(
        key,
        our_value=f"{k} of {n} middle layers with an agreed regime rise to the end; {note}",
        uncertainty=share(k, n),
        test=test,
        verdict=majority(k, n),
        reading="middle = every layer but the first and last of each model",
        chapter=chapter,
    )


def best_r2(fits: pd.DataFrame, procedures=("paper", "ours")) -> pd.DataFrame:
    """The paper's quality statistic per layer: best ``r2_all`` of Eq. 9 and Eq. 14.

    Over the converged fits (:data:`CONVERGED`) of ``procedures``.  One row per (model,
    layer) with ``best_r2`` (NaN when no fit converged) and ``n_converged``.
    """
    rows = fits[fits["hypothesis"].isin(["eq9", "eq14"]) & fits["procedure"].isin(procedures)]
    layers = rows[["model", "layer"]].drop_duplicates().set_index(["model", "layer"])
    ok = rows[rows["status"].isin(CONVERGED)]
    g = ok.groupby(["model", "layer"])["r2_all"]
    return (
        layers.join(g.max().rename("best_r2"))
        .join(g.size().rename("n_converged"))
        .fillna({"n_converged": 0})
    )


def claim_eq9_fits(fits: pd.DataFrame, seed: int = 0, n_boot: int = 2000) -> dict:
    """The headline mean R^2 and the per-layer floor, on the paper's statistic."""
    key, chapter = "eq9_fits", "04_fitting"
    head = reference.entry("headline_mean_r2")
    floor = reference.entry("layer_r2_floor")["value"]
    test = (
        f"the paper's statistic (per layer the better of Eq. 9 and Eq. 14, R^2 on every "
        f"checkpoint, converged fits of either procedure): the 95% bootstrap interval of the "
        f"mean reaches {head['value']} and no layer lies below {floor}; inconclusive when more "
        f"than {MAX_FAILED_SHARE:.0%} of the layers have no converged fit"
    )
    if fits[fits["hypothesis"].isin(["eq9", "eq14"])].empty:
        return untestable(key, "no Eq. 9 or Eq. 14 fits", test, chapter)
    table = best_r2(fits)
    best = table["best_r2"].dropna()
    n_all, n_failed = len(table), int(table["best_r2"].isna().sum())
    if best.empty:
        return untestable(key, f"no converged fit in any of {n_all} layers", test, chapter)
    rng = np.random.default_rng(seed)
    boot = rng.choice(best.to_numpy(), size=(n_boot, len(best))).mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    below = int((best < floor).sum())
    verdict = all_of(
        REPRODUCED if hi >= head["value"] else NOT_REPRODUCED,
        REPRODUCED if below == 0 else NOT_REPRODUCED,
    )
    if verdict == REPRODUCED and n_failed > MAX_FAILED_SHARE * n_all:
        verdict = INCONCLUSIVE
    per_proc = {
        p: best_r2(fits, (p,))["best_r2"] for p in ("paper", "ours") if (fits.procedure == p).any()
    }
    detail = "; ".join(
        f"{p}'s procedure alone {v.mean():.3f} over {v.notna().sum()} layers"
        for p, v in per_proc.items()
    )
    return ledger_row(
        key,
        paper_value=f"mean R^2 {head['value']} over {head['n_layers']} layers; no layer below {floor}",
        our_value=(
            f"mean R^2 {best.mean():.3f} over {len(best)} layers, {below} below {floor}, "
            f"minimum {best.min():.3f}; {n_failed} of {n_all} layers without a converged fit"
        ),
        uncertainty=f"95% bootstrap CI over layers {lo:.3f}-{hi:.3f}",
        test=test,
        verdict=verdict,
        reading=f"{detail}; fits that did not converge are counted, not averaged",
        chapter=chapter,
    )


def _aic_wins(fits: pd.DataFrame, procedure: str) -> tuple[int, int, int]:
    rows = fits[(fits["procedure"] == procedure) & fits["status"].isin(CONVERGED)]
    wide = rows.pivot_table(index=["model", "layer"], columns="hypothesis", values="aic")
    need = ["eq9", "step1", "step2"]
    total = fits[fits["procedure"] == procedure][["model", "layer"]].drop_duplicates()
    if not set(need) <= set(wide.columns):
        return 0, 0, len(total)
    wide = wide.dropna(subset=need)
    k = int(((wide["eq9"] < wide["step1"]) & (wide["eq9"] < wide["step2"])).sum())
    return k, len(wide), len(total) - len(wide)


def claim_eq9_beats_steps(fits: pd.DataFrame) -> dict:
    """Share of layers where Eq. 9 has a lower AIC than both step responses, per procedure."""
    key, chapter = "eq9_beats_steps", "04_fitting"
    t5 = reference.table("table5_mean_r2_by_hypothesis")
    wins = int(((t5.loc["eq9"] > t5.loc["step1"]) & (t5.loc["eq9"] > t5.loc["step2"])).sum())
    paper = f"Eq. 9 mean R^2 above both step responses in {wins} of {t5.shape[1]} models (Table 5)"
    test = (
        "under each procedure, Eq. 9 has the lowest AIC of the three in most layers where all "
        "three converged (the 95% Wilson interval above 50%); the procedures must agree"
    )
    verdicts, values, shares = [], [], []
    for proc in ("paper", "ours"):
        k, n, left = _aic_wins(fits, proc)
        verdicts.append(majority(k, n))
        values.append(
            f"{proc}: lowest AIC in {k} of {n} layers ({left} without three converged fits)"
        )
        shares.append(f"{proc} {share(k, n)}" if n else f"{proc}: no layer")
    if all(v == NOT_TESTABLE for v in verdicts):
        row = untestable(key, "no layer has three converged fits", test, chapter)
        row["paper_value"] = paper
        return row
    return ledger_row(
        key,
        paper_value=paper,
        our_value="; ".join(values),
        uncertainty="; ".join(shares),
        test=test,
        verdict=consensus(*verdicts),
        reading="AIC per layer on the same points (the paper reports mean R^2 per model)",
        chapter=chapter,
    )
