"""Claims about the activations themselves: absence at initialisation, growth with size,
magnitude, variability over sequences, and the pretrained model's first-token signature.
"""

from __future__ import annotations

import pandas as pd

from massive_activations import reference
from massive_activations.audit.statistics import (
    spearman_permutation,
)
from massive_activations.audit.verdicts import (
    ALPHA,
    INIT_TOLERANCE,
    MAGNITUDE_FACTOR,
    MAGNITUDE_FLOOR,
    NOT_REPRODUCED,
    NOT_TESTABLE,
    REPRODUCED,
    claim_entry,
    final_checkpoint,
    ledger_row,
    per_model_max,
    untestable,
)
from massive_activations.measurement.integrity import pythia_2p8b_anomaly
from massive_activations.measurement.noise import gaussian_ratio
from massive_activations.measurement.trajectories import paper_model_key

__all__ = [
    "claim_absent_at_init",
    "claim_checkpoint_integrity",
    "claim_grows_with_size",
    "claim_magnitude",
    "claim_pretrained_first_token",
    "claim_variability",
]


def claim_absent_at_init(traj: pd.DataFrame, architectures: pd.DataFrame) -> dict:
    """Step-0 ratio against the ratio of Gaussian noise with as many elements."""
    key, chapter = "absent_at_init", "03_measuring"
    test = (
        f"every model's largest step-0 ratio <= {INIT_TOLERANCE} x the top-1/median of "
        "i.i.d. Gaussian noise with seq_len x d elements"
    )
    step0 = traj[traj["step"] == 0]
    if step0.empty:
        return untestable(key, "no step-0 checkpoint in the table", test, chapter)
    archs = architectures.set_index("model")
    need = {"seq_len", "d_model"}
    if not need <= set(archs.columns) or not set(step0["model"]) <= set(archs.index):
        return untestable(key, "sequence length or width unknown for some models", test, chapter)
    init = per_model_max(step0, "ratio")
    init_alt = per_model_max(step0, "ratio_mean")
    base = pd.Series(
        {
            m: gaussian_ratio(int(archs.loc[m, "seq_len"] * archs.loc[m, "d_model"]))
            for m in init.index
        }
    )
    final = per_model_max(final_checkpoint(traj), "ratio")
    ok = bool((init <= INIT_TOLERANCE * base).all())
    ci = step0.groupby("model")["ci95_pct"].max()
    return ledger_row(
        key,
        our_value=(
            f"step 0: {init.min():.1f}-{init.max():.1f} (Gaussian noise of the same size: "
            f"{base.min():.1f}-{base.max():.1f}); final: {final.min():.1f}-{final.max():.1f}, "
            f"{len(init)} models"
        ),
        uncertainty=f"95% CI over sequences at step 0: up to +-{ci.max():.1f}%",
        test=test,
        verdict=REPRODUCED if ok else NOT_REPRODUCED,
        reading=(
            "ratio of means (Eq. 8); the mean of per-sequence ratios gives step 0 "
            f"{init_alt.min():.1f}-{init_alt.max():.1f}"
        ),
        chapter=chapter,
    )


def claim_grows_with_size(traj: pd.DataFrame, architectures: pd.DataFrame) -> dict:
    """Rank correlation of the final ratio with the parameter count, over models.

    When ``architectures`` names each model's architecture and packing (our suites), the
    test runs over architectures: the final ratios of an architecture's seed replicates are
    averaged and models trained with packing left out, so that replicates do not count as
    independent sizes.
    """
    key, chapter = "grows_with_size", "03_measuring"
    test = (
        f"Spearman rho > 0 with one-sided permutation p < {ALPHA}, over models (over "
        "architectures where a suite has seed replicates)"
    )
    fig3 = reference.table("fig3_final_ratio")["value"]
    paper = ", ".join(f"~{v:,.0f} ({m})" for m, v in fig3.items())
    archs = architectures.set_index("model")
    final = final_checkpoint(traj)
    models = sorted(set(final["model"]) & set(archs.index))
    if len(models) < 3 or "params" not in archs.columns:
        row = untestable(key, f"{len(models)} models with known size (>= 3 needed)", test, chapter)
        row["paper_value"] = paper
        return row
    size = archs.loc[models, "params"].astype(float)
    ours = per_model_max(final, "ratio").loc[models]
    alt = per_model_max(final, "ratio_mean").loc[models]
    unit = "models"
    if {"architecture", "packing"} <= set(archs.columns):
        # seed replicates are one architecture, not independent points; a model trained with
        # another recipe (packing) is not a size
        keep = [m for m in models if not bool(archs.loc[m, "packing"])]
        arch = archs.loc[keep, "architecture"]
        size = size.loc[keep].groupby(arch).first()
        ours, alt = ours.loc[keep].groupby(arch).mean(), alt.loc[keep].groupby(arch).mean()
        if len(keep) < len(models) or len(size) < len(keep):
            unit = "architectures (seed replicates averaged, packing models left out)"
        if len(size) < 3:
            row = untestable(key, f"{len(size)} architectures (>= 3 needed)", test, chapter)
            row["paper_value"] = paper
            return row
    try:
        rho, p = spearman_permutation(size, ours)
        rho_alt, p_alt = spearman_permutation(size, alt)
    except ValueError as error:
        row = untestable(key, str(error), test, chapter)
        row["paper_value"] = paper
        return row
    ok = rho > 0 and p < ALPHA
    return ledger_row(
        key,
        paper_value=paper,
        our_value=(
            f"Spearman rho = {rho:.2f} over {len(size)} {unit} "
            f"({size.min() / 1e6:.2f}-{size.max() / 1e6:.2f} M parameters); final ratios "
            f"{ours.min():.1f}-{ours.max():.1f}"
        ),
        uncertainty=f"one-sided permutation p = {p:.3f}",
        test=test,
        verdict=REPRODUCED if ok else NOT_REPRODUCED,
        reading=(
            "largest final ratio over layers, ratio of means; the mean of ratios gives "
            f"rho = {rho_alt:.2f} (p = {p_alt:.3f})"
        ),
        chapter=chapter,
    )


def _pythia_keys(models) -> dict[str, str]:
    """``{model: Fig. 3 key}`` of the (not deduplicated) Pythia models that Fig. 3 reports."""
    fig3 = reference.table("fig3_final_ratio")["value"]
    keys = {}
    for m in models:
        key = paper_model_key(m)
        name = str(m).lower()
        if name.startswith("pythia-") and not name.endswith("-deduped") and key:
            if key.upper() in fig3.index:
                keys[m] = key.upper()
    return keys


def claim_magnitude(traj: pd.DataFrame, architectures: pd.DataFrame) -> dict:
    """The paper's magnitudes against ours: testable only on Pythia itself.

    On Pythia's own data (the paper's release or an extraction: models named ``pythia-<size>``)
    each model that Fig. 3 reports must reach a final ratio within :data:`MAGNITUDE_FACTOR`
    of the figure's value, and the largest final ratio must be at least
    :data:`MAGNITUDE_FLOOR`; on other models the claim is not testable.
    """
    key, chapter = "magnitude", "03_measuring"
    fig3 = reference.table("fig3_final_ratio")["value"]
    final = per_model_max(final_checkpoint(traj), "ratio")
    params = architectures.set_index("model")["params"] if "params" in architectures else None
    size = (
        f" ({params.min() / 1e6:.2f}-{params.max() / 1e6:.2f} M parameters)"
        if params is not None
        else ""
    )
    paper = f"~{fig3.min():,.0f} to ~{fig3.max():,.0f} (Fig. 3, 14M to 12B parameters)"
    keys = _pythia_keys(final.index)
    if not keys:
        return ledger_row(
            key,
            paper_value=paper,
            our_value=(
                f"final ratios {final.min():.1f}-{final.max():.1f} in {len(final)} models{size}; "
                f"the largest is {final.max() / fig3.min():.2f} x the smallest model's in the "
                f"paper (~{fig3.min():,.0f}, {fig3.idxmin()})"
            ),
            uncertainty="-",
            test=(
                "magnitudes depend on model size and training length; only Pythia's own "
                "data can test them (chapter 3 with suite='paper' or 'pythia-<size>')"
            ),
            verdict=NOT_TESTABLE,
            reading="largest final ratio over layers, ratio of means",
            chapter=chapter,
        )
    factor = pd.Series({m: final[m] / fig3[k] for m, k in keys.items()})
    within = factor.between(1 / MAGNITUDE_FACTOR, MAGNITUDE_FACTOR)
    ok = bool(within.all()) and final.max() >= MAGNITUDE_FLOOR
    alt = per_model_max(final_checkpoint(traj), "ratio_mean")
    return ledger_row(
        key,
        paper_value=paper,
        our_value=(
            "; ".join(
                f"{m}: {final[m]:,.0f} (Fig. 3 ~{fig3[k]:,.0f}, x{factor[m]:.2f})"
                for m, k in keys.items()
            )
            + f"; largest over {len(final)} models {final.max():,.0f} ({final.idxmax()})"
        ),
        uncertainty="Fig. 3's values are read off the figure (approximate)",
        test=(
            f"every model Fig. 3 reports within a factor {MAGNITUDE_FACTOR:g} of its value, "
            f"and the largest final ratio >= {MAGNITUDE_FLOOR:,.0f}"
        ),
        verdict=REPRODUCED if ok else NOT_REPRODUCED,
        reading=(
            "largest final ratio over layers, ratio of means; the mean of ratios gives "
            + ", ".join(f"{m} {alt[m]:,.0f}" for m in keys)
        ),
        chapter=chapter,
    )


def claim_variability(traj: pd.DataFrame) -> dict:
    """Across-sequence CV of the ratio per model, over training, against Table 2's band.

    Table 2 gives one CV per model (the ten sequences' spread of the top-1/median ratio); the
    paper does not say over which checkpoints and layers it averages, so the whole trajectory
    is the reading taken here: per model, the mean over every layer and checkpoint (step 0
    excluded: the untrained model is not what Table 2 describes) of the CV of per-sequence
    ratios.  Two-sided: reproduced when the mean of the per-model CVs lies inside the band of
    Table 2's values (lowest to highest model), not reproduced when it lies outside (below
    means less spread across sequences than the paper reports, e.g. when every sequence
    starts with the same token and the top-1 at position 0 is identical in all of them).
    """
    key, chapter = "variability", "03_measuring"
    t2 = reference.table("table2_variability")["cv_pct"]
    band = (float(t2.min()), float(t2.max()))
    test = (
        f"the mean over models of each model's CV (over layers and checkpoints after step 0) "
        f"lies inside Table 2's band {band[0]:.2f}-{band[1]:.2f}% (two-sided)"
    )
    rows = traj[(traj["step"] > 0)].dropna(subset=["cv_pct"])
    if rows.empty:
        return untestable(key, "fewer than two sequences per checkpoint", test, chapter)
    per_model = rows.groupby("model")["cv_pct"].mean()
    mean = float(per_model.mean())
    inside = int(per_model.between(*band).sum())
    ok = band[0] <= mean <= band[1]
    final = final_checkpoint(traj)["cv_pct"].dropna()
    return ledger_row(
        key,
        paper_value=f"CV {band[0]:.2f}-{band[1]:.2f}% per model (Table 2)",
        our_value=(
            f"mean CV {mean:.2f}% over {len(per_model)} models (per model "
            f"{per_model.min():.2f}-{per_model.max():.2f}%; {inside} of {len(per_model)} inside "
            "the band)"
        ),
        uncertainty=(
            f"over {rows.groupby(['model', 'layer']).ngroups} (model, layer) pairs and "
            f"{rows['step'].nunique()} checkpoints; at the final checkpoint alone the mean is "
            f"{final.mean():.2f}%"
        ),
        test=test,
        verdict=REPRODUCED if ok else NOT_REPRODUCED,
        reading=(
            "CV of per-sequence ratios (Table 2's definition), averaged per model over layers "
            "and checkpoints (the paper does not state its aggregation)"
        ),
        chapter=chapter,
    )


def claim_pretrained_first_token(summary: pd.DataFrame | None, name: str = "SmolLM2-135M") -> dict:
    """Sun et al.'s signature on a real pretrained model: magnitude, position 0, one channel.

    Position 0 must hold the top-1 in most sequences (more than half) at the peak layer, not
    in every one: Sun et al. (Section 2) find massive activations at the starting token *and*
    at the first delimiter token, so a sequence whose top-1 sits on a later token does not
    contradict the claim; the row says where each sequence's top-1 sits.
    """
    key, chapter = "pretrained_first_token", "03_measuring"
    lo_ratio = claim_entry(key)["ratio_range"][0]
    test = (
        f"peak ratio >= {lo_ratio:,}, top-1 at position 0 in more than half of the sequences "
        "at the peak (Sun et al. also find it on the first delimiter token), and one channel "
        "in every layer within 10x of the peak"
    )
    if summary is None or summary.empty:
        return untestable(key, f"{name} was not measured", test, chapter)
    peak = summary["ratio"].idxmax()
    big = summary[summary["ratio"] >= summary["ratio"].max() / 10]
    channels = sorted(set(big["channel"]))
    pos0 = float(summary.loc[peak, "position0"])
    ok = summary["ratio"].max() >= lo_ratio and pos0 > 0.5 and len(channels) == 1
    where = summary.loc[peak, "positions"] if "positions" in summary.columns else ""
    return ledger_row(
        key,
        our_value=(
            f"{name}: peak ratio {summary['ratio'].max():,.0f} at layer {peak}, top-1 "
            f"{summary.loc[peak, 'top1']:,.0f} at position 0 in {pos0:.0%} of sequences"
            + (f" (top-1 position: sequences {where})" if where and pos0 < 1 else "")
            + f", channel(s) {', '.join(map(str, channels))} in layers {big.index.min()}-"
            f"{big.index.max()}"
        ),
        uncertainty=(
            f"ratio over sequences at the peak {summary.loc[peak, 'ratio_min']:,.0f}-"
            f"{summary.loc[peak, 'ratio_max']:,.0f}"
        ),
        test=test,
        verdict=REPRODUCED if ok else NOT_REPRODUCED,
        reading="Q4_1 GGUF weights dequantised to fp32 (not the original bf16 release)",
        chapter=chapter,
    )


def claim_checkpoint_integrity(
    table: pd.DataFrame | None, architectures: pd.DataFrame | None = None
) -> dict:
    """Do the Pythia-2.8B checkpoints measured hold their own steps' weights?

    Testable only on a table that holds pythia-2.8b (the paper's released statistics or a
    Pythia extraction): not reproduced when any of its steps is among the step branches the
    upstream report names (:func:`~massive_activations.measurement.integrity.
    pythia_2p8b_anomaly`), reproduced otherwise.
    """
    key, chapter = "pythia_2p8b_checkpoints", "07_checkpoint_integrity"
    t1 = reference.table("table1_mean_r2")["value"]
    paper = f"Table 1 mean R^2 {t1['2.8B']} for 2.8B (1.4B: {t1['1.4B']}, 6.9B: {t1['6.9B']})"
    test = (
        "none of the table's pythia-2.8b steps is among the branches the upstream report "
        "names as serving another step's weights"
    )
    if table is None:
        row = untestable(key, "no activation table given", test, chapter)
        row["paper_value"] = paper
        return row
    found = pythia_2p8b_anomaly(table, architectures)
    if not found["testable"]:
        row = untestable(key, found["finding"].removeprefix("not testable on this data: "),
                         test, chapter)  # fmt: skip
        row["paper_value"] = paper
        return row
    n, k = len(found["steps"]), len(found["affected"])
    return ledger_row(
        key,
        paper_value=paper,
        our_value=found["finding"],
        uncertainty=f"{k} of {n} checkpoints affected",
        test=test,
        verdict=NOT_REPRODUCED if k else REPRODUCED,
        reading=f"upstream report: {found['source']}; the data checks are chapter 7's",
        chapter=chapter,
    )
