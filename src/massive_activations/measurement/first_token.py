"""Does the first-token activation need a fixed first token?  Comparing evaluation variants.

The paper measures raw slices of text (the first token of a slice is whatever the text holds
there); a model with a BOS token, or our suite's EOT-first training format, sees one fixed
token at position 0.  With causal attention the hidden state at position 0 depends on that
token only, so under a fixed first token every sequence's position 0 is the same vector:
wherever the top-1 sits at position 0, the top-1 is identical across sequences and its
variation over sequences is zero.  These helpers take the activation table with both
variants (``variant`` column) and show what changes.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["top1_variation", "variant_comparison"]


def _need(table: pd.DataFrame, columns) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(
            f"The activation table lacks {missing}; read it with every variant, e.g. "
            "suite_activations(..., variant=None)."
        )


def top1_variation(table: pd.DataFrame, min_layer: int = 2) -> pd.DataFrame:
    """How much the top-1 varies over sequences, per model and variant.

    Over the (step, layer) groups with ``layer >= min_layer`` and ``step > 0`` (where a
    first-token activation can exist): the median coefficient of variation of ``top1`` over
    sequences (percent), the share of groups where it is exactly 0 (every sequence's top-1
    identical), and the share of sequences whose top-1 sits at position 0.

    Returns
    -------
    pandas.DataFrame
        One row per (model, variant): ``groups``, ``top1_cv_median_pct``,
        ``share_identical``, ``position0_share``.
    """
    _need(table, ["model", "variant", "step", "layer", "top1", "top1_position"])
    rows = table[(table["layer"] >= min_layer) & (table["step"] > 0)]
    if "status" in rows.columns:
        rows = rows[rows["status"] == "ok"]
    g = rows.groupby(["model", "variant", "step", "layer"])["top1"]
    per = pd.DataFrame({"sd": g.std(ddof=1), "mean": g.mean()}).reset_index()
    per["cv_pct"] = 100 * per["sd"] / per["mean"]
    per["identical"] = per["sd"] == 0
    out = per.groupby(["model", "variant"]).agg(
        groups=("cv_pct", "size"),
        top1_cv_median_pct=("cv_pct", "median"),
        share_identical=("identical", "mean"),
    )
    at0 = rows.assign(at0=rows["top1_position"] == 0).groupby(["model", "variant"])["at0"]
    out["position0_share"] = at0.mean()
    return out.reset_index()


def variant_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """Each model at its last checkpoint, under every variant side by side.

    Per (model, variant): the largest ratio of means over layers (``ratio``), the layer
    holding it, the share of that layer's sequences whose top-1 sits at position 0, and the
    channel holding the top-1 most often there.

    Returns
    -------
    pandas.DataFrame
        One row per model; columns ``(quantity, variant)`` flattened as
        ``<quantity>_<variant>``.
    """
    _need(table, ["model", "variant", "step", "layer", "sequence", "top1", "median"])
    last = table["step"] == table.groupby("model")["step"].transform("max")
    rows = table[last]
    g = rows.groupby(["model", "variant", "layer"])
    per = pd.DataFrame(
        {
            "ratio": g["top1"].mean() / g["median"].mean(),
            "position0_share": g["top1_position"].apply(lambda s: float((s == 0).mean())),
            "channel": g["top1_channel"].agg(lambda s: int(s.mode().iloc[0])),
        }
    ).reset_index()
    best = per.loc[per.groupby(["model", "variant"])["ratio"].idxmax()]
    wide = best.pivot(
        index="model", columns="variant", values=["ratio", "layer", "position0_share", "channel"]
    )
    wide.columns = [f"{q}_{v}" for q, v in wide.columns]
    if {"ratio_raw", "ratio_eot_first"} <= set(wide.columns):
        wide["raw_over_eot_first"] = wide["ratio_raw"] / wide["ratio_eot_first"]
    for c in wide.columns:
        if c.startswith(("layer_", "channel_")):
            wide[c] = wide[c].astype("Int64")
    return wide.reset_index()
