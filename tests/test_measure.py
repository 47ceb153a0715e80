"""measure_model: values equal independent reductions of what the model computes."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from massive_activations.measurement.measure import (
    COLUMNS,
    _attention_module,
    _first,
    _LayerReducer,
    _lower_median,
    _SinkReducer,
    _top3,
    as_inputs,
    decoder_layers,
    measure_inputs,
    measure_model,
)


def _reference(hidden: torch.Tensor) -> np.ndarray:
    """float64 numpy reduction of one layer's (n, S, d) output: top1..3, lower median, pos, ch."""
    n, _, d = hidden.shape
    rows = []
    for a in np.abs(hidden.detach().double().numpy()).reshape(n, -1):
        order = np.sort(a)
        arg = int(np.argmax(a))
        rows.append([order[-1], order[-2], order[-3], order[(a.size - 1) // 2], arg // d, arg % d])
    return np.array(rows)


def _raw_outputs(model: nn.Module, ids: torch.Tensor) -> list[torch.Tensor]:
    """Layer outputs 1..L: output_hidden_states for 1..L-1; the last with the final norm removed."""
    with torch.no_grad():
        hs = model(ids, output_hidden_states=True).hidden_states
        bare = copy.deepcopy(model)
        base = bare.base_model
        name = "final_layer_norm" if hasattr(base, "final_layer_norm") else "norm"
        setattr(base, name, nn.Identity())
        last = bare(ids, output_hidden_states=True).hidden_states[-1]
    return [*hs[1:-1], last]


@pytest.mark.parametrize("arch", ["tiny_neox", "tiny_llama"])
def test_values_equal_reductions_of_hidden_states(arch, request, tiny_ids):
    model = request.getfixturevalue(arch)
    df = measure_model(model, tiny_ids)
    outputs = _raw_outputs(model, tiny_ids)
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == len(outputs) * len(tiny_ids)
    # The last layer's raw output differs from the normed one, so the check is not vacuous.
    normed = model(tiny_ids, output_hidden_states=True).hidden_states[-1]
    assert not torch.allclose(normed, outputs[-1])
    for layer, hidden in enumerate(outputs, start=1):
        got = df[df.layer == layer].sort_values("sequence")
        ref = _reference(hidden)
        np.testing.assert_allclose(
            got[["top1", "top2", "top3", "median"]].to_numpy(), ref[:, :4], rtol=1e-6
        )
        np.testing.assert_array_equal(got.top1_position, ref[:, 4])
        np.testing.assert_array_equal(got.top1_channel, ref[:, 5])
        np.testing.assert_array_equal(
            got.top1_token, tiny_ids[np.arange(len(tiny_ids)), ref[:, 4].astype(int)]
        )
        assert (got.status == "ok").all()


def test_deterministic_and_batch_size(tiny_neox, tiny_ids):
    one = measure_model(tiny_neox, tiny_ids)
    again = measure_model(tiny_neox, tiny_ids)
    batched = measure_model(tiny_neox, tiny_ids, batch_size=2, progress=True)
    assert one.equals(again)
    np.testing.assert_allclose(batched.top1, one.top1, rtol=1e-5)
    np.testing.assert_array_equal(batched.top1_position, one.top1_position)


def test_attention_sink_matches_eager_attentions(tiny_neox, tiny_ids):
    model = copy.deepcopy(tiny_neox)
    before = model.config._attn_implementation
    df = measure_model(model, tiny_ids, attention_sink=True)
    assert model.config._attn_implementation == before  # restored
    model.set_attn_implementation("eager")
    with torch.no_grad():
        attentions = model(tiny_ids, output_attentions=True).attentions
    for layer, weights in enumerate(attentions, start=1):
        ref = weights[..., 0].mean(dim=(1, 2)).numpy()
        got = df[df.layer == layer].sort_values("sequence").attn_first_pos.to_numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_fp16_overflow_and_nonfinite_are_recorded(tiny_neox, tiny_ids):
    model = copy.deepcopy(tiny_neox).half()
    model.gpt_neox.embed_in.weight.data.fill_(6e4)
    model.gpt_neox.layers[0].mlp.dense_4h_to_h.bias.data.fill_(1e4)  # 7e4 > fp16 max
    df = measure_model(model, tiny_ids)
    assert (df[df.layer == 1].status == "overflow").all()
    assert (df[df.layer == 2].status == "nonfinite").all()  # LayerNorm(inf) = NaN
    assert df[["top1", "median"]].isna().all().all()
    assert (df.top1_position == -1).all()


def test_bf16_runs_and_stays_close(tiny_neox, tiny_ids):
    fp32 = measure_model(tiny_neox, tiny_ids)
    bf16 = measure_model(copy.deepcopy(tiny_neox).to(torch.bfloat16), tiny_ids)
    assert (bf16.status == "ok").all()
    np.testing.assert_allclose(bf16.top1, fp32.top1, rtol=0.05)


def test_decoder_layers_found_and_errors(tiny_neox, tiny_llama):
    assert decoder_layers(tiny_neox) == list(tiny_neox.gpt_neox.layers)
    assert decoder_layers(tiny_llama) == list(tiny_llama.model.layers)
    assert decoder_layers(tiny_neox.gpt_neox) == list(tiny_neox.gpt_neox.layers)
    with pytest.raises(ValueError, match=r"Sequential.*layers='transformer.h'"):
        decoder_layers(nn.Sequential(nn.Linear(2, 2)))


def test_explicit_layers_and_hooks_that_do_not_fire(tiny_neox, tiny_ids):
    by_path = measure_model(tiny_neox, tiny_ids, layers="gpt_neox.layers")
    by_list = measure_model(tiny_neox, tiny_ids, layers=list(tiny_neox.gpt_neox.layers)[1:])
    assert by_path.equals(measure_model(tiny_neox, tiny_ids))
    np.testing.assert_array_equal(by_list.top1, by_path[by_path.layer == 2].top1)
    with pytest.raises(RuntimeError, match="hook fired 0 times"):
        measure_model(tiny_neox, tiny_ids, layers=[nn.Linear(2, 2)])


def test_bad_input_ids(tiny_neox):
    with pytest.raises(ValueError, match=r"input_ids\[None\]"):
        measure_model(tiny_neox, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="int64"):
        measure_model(tiny_neox, torch.zeros(1, 5, dtype=torch.int32))


def _data(kind: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if kind == "normal":
        return torch.randn(2, 1000, 96, generator=g).abs()
    if kind == "ties":
        return torch.randint(0, 4, (2, 1000, 96), generator=g).float()
    if kind == "skewed":  # the strided sample sees only huge values: the bracket misses
        a = torch.rand(2, 1000, 96, generator=g)
        a.view(2, -1)[:, ::23] = 1e4  # stride 96000 // 4096 = 23 is coprime with 96
        return a
    a = torch.randn(2, 1000, 96, generator=g).abs()
    a[1, 5, 7] = float("nan")
    return a


@pytest.mark.parametrize("kind", ["normal", "ties", "skewed", "nan"])
def test_fast_reductions_equal_torch(kind):
    a = _data(kind)
    flat = a.reshape(2, -1)
    expected = torch.median(flat, dim=1).values
    rows = [0] if kind == "nan" else [0, 1]  # a row with NaN is marked "nonfinite" anyway
    torch.testing.assert_close(_lower_median(flat, 96)[rows], expected[rows], rtol=0, atol=0)
    values, position, channel = _top3(a)
    torch.testing.assert_close(values, torch.topk(flat, 3, dim=1).values, equal_nan=True)
    if kind == "normal":  # distinct top-1: its location is unique
        ref = torch.topk(flat, 1, dim=1).indices[:, 0]
        assert position[:, 0].tolist() == (ref // 96).tolist()
        assert channel[:, 0].tolist() == (ref % 96).tolist()


@pytest.mark.parametrize("kind", ["normal", "ties"])
def test_the_fast_median_finds_the_rank_inside_its_bracket(kind, monkeypatch):
    # the bracket search is exact by construction (a miss falls back to torch.median); what
    # makes it fast is that it does not miss on ordinary data: no row may fall back
    a = _data(kind)
    flat = a.reshape(2, -1)
    expected = torch.median(flat, dim=1).values
    calls = []
    real = torch.median

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "median", spy)
    got = _lower_median(flat, 96)
    assert calls == [], f"fell back to torch.median for {calls}"
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    k = (flat.shape[1] - 1) // 2  # the lower median is the (k + 1)-th smallest value
    torch.testing.assert_close(got, torch.sort(flat, dim=1).values[:, k], rtol=0, atol=0)


def test_as_inputs_names_the_variants():
    ids = torch.arange(12).reshape(2, 6)
    assert list(as_inputs(ids)) == ["raw"] and as_inputs(ids)["raw"] is ids
    both = as_inputs({"eot_first": ids, "raw": ids + 1})
    assert list(both) == ["eot_first", "raw"] and torch.equal(both["raw"], ids + 1)
    for bad in ({}, {"raw": ids, "shuffled": ids}):
        with pytest.raises(ValueError, match=r"variants among \['eot_first', 'raw'\]"):
            as_inputs(bad)


def test_measure_inputs_stacks_each_variant_measured_alone(tiny_neox, tiny_ids):
    other = torch.flip(tiny_ids, dims=[1])
    both = measure_inputs(tiny_neox, {"raw": tiny_ids, "eot_first": other})
    assert list(both["variant"].unique()) == ["raw", "eot_first"]
    assert both.index.equals(pd.RangeIndex(len(both)))
    for name, ids in (("raw", tiny_ids), ("eot_first", other)):
        alone = measure_model(tiny_neox, ids).assign(variant=name)
        got = both[both["variant"] == name].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, alone)
    # keyword arguments reach measure_model
    sink = measure_inputs(copy.deepcopy(tiny_neox), {"raw": tiny_ids}, attention_sink=True)
    assert sink["attn_first_pos"].notna().all()
    plain = measure_inputs(tiny_neox, tiny_ids)
    pd.testing.assert_frame_equal(plain, measure_model(tiny_neox, tiny_ids).assign(variant="raw"))


def test_the_fast_median_of_an_odd_count_is_the_middle_value():
    g = torch.Generator().manual_seed(4)
    flat = torch.rand(2, 129 * 129, generator=g)  # odd size: the lower median is the middle
    want = torch.sort(flat, dim=1).values[:, (flat.shape[1] - 1) // 2]
    torch.testing.assert_close(_lower_median(flat, 129), want, rtol=0, atol=0)


def test_the_fast_median_falls_back_when_the_rank_lies_just_above_its_bracket():
    # 32768 values, stride 8, the sample 0..4095 on the grid brackets ranks [1917, 2177]; off
    # the grid, 14205 values below the bracket and the rest far above put exactly k values at
    # or below its top: the median is the next value (2178), outside the bracket
    flat = torch.full((1, 32768), 5000.0)
    flat[0, ::8] = torch.arange(4096.0)
    off = torch.nonzero(torch.arange(32768) % 8 != 0)[:, 0]
    flat[0, off[:14205]] = -1.0
    assert torch.median(flat, dim=1).values.item() == 2178.0
    assert _lower_median(flat, 1).tolist() == [2178.0]


def test_the_layer_reducer_reduces_large_layers_exactly():
    g = torch.Generator().manual_seed(2)
    hidden = torch.randn(2, 200, 100, generator=g)  # 20000 values per sequence: the fast path
    reducer = _LayerReducer()
    reducer(None, None, (hidden,))
    row = reducer.batches[0]
    assert row.shape == (2, 6)
    a = hidden.abs().reshape(2, -1)
    torch.testing.assert_close(row[:, 3], torch.median(a, dim=1).values.double(), rtol=0, atol=0)
    torch.testing.assert_close(row[:, 0], a.max(dim=1).values.double(), rtol=0, atol=0)


def test_first_takes_the_hidden_state_of_a_tuple_output():
    h, other = torch.ones(2), torch.zeros(2)
    assert _first(h) is h and _first((h, other)) is h and _first([h, other]) is h


def test_decoder_layers_paths_and_errors():
    class Net(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.blocks = nn.ModuleList(nn.Linear(2, 2) for _ in range(n))
            self.layers = nn.ModuleList()

    one = Net(1)
    assert decoder_layers(one, "blocks") == [one.blocks[0]]  # a single layer is enough
    with pytest.raises(ValueError, match=r"none of model\.blocks is a non-empty"):
        decoder_layers(Net(0), "blocks")
    # the default paths: an empty ModuleList does not count, and the error lists them all
    with pytest.raises(
        ValueError, match=r"none of model\.gpt_neox\.layers, model\.model\.layers, "
    ):
        decoder_layers(one)


def test_attention_module_tries_each_name():
    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.Linear(2, 2)

    layer = Layer()
    assert _attention_module(layer) is layer.attn
    with pytest.raises(ValueError, match="has none of the attributes attention, self_attn, attn"):
        _attention_module(nn.Linear(2, 2))


def test_sink_reducer_needs_the_attention_weights():
    w = torch.rand(1, 2, 3, 3)
    reducer = _SinkReducer()
    reducer(None, None, (torch.zeros(1), w))
    torch.testing.assert_close(reducer.batches[0], w[..., 0].mean(dim=(1, 2)).double())
    for output in (torch.rand(3, 4), (torch.rand(3, 4),), [torch.rand(3, 4), None]):
        with pytest.raises(RuntimeError, match="returned no attention weights"):
            _SinkReducer()(nn.Linear(2, 2), None, output)
