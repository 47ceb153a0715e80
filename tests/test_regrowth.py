"""The regrowth stage: schedule, locating and ablating a planted writer, the resumable loop,
the data folder and its manifest, the fits and the ledger rows (tiny models, seconds)."""

from __future__ import annotations

import copy
import itertools
import json

import numpy as np
import pandas as pd
import pytest
import torch

from massive_activations import provenance
from massive_activations.regrowth.ablate import ablate, adam_rate_limit
from massive_activations.regrowth.config import CONFIGS, get_config, log_schedule
from massive_activations.regrowth.data import read_regrowth
from massive_activations.regrowth.findings import (
    LEDGER_FIELDS,
    ledger_rows,
    regained_fraction,
    regrowth_findings,
)
from massive_activations.regrowth.fits import (
    best_hypotheses,
    explorer_tables,
    fit_regrowth,
    regrowth_trajectories,
)
from massive_activations.regrowth.locate import locate, submodule_writes, writer_of, writer_units
from massive_activations.regrowth.models import ByteTokenizer, plant_outlier, tiny_llama
from massive_activations.regrowth.run import build_regrowth
from massive_activations.regrowth.text import prepare_text
from massive_activations.regrowth.train import read_run, run_dir, train_run
from massive_activations.suite.corpus import small_corpus
from massive_activations.suite.tokenizer import split_documents

# the planted writer of the tests (conftest's tiny Llama: 2 layers, width 32, vocab 128)
LAYER, UNIT, CHANNEL, TRIGGER, TRIGGER_CHANNEL = 1, 3, 9, 5, 4


@pytest.fixture
def planted(tiny_llama):
    model = plant_outlier(
        copy.deepcopy(tiny_llama),
        layer=LAYER,
        unit=UNIT,
        channel=CHANNEL,
        trigger_token=TRIGGER,
        trigger_channel=TRIGGER_CHANNEL,
    )
    ids = torch.randint(6, 128, (10, 24), generator=torch.Generator().manual_seed(1))
    ids[:, 0] = TRIGGER
    return model, ids


@pytest.fixture(scope="module")
def tiny_config():
    return get_config("smoke", steps=30, seq_len=32, batch_size=2, save_every=4)


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_config):
    """The tiny configuration's data folder, built once (both runs trained)."""
    root = tmp_path_factory.mktemp("regrowth")
    threads = torch.get_num_threads()
    try:
        folder = build_regrowth(
            tiny_config, root / "data", cache=root / "cache", threads=1, progress=False
        )
    finally:
        torch.set_num_threads(threads)
    return folder, root / "cache"


def test_schedule_is_log_spaced_with_step_0_and_at_least_15_points():
    for steps, n in [(1000, 24), (40, 15), (30, 15), (100_000, 15)]:
        s = log_schedule(steps, n)
        assert len(s) >= n and s[0] == 0 and s[-1] == steps
        assert all(b > a for a, b in itertools.pairwise(s))
        big = np.log([x for x in s if x >= 10])
        if big.size >= 3:  # past the integer rounding, the gaps in log(step) are equal
            gaps = np.diff(big)
            assert gaps.max() / gaps.min() < 1.35, s
    for config in CONFIGS.values():
        assert len(config.schedule()) >= 15 and config.schedule()[0] == 0
    with pytest.raises(ValueError, match="n_points"):
        log_schedule(10, 15)
    with pytest.raises(ValueError, match="n_points must be >= 15"):
        get_config("default", n_points=10)


def test_config_key_changes_with_what_changes_the_numbers():
    base = get_config("default")
    assert base.key() == get_config("default").key()
    assert base.key() != base.replace(lr=2e-3).key()
    assert base.key() == base.replace(save_every=7).key()  # only how often state is saved
    with pytest.raises(ValueError, match="Unknown regrowth settings"):
        base.replace(learning_rate=1.0)


def test_locate_finds_a_planted_writer(planted):
    model, ids = planted
    table = locate(model, ids)
    writer = writer_of(table)
    assert (writer["layer"], writer["submodule"]) == (LAYER, "mlp")
    assert (writer["position"], writer["channel"]) == (0, CHANNEL)
    assert table["writer"].sum() == 1
    # the tidy table: every layer's attention, MLP and output, and the written value is
    # what the planted unit puts there, read independently from a hidden-states pass
    assert list(table.groupby("layer").submodule.apply(list).iloc[0]) == [
        "attention",
        "mlp",
        "output",
    ]
    with torch.no_grad():
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
    h = hidden[LAYER][:, 0, CHANNEL] - hidden[LAYER - 1][:, 0, CHANNEL]  # attn + mlp writes
    row = table[(table.layer == LAYER) & (table.submodule == "output")].iloc[0]
    assert row["value"] == pytest.approx(float(hidden[LAYER][:, 0, CHANNEL].mean()), rel=1e-4)
    assert float(h.mean()) == pytest.approx(
        float(table[(table.layer == LAYER) & (table.submodule != "output")].value.sum()),
        rel=1e-4,
    )
    units = writer_units(model, ids, writer)
    assert int(units.iloc[0]["unit"]) == UNIT and units.iloc[0]["share"] > 0.99


def test_without_the_plant_the_element_is_ordinary(tiny_llama, planted):
    model, ids = planted
    peak = writer_of(locate(model, ids))["peak"]
    writes = submodule_writes(tiny_llama, ids, 0, CHANNEL)
    assert writes[writes.submodule == "output"].value.abs().max() < 0.01 * peak


def test_zero_row_ablation_removes_the_activation_and_nothing_else(planted):
    model, ids = planted
    writer = writer_of(locate(model, ids))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    info = ablate(model, writer, "zero_row")
    assert info["parameters"] == [f"model.layers.{LAYER - 1}.mlp.down_proj.weight"]
    after = model.state_dict()
    for name, value in after.items():
        if name == info["parameters"][0]:
            assert torch.all(value[CHANNEL] == 0)
            other = torch.ones(value.shape[0], dtype=torch.bool)
            other[CHANNEL] = False
            assert torch.equal(value[other], before[name][other])
        else:
            assert torch.equal(value, before[name]), name
    writes = submodule_writes(model, ids, 0, CHANNEL)
    old = writer["abs_value"]
    now = writes[(writes.layer == LAYER) & (writes.submodule == "output")].value.abs().mean()
    assert now < 0.01 * old


def test_reinit_ablation_is_seeded_and_touches_only_the_writer(planted):
    model, ids = planted
    writer = writer_of(locate(model, ids))
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    info = ablate(a, writer, "reinit", seed=3)
    ablate(b, writer, "reinit", seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert set(info["parameters"]) == {
        f"model.layers.{LAYER - 1}.mlp.{p}.weight" for p in ("gate_proj", "up_proj", "down_proj")
    }
    untouched = [n for n, _ in model.named_parameters() if n not in info["parameters"]]
    params = dict(a.named_parameters())
    original = dict(model.named_parameters())
    assert all(torch.equal(params[n], original[n]) for n in untouched)
    with pytest.raises(ValueError, match="Unknown ablation"):
        ablate(a, writer, "prune")


def test_adam_rate_limit_is_lr_times_the_summed_absolute_activations():
    units = pd.DataFrame({"abs_activation": [3.0, 1.0, 0.5]})
    assert adam_rate_limit(units, 1e-3) == pytest.approx(4.5e-3)


def test_text_keeps_evaluation_documents_out_of_training(tmp_path, tiny_config):
    text = prepare_text(tiny_config, tmp_path)
    _, heldout = split_documents(
        small_corpus().documents, tiny_config.heldout_fraction, tiny_config.split_seed
    )
    heldout_names = {d.name for d in heldout}
    assert len(set(text.eval_documents)) == tiny_config.n_eval
    assert set(text.eval_documents) <= heldout_names
    docs = {d.name: d for d in heldout}
    bytes_ = ByteTokenizer()
    for window, name in zip(text.eval_ids.tolist(), text.eval_documents, strict=True):
        assert window[0] == bytes_.eos_id  # prepend_eos in the smoke configuration
        assert window[1:] == bytes_.encode([docs[name].text])[0][: tiny_config.seq_len - 1]
    again = prepare_text(tiny_config, tmp_path)  # read back from the cache
    assert torch.equal(again.eval_ids, text.eval_ids)
    assert np.array_equal(again.train, text.train)


def test_training_resumes_bit_identically_after_a_kill(tmp_path, built, tiny_config):
    folder, cache = built
    record = json.loads((folder / "regrowth_config.json").read_text())
    text = prepare_text(tiny_config, cache)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the fixture built it

    def kill(run, step):
        if step == 10:
            raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            train_run(tiny_config, "control", lambda: tiny_llama(tiny_config), text,
                      record["writer"], cache=tmp_path, progress=False, on_step=kill)  # fmt: skip
        state = torch.load(run_dir(tiny_config, "control", tmp_path) / "state.pt",
                           weights_only=True)  # fmt: skip
        assert state["step"] < 10  # step 10 was not saved: the resumed run redoes it
        resumed = train_run(tiny_config, "control", lambda: tiny_llama(tiny_config), text,
                            record["writer"], cache=tmp_path, progress=False)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    activations, log = read_run(resumed)
    whole_activations, whole_log = read_run(run_dir(tiny_config, "control", cache))
    pd.testing.assert_frame_equal(log, whole_log, check_exact=True)
    pd.testing.assert_frame_equal(activations, whole_activations, check_exact=True)
    assert (log.weights_sha256 != "").sum() == len(tiny_config.schedule())
    assert not (resumed / "state.pt").exists()


def test_data_folder_matches_its_manifest(built):
    folder, _ = built
    assert provenance.verify_manifest(folder) == []
    data = read_regrowth(folder)
    config = data.config
    assert set(data.activations.run) == {"control", "ablated"}
    assert sorted(data.activations.step.unique()) == config.schedule()
    assert data.writer["layer"] == 2 and data.writer["submodule"] == "mlp"
    # the ablated run's step 0 has lost the element; the control's step 0 is the original
    a = data.activations
    first = a[(a.step == 0) & (a.layer == data.writer["layer"])]
    control = first[first.run == "control"].tracked_value.abs().mean()
    ablated = first[first.run == "ablated"].tracked_value.abs().mean()
    assert ablated < 0.01 * control
    assert not list(folder.glob("*.pt")) and not list(folder.glob("*.safetensors"))
    path = folder / "regrowth_log.parquet"
    original = path.read_bytes()
    try:
        data.log.assign(train_loss=0.0).to_parquet(path, index=False)
        (problem,) = provenance.verify_manifest(folder)
        assert "regrowth_log.parquet" in problem
        with pytest.raises(ValueError, match="does not match its manifest"):
            read_regrowth(folder)
    finally:
        path.write_bytes(original)
    with pytest.raises(FileNotFoundError, match="make regrowth"):
        read_regrowth(folder.parent / "absent")


def test_fits_recover_a_known_step_response():
    steps = np.asarray(log_schedule(1000, 24))
    truth = 1000.0 - 900.0 * np.exp(-steps / 100.0)
    rng = np.random.default_rng(0)
    top1 = truth[:, None] * (1 + 0.03 * rng.standard_normal((steps.size, 10)))
    table = pd.DataFrame(
        {
            "run": "ablated",
            "model": "m",
            "step": np.repeat(steps, 10),
            "layer": 1,
            "sequence": np.tile(np.arange(10), steps.size),
            "top1": top1.ravel(),
            "top2": 0.5 * top1.ravel(),
            "top3": 0.4 * top1.ravel(),
            "median": 1.0,
            "status": "ok",
        }
    )
    fits = fit_regrowth(table, runs=("ablated",))
    row = fits.table[fits.table.hypothesis == "step1"].iloc[0]
    assert row["tau_cov_lo"] < 100 < row["tau_cov_hi"]
    assert row["K_cov_lo"] < 1000 < row["K_cov_hi"]
    best = best_hypotheses(fits.table).iloc[0]
    ok = fits.table[fits.table.status.isin(["ok", "at_bound"])]
    assert best["best"] == ok.loc[ok.aic.idxmin(), "hypothesis"]
    assert best["verdict"] in ("eq9", "step response", "indistinguishable")
    points, curves = explorer_tables(table, fits.table)
    assert set(points.model) == set(curves.model) == {"ablated"}
    np.testing.assert_allclose(points.value, top1.mean(axis=1))  # median 1: the mean top-1
    fitted = curves[(curves.hypothesis == "step1") & (curves.status == "ok")]
    assert len(fitted) == 80 and (fitted.lo < fitted.value).all()
    assert np.all(np.abs(fitted.value - (1000.0 - 900.0 * np.exp(-fitted.step / 100.0))) < 60)


def test_findings_and_ledger_rows(built):
    from massive_activations.audit.verdicts import LEDGER_COLUMNS

    assert LEDGER_FIELDS == LEDGER_COLUMNS
    assert regained_fraction(100.0, 10.0, 55.0) == pytest.approx(0.5)
    data = read_regrowth(built[0])
    traj = regrowth_trajectories(data.activations, data.writer, data.log)
    found = regrowth_findings(
        traj, data.activations, data.writer, data.record["adam_rate_limit_per_step"]
    )
    assert found.set_index("key").loc["hypothesis", "answer"] == "undetermined"  # no fits
    rows = ledger_rows(found)
    assert [list(r) for r in rows] == [list(LEDGER_FIELDS)] * len(found)
    assert all("not the paper's" in r["claim"] and "not in the paper" in r["source"] for r in rows)
    assert all(all(str(v) for v in r.values()) for r in rows)


def test_the_committed_regrowth_data_is_the_default_configurations():
    # the book's chapter 9 reads data/regrowth; `make regrowth` must rebuild the same thing
    from massive_activations.book import repo_root
    from massive_activations.regrowth.config import folder_name

    default = get_config("default")
    data = read_regrowth(repo_root() / "data" / folder_name(default))  # checks the manifest
    assert data.config.key() == default.key(), (
        "data/regrowth was built with another configuration than RegrowthConfig's default: "
        "rerun `make regrowth` (or restore the default)."
    )
    assert data.record["key"] == default.key()
    steps = sorted(data.activations.step.unique())
    assert steps == default.schedule()
    assert set(data.activations.run) == {"control", "ablated"}
    assert set(data.log.run) == {"control", "ablated"}
    assert data.log.groupby("run").step.max().to_dict() == {
        "control": default.steps,
        "ablated": default.steps,
    }
    assert set(data.manifest["run_threads"]) == {"control", "ablated"}


def _hand_made_runs(ablated_loss_at_t: float):
    """Two layers, five steps; the ablated run's layer 1 falls to 50, then climbs to 300."""
    ratios = {
        ("ablated", 0): [10.0, 10.0, 10.0, 10.0, 10.0],
        ("ablated", 1): [100.0, 50.0, 80.0, 200.0, 300.0],
        ("control", 1): [1000.0, 1100.0, 900.0, 1000.0, 1050.0],
    }
    losses = {"control": [2.0, 2.1, 2.5, 2.2, 2.3], "ablated": [9.0, 5.0, 4.0, 3.0]}
    losses["ablated"].append(ablated_loss_at_t)
    rows, acts = [], []
    for run in ("control", "ablated"):
        for step in range(5):
            for layer in (0, 1):
                ratio = 10.0 if (run, layer) == ("control", 0) else ratios[(run, layer)][step]
                rows.append(dict(run=run, step=step, layer=layer, ratio=ratio, ci95_pct=1.0,
                                 heldout_loss=losses[run][step]))  # fmt: skip
                acts.append(dict(run=run, step=step, layer=layer, status="ok",
                                 top1_position=0, top1_channel=7))  # fmt: skip
    writer = {"layer": 1, "position": 0, "channel": 7, "value": 100.0}
    return pd.DataFrame(rows), pd.DataFrame(acts), writer


def test_post_hoc_rebound_measures_the_climb_from_the_minimum():
    traj, acts, writer = _hand_made_runs(2.35)
    found = regrowth_findings(traj, acts, writer, rate_limit=1.0).set_index("key")
    # the fixed rule, from r(0) = 100: (300 - 100) / (1000 - 100)
    assert found.loc["returns_at_writer", "value"].startswith(f"{200 / 900:.3f} ")
    rebound = found.loc["rebound"]
    # from the minimum 50 at step 1: x6 and (300 - 50) / (1000 - 50) = 0.263: "partly"
    assert "writer's layer 1: minimum 50 at step 1, x6.00 by step 4" in rebound["value"]
    assert f"regained from the minimum {250 / 950:.3f}" in rebound["value"]
    assert rebound["answer"] == "partly"
    assert rebound["reading"].startswith("post hoc")
    loss = found.loc["loss_against_control"]
    # gap 2.35 - 2.3; damage recovered (9 - 2.35) / (9 - 2.3); the control's last three
    # losses 2.5, 2.2, 2.3 move by up to 0.3
    assert loss["value"] == f"gap +0.050 nats; {6.65 / 6.7:.1%} of the damage recovered"
    assert "up to 0.300 nats" in loss["uncertainty"]
    assert loss["answer"] == "within the control's wobble"
    assert {"rebound", "loss_against_control"} <= set(
        found.index[found.reading.str.startswith("post hoc")]
    )
    fixed = found[~found.reading.str.startswith("post hoc")]
    assert list(fixed.index) == ["damage", "returns_at_writer", "returns_anywhere",
                                 "same_element", "relative_size", "speed", "hypothesis",
                                 "loss_recovery"]  # fmt: skip


def test_post_hoc_loss_gap_beyond_the_controls_wobble_is_given_in_nats():
    traj, acts, writer = _hand_made_runs(3.0)
    loss = regrowth_findings(traj, acts, writer, rate_limit=1.0).set_index("key")
    assert loss.loc["loss_against_control", "answer"] == "+0.700 nats"


def test_post_hoc_rebound_is_undetermined_without_the_writers_last_ratio():
    traj, acts, writer = _hand_made_runs(2.35)
    last = (traj.run == "ablated") & (traj.layer == 1) & (traj.step == 4)
    traj.loc[last, "ratio"] = np.nan  # e.g. every window failed at the last step
    found = regrowth_findings(traj, acts, writer, rate_limit=1.0).set_index("key")
    assert found.loc["returns_at_writer", "answer"] == "undetermined"
    assert found.loc["rebound", "answer"] == "undetermined"
    assert "writer's layer" not in found.loc["rebound", "value"]
