"""Seed replicates and the packing model of a suite: how much a new seed moves the results.

Some architectures of the default suite are trained with several seeds (other initial weights
and data order; ``architectures.parquet``: ``architecture``, ``seed``), and the reference
architecture once more with Pythia's packing (``packing``).  These helpers put the replicates
of an architecture side by side, so that a difference between architectures can be read
against the difference a new seed alone makes.
"""

from __future__ import annotations

import pandas as pd

__all__ = [
    "final_ratios",
    "packing_comparison",
    "parameter_seed_spread",
    "parameter_seed_summary",
    "seed_spread",
]


def _architectures(archs: pd.DataFrame) -> pd.DataFrame:
    need = {"model", "architecture", "seed", "packing"}
    if not need <= set(archs.columns):
        raise ValueError(
            f"The architectures table lacks {sorted(need - set(archs.columns))}: it comes from "
            "a suite written before seed replicates existed; regenerate it with make data."
        )
    return archs.set_index("model")


def final_ratios(traj: pd.DataFrame, archs: pd.DataFrame, quantity: str = "ratio") -> pd.DataFrame:
    """Per model: the largest ``quantity`` over layers at its last checkpoint, the layer
    holding it, with the model's architecture, seed and packing."""
    a = _architectures(archs)
    last = traj[traj["step"] == traj.groupby("model")["step"].transform("max")]
    best = last.loc[last.groupby("model")[quantity].idxmax(), ["model", "layer", quantity]]
    best = best.rename(columns={quantity: "final"}).set_index("model")
    return best.join(a[["architecture", "seed", "packing"]], how="inner").reset_index()


def seed_spread(traj: pd.DataFrame, archs: pd.DataFrame, quantity: str = "ratio") -> pd.DataFrame:
    """Per architecture with more than one seed (packing models left out): the final ratio of
    each seed, their mean, standard deviation and coefficient of variation (percent)."""
    f = final_ratios(traj, archs, quantity)
    f = f[~f["packing"].astype(bool)]
    g = f.groupby("architecture")["final"]
    out = pd.DataFrame(
        {"seeds": g.size(), "mean": g.mean(), "sd": g.std(ddof=1), "min": g.min(), "max": g.max()}
    )
    out["cv_pct"] = 100 * out["sd"] / out["mean"]
    return out[out["seeds"] > 1].reset_index()


def parameter_seed_spread(
    fits: pd.DataFrame,
    archs: pd.DataFrame,
    params: tuple[str, ...] = ("A", "lam", "gam", "t0", "K"),
    hypothesis: str = "eq9",
    procedure: str = "ours",
) -> pd.DataFrame:
    """How far a new seed moves each fitted parameter, against the fits' own intervals.

    Per architecture with more than one seed (packing models left out), layer and parameter,
    over the seeds' fits of ``hypothesis`` by ``procedure`` (every status kept): the seeds'
    values, their mean, standard deviation and coefficient of variation (percent of the
    absolute mean), how many seeds' fits call the parameter identified, and whether the seeds'
    reported intervals (``<p>_lo``, ``<p>_hi``) share a common point: ``intervals_agree`` is
    False when a new seed lands outside what another seed's interval allows, i.e. the
    intervals understate the run-to-run uncertainty.
    """
    a = _architectures(archs)
    f = fits[(fits["hypothesis"] == hypothesis) & (fits["procedure"] == procedure)]
    f = f.join(a[["architecture", "seed", "packing"]], on="model", how="inner")
    f = f[~f["packing"].astype(bool)]
    missing = [c for p in params for c in (p, f"{p}_lo", f"{p}_hi", f"{p}_identified")
               if c not in f.columns]  # fmt: skip
    if missing:
        raise ValueError(f"The fits table lacks the columns {missing}; refit with chapter 4.")
    rows = []
    for (arch, layer), g in f.groupby(["architecture", "layer"]):
        if g["seed"].nunique() < 2:
            continue
        g = g.sort_values("seed")
        for p in params:
            v = g[p].astype(float)
            lo, hi = g[f"{p}_lo"].astype(float), g[f"{p}_hi"].astype(float)
            with_interval = lo.notna() & hi.notna()
            mean, sd = float(v.mean()), float(v.std(ddof=1))  # failed fits (NaN) left out
            rows.append(
                {
                    "architecture": arch,
                    "layer": int(layer),
                    "parameter": p,
                    "seeds": len(g),
                    "n_values": int(v.notna().sum()),
                    "values": " / ".join(f"{x:.3g}" for x in v),
                    "statuses": " / ".join(g["status"].astype(str)),
                    "mean": mean,
                    "sd": sd,
                    "cv_pct": 100 * sd / abs(mean) if mean != 0 else float("inf"),
                    "n_identified": int(g[f"{p}_identified"].astype("boolean").fillna(False).sum()),
                    # undecided (NA) unless two seeds or more report an interval
                    "intervals_agree": (
                        bool(lo[with_interval].max() <= hi[with_interval].min())
                        if with_interval.sum() >= 2
                        else pd.NA
                    ),
                }
            )
    return pd.DataFrame(rows)


def parameter_seed_summary(spread: pd.DataFrame) -> pd.DataFrame:
    """Per parameter, over the cells of :func:`parameter_seed_spread`: the number of
    (architecture, layer) cells, the median CV across seeds, the share of cells where every
    seed's fit identifies the parameter, and the share where the seeds' intervals disagree
    (among the cells where two seeds or more report an interval)."""
    s = spread.assign(
        all_identified=spread["n_identified"] == spread["seeds"],
        disagree=~spread["intervals_agree"].astype("boolean"),
    )
    g = s.groupby("parameter", sort=False)
    return pd.DataFrame(
        {
            "cells": g.size(),
            "median_cv_pct": g["cv_pct"].median(),
            "all_identified_share": g["all_identified"].mean(),
            "intervals_disagree_share": g["disagree"].mean(),
        }
    ).reset_index()


def packing_comparison(table: pd.DataFrame, archs: pd.DataFrame) -> pd.DataFrame:
    """Each packing model beside the same architecture trained with EOT first (seed 0).

    At the last checkpoint, per evaluation variant (when ``table`` has a ``variant`` column),
    model and layer: the ratio of means, the share of sequences whose top-1 sits at
    position 0, the modal top-1 position and the share of sequences holding it, and the modal
    top-1 channel (models absent from ``table`` are left out).  Measured on the EOT-first sequences, the comparison answers whether a
    first-token activation forms without EOT in front of every training window.
    """
    a = _architectures(archs)
    packed = a[a["packing"].astype(bool)]
    if packed.empty:
        raise ValueError("The suite has no packing model (architectures.parquet: packing).")
    variants = table.groupby("variant") if "variant" in table.columns else [("", table)]
    rows = []
    for variant, vt in variants:
        for model, info in packed.iterrows():
            ref = a[(a["architecture"] == info["architecture"]) & (a["seed"] == 0)
                    & ~a["packing"].astype(bool)].index  # fmt: skip
            for name, role in [(model, "packing"), *[(r, "eot_first training") for r in ref]]:
                t = vt[vt["model"] == name]
                if t.empty:
                    continue  # a model left out of the table (a chapter's model selection)
                t = t[t["step"] == t["step"].max()]
                for layer, g in t.groupby("layer"):
                    rows.append(
                        {
                            "variant": variant,
                            "model": name,
                            "training": role,
                            "layer": int(layer),
                            "ratio": float(g["top1"].mean() / g["median"].mean()),
                            "position0_share": float((g["top1_position"] == 0).mean()),
                            "top1_position": int(g["top1_position"].mode().iloc[0]),
                            "top1_position_share": float(
                                g["top1_position"].value_counts(normalize=True).max()
                            ),
                            "top1_channel": int(g["top1_channel"].mode().iloc[0]),
                        }
                    )
    columns = ["variant", "model", "training", "layer", "ratio", "position0_share",
               "top1_position", "top1_position_share", "top1_channel"]  # fmt: skip
    out = pd.DataFrame(rows, columns=columns)
    out["ratio"] = out["ratio"].astype(float)
    if "variant" not in table.columns:
        out = out.drop(columns="variant")
    keys = [c for c in ("variant", "training", "model", "layer") if c in out.columns]
    return out.sort_values(keys, kind="stable").reset_index(drop=True)
