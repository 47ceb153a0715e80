"""The chapter's questions, their decision rules, and the answers the data give.

The rules are fixed before the runs (the chapter states them before its results), as the
named constants below; :func:`regrowth_findings` applies them and :func:`ledger_rows` turns
the answers into rows of the claims ledger's format, marked as our own findings (the paper
has no such experiment). Rows for what the runs showed beyond those questions come last,
their reading prefixed with :data:`POST_HOC`.

Notation: ``r(run, t, l)`` is layer ``l``'s top-1/median ratio of means (paper Eq. 8) at step
``t``; "original" is the control run at step 0 (the unmodified model), ``0`` the ablated run
just after the ablation, ``T`` the last measured step; ``l*`` the writer's layer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from massive_activations.regrowth.fits import AIC_MARGIN, best_hypotheses, original_values

__all__ = [
    "FINDING_COLUMNS",
    "LEDGER_FIELDS",
    "PARTIAL",
    "POST_HOC",
    "REGROWN",
    "SAME_ELEMENT",
    "ledger_rows",
    "regained_fraction",
    "regrowth_findings",
]

#: "Comes back": the ablated run regains at least this fraction of what the ablation took,
#: ``(r(T) - r(0)) / (r_original - r(0)) >= REGROWN``.
REGROWN = 0.5
#: "Comes back in part": at least this fraction, less than :data:`REGROWN`.
PARTIAL = 0.1
#: "At the same element": in at least this share of the windows the top-1 sits on the
#: original position and channel.
SAME_ELEMENT = 0.5

#: Prefix of the reading of rows no rule was fixed for before the runs.
POST_HOC = "post hoc (seen in the runs; no rule was fixed for it before them): "

#: Columns of :func:`regrowth_findings`.
FINDING_COLUMNS = ("key", "question", "rule", "value", "uncertainty", "answer", "reading")
#: The claims ledger's columns (``massive_activations.audit.verdicts.LEDGER_COLUMNS``; the
#: audit stage comes after this one, so they are repeated here and a test keeps them equal).
LEDGER_FIELDS = (
    "key", "claim", "source", "paper_value", "our_value", "uncertainty", "test", "verdict",
    "reading", "chapter",
)  # fmt: skip


def regained_fraction(original: float, ablated: float, now: float) -> float:
    """``(now - ablated) / (original - ablated)``: the share of the ablation's loss regained."""
    gap = original - ablated
    return float((now - ablated) / gap) if gap else np.nan


def _answer(fraction: float) -> str:
    if not np.isfinite(fraction):
        return "undetermined"
    if fraction >= REGROWN:
        return "yes"
    if fraction >= PARTIAL:
        return "partly"
    return "no"


def _modal_location(activations: pd.DataFrame, run: str, step: int, layer: int):
    rows = activations[
        (activations["run"] == run)
        & (activations["step"] == step)
        & (activations["layer"] == layer)
        & (activations["status"] == "ok")
    ]
    counts = rows.groupby(["top1_position", "top1_channel"]).size()
    pair = counts.sort_index().sort_values(ascending=False, kind="stable").index[0]
    return int(pair[0]), int(pair[1]), float(counts.max() / len(rows))


def regrowth_findings(
    traj: pd.DataFrame,
    activations: pd.DataFrame,
    writer: dict,
    rate_limit: float,
    fits: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Apply the decision rules to the runs.

    Parameters
    ----------
    traj : pandas.DataFrame
        :func:`massive_activations.regrowth.fits.regrowth_trajectories` (with the log).
    activations : pandas.DataFrame
        ``regrowth_activations.parquet`` (for where the top-1 sits).
    writer : dict
        The data's writer (``layer``, ``position``, ``channel``, ``value``).
    rate_limit : float
        :func:`massive_activations.regrowth.ablate.adam_rate_limit` at the runs' learning rate.
    fits : pandas.DataFrame, optional
        :func:`massive_activations.regrowth.fits.fit_regrowth`'s table; without it the
        hypothesis question is left undetermined.

    Returns
    -------
    pandas.DataFrame
        One row per question, columns :data:`FINDING_COLUMNS`.
    """
    layer = int(writer["layer"])
    orig = original_values(traj)
    abl = traj[traj["run"] == "ablated"].set_index(["step", "layer"]).sort_index()
    ctl = traj[traj["run"] == "control"].set_index(["step", "layer"]).sort_index()
    last = int(abl.index.get_level_values("step").max())
    at = lambda frame, step, q: frame.loc[step][q]  # noqa: E731 - per-layer Series
    r_orig, r0, rT = orig["ratio"], at(abl, 0, "ratio"), at(abl, last, "ratio")
    r_ctl = at(ctl, last, "ratio")
    ci = at(abl, last, "ci95_pct")
    rows = []

    def add(key, question, rule, value, uncertainty, answer, reading):
        rows.append(dict(zip(FINDING_COLUMNS, (key, question, rule, value, uncertainty,
                                                answer, reading), strict=True)))  # fmt: skip

    loss_orig = float(orig["heldout_loss"].iloc[0])
    loss0 = float(at(abl, 0, "heldout_loss").iloc[0])
    add(
        "damage",
        "What does the ablation cost the model?",
        "held-out loss and the largest ratio over layers, original vs just after the ablation",
        f"loss {loss_orig:.3f} -> {loss0:.3f} nats; largest ratio {r_orig.max():,.0f} -> "
        f"{r0.max():,.0f}; layer {layer}'s ratio {r_orig[layer]:,.0f} -> {r0[layer]:,.0f}",
        "-",
        f"loss +{loss0 - loss_orig:.2f} nats",
        "measured once, at step 0 (deterministic)",
    )
    f_layer = regained_fraction(r_orig[layer], r0[layer], rT[layer])
    add(
        "returns_at_writer",
        f"Does the activation come back in the writer's layer ({layer})?",
        f"regained fraction (r(T) - r(0)) / (r_original - r(0)) >= {REGROWN}: yes; "
        f">= {PARTIAL}: partly; else no",
        f"{f_layer:.3f} (ratio {r0[layer]:,.0f} -> {rT[layer]:,.0f} at step {last}; original "
        f"{r_orig[layer]:,.0f}; control at step {last}: {r_ctl[layer]:,.0f})",
        f"ratio at step {last}: 95% CI +-{ci[layer]:.1f}% over windows",
        _answer(f_layer),
        "no regrowth within the budget is a result: it bounds how fast the model rebuilds it",
    )
    f_any = regained_fraction(r_orig.max(), r0.max(), rT.max())
    top = int(rT.idxmax())
    add(
        "returns_anywhere",
        "Does it come back anywhere (the largest ratio over layers)?",
        f"the same regained fraction on the largest ratio over layers; >= {REGROWN}: yes; "
        f">= {PARTIAL}: partly; else no",
        f"{f_any:.3f} (largest ratio {r0.max():,.0f} -> {rT.max():,.0f}, layer {top}; original "
        f"{r_orig.max():,.0f}; control {r_ctl.max():,.0f})",
        f"95% CI +-{ci[top]:.1f}% over windows",
        _answer(f_any),
        "compare with the control: fine-tuning alone moves the ratios too",
    )
    position, channel, share = _modal_location(activations, "ablated", last, top)
    same = position == writer["position"] and channel == writer["channel"]
    add(
        "same_element",
        f"Is the largest activation at step {last} at the original position and channel?",
        f"the top-1 of the layer with the largest ratio sits at (position {writer['position']}, "
        f"channel {writer['channel']}) in >= {SAME_ELEMENT:.0%} of the windows",
        f"layer {top}: top-1 at (position {position}, channel {channel}) in {share:.0%} of the "
        "windows",
        "-",
        "yes" if same and share >= SAME_ELEMENT else "no",
        "the same element can be rebuilt in another layer than the writer's",
    )
    add(
        "relative_size",
        "How large is it relative to the original?",
        "r(T) / r_original, in the writer's layer and for the largest ratio over layers",
        f"writer's layer {rT[layer] / r_orig[layer]:.3f}; largest {rT.max() / r_orig.max():.3f}",
        f"95% CI +-{ci[layer]:.1f}% (writer's layer)",
        f"{rT.max() / r_orig.max():.1%} of the original's largest ratio",
        "-",
    )
    series = abl.xs(layer, level="layer")["ratio"]
    regain = series - r0[layer]
    final = regain.iloc[-1]
    half = float(regain.index[regain >= 0.5 * final].min()) if final > 0 else np.nan
    needed = abs(float(writer["value"])) / rate_limit if rate_limit > 0 else np.nan
    add(
        "speed",
        "How fast?",
        "first measured step at which the writer's layer regained half of its final regain; "
        "AdamW's bound: steps to rebuild the original write at lr x sum|a_j| per step",
        (
            f"half of the regain by step {half:.0f}"
            if np.isfinite(half)
            else f"no regain by step {last}"
        )
        + f"; the bound: >= {needed:,.0f} steps at {rate_limit:,.2f} per step",
        "measured steps only (log-spaced)",
        f"step {half:.0f}" if np.isfinite(half) else "no regain",
        "the bound assumes the writer's units keep firing as in the original",
    )
    verdict, detail = "undetermined", "no fits"
    if fits is not None and not fits.empty:
        best = best_hypotheses(fits)
        ablated = best[best["run"] == "ablated"]
        here = ablated[ablated["layer"] == layer]
        counts = ablated["verdict"].value_counts()
        verdict = str(here["verdict"].iloc[0]) if len(here) else "undetermined"
        detail = (
            f"layer {layer}: {verdict} (AIC step - AIC Eq. 9 = "
            f"{float(here['delta_aic'].iloc[0]) if len(here) else np.nan:.1f}); all layers: "
            + ", ".join(f"{k} {v}" for k, v in counts.items())
        )
    add(
        "hypothesis",
        "Does Eq. 9 or a step response describe the regrowth best?",
        f"lowest AIC (chapter 4's 'ours' procedure) by more than {AIC_MARGIN:g}; within it: "
        "indistinguishable",
        detail,
        "-",
        verdict,
        "on the ablated run's ratio trajectories",
    )
    loss_T = float(at(abl, last, "heldout_loss").iloc[0])
    loss_ctl = float(at(ctl, last, "heldout_loss").iloc[0])
    add(
        "loss_recovery",
        "Does the loss recover, with or without the activation?",
        "held-out loss of the ablated run at T vs the control's and the original's",
        f"ablated {loss_T:.3f}, control {loss_ctl:.3f}, original {loss_orig:.3f} nats",
        "-",
        "yes" if loss_T <= loss_orig else "no",
        "a recovered loss with the activation still gone means the model found another way",
    )
    for key, question, rule, value, uncertainty, answer, reading in _post_hoc(
        abl, ctl, orig, layer, top, last
    ):
        add(key, question, rule, value, uncertainty, answer, POST_HOC + reading)
    return pd.DataFrame(rows, columns=list(FINDING_COLUMNS))


def _post_hoc(abl, ctl, orig, layer, top, last) -> list[tuple]:
    """Rows for what the runs showed beyond the fixed questions (marked :data:`POST_HOC`)."""
    out = []
    ratios = abl["ratio"].unstack("layer")  # steps x layers, ablated run
    parts = []
    for name, at in (("writer's layer", layer), ("largest at T", top)):
        series = ratios[at].dropna()  # a ratio is >= 1 where finite
        if series.empty or last not in series.index:
            continue
        low_step = int(series.idxmin())
        low, now, was = float(series.min()), float(series.loc[last]), float(orig["ratio"][at])
        parts.append((name, at, low_step, low, now, was, regained_fraction(was, low, now)))
    out.append((
        "rebound",
        "After the ablation, does the ratio fall further before it climbs, and how much of the "
        "original does the climb from that minimum regain?",
        "per layer: the ablated run's lowest ratio over the measured steps, r(T) / r_min, and "
        f"(r(T) - r_min) / (r_original - r_min) (>= {REGROWN}: yes; >= {PARTIAL}: partly)",
        "; ".join(
            f"{name} {at}: minimum {low:,.0f} at step {step}, x{now / low:.2f} by step {last} "
            f"(original {was:,.0f}; regained from the minimum {frac:.3f})"
            for name, at, step, low, now, was, frac in parts
        ) or f"no finite ratio at step {last} in layers {layer} and {top}",
        "-",
        _answer(parts[0][6]) if parts and parts[0][1] == layer else "undetermined",
        "a climb from a lower minimum than r(0) is regrowth the fixed rule (from r(0)) cannot see",
    ))  # fmt: skip
    loss = lambda frame, step: float(frame.loc[step]["heldout_loss"].iloc[0])  # noqa: E731
    steps = sorted(ctl.index.get_level_values("step").unique())
    tail = [loss(ctl, s) for s in steps[-max(3, len(steps) // 3) :]]
    wobble = float(np.max(np.abs(np.diff(tail)))) if len(tail) > 1 else np.nan
    gap = loss(abl, last) - loss(ctl, last)
    damage = loss(abl, 0) - loss(ctl, last)
    out.append((
        "loss_against_control",
        "Does the ablated run's loss catch up with the control's?",
        "held-out loss at T, ablated minus control, and the share of the ablation's damage "
        "recovered relative to the control: (loss_ablated(0) - loss_ablated(T)) / "
        "(loss_ablated(0) - loss_control(T))",
        f"gap {gap:+.3f} nats; {(loss(abl, 0) - loss(abl, last)) / damage:.1%} of the damage "
        "recovered" if damage else f"gap {gap:+.3f} nats",
        f"the control's own loss moves by up to {wobble:.3f} nats between its last measured steps",
        "within the control's wobble" if abs(gap) <= wobble else f"{gap:+.3f} nats",
        "fine-tuning on new text moves the control's loss away from the original's too",
    ))  # fmt: skip
    return out


def ledger_rows(findings: pd.DataFrame) -> list[dict]:
    """The findings as claims-ledger rows (:data:`LEDGER_FIELDS`), marked as our own.

    ``source`` and ``paper_value`` say that the paper has no such experiment; ``verdict`` is
    the finding's answer (not one of the ledger's verdicts on the paper's claims).
    """
    return [
        {
            "key": f"regrowth_{row.key}",
            "claim": f"Our finding, not the paper's: {row.question}",
            "source": "this book's regrowth experiment (chapter 9); not in the paper",
            "paper_value": "- (the paper has no such experiment)",
            "our_value": row.value,
            "uncertainty": row.uncertainty,
            "test": row.rule,
            "verdict": row.answer,
            "reading": row.reading,
            "chapter": "09_regrowth",
        }
        for row in findings.itertuples(index=False)
    ]
