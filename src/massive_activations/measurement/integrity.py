"""Checkpoint integrity from the statistics alone, and the upstream reports on Pythia's revisions.

A table that comes without its weights (the paper's released statistics, any imported table)
cannot be checked by digest (:mod:`massive_activations.measurement.weights`); three checks
look at its statistics instead, each finding naming the model, the steps and the statistic:

* :func:`identical_statistics`: checkpoints whose top-1/2/3 and median are identical (bit for
  bit by default) at every layer and sequence: one set of weights measured twice;
* :func:`trained_at_init`: an initial checkpoint whose top-1/median ratio is far above what
  Gaussian noise of the same size gives (:func:`~massive_activations.measurement.noise.
  gaussian_ratio`, the baseline of the "absent at initialisation" claim): trained weights
  served as step 0;
* :func:`unexplained_jumps`: a change of a layer's trajectory between two checkpoints that
  the neighbouring intervals do not explain (a single checkpoint that departs and returns,
  or a step change), in the ratio or the median.

:func:`run_checks` runs the three and says what each looked at.  The upstream reports
(EleutherAI/pythia issues 205 and 206) are facts of the reference file
(``upstream_checkpoint_reports``): :func:`upstream_reports` lists, for each Pythia model,
the release's step branches they affect, :func:`affected_mask` marks a table's rows at those
checkpoints and :func:`pythia_2p8b_anomaly` says what the claims ledger needs about the
2.8B case.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from massive_activations import reference
from massive_activations.measurement.noise import gaussian_ratio
from massive_activations.measurement.trajectories import trajectories

__all__ = [
    "FINDING_COLUMNS",
    "JUMP_FACTOR",
    "JUMP_MIN_FOLD",
    "TRAINED_FACTOR",
    "affected_mask",
    "identical_statistics",
    "pythia_2p8b_anomaly",
    "run_checks",
    "trained_at_init",
    "unexplained_jumps",
    "upstream_reports",
]

#: Columns of a findings table.
FINDING_COLUMNS = ("check", "model", "steps", "statistic", "detail")
#: An initial checkpoint "looks trained" above this multiple of the Gaussian-noise ratio.
TRAINED_FACTOR = 10.0
#: A change is unexplained when it exceeds this multiple of the neighbouring intervals' ...
JUMP_FACTOR = 8.0
#: ... and this fold change (up or down) of the statistic.
JUMP_MIN_FOLD = 1.5
_STATS = ["top1", "top2", "top3", "median"]
_RANGE = re.compile(r"^\s*([0-9]+)\s*-\s*([0-9]+)\s*/\s*([0-9]+)\s*$")


def _finding(check: str, model: str, steps, statistic: str, detail: str) -> dict:
    return {
        "check": check,
        "model": str(model),
        "steps": tuple(int(s) for s in steps),
        "statistic": statistic,
        "detail": detail,
    }


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(FINDING_COLUMNS))


def _subsets(table: pd.DataFrame):
    """``(label, rows)`` per dtype and variant of the table (one trajectory set each)."""
    keys = [c for c in ("dtype", "variant") if c in table.columns]
    if not keys:
        yield "", table
        return
    for key, rows in table.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        yield ", ".join(str(k) for k in key), rows


def _label(text: str, subset: str) -> str:
    return f"{text} ({subset})" if subset else text


def _equal_groups(arrays: dict[int, np.ndarray], rtol: float) -> list[list[int]]:
    """Steps whose arrays are equal (bit for bit when ``rtol`` is 0), grouped transitively."""
    steps = list(arrays)
    parent = {s: s for s in steps}

    def root(s: int) -> int:
        while parent[s] != s:
            s = parent[s]
        return s

    for i, a in enumerate(steps):
        for b in steps[i + 1 :]:
            x, y = arrays[a], arrays[b]
            same = x.shape == y.shape and (
                np.array_equal(x, y, equal_nan=True)
                if rtol == 0
                else np.allclose(x, y, rtol=rtol, atol=0.0, equal_nan=True)
            )
            if same:
                parent[root(b)] = root(a)
    groups: dict[int, list[int]] = {}
    for s in steps:
        groups.setdefault(root(s), []).append(s)
    return list(groups.values())


def identical_statistics(table: pd.DataFrame, *, rtol: float = 0.0) -> pd.DataFrame:
    """Groups of checkpoints of a model whose statistics are identical everywhere.

    Parameters
    ----------
    table : pandas.DataFrame
        An activation table.
    rtol : float, default 0
        0: bit-identical (NaN equal to NaN); else equal within this relative tolerance.

    Returns
    -------
    pandas.DataFrame
        :data:`FINDING_COLUMNS`, one row per group of two or more checkpoints (per dtype and
        variant) whose top1, top2, top3 and median agree at every layer and sequence.
    """
    rows = []
    for subset, part in _subsets(table):
        for model, g in part.groupby("model", sort=True):
            arrays = {}
            for step, s in g.groupby("step", sort=True):
                s = s.sort_values(["layer", "sequence"])
                values = s[["layer", "sequence", *_STATS]].to_numpy(float)
                if np.isfinite(values[:, 2:]).any():
                    arrays[int(step)] = values
            groups = _equal_groups(arrays, rtol)
            for members in groups:
                if len(members) > 1:
                    n_layers = g["layer"].nunique()
                    n_seq = g["sequence"].nunique()
                    how = "bit-identical" if rtol == 0 else f"equal within rtol={rtol:g}"
                    rows.append(
                        _finding(
                            "identical statistics",
                            model,
                            members,
                            _label("top1, top2, top3, median", subset),
                            f"{how} at all {n_layers} layers x {n_seq} sequences: one set "
                            "of weights measured under several steps",
                        )
                    )
    return _frame(rows)


def _elements(architectures: pd.DataFrame | None, model: str) -> int | None:
    if architectures is None or not {"model", "seq_len", "d_model"} <= set(architectures):
        return None
    row = architectures[architectures["model"] == model]
    if row.empty:
        return None
    return int(row["seq_len"].iloc[0]) * int(row["d_model"].iloc[0])


def trained_at_init(
    table: pd.DataFrame,
    architectures: pd.DataFrame | None,
    *,
    factor: float = TRAINED_FACTOR,
    max_step: int = 0,
) -> pd.DataFrame:
    """Initial checkpoints whose top-1/median ratio is far above Gaussian noise's.

    Parameters
    ----------
    table : pandas.DataFrame
        An activation table.
    architectures : pandas.DataFrame or None
        ``model, seq_len, d_model`` (e.g. :func:`massive_activations.datasets.activations.
        architectures_table`): the noise baseline is that of ``seq_len * d_model`` values.
        Models it lacks are not checked.
    factor : float, default :data:`TRAINED_FACTOR`
        Flag a checkpoint whose largest per-layer ratio exceeds ``factor`` x the baseline.
    max_step : int, default 0
        Checkpoints up to this step are "initial" (0: step 0 only; Pythia's learning rate
        warms up over its first 1% of steps, so a few more may be checked).

    Returns
    -------
    pandas.DataFrame
        :data:`FINDING_COLUMNS`, one row per flagged checkpoint.
    """
    rows = []
    for subset, part in _subsets(table):
        traj = trajectories(part.drop(columns=["dtype"], errors="ignore"))
        early = traj[traj["step"] <= max_step]
        for (model, step), g in early.groupby(["model", "step"], sort=True):
            n = _elements(architectures, model)
            if n is None or g["ratio"].isna().all():
                continue
            base = gaussian_ratio(n)
            worst = g.loc[g["ratio"].idxmax()]
            if worst["ratio"] > factor * base:
                rows.append(
                    _finding(
                        "trained at init",
                        model,
                        [step],
                        _label("top1/median (ratio of means), largest over layers", subset),
                        f"{worst['ratio']:,.1f} at layer {int(worst['layer'])}: "
                        f"{worst['ratio'] / base:,.0f} x the ratio of Gaussian noise of the "
                        f"same size ({base:.1f} for {n:,} values); untrained weights give "
                        "about 1 x",
                    )
                )
    return _frame(rows)


def _jumps(y: np.ndarray, factor: float, min_fold: float, window: int) -> list[int]:
    """Indices i of the intervals (y[i] -> y[i+1]) whose change is unexplained."""
    d = np.diff(y)
    flagged = []
    for i in range(len(d)):
        if not np.isfinite(d[i]) or abs(d[i]) <= np.log(min_fold):
            continue
        near = [abs(d[j]) for j in range(i - window, i + window + 1) if j != i and 0 <= j < len(d)]
        near = [v for v in near if np.isfinite(v)]
        if len(near) >= 2 and abs(d[i]) > factor * float(np.median(near)):
            flagged.append(i)
    return flagged


def unexplained_jumps(
    table: pd.DataFrame,
    statistics: Sequence[str] = ("ratio", "median"),
    *,
    factor: float = JUMP_FACTOR,
    min_fold: float = JUMP_MIN_FOLD,
    window: int = 2,
) -> pd.DataFrame:
    """Changes of a trajectory between two checkpoints that the neighbouring ones do not explain.

    For each (model, layer) and statistic of :func:`~massive_activations.measurement.
    trajectories.trajectories`, the change of its logarithm over each interval between
    consecutive checkpoints is compared with the median change over the ``window`` intervals
    on either side: it is unexplained when it is ``factor`` times larger and a change by more
    than ``min_fold``.  Two unexplained changes of opposite sign around one checkpoint make a
    *spike* at that checkpoint (it departs from both neighbours); a lone one is a *jump*.

    Returns
    -------
    pandas.DataFrame
        :data:`FINDING_COLUMNS`, one row per (model, statistic, spike or jump), naming the
        layers concerned.
    """
    rows = []
    for subset, part in _subsets(table):
        traj = trajectories(part.drop(columns=["dtype"], errors="ignore"))
        for model, m in traj.groupby("model", sort=True):
            n_layers = m["layer"].nunique()
            for stat in statistics:
                events: dict[tuple, list] = {}
                for layer, g in m.groupby("layer", sort=True):
                    g = g.sort_values("step")
                    values = g[stat].to_numpy(float)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        y = np.where(values > 0, np.log(values), np.nan)
                    steps = g["step"].to_numpy(int)
                    flagged = _jumps(y, factor, min_fold, window)
                    d = np.diff(y)
                    used = set()
                    for i in flagged:
                        if i in used:
                            continue
                        if i + 1 in flagged and np.sign(d[i]) != np.sign(d[i + 1]):
                            key = ("spike", int(steps[i + 1]))
                            used.add(i + 1)
                        else:
                            key = ("jump", int(steps[i]), int(steps[i + 1]))
                        events.setdefault(key, []).append((int(layer), float(np.exp(d[i]))))
                for key, hits in sorted(events.items(), key=lambda kv: kv[0][1:]):
                    layers = ", ".join(str(layer) for layer, _ in hits)
                    folds = ", ".join(f"x{f:.2f}" for _, f in hits)
                    what = (
                        f"step {key[1]} departs from both neighbours"
                        if key[0] == "spike"
                        else f"step change from step {key[1]} to {key[2]}"
                    )
                    rows.append(
                        _finding(
                            f"unexplained {key[0]}",
                            model,
                            key[1:],
                            _label(stat, subset),
                            f"{what} at layers {layers} of {n_layers} ({folds}), more than "
                            f"{factor:g} x the neighbouring intervals' change",
                        )
                    )
    return _frame(rows)


def run_checks(
    table: pd.DataFrame,
    architectures: pd.DataFrame | None = None,
    *,
    max_step: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the three checks; return ``(findings, summary)``.

    ``summary`` has one row per check: what it looks at, the models it could check (the
    initial-checkpoint check needs each model's width and sequence length) and its number of
    findings, so a clean table is shown as checked, not as silent.
    """
    models = sorted(table["model"].unique())
    with_init = sorted(
        m
        for m in table.loc[table["step"] <= max_step, "model"].unique()
        if _elements(architectures, m) is not None
    )
    parts = {
        "identical statistics": (identical_statistics(table), models),
        "trained at init": (
            trained_at_init(table, architectures, max_step=max_step),
            with_init,
        ),
        "unexplained jumps": (unexplained_jumps(table), models),
    }
    what = {
        "identical statistics": "top1/2/3 and median of every layer and sequence, step vs step",
        "trained at init": f"largest top1/median at steps <= {max_step} vs "
        f"{TRAINED_FACTOR:g} x Gaussian noise",
        "unexplained jumps": f"log ratio and log median per layer: a change > {JUMP_FACTOR:g} x "
        f"the neighbours' and > x{JUMP_MIN_FOLD:g}",
    }
    findings = pd.concat([f for f, _ in parts.values()], ignore_index=True)
    summary = pd.DataFrame(
        [
            {
                "check": name,
                "looks at": what[name],
                "models checked": len(checked),
                "findings": len(found),
            }
            for name, (found, checked) in parts.items()
        ]
    )
    return _frame(findings.to_dict("records")), summary


# --------------------------------------------------------------------- upstream reports


def _expand(items: Sequence) -> list[int]:
    """Steps of the reference file: ints, or ``"A-B/K"`` for every K-th step from A to B."""
    out = []
    for item in items:
        if isinstance(item, int):
            out.append(item)
            continue
        match = _RANGE.match(str(item))
        if match is None:
            raise ValueError(f"Bad step range {item!r} in the reference file; write A-B/K.")
        a, b, k = (int(x) for x in match.groups())
        out.extend(range(a, b + 1, k))
    return out


def upstream_reports() -> pd.DataFrame:
    """Every step branch the upstream reports name, with what it serves.

    Returns
    -------
    pandas.DataFrame
        ``model, step, same_as, file, url``: one row per affected (model, step), from the
        reference file's ``upstream_checkpoint_reports`` (steps as the reports list them).
        The models it does not list (every other Pythia model, and the ``-deduped`` ones)
        are not reported affected.
    """
    entry = reference.entry("upstream_checkpoint_reports")
    rows = []
    for model, report in entry["values"].items():
        for group in report["groups"]:
            for step in _expand(group["steps"]):
                rows.append(
                    {
                        "model": model,
                        "step": step,
                        "same_as": group["same_as"],
                        "file": report["file"],
                        "url": report["url"],
                    }
                )
    out = pd.DataFrame(rows, columns=["model", "step", "same_as", "file", "url"])
    out.attrs["source"] = entry["source"]
    return out


def _model_name(model: str) -> str:
    return str(model).removeprefix("EleutherAI/")


def affected_mask(table: pd.DataFrame) -> pd.Series:
    """True for the rows of ``table`` at a checkpoint an upstream report names."""
    reports = upstream_reports()
    keys = set(zip(reports["model"], reports["step"], strict=True))
    names = table["model"].map(_model_name)
    return pd.Series(
        [(m, int(s)) in keys for m, s in zip(names, table["step"], strict=True)],
        index=table.index,
    )


def pythia_2p8b_anomaly(table: pd.DataFrame, architectures: pd.DataFrame | None = None) -> dict:
    """What the claims ledger needs about the pythia-2.8b report (issue 205) on this table.

    Returns
    -------
    dict
        ``testable`` (the table holds pythia-2.8b), ``finding`` (one sentence), ``source``
        (the report's URL), ``reported`` (the steps it names), ``steps`` (the table's
        pythia-2.8b steps), ``affected`` (those among the reported), ``findings`` (the data
        checks on the table's pythia-2.8b rows).
    """
    model = "pythia-2.8b"
    reports = upstream_reports()
    reported = sorted(reports.loc[reports["model"] == model, "step"])
    url = reports.loc[reports["model"] == model, "url"].iloc[0]
    rows = table[table["model"].map(_model_name) == model]
    out = {"source": url, "reported": reported, "model": model}
    if rows.empty:
        held = ", ".join(sorted(map(str, table["model"].unique())))
        return {
            **out,
            "testable": False,
            "steps": [],
            "affected": [],
            "findings": _frame([]),
            "finding": f"not testable on this data: the table holds no {model} "
            f"(it holds {held}); the upstream report names {len(reported)} of its step "
            "branches",
        }
    steps = sorted(int(s) for s in rows["step"].unique())
    affected = sorted(set(steps) & set(reported))
    findings, _ = run_checks(rows, architectures)
    counts = findings["check"].value_counts()
    said = "; ".join(f"{n} {check}" for check, n in counts.items()) or "nothing"
    return {
        **out,
        "testable": True,
        "steps": steps,
        "affected": affected,
        "findings": findings,
        "finding": f"{len(affected)} of the table's {len(steps)} {model} checkpoints are among "
        f"the {len(reported)} step branches the upstream report names as serving other "
        f"steps' weights; the statistics checks find: {said}",
    }
