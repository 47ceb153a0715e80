"""Suite definitions, cache keys, model construction and evaluation sequences."""

from __future__ import annotations

import dataclasses
from itertools import combinations

import numpy as np
import pytest
import torch

from massive_activations.suite.configs import (
    SUITES,
    ModelSpec,
    Recipe,
    config_hash,
    eval_sequences,
    get_suite,
    init_pythia_weights,
    make_model,
    model_config,
)
from massive_activations.suite.corpus import Document, load_corpus
from massive_activations.suite.tokenizer import train_tokenizer

SPEC = ModelSpec("L2-d32-h2", 2, 32, 2, 10)
RECIPE = Recipe(corpus="small", vocab_size=300, seq_len=32, batch_size=4, lr=1e-3, n_linear=2)


def _changed(value):
    """A different value of the same type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 4
    if isinstance(value, float):
        return value * 0.5 + 0.01
    if value is None:
        return 64
    return {"small": "large", "normal": "pythia"}.get(value, value + "x")


def test_same_config_same_key():
    key = config_hash(SPEC, RECIPE, "tok")
    assert key == config_hash(
        ModelSpec(*dataclasses.astuple(SPEC)), dataclasses.replace(RECIPE), "tok"
    )
    assert len(key) == 12 and int(key, 16) >= 0


def test_any_change_gives_another_key():
    base = config_hash(SPEC, RECIPE, "tok")
    keys = {base}
    for f in dataclasses.fields(ModelSpec):
        value = _changed(getattr(SPEC, f.name))
        if f.name in ("d_model", "n_heads"):
            value = {"d_model": 64, "n_heads": 4}[f.name]
        keys.add(config_hash(dataclasses.replace(SPEC, **{f.name: value}), RECIPE, "tok"))
    for f in dataclasses.fields(Recipe):
        changed = dataclasses.replace(RECIPE, **{f.name: _changed(getattr(RECIPE, f.name))})
        keys.add(config_hash(SPEC, changed, "tok"))
    keys.add(config_hash(SPEC, RECIPE, "tok2"))
    keys.add(config_hash(SPEC, RECIPE, "tok", device="cuda"))
    n_fields = len(dataclasses.fields(ModelSpec)) + len(dataclasses.fields(Recipe))
    assert len(keys) == 1 + n_fields + 2


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_schedule_has_step0_and_final_step(suite):
    s = get_suite(suite)
    for spec in s.models:
        steps = s.schedule(spec)
        assert steps[0] == 0 and steps[-1] == spec.steps
        assert steps == sorted(set(steps))
        assert {1, 2, 4, 8} <= set(steps)


def test_default_suite_design():
    s = get_suite("default")
    r = s.recipe
    assert len(s.models) >= 6
    # the second regime
    assert r.corpus == "large" and r.bf16 and r.prepend_eot
    assert 256 <= r.seq_len <= 512 and r.batch_size == 8 and r.lr == pytest.approx(3e-3)
    assert r.weight_decay == 0.1 and (r.beta1, r.beta2) == (0.9, 0.95) and r.grad_clip == 1.0
    assert r.min_lr_ratio == 0.1
    depths = {m.n_layers for m in s.models}
    widths = {m.d_model for m in s.models}
    heads = {m.n_heads for m in s.models}
    assert min(depths) >= 2 and max(depths) <= 8 and len(depths) >= 3
    assert min(widths) >= 64 and max(widths) <= 512 and len(widths) >= 3
    assert min(heads) >= 2 and max(heads) <= 8 and len(heads) >= 3
    # each of depth, width, heads varies with the other two held fixed
    varied = set()
    for a, b in combinations(s.models, 2):
        diff = [k for k in ("n_layers", "d_model", "n_heads") if getattr(a, k) != getattr(b, k)]
        if len(diff) == 1:
            varied.add(diff[0])
    assert varied == {"n_layers", "d_model", "n_heads"}
    assert len({m.steps for m in s.models}) == 1  # the same tokens for every model


def test_unknown_suite_and_bad_specs():
    with pytest.raises(ValueError, match="choose one of"):
        get_suite("huge")
    with pytest.raises(ValueError, match="not divisible by n_heads=3"):
        ModelSpec("x", 2, 32, 3, 10)
    with pytest.raises(ValueError, match="multiple of 4"):
        ModelSpec("x", 2, 36, 6, 10)
    with pytest.raises(ValueError, match="corpus must be"):
        dataclasses.replace(RECIPE, corpus="medium")


def test_model_is_pythia_shaped():
    cfg = model_config(SPEC, RECIPE, 300, 0)
    assert cfg.rope_parameters["partial_rotary_factor"] == 0.25
    assert cfg.use_parallel_residual and not cfg.tie_word_embeddings
    assert cfg.hidden_act == "gelu" and cfg.attention_dropout == 0 and cfg.hidden_dropout == 0
    assert cfg.intermediate_size == 4 * SPEC.d_model
    model = make_model(SPEC, RECIPE, 300, 0)
    assert (
        model.gpt_neox.embed_in.weight.data_ptr() != model.get_output_embeddings().weight.data_ptr()
    )
    again = make_model(SPEC, RECIPE, 300, 0)
    for p, q in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(p, q)  # the init seed fixes the weights


def test_pythia_init_scales():
    spec = ModelSpec("L4-d256-h4", 4, 256, 4, 10)
    model = make_model(spec, dataclasses.replace(RECIPE, init="pythia"), 300, 0)
    small, wang = (2 / (5 * 256)) ** 0.5, 2 / (4 * 256**0.5)
    layer = model.gpt_neox.layers[0]
    assert layer.attention.query_key_value.weight.std().item() == pytest.approx(small, rel=0.02)
    assert layer.mlp.dense_4h_to_h.weight.std().item() == pytest.approx(wang, rel=0.02)
    assert layer.attention.dense.weight.std().item() == pytest.approx(wang, rel=0.02)
    assert model.get_output_embeddings().weight.std().item() == pytest.approx(small, rel=0.05)
    assert torch.all(layer.input_layernorm.weight == 1) and torch.all(
        layer.mlp.dense_h_to_4h.bias == 0
    )
    before = model.get_output_embeddings().weight.clone()
    init_pythia_weights(model, seed=1)
    assert not torch.equal(before, model.get_output_embeddings().weight)


@pytest.fixture(scope="module")
def heldout():
    docs = load_corpus("small").documents
    return [Document(d.name, d.text[:3000]) for d in docs[::9]]


@pytest.fixture(scope="module")
def tok(heldout):
    return train_tokenizer(heldout, 300)


def test_eval_sequences_as_sun_et_al(heldout, tok):
    recipe = dataclasses.replace(RECIPE, n_eval_sequences=3, eval_documents=5)
    ids = eval_sequences(heldout, tok, recipe, eot_id=0)["raw"]
    assert ids.shape == (3, 32) and ids.dtype == torch.long
    # consecutive slices of the joined text of 5 random documents, no special tokens
    rng = np.random.default_rng(recipe.eval_seed)
    chosen = rng.choice(len(heldout), size=5, replace=False)
    stream = tok.encode("\n\n".join(heldout[i].text for i in chosen)).ids
    assert ids.flatten().tolist() == stream[: 3 * 32]
    assert (ids != 0).all()
    assert torch.equal(eval_sequences(heldout, tok, recipe, 0)["raw"], ids)
    other = eval_sequences(heldout, tok, dataclasses.replace(recipe, eval_seed=2), 0)["raw"]
    assert not torch.equal(other, ids)


def test_eval_sequences_with_eot_first(heldout, tok):
    recipe = dataclasses.replace(RECIPE, n_eval_sequences=2, eval_documents=5)
    ids = eval_sequences(heldout, tok, recipe, eot_id=0)["eot_first"]
    assert ids.shape == (2, 32)
    assert (ids[:, 0] == 0).all() and (ids[:, 1:] != 0).all()
    raw = eval_sequences(heldout, tok, recipe, eot_id=0)["raw"]
    assert torch.equal(ids[0, 1:], raw[0, :31])  # the same text behind the forced token
