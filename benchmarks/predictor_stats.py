"""How long the predictor's derived tables take with their defaults, on a suite-sized input.

The input is :func:`massive_activations.prediction.synthetic.architecture_fits` with the
default suite's size: 14 models of 2, 4 and 8 layers (3, 8 and 3 of them: 62 layers), the
architecture-driven targets plus per-layer noise.  For one combination of fits and
transforms (``fits_used="all"``, ``transforms="ours"``: every layer used) it times, with the
defaults of :func:`massive_activations.prediction.tables.predictor_tables`:

* ``evaluate`` per protocol (every regressor and the mean baseline, ``--n-permutations``
  block permutations each), and the null summary;
* ``repeated_splits`` (``--n-repeats`` splits);
* ``power_table`` (``--n-replicates`` synthetic replicates, each with its own null);
* ``noise_ceiling``;

and prints the time per target, the projection to all five targets, and to the four
combinations that :func:`~massive_activations.prediction.tables.write_predictor_tables`
computes by default (the ``identified`` combinations have fewer layers, so this is an upper
bound).  The same computation with ``n_permutations=0`` is timed beside the evaluate step:
the difference is the cost of the chance levels.

Usage::

    nice -n 10 python benchmarks/predictor_stats.py --targets gam            # defaults, ~30 CPU min
    python benchmarks/predictor_stats.py --n-permutations 20 --n-replicates 4   # then scale up
"""

from __future__ import annotations

import argparse
import time

from massive_activations import prediction
from massive_activations.prediction.synthetic import architecture_fits

LAYER_COUNTS = [2] * 3 + [4] * 8 + [8] * 3


def timed(fn, *args, **kwargs):
    """``fn``'s output and its CPU seconds in this process (``--n-jobs 1``: all the work;
    on a shared machine the CPU time is what an idle core would take) and wall seconds."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, (time.process_time() - c, time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", nargs="+", default=["gam"])
    parser.add_argument("--n-permutations", type=int, default=200)
    parser.add_argument("--n-repeats", type=int, default=20)
    parser.add_argument("--n-replicates", type=int, default=20)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--noise", type=float, default=0.5)
    parser.add_argument(
        "--protocols", nargs="+", default=list(prediction.PROTOCOLS), help="protocols to time"
    )
    parser.add_argument(
        "--skip", nargs="*", default=[], help="steps to skip: evaluate splits power"
    )
    args = parser.parse_args()
    fits, archs = architecture_fits(14, seed=0, noise=args.noise, layer_counts=LAYER_COUNTS)
    common = dict(
        architectures=archs, targets=args.targets, identified_only=False, transforms="ours"
    )
    print(
        f"input: {fits.model.nunique()} models, {len(fits)} layers; targets {args.targets}; "
        f"n_jobs {args.n_jobs}"
    )
    times = {}
    if "evaluate" not in args.skip:
        for protocol in args.protocols:
            for n_perm in (0, args.n_permutations):
                res, dt = timed(
                    prediction.evaluate,
                    fits,
                    protocols=(protocol,),
                    n_permutations=n_perm,
                    n_jobs=args.n_jobs,
                    progress=False,
                    **common,
                )
                print(f"evaluate {protocol:12s} {n_perm:4d} permutations: {fmt(dt)}")
            times[f"evaluate {protocol}"] = dt
            null, dt = timed(prediction.null_summary, res)
            cols = ["target", "protocol", "best_model_type", "best_r2", "null_max_q95", "p_value"]
            print(null[cols].round(3).to_string(index=False))
    if "splits" not in args.skip:
        splits, dt = timed(
            prediction.repeated_splits,
            fits,
            n_repeats=args.n_repeats,
            n_jobs=args.n_jobs,
            progress=False,
            **common,
        )
        times["repeated_splits"] = dt
        print(f"repeated_splits ({args.n_repeats}): {fmt(dt)}")
        best = splits[splits.model_type == "best"]
        print(best[["target", "r2_mean", "r2_sd", "r2_q05", "r2_median", "r2_q95"]].round(3))
    if "power" not in args.skip:
        power, dt = timed(
            prediction.power_table,
            fits,
            n_replicates=args.n_replicates,
            n_permutations=args.n_permutations,
            n_jobs=args.n_jobs,
            progress=False,
            **common,
        )
        times["power"] = dt
        print(f"power_table ({args.n_replicates} replicates): {fmt(dt)}")
        print(power[["target", "power", "power_lo", "best_r2_median", "null_q95_median"]])
    _, dt = timed(prediction.noise_ceiling, fits, architectures=archs)
    times["noise_ceiling"] = dt
    total = sum(v[0] for v in times.values())
    per_target = total / len(args.targets)
    print("\nstep                     CPU s    wall s")
    for k, (cpu, wall) in times.items():
        print(f"{k:24s} {cpu:8.1f} {wall:9.1f}")
    print(f"{'total':24s} {total:8.1f}   ({per_target:.0f} CPU s per target)")
    print(
        f"projection (CPU time / 2 cores): 5 targets {5 * per_target / 120:.0f} min; x4 "
        f"combinations (fits_used x transforms) {20 * per_target / 120:.0f} min (an upper bound)"
    )


def fmt(dt: tuple[float, float]) -> str:
    return f"{dt[0]:8.1f} CPU s {dt[1]:8.1f} wall s"


if __name__ == "__main__":
    main()
