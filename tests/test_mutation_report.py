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


def test_record_scores_skips_a_module_whose_mutants_predate_its_source(tmp_path):
    report = _report_module()
    first, second = (report.module_name(p) for p in report.modules()[:2])
    scores = tmp_path / "scores.csv"
    report.record_scores([_row(first, 10, 0, 100.0)], scores, today="2026-12-01")
    old_mutants = _row(first, 12, 0, 91.7) | {"current": False}
    out = report.record_scores([old_mutants, _row(second, 4, 0, 75.0)], scores)
    assert [(r["module"], str(r["score %"])) for r in out] == [(first, "100.0"), (second, "75.0")]


def test_plan_runs_what_is_unchecked_or_surviving_and_remakes_stale_mutants():
    plan = _report_module().plan
    codes = {"m.x_f__mutmut_1": 1, "m.x_f__mutmut_2": None, "m.x_g__mutmut_1": 0,
             "m.x_g__mutmut_2": 0, "m.x_g__mutmut_3": 33}  # fmt: skip
    assert plan("m", None, stale=False) == ["m.*"]  # the first run: every mutant
    assert plan("m", codes, stale=False) == ["m.x_f__mutmut_2"]
    assert plan("m", codes, stale=True) == ["m.x_f__mutmut_2"]  # made anew on the way
    eq = {"m.x_g__mutmut_1": "why"}
    survivors = plan("m", codes, stale=False, rerun_survivors=True, eq=eq)
    assert survivors == ["m.x_g__mutmut_2", "m.x_g__mutmut_3"]
    assert plan("m", codes, False, True, only="*x_g__mutmut_3", eq=eq) == ["m.x_g__mutmut_3"]
    checked = dict.fromkeys(codes, 1)
    assert plan("m", checked, stale=False) == []
    # every mutant checked, but the source changed since: one call makes them anew
    assert plan("m", checked, stale=True) == ["m.x_f__mutmut_1"]
    assert plan("m", {}, stale=True) == []
