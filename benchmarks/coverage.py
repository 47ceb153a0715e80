"""Coverage of the nominal 95 % intervals over simulated data sets, per method and regime.

For each regime of :data:`massive_activations.fitting.synthetic.EXAMPLE_CURVES` (early peak,
logarithmic rise), ``--n`` data sets are simulated on 53 checkpoints
(``scaled_schedule(143000, 40)``) with 10 sequences at ``--cv`` (6 %, paper Table 2),
fitted with Eq. 9 and the ``"ours"`` procedure, and each parameter's (and ``t_peak``'s)
95 % intervals are checked against the truth:

* ``covariance``: ``p +- t(0.975, n - k) * stderr`` (scaled covariance);
* ``profile``: :func:`lmfit.conf_interval` for ``K`` and ``lam`` (fits that converged);
* ``bootstrap``: expanded percentile intervals (what the package reports) from
  ``--n-bootstrap`` resamplings of the sequences, and ``percentile``: the plain ones;
* ``delta`` (``t_peak`` only): the delta-method interval.

A data set without an interval (fit not converged, singular covariance, bootstrap mostly
failed) counts as a miss; ``n_int`` says how many had one.  Also printed: the share of
fits by status, of parameters flagged as not identified, and how the layer was classified.

Usage::

    nice -n 10 python benchmarks/coverage.py             # 200 data sets, ~3-5 min, 2 cores
    python benchmarks/coverage.py --n 50 --n-bootstrap 100
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

from massive_activations import curve
from massive_activations.fitting.procedures import fit_series
from massive_activations.fitting.synthetic import EXAMPLE_CURVES, simulate_layer
from massive_activations.fitting.uncertainty import assess, is_identified, percentile_ci
from massive_activations.measurement.trajectories import LayerSequences
from massive_activations.schedule import scaled_schedule

STEPS = np.array(scaled_schedule(143_000, 40), float)


def one(args) -> dict:
    """Fit one simulated data set; return which intervals cover the truth."""
    regime, seed, cv, n_boot = args
    truth = EXAMPLE_CURVES[regime]
    tp = float(curve.t_peak(truth["lam"], truth["gam"], truth["t0"]))
    top, _ = simulate_layer(STEPS, truth, cv=cv, rng=seed)
    seqs = LayerSequences(
        "m", 1, STEPS.astype(np.int64), np.arange(10), top, top, top, np.ones_like(top)
    )
    fit = fit_series(STEPS, seqs.series(), procedure="ours", sem=seqs.sem())
    assess(fit, seqs, n_bootstrap=n_boot, seed=seed)
    out = {"status": fit.status, "regime": fit.regime}
    values = dict(truth, t_peak=tp)
    cov = fit.covariance_ci() if fit.params else {}
    boot = fit.bootstrap
    use_boot = boot is not None and boot.n_ok >= 0.5 * boot.n
    for name, true in values.items():
        intervals = {}
        if name in cov:
            intervals["covariance"] = cov[name]
        if name in fit.profile:
            intervals["profile"] = fit.profile[name][:2]
        if use_boot:
            j = fit.names.index(name) if name in fit.names else None
            sample = boot.t_peak if j is None else boot.params[:, j]
            intervals["bootstrap"] = boot.ci(j)
            intervals["percentile"] = percentile_ci(sample)
        if name == "t_peak":
            intervals["delta"] = fit.t_peak_delta
        for method, (lo, hi) in intervals.items():
            if np.isfinite(lo) or np.isfinite(hi):
                out[(method, name)] = bool(lo <= true <= hi)
        out[("flagged", name)] = not is_identified(fit.flags.get(name, ("no fit",)))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="data sets per regime")
    ap.add_argument("--n-bootstrap", type=int, default=200)
    ap.add_argument("--cv", type=float, default=0.06)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--regimes", nargs="+", default=list(EXAMPLE_CURVES))
    args = ap.parse_args(argv)
    for regime in args.regimes:
        t = time.perf_counter()
        jobs = [(regime, seed, args.cv, args.n_bootstrap) for seed in range(args.n)]
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(one, jobs, chunksize=4))
        rows = []
        for method in ("covariance", "profile", "bootstrap", "percentile", "delta"):
            for name in [*EXAMPLE_CURVES[regime], "t_peak"]:
                got = [r[(method, name)] for r in results if (method, name) in r]
                if got:
                    rows.append(
                        {
                            "method": method,
                            "parameter": name,
                            "n_int": len(got),
                            "coverage": sum(got) / args.n,
                        }
                    )
        table = pd.DataFrame(rows).pivot(index="parameter", columns="method", values="coverage")
        n_int = pd.DataFrame(rows).pivot(index="parameter", columns="method", values="n_int")
        flagged = {n: np.mean([r[("flagged", n)] for r in results]) for n in EXAMPLE_CURVES[regime]}
        print(
            f"\n== {regime}: {args.n} data sets, cv {args.cv:.0%}, bootstrap n={args.n_bootstrap}"
            f" ({time.perf_counter() - t:.0f} s)"
        )
        print("coverage of nominal 95 % intervals (misses include data sets without one):")
        print(table.round(3).to_string())
        print("data sets with an interval:")
        print(n_int.fillna(0).astype(int).to_string())
        print("fit status:", dict(Counter(r["status"] for r in results)))
        print("classified as:", dict(Counter(r["regime"] for r in results)))
        print(
            "share not identified (is_identified):",
            {k: round(float(v), 3) for k, v in flagged.items()},
        )


if __name__ == "__main__":
    main()
