"""How far a regeneration of a suite drifts from its committed data.

Training is deterministic for a given machine, torch build and thread count; across thread
counts (and machines) floating-point reductions round differently, and training amplifies
the difference. :func:`measure_drift` retrains one model of a suite from scratch in a
temporary cache, up to a step, once per thread count, and compares the activation statistics
measured at every checkpoint on the way with the committed ones.

Command line::

    python -m massive_activations.suite.drift --suite default --model L2-d128-h4 --until 1000

writes ``data/<suite>/drift.json`` (read by the data card) and records it in the manifest.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from massive_activations import provenance, registry
from massive_activations.measurement.store import ActivationStore
from massive_activations.suite.configs import get_suite
from massive_activations.suite.corpus import load_corpus
from massive_activations.suite.make_data import suite_tokens
from massive_activations.suite.train import train_model

__all__ = ["compare_measurements", "main", "measure_drift", "retrain_prefix"]

_KEYS = ["model", "variant", "step", "layer", "sequence"]


class _Stop(Exception):
    """Raised from the training callback to end a run at a chosen step."""


def retrain_prefix(
    suite: str,
    model: str,
    until: int,
    *,
    threads: int,
    cache: Path | str | None = None,
    device: str = "cpu",
) -> pd.DataFrame:
    """Train ``model`` of ``suite`` from scratch up to step ``until``; return its measurements.

    Corpus and tokens come from ``cache`` (built if missing); the run itself goes to a
    temporary folder that is deleted afterwards, so the cached run is never touched.
    """
    s = get_suite(suite)
    specs = {m.name: m for m in s.models}
    if model not in specs:
        raise ValueError(f"Suite {suite!r} has no model {model!r}; it has {sorted(specs)}.")
    spec = specs[model]
    if not 0 < until <= spec.steps:
        raise ValueError(f"until must be in 1..{spec.steps} for {model}; got {until}.")
    corpus = load_corpus(s.recipe.corpus, cache=cache, progress=False)
    data, eval_ids = suite_tokens(s, corpus, cache)

    def stop(_name: str, step: int) -> None:
        if step >= until:
            raise _Stop

    with tempfile.TemporaryDirectory(prefix="drift-") as tmp:
        try:
            train_model(spec, s, data, eval_ids, cache=tmp, device=device, threads=threads,
                        progress=True, on_step=stop)  # fmt: skip
        except _Stop:
            pass
        runs = list((Path(tmp) / "runs").iterdir())
        parts = ActivationStore(runs[0], "measure").read_parts()
    return parts.assign(model=model)


def compare_measurements(committed: pd.DataFrame, rerun: pd.DataFrame) -> dict:
    """Differences between two measurements of the same checkpoints.

    Returns the number of rows compared, the share of rows whose top-1 and median are
    bit-identical, and the median and maximum relative difference of top-1, median and
    top-1/median ratio, overall and at the last common step.
    """
    a = committed.set_index(_KEYS)[["top1", "median"]]
    b = rerun.set_index(_KEYS)[["top1", "median"]]
    both = a.add_suffix("_a").join(b.add_suffix("_b"), how="inner")
    if both.empty:
        raise ValueError("The two measurements share no (model, step, layer, sequence) row.")

    def rel(x, y):
        return np.abs(x - y) / np.maximum(np.abs(x), 1e-30)

    r_a = both["top1_a"] / both["median_a"]
    r_b = both["top1_b"] / both["median_b"]
    d = pd.DataFrame(
        {
            "top1": rel(both["top1_a"], both["top1_b"]),
            "median": rel(both["median_a"], both["median_b"]),
            "ratio": rel(r_a, r_b),
        }
    )
    identical = (both["top1_a"] == both["top1_b"]) & (both["median_a"] == both["median_b"])
    last = both.index.get_level_values("step").max()
    at_last = d[d.index.get_level_values("step") == last]
    out = {
        "rows": len(both),
        "steps": sorted(int(x) for x in set(both.index.get_level_values("step"))),
        "identical_share": float(identical.mean()),
    }
    for col in d.columns:
        out[f"{col}_rel_median"] = float(d[col].median())
        out[f"{col}_rel_max"] = float(d[col].max())
        out[f"{col}_rel_max_last_step"] = float(at_last[col].max())
    return out


def measure_drift(
    suite: str = "default",
    model: str = "L2-d128-h4",
    until: int = 1000,
    *,
    threads: Sequence[int] = (2, 1),
    data_dir: Path | str = "data",
    cache: Path | str | None = None,
    device: str = "cpu",
) -> dict:
    """Retrain a prefix of one model per thread count and compare it with the committed data.

    Writes ``<data_dir>/<suite>/drift.json`` atomically and records it in the folder's
    manifest. Returns what it wrote.
    """
    folder = Path(data_dir) / suite
    table = folder / "activations.parquet"
    if not table.is_file():
        raise FileNotFoundError(f"No committed data at {table}: run `make data` first.")
    manifest = json.loads((folder / "manifest.json").read_text())
    committed = pd.read_parquet(table)
    committed = committed[(committed["model"] == model) & (committed["step"] <= until)]
    if committed.empty:
        raise ValueError(f"{table} has no rows of model {model!r} up to step {until}.")
    result = {
        "suite": suite,
        "model": model,
        "until_step": until,
        "committed_threads": manifest.get("run_threads", {}).get(
            model, manifest.get("torch_threads")
        ),
        "runs": [],
    }
    for n in threads:
        started = time.perf_counter()
        rerun = retrain_prefix(suite, model, until, threads=n, cache=cache, device=device)
        row = {"threads": int(n), "seconds": round(time.perf_counter() - started, 1)}
        row.update(compare_measurements(committed, rerun))
        result["runs"].append(row)
    path = registry.path("drift.json", data_dir, suite)
    text = json.dumps(result, indent=1, sort_keys=True) + "\n"
    registry.atomic_write(path, lambda tmp: tmp.write_text(text))
    provenance.update_manifest(folder, path)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit status (2 with a message on bad input)."""
    parser = argparse.ArgumentParser(
        prog="python -m massive_activations.suite.drift",
        description="Retrain a prefix of one suite model and compare with the committed data.",
    )
    parser.add_argument("--suite", default="default")
    parser.add_argument("--model", default="L2-d128-h4")
    parser.add_argument("--until", type=int, default=1000, help="last training step")
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--cache", help="cache with the corpus and tokens (default .cache)")
    args = parser.parse_args(argv)
    try:
        result = measure_drift(
            args.suite, args.model, args.until, threads=args.threads,
            data_dir=args.data_dir, cache=args.cache,
        )  # fmt: skip
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
