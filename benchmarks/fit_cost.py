"""Benchmark: where a suite fit's time goes, and what the two shortcuts of ``fit_all`` save.

Two measurements, each side by side in one run on the same data:

1. **One evaluation** of a fit's residual and Jacobian, as the solvers call them at every
   step: :class:`~massive_activations.fitting.problem.Problem`'s path (the domain checked
   once with ``Hypothesis.valid_point``, then the unchecked curve kernels
   ``curve.eq9_unchecked`` / ``eq9_jacobian_unchecked``) against the checked path
   (``Hypothesis.valid`` on the whole step array, then ``curve.eq9`` / ``eq9_jacobian``,
   which check every parameter again).  Both give the same numbers bit for bit
   (``tests/test_curve.py``, ``tests/test_fitting.py``).
2. **Profiles**: :func:`~massive_activations.fitting.fit_all.fit_all` as chapter 4 runs it
   (profiles of Eq. 9 only on confirmed early peaks, where they can change what is
   identified) against ``profile_all=True`` (every converged Eq. 9 fit profiled), on every
   ``--every``-th layer of a paper-sized synthetic stand-in of the release
   (:mod:`massive_activations.datasets.standin`), in this process (no workers), with the
   identification columns compared.

Usage::

    python benchmarks/fit_cost.py              # ~3-4 min on an idle core
    python benchmarks/fit_cost.py --every 10 --n-eval 20000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from massive_activations.datasets.activations import suite_activations
from massive_activations.datasets.standin import write_standin
from massive_activations.fitting.fit_all import fit_all
from massive_activations.fitting.problem import WALL
from massive_activations.fitting.procedures import fit_series
from massive_activations.measurement.trajectories import layer_sequences


def _checked_residual(problem, theta):
    p = problem.p_norm(theta)
    h = problem.hypothesis
    if not h.valid(p[None], problem.u)[0]:
        return np.full(problem.n, WALL)
    return problem.wn * (h.func(problem.u, *p) - problem.z)


def _checked_jacobian(problem, theta):
    p = problem.p_norm(theta)
    h = problem.hypothesis
    if not h.valid(p[None], problem.u)[0]:
        return np.zeros((problem.n, p.size))
    return problem.wn[:, None] * h.jac(problem.u, *p) * problem._dp(theta)


def _per_call(f, problem, thetas) -> float:
    t = time.perf_counter()
    for th in thetas:
        f(problem, th)
    return (time.perf_counter() - t) / len(thetas)


def evaluation_cost(table: pd.DataFrame, n_eval: int, seed: int) -> None:
    model, layer = table[["model", "layer"]].iloc[0]
    seqs = layer_sequences(table, model, layer)
    print(f"1. one evaluation ({model} layer {layer}, {seqs.steps.size} steps, {n_eval} calls)")
    print(f"{'hypothesis':<12}{'what':<10}{'checked us':>12}{'ours us':>10}{'ratio':>8}")
    rng = np.random.default_rng(seed)
    for hyp in ("eq9", "eq14"):
        fit = fit_series(seqs.steps, seqs.series("ratio"), hypothesis=hyp, sem=seqs.sem("ratio"))
        problem = fit.problem
        thetas = fit.theta + rng.normal(0, 0.01, (n_eval, fit.theta.size))
        for what, checked, ours in (
            ("residual", _checked_residual, type(problem).residual),
            ("jacobian", _checked_jacobian, type(problem).jacobian),
        ):
            for th in thetas[:50]:  # the same numbers, checked here too
                assert np.array_equal(checked(problem, th), ours(problem, th), equal_nan=True)
            a, b = _per_call(checked, problem, thetas), _per_call(ours, problem, thetas)
            print(f"{hyp:<12}{what:<10}{1e6 * a:>12.1f}{1e6 * b:>10.1f}{a / b:>8.2f}")


def profile_cost(table: pd.DataFrame, every: int, n_bootstrap: int, seed: int) -> None:
    pairs = table[["model", "layer"]].drop_duplicates().sort_values(["model", "layer"])
    keep = pairs.iloc[::every]
    sub = table.merge(keep, on=["model", "layer"])
    print(
        f"\n2. fit_all on {len(keep)} of {len(pairs)} layers (bootstrap {n_bootstrap}, 1 process)"
    )
    out = {}
    for label, profile_all in (("profile every fit", True), ("confirmed only", False)):
        t, c = time.perf_counter(), time.process_time()
        fits = fit_all(sub, n_bootstrap=n_bootstrap, seed=seed, profile_all=profile_all,
                       progress=False)  # fmt: skip
        out[label] = (time.perf_counter() - t, time.process_time() - c, fits)
    (w_all, c_all, f_all), (w_c, c_c, f_c) = out.values()
    ident = [c for c in f_all.columns if c.endswith("_identified")]
    same = all(f_all[c].equals(f_c[c]) for c in ident)
    e9 = f_c[f_c["hypothesis"] == "eq9"]
    n_prof = int(
        e9["lam_prof_lo"].notna().sum() + (e9["lam_prof_lo"].isna() & e9["K_prof_lo"].notna()).sum()
    )
    print(f"{'':<20}{'wall s':>9}{'CPU s':>9}")
    print(f"{'profile every fit':<20}{w_all:>9.1f}{c_all:>9.1f}")
    print(f"{'confirmed only':<20}{w_c:>9.1f}{c_c:>9.1f}")
    print(
        f"ratio (every / confirmed): wall {w_all / w_c:.2f}, CPU {c_all / c_c:.2f}; Eq. 9 fits "
        f"profiled {n_prof} of {len(e9)}; identification columns identical: {same}"
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=int, default=12, help="fit every n-th layer in part 2")
    ap.add_argument("--n-eval", type=int, default=5000)
    ap.add_argument("--n-bootstrap", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="fit-cost-"))
    standin = write_standin(tmp / "standin", seed=args.seed)
    table = suite_activations("paper", tmp / "data", paper_data=standin.folder)
    evaluation_cost(table, args.n_eval, args.seed)
    profile_cost(table, args.every, args.n_bootstrap, args.seed)


if __name__ == "__main__":
    main()
