"""Massive-activation statistics of every decoder layer, reduced on the model's device.

For each decoder layer ``l = 1..L`` and each input sequence, the output ``h_l`` of the layer
(after both residual additions, before the final norm; paper Eqs. 1-8) is reduced to the
paper's statistics (Eqs. 1-8, as Sun et al.'s ``exp2`` computes them; the book's page "Reading the paper"):

* ``top1``, ``top2``, ``top3``: the three largest ``|h_l|`` over all ``seq_len x d`` elements;
* ``median``: ``torch.median`` of ``|h_l|`` over the same elements, i.e. the *lower* median
  (for an even count the smaller of the two middle values, as Sun et al. take it);
* ``top1_position``, ``top1_channel``, ``top1_token``: where the top-1 sits and the input
  token id at that position.

Forward hooks reduce each layer's output as it is produced, in float32, on the model's device;
the hidden states are never kept or copied to the host (only ``L x batch`` small rows are).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from massive_activations.measurement.store import DEFAULT_VARIANT, TABLE_COLUMNS, VARIANTS

__all__ = ["COLUMNS", "STATUSES", "as_inputs", "decoder_layers", "measure_inputs", "measure_model"]

#: Columns of :func:`measure_model`'s table (``attn_first_pos`` only with ``attention_sink``):
#: the activation table's, less those that name the checkpoint.
COLUMNS = tuple(c for c in TABLE_COLUMNS if c not in ("suite", "model", "step", "dtype", "variant"))

#: Values of the ``status`` column.  ``"overflow"``: the layer output holds +-inf (a value
#: beyond the dtype's range, typically fp16's 65504); ``"nonfinite"``: it holds NaN.
STATUSES = ("ok", "overflow", "nonfinite")

# Dotted attribute paths of the decoder-layer ModuleList, tried in order.
_LAYER_PATHS = (
    "gpt_neox.layers",  # GPTNeoXForCausalLM
    "model.layers",  # Llama-family *ForCausalLM (Llama, Mistral, Qwen2, SmolLM, ...)
    "layers",  # the bare GPTNeoXModel / LlamaModel
)
# Names of the attention sub-module of a decoder layer.
_ATTENTION_NAMES = ("attention", "self_attn", "attn")


def _resolve(model: nn.Module, path: str) -> object | None:
    obj: object = model
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def decoder_layers(model: nn.Module, path: str | None = None) -> list[nn.Module]:
    """Return the decoder layers of ``model`` in order.

    Parameters
    ----------
    model : torch.nn.Module
        A GPT-NeoX (``model.gpt_neox.layers``) or Llama-family (``model.model.layers``)
        causal LM, or their bare base model (``model.layers``).
    path : str, optional
        Dotted attribute path of the ``ModuleList`` holding the decoder layers, for other
        architectures (e.g. ``"transformer.h"`` for GPT-2).

    Returns
    -------
    list of torch.nn.Module
        Layer 1 first.

    Raises
    ------
    ValueError
        If no decoder layers are found; the message names the model class and how to pass
        the layers.
    """
    paths = (path,) if path is not None else _LAYER_PATHS
    for candidate in paths:
        layers = _resolve(model, candidate)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            return list(layers)
    tried = ", ".join(f"model.{p}" for p in paths)
    raise ValueError(
        f"Cannot find the decoder layers of {type(model).__name__}: none of {tried} is a "
        "non-empty torch.nn.ModuleList. Pass the dotted path of the ModuleList that holds the "
        "decoder layers, e.g. decoder_layers(model, path='transformer.h') or "
        "measure_model(model, input_ids, layers='transformer.h'), or a list of the layer "
        "modules as measure_model(..., layers=[...])."
    )


def _attention_module(layer: nn.Module) -> nn.Module:
    for name in _ATTENTION_NAMES:
        module = getattr(layer, name, None)
        if isinstance(module, nn.Module):
            return module
    raise ValueError(
        f"attention_sink=True needs the attention sub-module of each decoder layer, but "
        f"{type(layer).__name__} has none of the attributes {', '.join(_ATTENTION_NAMES)}. "
        "Measure without attention_sink for this architecture."
    )


@contextlib.contextmanager
def _eager_attention(model: nn.Module) -> Iterator[None]:
    """Switch a transformers model to eager attention (which returns weights), then back."""
    config = getattr(model, "config", None)
    previous = getattr(config, "_attn_implementation", None)
    if config is None or not hasattr(model, "set_attn_implementation"):
        raise ValueError(
            f"attention_sink=True needs a transformers PreTrainedModel that can switch to eager "
            f"attention; got {type(model).__name__}. Measure without attention_sink."
        )
    if previous != "eager":
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if previous is not None and previous != "eager":
            model.set_attn_implementation(previous)


def _first(output: object) -> torch.Tensor:
    """A decoder layer returns a Tensor (transformers 5) or a tuple (older versions)."""
    return output[0] if isinstance(output, tuple | list) else output


def _top3(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-3 values of ``a`` (n, S, d) per sequence, with the position and channel of each.

    The top-3 elements lie in the 3 positions with the largest per-position maximum, so
    ``topk`` runs on ``3 * d`` elements instead of ``S * d``; the values are exact.
    """
    n, s, d = a.shape
    positions = torch.topk(a.amax(dim=2), min(3, s), dim=1).indices  # NaN sorts largest
    rows = torch.gather(a, 1, positions[:, :, None].expand(-1, -1, d)).reshape(n, -1)
    top = torch.topk(rows, 3, dim=1)
    row = torch.div(top.indices, d, rounding_mode="floor")
    return top.values, torch.gather(positions, 1, row), torch.remainder(top.indices, d)


def _lower_median(flat: torch.Tensor, d: int) -> torch.Tensor:
    """``torch.median(flat, dim=1)`` (the lower median), exact, with less work.

    A strided sample brackets the median's rank; only the elements inside the bracket are
    searched (``kthvalue``).  If the bracket misses the rank (or for small inputs, or NaN),
    the full ``torch.median`` is taken, so the result equals it for every row without NaN
    (a row with NaN is reported as ``"nonfinite"`` by the caller).  The stride is
    coprime with the channel count ``d`` so that the sample visits every channel.
    """
    n, size = flat.shape
    if size < 16_384:
        return torch.median(flat, dim=1).values
    k = (size - 1) // 2  # 0-based rank of the lower median
    stride = max(size // 4096, 2)
    while math.gcd(stride, d) != 1:
        stride += 1
    sample = torch.sort(flat[:, ::stride], dim=1).values
    m = sample.shape[1]
    q = k * m // size
    r = 2 * math.isqrt(m) + 2  # about 4 standard deviations of the sample rank
    lo = sample[:, max(q - r, 0), None]
    hi = sample[:, min(q + r, m - 1), None]
    below = (flat < lo).sum(dim=1).tolist()
    inside = (flat >= lo) & (flat <= hi)
    out = []
    for i in range(n):
        values = flat[i][inside[i]]
        rank = k - below[i]
        if 0 <= rank < values.numel():
            out.append(torch.kthvalue(values, rank + 1).values)
        else:
            out.append(torch.median(flat[i]))
    return torch.stack(out)


class _LayerReducer:
    """Forward hook that reduces one layer's output to per-sequence statistics on-device."""

    def __init__(self) -> None:
        self.batches: list[torch.Tensor] = []

    def __call__(self, module: nn.Module, args: object, output: object) -> None:
        hidden = _first(output).detach()
        a = hidden.reshape(hidden.shape[0], -1, hidden.shape[-1]).abs().float()
        values, position, channel = _top3(a)
        median = _lower_median(a.reshape(a.shape[0], -1), a.shape[-1])
        # columns: top1, top2, top3, median, position, channel (float64 holds indices exactly)
        self.batches.append(
            torch.cat(
                [
                    values.double(),
                    median[:, None].double(),
                    position[:, :1].double(),
                    channel[:, :1].double(),
                ],
                dim=1,
            )
        )


class _SinkReducer:
    """Forward hook on an attention module: mean weight that queries put on position 0."""

    def __init__(self) -> None:
        self.batches: list[torch.Tensor] = []

    def __call__(self, module: nn.Module, args: object, output: object) -> None:
        weights = output[1] if isinstance(output, tuple | list) and len(output) > 1 else None
        if weights is None:
            raise RuntimeError(
                f"{type(module).__name__} returned no attention weights although eager "
                "attention was requested; measure without attention_sink for this model."
            )
        # weights: (batch, heads, queries, keys)
        self.batches.append(weights.detach()[..., 0].float().mean(dim=(1, 2)).double())


@torch.no_grad()
def measure_model(
    model: nn.Module,
    input_ids: torch.Tensor,
    *,
    attention_sink: bool = False,
    batch_size: int = 1,
    progress: bool = False,
    layers: str | Sequence[nn.Module] | None = None,
) -> pd.DataFrame:
    """Measure massive-activation statistics of every decoder layer and sequence.

    Parameters
    ----------
    model : torch.nn.Module
        A causal LM (GPT-NeoX, Llama family, or any model whose decoder layers are given by
        ``layers``).  It is run in eval mode without cache; for transformers models the base
        model is called, so no logits are computed.
    input_ids : torch.LongTensor
        Token ids of shape ``(n_sequences, seq_len)``; moved to the model's device.
    attention_sink : bool, default False
        Also record ``attn_first_pos``: per layer and sequence, the attention weight that
        queries put on position 0, averaged over heads and all queries (query 0 included).
        Switches the model to eager attention for the call, then back.
    batch_size : int, default 1
        Sequences per forward pass.  Results depend on it only through floating-point
        rounding of batched matrix products; 1 is Sun et al.'s choice.
    progress : bool, default False
        Show a tqdm progress bar over batches.
    layers : str or sequence of torch.nn.Module, optional
        The decoder layers: a dotted attribute path of their ``ModuleList`` (see
        :func:`decoder_layers`) or the modules themselves.  Found automatically for GPT-NeoX
        and the Llama family.

    Returns
    -------
    pandas.DataFrame
        One row per (layer, sequence), sorted by layer then sequence, with columns
        ``layer`` (1..L), ``sequence`` (0..n-1), ``top1``, ``top2``, ``top3``, ``median``
        (float64 holding float32 reductions), ``top1_position``, ``top1_channel``,
        ``top1_token`` (int64), ``status`` (see :data:`STATUSES`) and, with
        ``attention_sink``, ``attn_first_pos``.  Rows whose status is not ``"ok"`` hold NaN
        statistics and -1 locations, so an overflow is never kept as a value.

    Notes
    -----
    ``median`` is ``torch.median`` of ``|h|``, the lower median of the ``seq_len * d``
    values (for an even count, the smaller middle value), as in Sun et al.'s ``exp2``.
    The computation is deterministic for a given model, input and ``batch_size``.
    """
    if not isinstance(input_ids, torch.Tensor) or input_ids.ndim != 2:
        raise ValueError(
            "input_ids must be a 2-D LongTensor of shape (n_sequences, seq_len); got "
            f"{type(input_ids).__name__} with shape {tuple(getattr(input_ids, 'shape', ()))}. "
            "For one sequence use input_ids[None]."
        )
    if input_ids.dtype != torch.long:
        raise ValueError(f"input_ids must hold int64 token ids; got dtype {input_ids.dtype}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    if isinstance(layers, str) or layers is None:
        modules = decoder_layers(model, layers)
    else:
        modules = list(layers)
    runner = getattr(model, "base_model", model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()

    reducers = [_LayerReducer() for _ in modules]
    sinks = [_SinkReducer() for _ in modules] if attention_sink else []
    handles = [m.register_forward_hook(r) for m, r in zip(modules, reducers, strict=True)]
    if attention_sink:
        handles += [
            _attention_module(m).register_forward_hook(s)
            for m, s in zip(modules, sinks, strict=True)
        ]
    context = _eager_attention(model) if attention_sink else contextlib.nullcontext()
    starts = range(0, input_ids.shape[0], batch_size)
    try:
        with context:
            bar = tqdm(starts, desc="measure", unit="batch", disable=not progress)
            for done, start in enumerate(bar, start=1):
                batch = input_ids[start : start + batch_size].to(device)
                runner(input_ids=batch, use_cache=False)
                for reducer in [*reducers, *sinks]:
                    if len(reducer.batches) != done:
                        raise RuntimeError(
                            "A decoder-layer hook fired "
                            f"{len(reducer.batches)} times in {done} forward passes: the "
                            "layers passed are not the ones the model runs once each. "
                            "Check `layers`."
                        )
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

    # One host transfer: (L, n, 6) and optionally (L, n).
    stats = torch.stack([torch.cat(r.batches) for r in reducers]).cpu().numpy()
    n_layers, n_seq = stats.shape[:2]
    top1 = stats[..., 0]
    status = np.full((n_layers, n_seq), "ok", dtype=object)
    status[np.isinf(top1)] = "overflow"
    status[np.isnan(top1)] = "nonfinite"
    bad = status != "ok"
    values = stats[..., :4].copy()
    values[bad] = np.nan
    position = stats[..., 4].astype(np.int64)
    channel = stats[..., 5].astype(np.int64)
    position[bad] = -1
    channel[bad] = -1
    ids = input_ids.cpu().numpy()
    token = np.where(bad, -1, ids[np.arange(n_seq)[None, :], np.maximum(position, 0)])

    table = {
        "layer": np.repeat(np.arange(1, n_layers + 1), n_seq),
        "sequence": np.tile(np.arange(n_seq), n_layers),
        "top1": values[..., 0].ravel(),
        "top2": values[..., 1].ravel(),
        "top3": values[..., 2].ravel(),
        "median": values[..., 3].ravel(),
        "top1_position": position.ravel(),
        "top1_channel": channel.ravel(),
        "top1_token": token.astype(np.int64).ravel(),
        "status": status.ravel().astype(str),
    }
    if attention_sink:
        table["attn_first_pos"] = (
            torch.stack([torch.cat(s.batches) for s in sinks]).cpu().numpy().ravel()
        )
    return pd.DataFrame(table)


def as_inputs(input_ids: torch.Tensor | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Evaluation sequences by variant: a tensor is the paper's variant (``"raw"``).

    Parameters
    ----------
    input_ids : torch.LongTensor or mapping of str to torch.LongTensor
        One set of sequences (raw text slices), or ``{variant: sequences}`` with variants
        from :data:`massive_activations.measurement.store.VARIANTS`.

    Returns
    -------
    dict of str to torch.LongTensor
        In the order given.
    """
    if isinstance(input_ids, torch.Tensor):
        return {DEFAULT_VARIANT: input_ids}
    inputs = dict(input_ids)
    unknown = sorted(set(inputs) - set(VARIANTS))
    if not inputs or unknown:
        raise ValueError(
            f"Evaluation inputs must be a tensor or a mapping from variant to tensor with "
            f"variants among {sorted(VARIANTS)}; got {sorted(inputs)}."
        )
    return inputs


def measure_inputs(
    model: nn.Module, input_ids: torch.Tensor | Mapping[str, torch.Tensor], **kwargs
) -> pd.DataFrame:
    """:func:`measure_model` on every variant of the evaluation sequences.

    Parameters
    ----------
    model : torch.nn.Module
        As for :func:`measure_model`.
    input_ids : torch.LongTensor or mapping of str to torch.LongTensor
        See :func:`as_inputs`.
    **kwargs
        Passed to :func:`measure_model`.

    Returns
    -------
    pandas.DataFrame
        :func:`measure_model`'s rows of every variant, with a ``variant`` column.
    """
    frames = [
        measure_model(model, ids, **kwargs).assign(variant=name)
        for name, ids in as_inputs(input_ids).items()
    ]
    return pd.concat(frames, ignore_index=True)
