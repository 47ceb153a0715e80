"""Verdict words, decision thresholds and the row format of the claims ledger.

A verdict is one of :data:`VERDICTS`; the decision rules are the named constants here, each
stated in the row it decides.
"""

from __future__ import annotations

import pandas as pd

from massive_activations import reference
from massive_activations.audit.statistics import (
    wilson_interval,
)

__all__ = [
    "ALPHA",
    "INCONCLUSIVE",
    "INIT_TOLERANCE",
    "LEDGER_COLUMNS",
    "MODERATE_R2",
    "NOT_REPRODUCED",
    "NOT_TESTABLE",
    "PREDICTABLE_R2",
    "REPRODUCED",
    "SPANS",
    "VERDICTS",
    "VERDICT_MEANINGS",
    "all_of",
    "claim_entry",
    "consensus",
    "final_checkpoint",
    "ledger_row",
    "majority",
    "per_model_max",
    "share",
    "untestable",
]

VERDICTS = ("reproduced", "not reproduced", "inconclusive", "not testable on this data")
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE = VERDICTS
#: What each verdict means (shown on the ledger page).
VERDICT_MEANINGS = {
    REPRODUCED: "the test ran on this data and its decision rule came out on the claim's side",
    NOT_REPRODUCED: "the test ran on this data and its decision rule came out against the claim",
    INCONCLUSIVE: (
        "the test ran but could not decide: its interval straddles the threshold, the parts "
        "of a compound claim disagree, too many fits failed to trust the rest, or a null "
        "result lacks the power to detect the effect"
    ),
    NOT_TESTABLE: (
        "the data cannot carry the test at all (a quantity that depends on scale, too few "
        "models, no fits); the row says what is missing"
    ),
}

#: Columns of the ledger, in order.
LEDGER_COLUMNS = (
    "key",
    "claim",
    "source",
    "paper_value",
    "our_value",
    "uncertainty",
    "test",
    "verdict",
    "reading",
    "chapter",
)

#: "Absent at init": the step-0 ratio is at most this multiple of i.i.d. Gaussian noise's.
INIT_TOLERANCE = 1.5
#: "Predictable": best test R^2 at least this, and above the shuffled-target 95th percentile.
PREDICTABLE_R2 = 0.5
#: "Moderately predictable": best test R^2 at least this, and above chance.
MODERATE_R2 = 0.3
#: Significance level of the rank-correlation test.
ALPHA = 0.05
#: "Magnitude" on Pythia's own data: a final ratio within this factor of the paper's Fig. 3
#: value (read off the figure, approximate) agrees with it.
MAGNITUDE_FACTOR = 2.0
#: "Hundreds to thousands": the largest final ratio of Pythia's models is at least this.
MAGNITUDE_FLOOR = 100.0


def claim_entry(key: str) -> dict:
    return reference.entry("claims")["values"][key]


def ledger_row(key: str, **fields) -> dict:
    c = claim_entry(key)
    row = {"key": key, "claim": c["claim"], "source": c["where"], "paper_value": c["paper_value"]}
    row.update(fields)
    missing = [k for k in LEDGER_COLUMNS if k not in row]
    if missing:
        raise ValueError(f"Ledger row {key!r} lacks {missing}.")
    return {k: row[k] for k in LEDGER_COLUMNS}


def untestable(key: str, why: str, test: str, chapter: str, reading: str = "-") -> dict:
    return ledger_row(
        key,
        our_value=f"not computed: {why}",
        uncertainty="-",
        test=test,
        verdict=NOT_TESTABLE,
        reading=reading,
        chapter=chapter,
    )


def share(k: int, n: int) -> str:
    lo, hi = wilson_interval(k, n)
    return f"{k}/{n} = {k / n:.0%} (95% CI {lo:.0%}-{hi:.0%}, Wilson)"


def majority(k: int, n: int) -> str:
    """Verdict of "most of them": the whole 95% Wilson interval of ``k / n`` on one side of
    50%; an interval that spans 50% is inconclusive (too few layers to decide), no layer at
    all is not testable."""
    if n == 0:
        return NOT_TESTABLE
    lo, hi = wilson_interval(k, n)
    if lo > 0.5:
        return REPRODUCED
    if hi < 0.5:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def all_of(*verdicts: str) -> str:
    """A claim that needs every part: not reproduced when a part is, reproduced when all are,
    not testable when none could be tested, inconclusive otherwise."""
    if NOT_REPRODUCED in verdicts:
        return NOT_REPRODUCED
    if all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    if all(v == NOT_TESTABLE for v in verdicts):
        return NOT_TESTABLE
    return INCONCLUSIVE


def consensus(*verdicts: str) -> str:
    """The same claim tested several ways (e.g. under both fitting procedures): their common
    verdict when they agree, inconclusive when they do not (untestable ways are ignored)."""
    tested = [v for v in verdicts if v != NOT_TESTABLE]
    if not tested:
        return NOT_TESTABLE
    return tested[0] if len(set(tested)) == 1 else INCONCLUSIVE


SPANS = " (the 95% interval spans 50%: too few layers to decide)"


def final_checkpoint(traj: pd.DataFrame) -> pd.DataFrame:
    last = traj.groupby("model")["step"].transform("max")
    return traj[traj["step"] == last]


def per_model_max(rows: pd.DataFrame, quantity: str) -> pd.Series:
    return rows.groupby("model")[quantity].max()
