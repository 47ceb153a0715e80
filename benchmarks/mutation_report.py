"""Mutation testing of the numeric core with mutmut 3, module by module, and its report.

``make mutation`` runs ``run`` then ``report``.  The modules are ``only_mutate`` of
``[tool.mutmut]`` in ``pyproject.toml``, in that order (most important first).

``run``
    For each module, ``mutmut run`` on the mutants not yet checked (the first time, on the
    module's glob ``massive_activations.curve.*``), so a killed run continues where it
    stopped; the wall time of each call is added to ``mutants/mutation-times.json``.  A module
    whose source changed since its mutants were made (the sha256 of each module's source at
    its last call is in ``mutants/mutation-sources.json``) gets them made anew, then checked.
``report``
    Reads mutmut's results (``mutants/<module>.meta``) and writes
    ``mutants/mutation-report.md`` and ``.csv``: per module, the mutants generated, killed,
    survived, timed out, without tests, not yet checked, equivalent (listed with a reason in
    ``benchmarks/mutation_equivalents.yml``) and the score, killed (or timed out) over the
    checked non-equivalent mutants.  ``--list-survivors`` prints the survivors' names.
    Every module whose mutants have all been checked also gets its row in the committed
    record ``benchmarks/results/mutation-scores.csv`` (when the mutants were made from its
    present source; with the sha256 of the module's source
    and the date), which keeps each module's last full score when ``mutants/`` is gone; the
    report says for each recorded row whether the source has changed since.

Usage::

    nice -n 5 python benchmarks/mutation_report.py run --max-children 2 [MODULE ...]
    python benchmarks/mutation_report.py report [--list-survivors]

``MODULE`` is a path from ``only_mutate`` or its dotted name (``massive_activations.curve``).
Run from the repository root, without ``PYTHONPATH`` pointing at ``src`` (mutmut puts
``mutants/src`` first on the path and checks, with a forced failure, that the tests import
the mutated copy).
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "mutants"
TIMES = MUTANTS / "mutation-times.json"
SOURCES = MUTANTS / "mutation-sources.json"
EQUIVALENTS = ROOT / "benchmarks" / "mutation_equivalents.yml"
REPORT = MUTANTS / "mutation-report"
SCORES = ROOT / "benchmarks" / "results" / "mutation-scores.csv"
RECORD_FIELDS = (
    "module", "source_sha256", "mutants", "killed", "timeout", "survived", "no tests",
    "equivalent", "score %", "wall s", "rerun wall s", "recorded",
)  # fmt: skip
#: mutmut's exit codes (mutmut/stats.py, ``status_by_exit_code``) grouped into columns.
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", None: "unchecked"}
STATUS.update(dict.fromkeys((36, -24, 24, 152, 255), "timeout"))
COLUMNS = ("killed", "timeout", "survived", "no tests", "unchecked", "other")

__all__ = [
    "equivalents",
    "module_name",
    "modules",
    "mutated_from",
    "plan",
    "record_scores",
    "run",
    "summary",
]


def modules() -> list[str]:
    """The mutated files, ``only_mutate`` of ``[tool.mutmut]``, in their order."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    return list(config["only_mutate"])


def module_name(path: str) -> str:
    """``src/massive_activations/curve.py`` -> ``massive_activations.curve``."""
    return ".".join(Path(path).with_suffix("").parts[1:])


def _meta(path: str) -> dict:
    file = MUTANTS / (path + ".meta")
    return json.loads(file.read_text()) if file.exists() else {}


def equivalents() -> dict[str, str]:
    """Equivalent mutants (their mutmut name) and why, from ``mutation_equivalents.yml``."""
    data = yaml.safe_load(EQUIVALENTS.read_text()) if EQUIVALENTS.exists() else None
    data = data or {}
    bad = [k for k, v in data.items() if not (isinstance(v, str) and v.strip())]
    if bad:
        raise ValueError(f"{EQUIVALENTS}: give each equivalent mutant a reason; missing for {bad}.")
    return data


def _times() -> dict[str, float]:
    return json.loads(TIMES.read_text()) if TIMES.exists() else {}


def mutated_from() -> dict[str, str]:
    """The source sha256 (:func:`source_sha256`) each module's cached mutants were made from."""
    return json.loads(SOURCES.read_text()) if SOURCES.exists() else {}


def _note_source(name: str, digest: str) -> None:
    sources = mutated_from() | {name: digest}
    MUTANTS.mkdir(exist_ok=True)
    tmp = SOURCES.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(sources, indent=2))
    os.replace(tmp, SOURCES)


def plan(
    name: str,
    codes: dict | None,
    stale: bool,
    rerun_survivors: bool = False,
    only: str = "*",
    eq: dict | None = None,
) -> list[str]:
    """The mutant names (or globs) of one ``mutmut run`` call on a module; ``[]``: nothing to do.

    ``codes`` are mutmut's results (``None``: no mutants yet: the module's glob); ``stale``
    says the source changed since they were made.  mutmut makes a changed function's mutants
    anew at the start of any call, so a stale module with nothing to run still gets one call,
    on one of its old mutants, to make them (then :func:`run` looks again).
    """
    if codes is None:
        return [f"{name}.*"]
    if rerun_survivors:
        eq = equivalents() if eq is None else eq
        todo = [k for k, v in codes.items() if v in (0, 5, 33) and k not in eq]
    else:
        todo = [k for k, v in codes.items() if v is None]
    todo = [k for k in todo if fnmatch.fnmatch(k, only)]
    if not todo and stale and codes:
        todo = [next(iter(codes))]
    return todo


def run(
    selected: list[str], max_children: int, rerun_survivors: bool = False, only: str = "*"
) -> None:
    """``mutmut run`` module by module on the unchecked mutants, timing each call.

    With ``rerun_survivors``, on the surviving (or test-less) non-equivalent mutants instead:
    after new tests, this gives the score after them.  ``only`` (a glob on mutant names, e.g.
    ``*x__collect__*``) restricts either to some functions.  A module whose source changed
    since its mutants were made (:func:`mutated_from`) gets them made anew first, and then
    the run on them.
    """
    mutmut = Path(sys.executable).with_name("mutmut")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0", OMP_NUM_THREADS="1")
    for path in selected:
        name = module_name(path)
        while True:
            codes = _meta(path).get("exit_code_by_key")
            digest = source_sha256(path)
            stale = codes is not None and mutated_from().get(name) != digest
            todo = plan(name, codes, stale, rerun_survivors, only)
            if not todo:
                print(f"{name}: {'no survivors' if rerun_survivors else 'every mutant checked'}")
                break
            what = "making its mutants anew, then" if stale else "mutmut run on"
            print(f"{name}: {what} {todo[0] if codes is None else len(todo)}", flush=True)
            meta = MUTANTS / (path + ".meta")
            before = meta.stat().st_mtime_ns if meta.exists() else None
            start = time.perf_counter()
            cmd = [str(mutmut), "run", "--max-children", str(max_children), *todo]
            done = subprocess.run(cmd, cwd=ROOT, env=env, check=False)
            elapsed = time.perf_counter() - start
            times = _times()
            key = f"{name} (survivors rerun)" if rerun_survivors else name
            times[key] = times.get(key, 0.0) + elapsed
            MUTANTS.mkdir(exist_ok=True)
            TIMES.write_text(json.dumps(times, indent=2))
            print(f"{name}: {elapsed:.0f} s (exit code {done.returncode})", flush=True)
            remade = meta.exists() and meta.stat().st_mtime_ns != before
            if done.returncode != 0 and not (stale and remade):
                raise SystemExit(done.returncode)
            _note_source(name, digest)  # a stale call may name a mutant that is gone: fine
            if not stale:
                break


def summary() -> list[dict]:
    """One row per module: counts by status, equivalents, score and wall time."""
    eq = equivalents()
    times = _times()
    known = set()
    rows = []
    for path in modules():
        name = module_name(path)
        codes = _meta(path).get("exit_code_by_key", {})
        known |= set(codes)
        row = {"module": name, "mutants": len(codes), **dict.fromkeys(COLUMNS, 0)}
        row["equivalent"] = 0
        for key, code in codes.items():
            status = STATUS.get(code, "other")
            if key in eq:
                if status != "survived":
                    print(f"warning: {key} is listed as equivalent but {status}", file=sys.stderr)
                else:
                    row["equivalent"] += 1
                    status = None
            if status:
                row[status] += 1
        scored = row["killed"] + row["timeout"] + row["survived"] + row["no tests"] + row["other"]
        row["score %"] = (
            round(100 * (row["killed"] + row["timeout"]) / scored, 1) if scored else None
        )
        # whether the cached mutants were made from the module's present source
        row["current"] = bool(codes) and mutated_from().get(name) == source_sha256(path)
        row["wall s"] = round(times[name]) if name in times else None
        rerun = times.get(f"{name} (survivors rerun)")
        row["rerun wall s"] = None if rerun is None else round(rerun)
        rows.append(row)
    stale = sorted(k for k in eq if k not in known)
    if stale and known:
        print(f"warning: equivalents not among the mutants (renumbered?): {stale}", file=sys.stderr)
    return rows


def source_sha256(path: str) -> str:
    """The first 12 hex digits of the sha256 of a mutated module's source."""
    import hashlib

    return hashlib.sha256((ROOT / path).read_bytes()).hexdigest()[:12]


def record_scores(rows: list[dict], scores: Path = SCORES, today: str | None = None) -> list[dict]:
    """Update the committed record with every fully checked module of ``rows``; return it.

    A module enters (or replaces its row in) ``scores`` only when it has mutants, none is
    unchecked and they were made from its present source (``current``); the other modules
    keep their recorded rows.  Rows follow ``modules()``.
    """
    import datetime

    today = today or datetime.date.today().isoformat()
    old = {}
    if scores.exists():
        with open(scores, newline="") as f:
            old = {r["module"]: r for r in csv.DictReader(f)}
    paths = {module_name(p): p for p in modules()}
    for row in rows:
        complete = row["mutants"] and not row["unchecked"] and row.get("current", True)
        if complete and row["module"] in paths:
            new = {k: row.get(k) for k in RECORD_FIELDS if k in row}
            new["source_sha256"] = source_sha256(paths[row["module"]])
            new["recorded"] = today
            old[row["module"]] = new
    out = [old[m] for m in paths if m in old]
    scores.parent.mkdir(parents=True, exist_ok=True)
    tmp = scores.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(RECORD_FIELDS))
        writer.writeheader()
        writer.writerows({k: ("" if r.get(k) is None else r.get(k)) for k in RECORD_FIELDS}
                         for r in out)  # fmt: skip
    os.replace(tmp, scores)
    return out


def report(list_survivors: bool = False) -> None:
    """Write ``mutants/mutation-report.md`` and ``.csv``, update the committed record and
    print both."""
    rows = summary()
    header = list(rows[0])
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *(
            "| " + " | ".join("" if r[h] is None else str(r[h]) for h in header) + " |"
            for r in rows
        ),
    ]
    note = (
        "score: killed or timed out over checked non-equivalent mutants (survived and no-test "
        "mutants count against it); unchecked: not run yet. Equivalents: "
        "benchmarks/mutation_equivalents.yml."
    )
    MUTANTS.mkdir(exist_ok=True)
    Path(f"{REPORT}.md").write_text("# Mutation testing\n\n" + "\n".join(lines) + f"\n\n{note}\n")
    with open(f"{REPORT}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    print("\n".join(lines))
    print(f"\n{note}\nWritten: {REPORT}.md, {REPORT}.csv")
    recorded = record_scores(rows)
    paths = {module_name(p): p for p in modules()}
    print(f"\nLast full score of each module ({SCORES.relative_to(ROOT)}):")
    for r in recorded:
        current = r["source_sha256"] == source_sha256(paths[r["module"]])
        print(f"  {r['module']}: {r['score %']} % of {r['mutants']} mutants, {r['recorded']}"
              + ("" if current else " (the source has changed since: rerun it)"))  # fmt: skip
    if list_survivors:
        eq = equivalents()
        for path in modules():
            for key, code in _meta(path).get("exit_code_by_key", {}).items():
                if STATUS.get(code) in ("survived", "no tests") and key not in eq:
                    print(key, STATUS[code])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="mutmut run, module by module, resumable")
    p_run.add_argument("modules", nargs="*", help="paths or dotted names (default: all)")
    p_run.add_argument("--max-children", type=int, default=2)
    p_run.add_argument(
        "--rerun-survivors", action="store_true", help="rerun the survivors (after new tests)"
    )
    p_run.add_argument("--only", default="*", help="glob on mutant names, e.g. '*x__collect__*'")
    p_report = sub.add_parser("report", help="write mutants/mutation-report.md and .csv")
    p_report.add_argument("--list-survivors", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "run":
        every = modules()
        chosen = every
        if args.modules:
            by_name = {module_name(p): p for p in every} | {p: p for p in every}
            unknown = [m for m in args.modules if m not in by_name]
            if unknown:
                raise SystemExit(f"Unknown modules {unknown}: choose from {sorted(by_name)}.")
            chosen = [by_name[m] for m in args.modules]
        run(chosen, args.max_children, args.rerun_survivors, args.only)
    else:
        report(args.list_survivors)


if __name__ == "__main__":
    main()
