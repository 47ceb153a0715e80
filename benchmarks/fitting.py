"""Benchmark: fitting every layer of a suite with uncertainty, ours vs ``curve_fit``.

The data: a synthetic suite (:mod:`massive_activations.fitting.synthetic`) of 6 models with
2, 4, 6, 8, 6 and 4 layers (30 layers), on a Pythia-shaped schedule of 53 checkpoints
(``scaled_schedule(143000, 40)``), 10 sequences, CV 6 % per sequence (paper Table 2) and an
early dip around step 16.  The first and last layer of each model peak early, the others
rise logarithmically, with parameters varied per layer.

Timed, each on the same trajectories and bootstrap draws:

* ``ours``: :func:`massive_activations.fitting.fit_all.fit_all` with Eq. 9 and the ``"ours"``
  procedure: multi-start, lmfit with the analytic Jacobian, covariance, and a bootstrap of
  ``--n-bootstrap`` replicates refitted together with the batched solver (no profile);
* ``curve_fit``: the same work with :func:`scipy.optimize.curve_fit` (``method="trf"``,
  numerical ``2-point`` Jacobian): each layer's problem (normalised data, weights, bounds)
  refitted from our estimate, then the same bootstrap draws as ``--n-bootstrap``
  ``curve_fit`` calls, each warm-started at the estimate, as a script built on
  ``curve_fit`` would do it (the multi-start is not repeated: its cost is in ``ours`` only);
* for information, the paper's procedure as one ``curve_fit`` call per layer (its initial
  guess and its one bound ``lam >= 0``): how many layers it gives an estimate for;
* ``full``: ``fit_all``'s defaults, as the notebook runs it: four hypotheses x two
  procedures, the bootstrap for Eq. 9 and Eq. 14, profile intervals for Eq. 9, with
  ``--jobs`` processes.

``--data data/default/activations.parquet`` runs the same on the default suite's measurements;
``--paper-data FOLDER`` on the paper's release (a folder laid out as it), imported into a
temporary data folder as the suite ``paper`` (the import and a second, idempotent call are
timed too); ``--paper-standin`` on a paper-sized synthetic stand-in of the release
(:mod:`massive_activations.datasets.standin`: 9 models, 188 layers, 26-55 checkpoints).

Usage::

    nice -n 10 python benchmarks/fitting.py            # ~1-2 min on 2 cores
    python benchmarks/fitting.py --n-bootstrap 50 --skip-full
    nice -n 10 python benchmarks/fitting.py --paper-standin --sample-every 6 --baseline-every 4
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from massive_activations import curve
from massive_activations.fitting.fit_all import _layer_seed, fit_all, fit_layer
from massive_activations.fitting.hypotheses import get_hypothesis
from massive_activations.fitting.synthetic import simulate_table
from massive_activations.measurement.trajectories import layer_sequences
from massive_activations.schedule import scaled_schedule

LAYERS = {"m14": 2, "m70": 4, "m160": 6, "m410": 8, "m1b": 6, "m1.4b": 4}


def suite_table(seed: int = 0):
    """The benchmark's synthetic activation table (6 models, 30 layers)."""
    rng = np.random.default_rng(seed)
    curves = {}
    for model, n in LAYERS.items():
        curves[model] = {}
        for layer in range(1, n + 1):
            if layer in (1, n):  # early peak, t_peak ~ 10k-40k steps
                p = {
                    "A": rng.uniform(100, 300),
                    "lam": rng.uniform(0.2, 0.4),
                    "gam": rng.uniform(0.6e-4, 2e-4),
                    "t0": rng.uniform(1.1, 1.5),
                    "K": 5.0,
                }
            else:  # logarithmic rise, still rising at the last step
                p = {
                    "A": rng.uniform(200, 600),
                    "lam": rng.uniform(0.05, 0.12),
                    "gam": rng.uniform(1.5e-5, 3e-5),
                    "t0": rng.uniform(1.2, 2.0),
                    "K": 5.0,
                }
            curves[model][layer] = p
    return simulate_table(curves, scaled_schedule(143_000, 40), cv=0.06, dip=0.2, seed=seed)


def paper_table(folder: str | Path | None, seed: int = 0):
    """The suite ``paper`` imported from ``folder`` (None: a paper-sized stand-in written
    now), in a temporary data folder; prints the stand-in's shape and the import times."""
    from massive_activations.datasets.activations import suite_activations
    from massive_activations.datasets.standin import write_standin

    tmp = Path(tempfile.mkdtemp(prefix="paper-bench-"))
    if folder is None:
        t = time.perf_counter()
        standin = write_standin(tmp / "standin", seed=seed)
        print(f"stand-in written in {time.perf_counter() - t:.1f} s:\n{standin.summary()}")
        folder = standin.folder
    t = time.perf_counter()
    table = suite_activations("paper", tmp / "data", paper_data=folder)
    t_import = time.perf_counter() - t
    t = time.perf_counter()
    again = suite_activations("paper", tmp / "data", paper_data=folder)
    t_again = time.perf_counter() - t
    print(
        f"import into {tmp / 'data' / 'paper'}: {t_import:.1f} s for {len(table):,} rows; "
        f"second call (imports nothing, checks the sha256 of every file): {t_again:.2f} s, "
        f"same table: {again.equals(table)}; synthetic: {table.attrs.get('synthetic')}\n"
    )
    return table


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished child processes."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _eq9_nan(u, A, lam, gam, t0, K):
    """Eq. 9 as a script would call it: NaN outside the domain instead of an error."""
    try:
        return curve.eq9(u, A, lam, gam, t0, K)
    except ValueError:
        return np.full(np.shape(u), np.nan)


def curve_fit_layer(fit, seqs, n_bootstrap: int, seed: int) -> tuple[int, int]:
    """``fit``'s problem refitted with curve_fit, then bootstrapped with curve_fit.

    The same normalised data, weights, bounds and start (``fit``'s estimate) as ours, with
    a numerical Jacobian and one call per replicate.  Returns (fits, failures).
    """
    p = fit.problem
    h = p.hypothesis
    lo_b, hi_b = p.hypothesis.bounds("ours")
    p0 = np.clip(p.p_norm(fit.theta), lo_b, hi_b)
    sigma = 1.0 / p.wn  # our residuals are wn * (f - z)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, seqs.sequences.size, size=(n_bootstrap, seqs.sequences.size))
    pos = np.searchsorted(seqs.steps, p.steps)
    Y = seqs.series("ratio", resample=draws)[:, pos]
    failures = 0
    for zb in [p.z, *((Y - p.y_min) / p.y_scale)]:
        try:
            curve_fit(h.func, p.u, zb, p0=p0, sigma=sigma, bounds=(lo_b, hi_b), method="trf")
        except (RuntimeError, ValueError):
            failures += 1
    return 1 + n_bootstrap, failures


def paper_guess_curve_fit(seqs) -> bool:
    """The paper's procedure as a curve_fit call; True if it returned an estimate."""
    steps = seqs.steps.astype(float)
    y = seqs.series("ratio")
    u, z = steps / steps.max(), (y - y.min()) / np.ptp(y)
    p0 = get_hypothesis("eq9").paper_guess(u, z)
    bounds = ([-np.inf, 0.0, -np.inf, -np.inf, -np.inf], np.inf)
    try:
        curve_fit(_eq9_nan, u, z, p0=p0, bounds=bounds, method="trf")
    except (RuntimeError, ValueError):
        return False
    return True


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-bootstrap", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=2, help="processes for the 'full' run")
    ap.add_argument("--skip-full", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--baseline-every",
        type=int,
        default=3,
        help="run the curve_fit baseline on every n-th layer of the sample (it is slow)",
    )
    ap.add_argument(
        "--sample-every",
        type=int,
        default=1,
        help="compare ours, curve_fit and the paper's procedure on every n-th layer only "
        "(the full fit_all always fits every layer)",
    )
    source = ap.add_mutually_exclusive_group()
    source.add_argument(
        "--data",
        help="an activation table (e.g. data/default/activations.parquet) instead of the "
        "synthetic suite",
    )
    source.add_argument("--paper-data", help="a folder laid out as the paper's release")
    source.add_argument(
        "--paper-standin",
        action="store_true",
        help="a paper-sized synthetic stand-in of the release (9 models, 188 layers)",
    )
    args = ap.parse_args(argv)
    if args.data:
        from massive_activations.measurement.store import read_table

        table = read_table(args.data)
    elif args.paper_data or args.paper_standin:
        table = paper_table(args.paper_data, args.seed)
    else:
        table = suite_table(args.seed)
    pairs = table[["model", "layer"]].drop_duplicates().itertuples(index=False)
    layers = [layer_sequences(table, m, la) for m, la in pairs]
    per_model = table.groupby("model")["step"].nunique()
    n_steps = (
        f"{per_model.min()}-{per_model.max()}"
        if per_model.min() != per_model.max()
        else per_model.min()
    )
    print(
        f"suite: {table['model'].nunique()} models, {len(layers)} layers, {n_steps} checkpoints "
        "per model, "
        f"{table['sequence'].nunique()} sequences; bootstrap n={args.n_bootstrap}"
    )

    sample = layers[:: args.sample_every]
    fits, times, cpus = [], [], []
    cpu = time.process_time()
    for seqs in sample:
        t = time.perf_counter()
        c = time.process_time()
        fits.append(
            fit_layer(
                seqs,
                hypotheses=("eq9",),
                procedures=("ours",),
                profile=(),
                n_bootstrap=args.n_bootstrap,
                seed=args.seed,
            )[0]
        )
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    t_ours = sum(times)
    cpu_ours = time.process_time() - cpu
    boot_ok = sum(f.bootstrap.n_ok for f in fits if f.bootstrap is not None)

    subset = list(range(0, len(sample), args.baseline_every))
    t = time.perf_counter()
    cpu = time.process_time()
    done = failed = 0
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", OptimizeWarning)
        for i in subset:
            seed = _layer_seed(args.seed, sample[i].model, sample[i].layer)
            n, f = curve_fit_layer(fits[i], sample[i], args.n_bootstrap, seed)
            done, failed = done + n, failed + f
        t_cf = time.perf_counter() - t
        cpu_cf = time.process_time() - cpu
        t = time.perf_counter()
        paper_ok = sum(paper_guess_curve_fit(seqs) for seqs in sample)
        t_paper = time.perf_counter() - t
    t_ours_subset = sum(times[i] for i in subset)
    cpu_ours_subset = sum(cpus[i] for i in subset)

    n_fits = len(sample) * (1 + args.n_bootstrap)
    if len(sample) < len(layers):
        print(f"\ncompared on every {args.sample_every}th layer: {len(sample)} of {len(layers)}")
    statuses = {s: sum(f.status == s for f in fits) for s in dict.fromkeys(f.status for f in fits)}
    print(f"\n{'method':<12}{'seconds':>10}{'fits':>8}{'ms/fit':>9}{'ratio':>8}  notes")
    print(
        f"{'ours':<12}{t_ours:>10.2f}{n_fits:>8}{1e3 * t_ours / n_fits:>9.2f}{1.0:>8.1f}  "
        f"fit status {statuses}; bootstrap replicates converged {boot_ok}/"
        f"{len(sample) * args.n_bootstrap}; CPU {cpu_ours:.1f} s"
    )
    print(
        f"{'curve_fit':<12}{t_cf:>10.2f}{done:>8}{1e3 * t_cf / done:>9.2f}"
        f"{t_cf / t_ours_subset:>8.1f}  on {len(subset)} of the layers (ours took "
        f"{t_ours_subset:.2f} s on them; ratio = curve_fit / ours there); curve_fit raised "
        f"(no estimate) {failed} times; CPU {cpu_cf:.1f} s vs ours {cpu_ours_subset:.1f} s "
        f"there (CPU ratio {cpu_cf / cpu_ours_subset:.1f})"
    )
    print(
        f"\nthe paper's procedure as curve_fit (its initial guess, lam >= 0, no bootstrap): "
        f"{t_paper:.2f} s, an estimate for {paper_ok}/{len(sample)} layers"
    )
    if args.skip_full:
        return
    t = time.perf_counter()
    cpu = _cpu_seconds()
    full = fit_all(
        table, n_bootstrap=args.n_bootstrap, seed=args.seed, n_jobs=args.jobs, progress=False
    )
    t_full = time.perf_counter() - t
    cpu_full = _cpu_seconds() - cpu
    print(
        f"\nfull fit_all (4 hypotheses x 2 procedures, bootstrap Eq. 9/14, profile Eq. 9, "
        f"{args.jobs} processes): {t_full:.1f} s for {len(full)} fits "
        f"({len(layers)} layers); status {full['status'].value_counts().to_dict()}"
    )
    print(
        f"CPU time of the full run (this process and its workers): {cpu_full:.1f} s, i.e. "
        f"about {cpu_full / args.jobs:.0f} s of wall time on {args.jobs} otherwise idle cores "
        f"(the wall time above also counts waiting for a busy machine)"
    )


if __name__ == "__main__":
    main()
