"""Coverage of nominal 95 % intervals on a broad family of trajectories with known truth.

The family (:func:`massive_activations.fitting.synthetic.draw_family`): Eq. 9 curves of both
regimes (early peak: t_peak at 5-60 % of training; logarithmic rise: t_peak 1.5-10 times the
last step), on Pythia's 143k-step schedule and on the default suite's 8k-step one, with 10
sequences of multiplicative noise (CV 3-10 %) and a shared per-checkpoint component
(0-8 %) autocorrelated over checkpoints (lag-1 correlation 0-0.9), which a bootstrap over
sequences cannot see.  Each data set is fitted with Eq. 9 and the ``"ours"`` procedure and
assessed as ``fit_all`` does (profiles of K and lam, ``--n-bootstrap`` replicates); then, per
parameter and ``t_peak``, each interval method is checked against the truth:

* ``covariance``: ``p +- t se`` from the scaled covariance (independent residuals);
* ``ar1``: the AR(1) sandwich, on the solver's scale (:func:`~massive_activations.fitting.
  intervals.hac_covariance`);
* ``sequences``: the expanded-percentile bootstrap over sequences, failed replicates open;
* ``block``: the moving-block residual bootstrap over checkpoints;
* ``reported``: what ``fits.parquet`` reports as ``<name>_lo/_hi`` (the union of ``ar1`` and
  ``sequences``).

Printed: the regime calls against the truth, for Eq. 9's call (the ``t_peak`` interval),
the model-free call (drop from the peak and end slope) and the call the package stands
behind, where both agree (:func:`~massive_activations.fitting.regimes.agreed_regime`; an
early peak called a logarithmic rise, or the reverse, is a "cross-call"); coverage over every converged fit with a finite interval ("all"); and over
the parameters the package flags as identified ("identified"), which is the population the
goal (90-98 %) is about, with the 95 % Wilson interval of each share; ``n`` is the number of
intervals behind each share.

Usage::

    python benchmarks/coverage.py                 # 200 data sets per regime (~20 min, 2 cores)
    python benchmarks/coverage.py --n 40 --n-bootstrap 100
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from massive_activations.audit.statistics import wilson_interval
from massive_activations.fitting import intervals
from massive_activations.fitting.procedures import fit_series
from massive_activations.fitting.regimes import agreed_regime
from massive_activations.fitting.synthetic import draw_family
from massive_activations.fitting.uncertainty import assess, is_identified, t_peak_identified
from massive_activations.measurement.trajectories import LayerSequences

METHODS = ("covariance", "ar1", "sequences", "block", "reported")


def one(args) -> list[dict]:
    """Fit one data set of the family; one row per (parameter, method)."""
    i, case, n_boot = args
    top = case.top1
    seqs = LayerSequences(
        "m", 1, case.steps.astype(np.int64), np.arange(top.shape[1]), top, top, top,
        np.ones_like(top),
    )  # fmt: skip
    fit = fit_series(case.steps, seqs.series(), procedure="ours", sem=seqs.sem())
    head = {"case": i, "regime": case.regime, "schedule": case.schedule, "status": fit.status,
            "phi": case.phi, "shared_cv": case.shared_cv, "cv": case.cv}  # fmt: skip
    if fit.status == "failed":
        return [head]
    assess(fit, seqs, profile=("K", "lam"), n_bootstrap=n_boot, seed=i)
    mf = fit.model_free.get("regime", "undetermined")
    agreed = agreed_regime(fit.regime, fit.model_free, fit.intervals["t_peak"])
    head.update(eq9_call=fit.regime, mf_call=mf, agreed_call=agreed)
    cov = fit.covariance_ci()
    cov["t_peak"] = fit.t_peak_delta
    ar1 = intervals.theta_intervals(fit, intervals.hac_covariance(fit))
    block = intervals.block_bootstrap(fit, n=n_boot, seed=i)
    boot = fit.bootstrap
    rows = []
    for name, true in {**case.params, "t_peak": case.t_peak}.items():
        j = None if name == "t_peak" else fit.names.index(name)
        found = {"covariance": cov[name], "ar1": ar1[name], "reported": fit.intervals[name]}
        if boot is not None:
            sample = boot.t_peak if j is None else boot.params[:, j]
            found["sequences"] = intervals.open_percentile_ci(
                sample, boot.n - boot.n_ok, 0.95, boot.n_sequences
            )
        if block is not None:
            found["block"] = block.ci(j)
        if name == "t_peak":
            identified = bool(t_peak_identified(fit))
        else:
            identified = fit.status == "ok" and is_identified(fit.flags.get(name, ("no fit",)))
        for method, (lo, hi) in found.items():
            finite = bool(np.isfinite(lo) and np.isfinite(hi))
            rows.append(
                {**head, "name": name, "method": method, "finite": finite, "lo": lo, "hi": hi,
                 "true": true, "identified": identified,
                 "covered": finite and bool(lo <= true <= hi)}
            )  # fmt: skip
    return rows


def calls(rows: pd.DataFrame) -> pd.DataFrame:
    """Per true regime, how each call (Eq. 9, model-free, agreed) named the data sets."""
    cases = rows.drop_duplicates("case").dropna(subset=["eq9_call"])
    parts = {
        col.removesuffix("_call"): cases.groupby("regime")[col].value_counts().unstack(fill_value=0)
        for col in ("eq9_call", "mf_call", "agreed_call")
    }
    return pd.concat(parts, axis=1).fillna(0).astype(int)


def cross_calls(rows: pd.DataFrame) -> dict:
    """Early peaks called logarithmic rises plus the reverse, per call."""
    cases = rows.drop_duplicates("case").dropna(subset=["eq9_call"])
    other = {"early_peak": "log_rise", "log_rise": "early_peak"}
    wrong = cases["regime"].map(other)
    return {
        col.removesuffix("_call"): int((cases[col] == wrong).sum())
        for col in ("eq9_call", "mf_call", "agreed_call")
    }


def summary(rows: pd.DataFrame, population: str) -> pd.DataFrame:
    """Coverage (and counts) per regime, parameter and method, over finite intervals."""
    sel = rows[rows["finite"] & rows["status"].isin(["ok", "at_bound", "not_converged"])]
    if population == "identified":
        sel = sel[sel["identified"]]
    g = sel.groupby(["regime", "name", "method"])["covered"]
    out = pd.DataFrame({"coverage": g.mean(), "n": g.size()}).unstack("method")
    return out.reindex(columns=[(c, m) for c in ("coverage", "n") for m in METHODS])


def reported_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Coverage of the reported interval of identified parameters, with Wilson intervals."""
    sel = rows[rows["finite"] & rows["identified"] & (rows["method"] == "reported")]
    out = []
    for (regime, name), g in sel.groupby(["regime", "name"]):
        k, n = int(g["covered"].sum()), len(g)
        lo, hi = wilson_interval(k, n)
        out.append({"regime": regime, "name": name, "covered": k, "n": n,
                    "coverage": k / n, "wilson_lo": lo, "wilson_hi": hi})  # fmt: skip
    k, n = int(sel["covered"].sum()), len(sel)
    if n:
        lo, hi = wilson_interval(k, n)
        out.append({"regime": "all", "name": "all", "covered": k, "n": n, "coverage": k / n,
                    "wilson_lo": lo, "wilson_hi": hi})  # fmt: skip
    return pd.DataFrame(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="data sets per regime")
    ap.add_argument("--n-bootstrap", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="also write every row to this parquet file")
    args = ap.parse_args(argv)
    cases = draw_family(args.n, seed=args.seed)
    t = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        work = [(i, c, args.n_bootstrap) for i, c in enumerate(cases)]
        parts = list(tqdm(pool.map(one, work, chunksize=2), total=len(work), desc="data sets"))
        rows = pd.DataFrame([r for part in parts for r in part])
    seconds = time.perf_counter() - t
    if args.out:
        rows.to_parquet(args.out, index=False)
    status = rows.groupby("case")[["regime", "status"]].first().value_counts().unstack(fill_value=0)
    print(f"{len(cases)} data sets ({args.n} per regime) in {seconds:.0f} s on {args.jobs} jobs")
    print("\nfit status per regime:\n" + status.to_string())
    pd.set_option("display.width", 200)
    print("\nregime calls per true regime (Eq. 9's, model-free, agreed):")
    print(calls(rows).to_string())
    print(f"cross-calls (early peak <-> log rise): {cross_calls(rows)}")
    for population in ("all", "identified"):
        table = summary(rows, population)
        print(f"\ncoverage of nominal 95 % intervals, {population} (n: finite intervals):")
        print(table.round(3).to_string())
    print("\nreported intervals of identified parameters (goal 90-98 %), 95 % Wilson intervals:")
    print(reported_summary(rows).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
