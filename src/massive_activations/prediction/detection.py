"""Is a target predictable from architecture?  Detection against the null, gated by power.

One call per (fits used, transforms, target, protocol), the one the chapter shows and the
claims ledger reads, from the derived tables of :mod:`~massive_activations.prediction.tables`:

- ``"detected"``: the best regressor's R^2 exceeds the 95th percentile of the null of the
  best regressor (:func:`~massive_activations.prediction.nulls.null_summary`: the maximum
  over regressors on the same block-permuted targets);
- ``"not detected"``: it does not, *and* the power check
  (:func:`~massive_activations.prediction.power.power_check`) found the architecture-driven
  synthetic target on the same layout (same models, layers, architecture groups, protocol
  and null) in at least :data:`MIN_POWER` of its replicates.  Only then is "not
  predictable" a finding: the protocol, at this size, would have seen a predictable target;
- ``"underpowered"``: it does not, and the power check is missing, could not run, or
  detected the synthetic target in fewer than :data:`MIN_POWER` of its replicates.  The
  protocol is silent about every target at this size, so its silence is no evidence that
  the target is not predictable;
- ``"not run"``: the protocol could not run on the data (too few layers or architectures;
  ``reason`` says why).

The 80/20 split's spread over repeated seeds
(:func:`~massive_activations.prediction.splits.repeated_splits`, row ``model_type ==
"best"``) is joined to the ``paper_split`` rows: the call itself uses the first split (seed
``seed``), the one the null was computed for; the spread shows how much another seed would
move its R^2.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "CALLS",
    "DETECTED",
    "DETECTION_COLUMNS",
    "MIN_POWER",
    "NOT_DETECTED",
    "NOT_RUN",
    "UNDERPOWERED",
    "detection_table",
]

#: The share of synthetic replicates a power check must detect before a protocol's silence
#: counts as "not detected" (the conventional 80 % power).
MIN_POWER = 0.8

#: The calls, in the order of the module docstring.
CALLS = ("detected", "not detected", "underpowered", "not run")
DETECTED, NOT_DETECTED, UNDERPOWERED, NOT_RUN = CALLS

#: Columns of :func:`detection_table`, in order.
DETECTION_COLUMNS = (
    "fits_used",
    "transforms",
    "target",
    "protocol",
    "call",
    "best_model_type",
    "best_r2",
    "null_max_q95",
    "p_value",
    "n_permutations",
    "split_r2_median",
    "split_r2_q05",
    "split_r2_q95",
    "n_repeats",
    "power",
    "power_lo",
    "power_hi",
    "n_detected",
    "n_replicates",
    "reason",
)

_KEYS = ["fits_used", "transforms", "target", "protocol"]


def _power_text(p: pd.Series | None, protocol: str, min_power: float) -> tuple[bool, str]:
    """(powered, why) for one power row (None: no power check)."""
    if p is None:
        return False, f"no power check of {protocol} on this layout"
    if not np.isfinite(p["power"]):
        return False, f"the power check could not run ({p['note']})"
    text = (
        f"power check: the synthetic architecture-driven target detected in "
        f"{int(p['n_detected'])}/{int(p['n_replicates'])} replicates "
        f"(power {p['power']:.2f}, 95% CI {p['power_lo']:.2f}-{p['power_hi']:.2f})"
    )
    return bool(p["power"] >= min_power), text


def detection_table(
    null: pd.DataFrame,
    power: pd.DataFrame | None = None,
    splits: pd.DataFrame | None = None,
    *,
    min_power: float = MIN_POWER,
) -> pd.DataFrame:
    """The call of each (fits used, transforms, target, protocol) (module docstring).

    Parameters
    ----------
    null : pandas.DataFrame
        :func:`~massive_activations.prediction.nulls.null_summary` (``predictor_null.parquet``).
    power : pandas.DataFrame, optional
        :func:`~massive_activations.prediction.power.power_table`
        (``predictor_power.parquet``); without it (or without a row for a protocol) no
        silence is "not detected".
    splits : pandas.DataFrame, optional
        :func:`~massive_activations.prediction.splits.repeated_splits`
        (``predictor_splits.parquet``), joined to the ``paper_split`` rows.
    min_power : float
        See :data:`MIN_POWER`.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`DETECTION_COLUMNS`, one row per row of ``null``; ``reason`` says in
        words why the call is what it is.
    """
    if not 0 < min_power <= 1:
        raise ValueError(f"min_power must lie in (0, 1]; got {min_power}.")
    pw = {} if power is None else {tuple(r[k] for k in _KEYS): r for _, r in power.iterrows()}
    sp = {}
    if splits is not None:
        best = splits[splits["model_type"] == "best"]
        sp = {(r["fits_used"], r["transforms"], r["target"]): r for _, r in best.iterrows()}
    rows = []
    for _, n in null.iterrows():
        key = tuple(n[k] for k in _KEYS)
        row = dict.fromkeys(DETECTION_COLUMNS, np.nan)
        row.update(dict(zip(_KEYS, key, strict=True)))
        for c in ("best_model_type", "best_r2", "null_max_q95", "p_value", "n_permutations"):
            row[c] = n[c]
        s = sp.get(key[:3]) if key[3] == "paper_split" else None
        if s is not None:
            row.update(
                split_r2_median=s["r2_median"],
                split_r2_q05=s["r2_q05"],
                split_r2_q95=s["r2_q95"],
                n_repeats=s["n_repeats"],
            )
        p = pw.get(key)
        if p is not None:
            row.update(
                {c: p[c] for c in ("power", "power_lo", "power_hi", "n_detected", "n_replicates")}
            )
        r2, q95 = float(n["best_r2"]), float(n["null_max_q95"])
        if not np.isfinite(r2):
            why = p["note"] if p is not None and p["note"] else "too few layers or architectures"
            row.update(call=NOT_RUN, reason=f"the protocol could not run on these data: {why}")
        elif not np.isfinite(q95):
            row.update(call=UNDERPOWERED, reason="no permutation null: no chance level")
        elif r2 > q95:
            row.update(
                call=DETECTED,
                reason=f"best R^2 {r2:.2f} above the null's 95th percentile {q95:.2f}",
            )
        else:
            powered, ptext = _power_text(p, key[3], min_power)
            head = f"best R^2 {r2:.2f} not above the null's 95th percentile {q95:.2f}; {ptext}"
            if powered:
                row.update(call=NOT_DETECTED, reason=head)
            else:
                row.update(
                    call=UNDERPOWERED,
                    reason=f"{head}: below the {min_power:.0%} needed to read silence as "
                    "'not predictable'"
                    if p is not None and np.isfinite(p["power"])
                    else head,
                )
        rows.append(row)
    return pd.DataFrame(rows, columns=list(DETECTION_COLUMNS))
