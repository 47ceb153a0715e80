"""Checks of a table without weights, and the upstream reports on Pythia's step branches."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from massive_activations import audit
from massive_activations.measurement import integrity
from massive_activations.measurement.measure import measure_model
from massive_activations.measurement.noise import gaussian_ratio
from massive_activations.schedule import pythia_steps


def _table(ratios: dict, median: float = 1.0, n_seq: int = 3) -> pd.DataFrame:
    """An activation table with the given ``{(model, step, layer): ratio}`` (top1 = ratio x
    median, equal top2/top3 below it), ``n_seq`` identical sequences."""
    rows = []
    for (model, step, layer), ratio in ratios.items():
        for seq in range(n_seq):
            top1 = ratio * median
            rows.append(
                {"model": model, "step": step, "layer": layer, "sequence": seq, "top1": top1,
                 "top2": top1 * 0.9, "top3": top1 * 0.8, "median": median, "dtype": "float32",
                 "variant": "raw", "status": "ok"}
            )  # fmt: skip
    return pd.DataFrame(rows)


STEPS = list(range(0, 3000, 100))


def _smooth(model="m", layers=(1, 2, 3), steps=STEPS) -> dict:
    """A log-rising trajectory: 5 (1 + log1p(t / 200)) x (1 + layer / 10)."""
    return {
        (model, t, layer): 5 * (1 + np.log1p(t / 200)) * (1 + layer / 10)
        for t in steps
        for layer in layers
    }


def test_gaussian_ratio_moved_down_and_reexported():
    assert audit.gaussian_ratio is gaussian_ratio
    assert gaussian_ratio(512) == pytest.approx(np.sqrt(2 * np.log(512)) / 0.6745, rel=0.15)


def test_a_clean_trajectory_gives_no_finding():
    table = _table(_smooth())
    archs = pd.DataFrame({"model": ["m"], "seq_len": [16], "d_model": [32]})
    findings, summary = integrity.run_checks(table, archs)
    assert findings.empty
    assert summary["findings"].tolist() == [0, 0, 0]
    assert summary["models checked"].tolist() == [1, 1, 1]


def test_identical_statistics_are_grouped():
    ratios = _smooth()
    for layer in (1, 2, 3):  # step 500 and step 1700 serve the final weights
        ratios[("m", 500, layer)] = ratios[("m", 1700, layer)] = ratios[("m", 2900, layer)]
    found = integrity.identical_statistics(_table(ratios))
    assert found.steps.tolist() == [(500, 1700, 2900)]
    assert found.statistic.iloc[0] == "top1, top2, top3, median (float32, raw)"
    near = _table(_smooth())
    near.loc[near.step == 600, "top1"] = near.loc[near.step == 500, "top1"].to_numpy() * (1 + 1e-9)
    near.loc[near.step == 600, ["top2", "top3"]] = near.loc[
        near.step == 500, ["top2", "top3"]
    ].to_numpy()
    assert integrity.identical_statistics(near).empty  # not bit-identical
    assert integrity.identical_statistics(near, rtol=1e-6).steps.tolist() == [(500, 600)]


def test_trained_at_init_against_the_noise_baseline(tiny_neox, tiny_ids):
    base = gaussian_ratio(16 * 32)
    archs = pd.DataFrame({"model": ["ok", "swapped"], "seq_len": 16, "d_model": 32})
    table = _table(
        {("ok", 0, 1): 1.2 * base, ("ok", 100, 1): 30.0, ("swapped", 0, 1): 40 * base,
         ("swapped", 100, 1): 45 * base, ("unknown", 0, 1): 1000.0}
    )  # fmt: skip
    found = integrity.trained_at_init(table, archs)
    assert found.model.tolist() == ["swapped"] and found.steps.tolist() == [(0,)]
    assert "40 x the ratio of Gaussian noise" in found.detail.iloc[0]
    assert integrity.trained_at_init(table, archs, max_step=100).model.tolist() == [
        "swapped",
        "swapped",
    ]
    # a real untrained model: a tiny random GPT-NeoX on 3 x 16 tokens, width 32
    measured = measure_model(tiny_neox, tiny_ids).assign(model="tiny", step=0, dtype="float32")
    tiny = pd.DataFrame({"model": ["tiny"], "seq_len": [16], "d_model": [32]})
    assert integrity.trained_at_init(measured, tiny).empty


def test_a_swapped_checkpoint_is_a_spike_and_a_switch_is_a_jump():
    ratios = _smooth()
    for layer in (1, 2):  # step 1200 serves the final checkpoint at two layers' worth
        ratios[("m", 1200, layer)] = 4 * ratios[("m", 2900, layer)]
    for t in STEPS:  # from step 2000 on, layer 3 is another run's
        if t >= 2000:
            ratios[("m", t, 3)] *= 2.5
    found = integrity.unexplained_jumps(_table(ratios), statistics=("ratio",))
    assert found.check.tolist() == ["unexplained spike", "unexplained jump"]
    assert found.steps.tolist() == [(1200,), (1900, 2000)]
    assert "layers 1, 2 of 3" in found.detail.iloc[0]
    assert re.search(r"layers 3 of 3 \(x2\.5[0-9]\)", found.detail.iloc[1])
    assert found.statistic.tolist() == ["ratio (float32, raw)"] * 2


def test_upstream_reports_match_their_stated_counts():
    reports = integrity.upstream_reports()
    steps = set(pythia_steps())
    assert set(reports.step) <= steps
    by_model = reports.groupby("model").step.apply(sorted)
    assert len(by_model["pythia-2.8b"]) == 86 and len(set(by_model["pythia-2.8b"])) == 86
    assert by_model["pythia-12b"] == [50000, 58000]
    from massive_activations import reference

    entry = reference.entry("upstream_checkpoint_reports")["values"]
    for model, report in entry.items():
        counts = reports[reports.model == model].groupby("same_as", sort=False).size()
        assert counts.tolist() == [g["count"] for g in report["groups"]]
    # the 68 unique 2.8b branches are the non-round steps 66000-142000, as the report says
    unique = sorted(steps - set(by_model["pythia-2.8b"]))
    assert len(unique) == entry["pythia-2.8b"]["unique_count"] == 68
    assert unique[0] == 66000 and unique[-1] == 142000 and 100000 not in unique
    # 12b: all other branches but the final one (which shares main's first shard) are unique
    assert len(steps) - 2 - 1 == entry["pythia-12b"]["unique_count"]
    assert reports.url.str.match(r"https://github.com/EleutherAI/pythia/issues/20[56]$").all()


def test_affected_rows_and_the_2p8b_ledger_answer(tiny_neox, tiny_ids):
    table = _table(_smooth("pythia-2.8b", steps=[0, 512, 1000, 54000, 66000, 143000]))
    table = pd.concat([table, _table(_smooth("pythia-2.8b-deduped", steps=[0, 1000]))])
    mask = integrity.affected_mask(table)
    assert sorted(table[mask].step.unique()) == [0, 512, 1000, 54000, 143000]
    assert (table[mask].model == "pythia-2.8b").all()  # the deduped model is not reported
    answer = integrity.pythia_2p8b_anomaly(table)
    assert answer["testable"] and answer["affected"] == [0, 512, 1000, 54000, 143000]
    assert answer["source"].endswith("/issues/205")
    assert "5 of the table's 6 pythia-2.8b checkpoints" in answer["finding"]
    other = measure_model(tiny_neox, tiny_ids).assign(model="tiny", step=0, dtype="float32")
    answer = integrity.pythia_2p8b_anomaly(other)
    assert not answer["testable"] and answer["finding"].startswith("not testable on this data")
    assert len(answer["reported"]) == 86


def test_import_runs_the_checks(tmp_path, capsys):
    """The paper's release format: a step whose file equals another's is named on import."""
    from massive_activations.measurement.extract import main

    stats = tmp_path / "pythia_70m" / "stats"
    stats.mkdir(parents=True)

    def literal(scale: float) -> str:  # 2 sequences x [top1, top2, top3, median] x 3 layers
        per_seq = [[scale * (i + 3) for i in range(3)], [scale * (i + 2) for i in range(3)],
                   [scale * (i + 1) for i in range(3)], [0.5] * 3]  # fmt: skip
        return repr([per_seq, per_seq])

    for step, scale in [(0, 1.0), (1000, 2.0), (2000, 40.0), (3000, 40.0), (4000, 3.0)]:
        (stats / f"exp2_pythia_70m_step{step}").write_text(literal(scale))
    assert main(["import", "--suite", "paper", "--data-dir", str(tmp_path / "d"), str(stats)]) == 0
    out = capsys.readouterr().out
    assert "check: identical statistics: pythia-70m steps 2000, 3000" in out
    (stats / "exp2_pythia_70m_step3000").write_text(literal(39.0))
    assert main(["import", "--suite", "other", "--data-dir", str(tmp_path / "d"), str(stats)]) == 0
    assert "identical statistics" not in capsys.readouterr().out
