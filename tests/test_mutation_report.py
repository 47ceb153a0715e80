"""The mutation report's committed record of each module's last full score."""

from __future__ import annotations

import csv
import hashlib
import importlib.util

from massive_activations.book import repo_root

ROOT = repo_root()


def _report_module():
    spec = importlib.util.spec_from_file_location(
        "mutation_report", ROOT / "benchmarks" / "mutation_report.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(module, mutants, unchecked, score):
    return {"module": module, "mutants": mutants, "killed": mutants - unchecked, "timeout": 0,
            "survived": 0, "no tests": 0, "unchecked": unchecked, "other": 0, "equivalent": 0,
            "score %": score, "wall s": 12, "rerun wall s": None}  # fmt: skip


def test_record_scores_keeps_each_modules_last_full_run(tmp_path):
    report = _report_module()
    paths = report.modules()
    names = [report.module_name(p) for p in paths]
    first, second, third = names[:3]
    scores = tmp_path / "scores.csv"
    # a first report: only the first module fully checked; the second half-way
    out = report.record_scores([_row(first, 10, 0, 100.0), _row(second, 8, 3, None)], scores,
                               today="2026-12-01")  # fmt: skip
    assert [r["module"] for r in out] == [first]
    digest = hashlib.sha256((ROOT / paths[0]).read_bytes()).hexdigest()[:12]
    assert out[0]["source_sha256"] == digest == report.source_sha256(paths[0])
    # a later report on a fresh cache: the third module and the second finished; the first
    # is not in it (its cache was lost) and keeps its recorded row
    rows = [_row(first, 0, 0, None), _row(second, 8, 0, 87.5), _row(third, 5, 0, 80.0)]
    out = report.record_scores(rows, scores, today="2026-12-02")
    with open(scores, newline="") as f:
        saved = list(csv.DictReader(f))
    assert [r["module"] for r in saved] == [first, second, third]  # modules() order
    assert list(saved[0]) == list(report.RECORD_FIELDS)
    by = {r["module"]: r for r in saved}
    assert (by[first]["score %"], by[first]["recorded"]) == ("100.0", "2026-12-01")
    assert (by[second]["score %"], by[second]["recorded"]) == ("87.5", "2026-12-02")
    assert by[third]["rerun wall s"] == "" and by[third]["mutants"] == "5"
    assert not list(tmp_path.glob("*.tmp"))
