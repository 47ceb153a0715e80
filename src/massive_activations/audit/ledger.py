"""The claims ledger: each claim of the paper, its value, ours, the test and a verdict.

Every row is computed from data (the activation table, the fits, the predictor's validation,
the SmolLM2 measurement) and the paper's values are read from the reference file; nothing is
typed here except the tests' decision rules, which are the named constants below, each stated
in the row it decides.

A verdict is one of :data:`VERDICTS`. "not testable on this data" says why (too few models,
no fits, a quantity that depends on scale) in the row's ``our_value``.

Functions named ``claim_<key>`` take the inputs they need and return one row (a dict with
:data:`LEDGER_COLUMNS`); :func:`build_ledger` assembles them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pandas as pd

from massive_activations import reference
from massive_activations.audit.claims_activations import (
    claim_absent_at_init,
    claim_checkpoint_integrity,
    claim_grows_with_size,
    claim_magnitude,
    claim_pretrained_first_token,
    claim_variability,
)
from massive_activations.audit.claims_fits import (
    claim_early_peak_edges,
    claim_eq9_beats_steps,
    claim_eq9_fits,
    claim_log_rise_middle,
)
from massive_activations.audit.claims_prediction import claim_driver, claim_predictable
from massive_activations.audit.verdicts import (
    LEDGER_COLUMNS,
    VERDICTS,
    final_checkpoint,
    per_model_max,
    untestable,
)
from massive_activations.datasets.edition import DATA_KINDS, admonition

__all__ = ["VERDICT_COLOURS", "build_ledger", "ledger_html", "scale_notice"]


def build_ledger(
    traj: pd.DataFrame,
    architectures: pd.DataFrame,
    fits: pd.DataFrame | None = None,
    predictor_results: pd.DataFrame | None = None,
    importances: Mapping[str, pd.DataFrame] | None = None,
    pretrained: pd.DataFrame | None = None,
    seed: int = 0,
    table: pd.DataFrame | None = None,
    predictor_power: pd.DataFrame | None = None,
    predictor_splits: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every claim's row, in the order of the reference file's ``claims`` entry.

    Parameters
    ----------
    traj : pandas.DataFrame
        :func:`massive_activations.measurement.trajectories.trajectories` of the suite's activations.
    architectures : pandas.DataFrame
        One row per model with ``model, params, seq_len, d_model`` (the suite's
        ``architectures.parquet``).
    fits : pandas.DataFrame, optional
        The fits table (chapter 4); its claims are "not testable" without it.
    predictor_results : pandas.DataFrame, optional
        :func:`massive_activations.prediction.validation.evaluate`'s table (chapter 5,
        ``predictor.parquet``); the null of the best regressor is derived from it.
    importances : mapping, optional
        ``{target: permutation importance table}`` (``feature, importance, importance_std,
        rank``).
    pretrained : pandas.DataFrame, optional
        :func:`massive_activations.measurement.trajectories.layer_summary` of the SmolLM2 measurement.
    seed : int
        Seed of the bootstrap over layers.
    table : pandas.DataFrame, optional
        The activation table itself, for the checkpoint-integrity claim.
    predictor_power : pandas.DataFrame, optional
        The power check (``predictor_power.parquet``): without it no "not predictable" (nor
        any silence of the predictor) can be reproduced; those rows are "inconclusive".
    predictor_splits : pandas.DataFrame, optional
        The repeated 80/20 splits (``predictor_splits.parquet``): their spread is reported.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`LEDGER_COLUMNS`, no empty cell.
    """
    no_fits = fits is None or fits.empty

    def fit_claim(fn, key, **kw):
        if no_fits:
            return untestable(key, "no fits table", "see chapter 4", "04_fitting")
        return fn(fits, **kw)

    pred = dict(power=predictor_power, splits=predictor_splits)
    rows = {
        "absent_at_init": claim_absent_at_init(traj, architectures),
        "grows_with_size": claim_grows_with_size(traj, architectures),
        "magnitude": claim_magnitude(traj, architectures),
        "early_peak_edges": fit_claim(claim_early_peak_edges, "early_peak_edges"),
        "log_rise_middle": fit_claim(claim_log_rise_middle, "log_rise_middle"),
        "eq9_fits": fit_claim(claim_eq9_fits, "eq9_fits", seed=seed),
        "eq9_beats_steps": fit_claim(claim_eq9_beats_steps, "eq9_beats_steps"),
        "variability": claim_variability(traj),
        "K_predictable": claim_predictable("K_predictable", predictor_results, **pred),
        "lam_predictable": claim_predictable("lam_predictable", predictor_results, **pred),
        "gam_not_predictable": claim_predictable("gam_not_predictable", predictor_results, **pred),
        "Hd_drives_K": claim_driver("Hd_drives_K", importances, predictor_results),
        "lL_drives_lam": claim_driver("lL_drives_lam", importances, predictor_results),
        "pretrained_first_token": claim_pretrained_first_token(pretrained),
        "pythia_2p8b_checkpoints": claim_checkpoint_integrity(table, architectures),
    }
    order = list(reference.entry("claims")["values"])
    missing = sorted(set(order) ^ set(rows))
    if missing:
        raise RuntimeError(f"Claims without a test or tests without a claim: {missing}.")
    ledger = pd.DataFrame([rows[k] for k in order], columns=list(LEDGER_COLUMNS))
    bad = ledger.isna() | (ledger.astype(str).apply(lambda s: s.str.strip()) == "")
    if bad.any().any():
        raise RuntimeError(f"Empty ledger cells: {ledger.columns[bad.any()].tolist()}.")
    return ledger


def scale_notice(traj: pd.DataFrame, architectures: pd.DataFrame, kind: str) -> str:
    """What a verdict means at the data's scale: an admonition above the ledger (HTML).

    Parameters
    ----------
    traj : pandas.DataFrame
        The trajectories the ledger decides on.
    architectures : pandas.DataFrame
        ``model, params`` (and ``tokens`` for our suites).
    kind : str
        :func:`~massive_activations.datasets.edition.data_kind` of the data: ``"ours"`` says
        how far our suite is from Pythia, ``"release"`` and ``"pythia"`` that the verdicts are
        decided on Pythia's own data, ``"synthetic"`` that they say nothing about the paper.
    """
    if kind not in DATA_KINDS:
        raise ValueError(f"Unknown data kind {kind!r}; use one of {sorted(DATA_KINDS)}.")
    final = per_model_max(final_checkpoint(traj), "ratio")
    archs = architectures.set_index("model").reindex(final.index)
    params = archs["params"].astype(float)
    if kind == "synthetic":
        return admonition(
            "danger",
            "Synthetic stand-in: verdicts about made-up data",
            "The verdicts below are decided on a synthetic stand-in of the paper's release. "
            "They test the ledger's path and say nothing about the paper or Pythia.",
        )
    if kind in ("release", "pythia"):
        where = {
            "release": "the paper's own released statistics",
            "pythia": "Pythia checkpoints extracted here",
        }[kind]
        return admonition(
            "note",
            "Scale",
            f"The data are Pythia's own: {len(final)} models of {params.min() / 1e6:,.0f} "
            f"million to {params.max() / 1e9:,.1f} billion parameters, final ratios up to "
            f'{final.max():,.0f}. A "reproduced" verdict below means that the claim holds '
            f"on {where}, refit here.",
        )
    pythia = reference.table("pythia_architectures")
    training = reference.entry("pythia_architectures")["training"]
    fig3 = reference.table("fig3_final_ratio")["value"]
    tokens = (
        f" and saw {archs['tokens'].max() / 1e6:,.1f} million tokens"
        if "tokens" in archs.columns
        else ""
    )
    pythia_tokens = training["tokens_per_step"] * training["final_step"] / 1e9
    return admonition(
        "warning",
        "Scale",
        f"The suite's models have {params.min() / 1e6:.2f} to {params.max() / 1e6:.2f} "
        f"million parameters{tokens}; their largest final ratio is {final.max():,.1f}. "
        f"Pythia's models have {pythia.n_params.min() / 1e6:,.0f} million to "
        f"{pythia.n_params.max() / 1e9:,.1f} billion parameters and saw {pythia_tokens:,.0f} "
        f"billion tokens; its final ratios reach {fig3.max():,.0f} (Fig. 3). A "
        '"reproduced" verdict below means that the claim holds for this small suite, not '
        "that it reproduces Pythia's numbers.",
    )


#: Background colour of each verdict in :func:`ledger_html`.
VERDICT_COLOURS = dict(zip(VERDICTS, ("#d8f0d8", "#f6d5d5", "#fbefc9", "#ececec"), strict=True))


def ledger_html(ledger: pd.DataFrame, *, name: str) -> str:
    """A ledger table as HTML: every text cell escaped, verdicts coloured, chapters linked.

    ``ledger`` has the ledger's columns (``key`` is left out of the table); ``chapter``
    (e.g. ``"06_claims_ledger"``) becomes a link to that chapter's page. ``name`` identifies
    the table on its page: the table's id is ``T_<name>`` and it carries
    ``data-ledger="<name>"``. Two tables on one page need two names, since each cell's colour
    is a CSS rule keyed by these ids (a fixed name also keeps the page byte-identical from
    one build to the next, where pandas would draw a random id).
    """
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
        raise ValueError(
            f"ledger_html: name {name!r} is not a valid HTML id; use letters, digits, '-' "
            "and '_', starting with a letter (e.g. 'claims')."
        )
    shown = ledger.drop(columns="key", errors="ignore")
    text = [c for c in shown.columns if c != "chapter"]
    style = (
        shown.style.set_uuid(name)
        .set_table_attributes(f'data-ledger="{name}"')
        .hide(axis="index")
        .map(lambda v: f"background-color: {VERDICT_COLOURS.get(v, 'white')}", subset=["verdict"])
        .format(escape="html", subset=text)
        .format(lambda c: f'<a href="{c}.html">{c.split("_", 1)[0]}</a>', subset=["chapter"])
        .set_properties(**{"text-align": "left", "vertical-align": "top", "font-size": "0.85em"})
    )
    return style.to_html()
