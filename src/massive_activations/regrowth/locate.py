"""Where a model's massive activation is written: the element, the sub-module, its units.

A decoder layer adds two writes to the residual stream: its attention's output and its MLP's
output (``h_l = h_{l-1} + attn_l + mlp_l`` in the Llama family).  The massive activation is one
element of ``h`` (a position and a channel) that is orders of magnitude larger than the
median; it is *written* by the first sub-module whose output at that element carries most of
it, and the residual stream carries it on to the later layers.

* :func:`outlier_element`: the element, found from the data: in the layer with the largest
  top-1/median ratio (ratio of means over the sequences, paper Eq. 8), the position and
  channel that hold the top-1 in most sequences;
* :func:`submodule_writes`: per layer and sequence, the attention's and the MLP's write and
  the layer's output at that element;
* :func:`locate`: those writes as a tidy table (one row per layer and sub-module) with the
  writer marked;
* :func:`writer_units`: the writer's units (the inputs of its output projection) and what
  each contributes to the element.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from massive_activations.measurement.measure import decoder_layers, measure_model

__all__ = [
    "SUBMODULES",
    "locate",
    "outlier_element",
    "output_projection",
    "submodule",
    "submodule_writes",
    "writer_of",
    "writer_units",
]

#: The writes of a decoder layer in the order they are added, and the layer's output.
SUBMODULES = ("attention", "mlp", "output")

# Attribute names of each sub-module, and of its output projection, by architecture.
_NAMES = {"attention": ("self_attn", "attention", "attn"), "mlp": ("mlp",)}
_PROJECTIONS = {"attention": ("o_proj", "dense", "c_proj"), "mlp": ("down_proj", "dense_4h_to_h")}


def submodule(layer: nn.Module, kind: str) -> nn.Module:
    """The ``"attention"`` or ``"mlp"`` sub-module of a decoder layer."""
    for name in _NAMES.get(kind, ()):
        module = getattr(layer, name, None)
        if isinstance(module, nn.Module):
            return module
    raise ValueError(
        f"{type(layer).__name__} has no {kind} sub-module among the attributes "
        f"{_NAMES.get(kind, ())}; locating writers supports the Llama and GPT-NeoX families."
    )


def output_projection(layer: nn.Module, kind: str) -> nn.Linear:
    """The linear map whose output a sub-module adds to the residual stream (Llama:
    ``mlp.down_proj``, ``self_attn.o_proj``; GPT-NeoX: ``mlp.dense_4h_to_h``,
    ``attention.dense``)."""
    module = submodule(layer, kind)
    for name in _PROJECTIONS[kind]:
        proj = getattr(module, name, None)
        if isinstance(proj, nn.Linear):
            return proj
    raise ValueError(
        f"The {kind} sub-module {type(module).__name__} has no output projection among "
        f"{_PROJECTIONS[kind]}."
    )


def _first(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple | list) else output


def _layer_ratios(stats: pd.DataFrame) -> pd.Series:
    """Top-1/median ratio of means over the sequences, per layer (paper Eq. 8)."""
    means = stats[stats["status"] == "ok"].groupby("layer")[["top1", "median"]].mean()
    return (means["top1"] / means["median"]).rename("ratio")


def _element(stats: pd.DataFrame) -> dict:
    ratio = _layer_ratios(stats)
    layer = int(ratio.idxmax())
    rows = stats[(stats["layer"] == layer) & (stats["status"] == "ok")]
    counts = rows.groupby(["top1_position", "top1_channel"]).size()
    counts = counts.sort_index().sort_values(ascending=False, kind="stable")
    position, channel = counts.index[0]
    return {
        "layer": layer,
        "ratio": float(ratio[layer]),
        "position": int(position),
        "channel": int(channel),
        "share": float(counts.iloc[0] / len(rows)),
    }


def outlier_element(model: nn.Module, input_ids: torch.Tensor) -> dict:
    """The element that holds the massive activation, found from the data.

    Parameters
    ----------
    model : torch.nn.Module
        A causal LM of the Llama or GPT-NeoX family.
    input_ids : torch.LongTensor
        Evaluation windows, ``(n_sequences, seq_len)``.

    Returns
    -------
    dict
        ``layer`` (1-based) with the largest top-1/median ratio (ratio of means over the
        sequences), that ``ratio``, and the ``position`` and ``channel`` holding that layer's
        top-1 in most sequences (ties: the smallest position, then channel), with ``share``,
        the fraction of sequences where it does.
    """
    return _element(measure_model(model, input_ids))


@torch.no_grad()
def submodule_writes(
    model: nn.Module, input_ids: torch.Tensor, position: int, channel: int
) -> pd.DataFrame:
    """Each layer's attention write, MLP write and output at one element, per sequence.

    Returns
    -------
    pandas.DataFrame
        Columns ``layer`` (1-based), ``submodule`` (:data:`SUBMODULES`), ``sequence``,
        ``value`` (the signed value at ``(position, channel)``) and ``top1`` (the largest
        absolute value of that sub-module's output over all positions and channels).
    """
    if not 0 <= position < input_ids.shape[1]:
        raise ValueError(f"position {position} is outside the windows' {input_ids.shape[1]}.")
    layers = decoder_layers(model)
    records: dict[tuple[int, str], list] = {}

    def hook(key):
        def record(module, args, output):
            out = _first(output).detach().float()
            values = out[:, position, channel]
            top = out.abs().reshape(out.shape[0], -1).amax(dim=1)
            records.setdefault(key, []).append(torch.stack([values, top], dim=1))

        return record

    handles = []
    for i, layer in enumerate(layers, start=1):
        for kind in ("attention", "mlp"):
            handles.append(submodule(layer, kind).register_forward_hook(hook((i, kind))))
        handles.append(layer.register_forward_hook(hook((i, "output"))))
    runner = getattr(model, "base_model", model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in range(input_ids.shape[0]):
            runner(input_ids=input_ids[start : start + 1].to(device), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    frames = []
    for (layer, kind), parts in records.items():
        stats = torch.cat(parts).cpu().numpy().astype(np.float64)
        frames.append(
            pd.DataFrame(
                {
                    "layer": layer,
                    "submodule": kind,
                    "sequence": np.arange(len(stats)),
                    "value": stats[:, 0],
                    "top1": stats[:, 1],
                }
            )
        )
    order = {k: i for i, k in enumerate(SUBMODULES)}
    out = pd.concat(frames, ignore_index=True)
    out["_k"] = out["submodule"].map(order)
    out = out.sort_values(["layer", "_k", "sequence"], kind="stable").drop(columns="_k")
    return out.reset_index(drop=True)


def locate(model: nn.Module, input_ids: torch.Tensor, *, share: float = 0.5) -> pd.DataFrame:
    """Where the massive activation is written: one row per layer and sub-module.

    Parameters
    ----------
    model : torch.nn.Module
        A causal LM of the Llama or GPT-NeoX family.
    input_ids : torch.LongTensor
        Evaluation windows, ``(n_sequences, seq_len)``.
    share : float
        The writer is the first sub-module (in the order the model runs them) whose mean
        absolute write at the element reaches ``share`` of the element's peak (the largest
        mean absolute value of a layer's output there).

    Returns
    -------
    pandas.DataFrame
        Columns ``layer``, ``submodule`` (``attention``, ``mlp``, ``output``), ``position``
        and ``channel`` (the element, :func:`outlier_element`), ``value`` (mean signed value
        there over the sequences), ``abs_value`` (mean absolute value), ``fraction_of_peak``
        (``abs_value`` over the peak), ``top1`` (mean over sequences of the sub-module's
        largest absolute output anywhere), ``ratio`` (output rows: the layer's top-1/median
        ratio of means; NaN for the writes) and ``writer`` (True on the writer's row only).
    """
    stats = measure_model(model, input_ids)
    element = _element(stats)
    writes = submodule_writes(model, input_ids, element["position"], element["channel"])
    writes["abs_value"] = writes["value"].abs()
    table = (
        writes.groupby(["layer", "submodule"], sort=False)[["value", "abs_value", "top1"]]
        .mean()
        .reset_index()
    )
    peak = table.loc[table["submodule"] == "output", "abs_value"].max()
    table.insert(2, "position", element["position"])
    table.insert(3, "channel", element["channel"])
    table["fraction_of_peak"] = table["abs_value"] / peak
    table = table.merge(_layer_ratios(stats), left_on="layer", right_index=True, how="left")
    table.loc[table["submodule"] != "output", "ratio"] = np.nan
    writes_only = table[table["submodule"] != "output"]
    hits = writes_only.index[writes_only["fraction_of_peak"] >= share]
    table["writer"] = False
    if len(hits):
        table.loc[hits[0], "writer"] = True
    return table.reset_index(drop=True)


def writer_of(table: pd.DataFrame) -> dict:
    """The writer row of :func:`locate`'s table as a dict (``layer``, ``submodule``,
    ``position``, ``channel``, ``value``, ``abs_value``, ``fraction_of_peak``, ``peak``).

    Raises
    ------
    ValueError
        When no sub-module reaches the share (no single writer: lower ``share``).
    """
    rows = table[table["writer"]]
    if rows.empty:
        raise ValueError(
            "No single sub-module writes the outlier (none reaches the share of its peak): "
            "lower `share` (writer_share), or check that the model has a massive activation."
        )
    row = rows.iloc[0]
    peak = float(table.loc[table["submodule"] == "output", "abs_value"].max())
    out = {k: row[k] for k in ("layer", "submodule", "position", "channel")}
    out = {k: (str(v) if k == "submodule" else int(v)) for k, v in out.items()}
    out.update(
        value=float(row["value"]),
        abs_value=float(row["abs_value"]),
        fraction_of_peak=float(row["fraction_of_peak"]),
        peak=peak,
    )
    return out


@torch.no_grad()
def writer_units(model: nn.Module, input_ids: torch.Tensor, writer: dict) -> pd.DataFrame:
    """What each unit of the writer contributes to the element.

    The writer's output at channel ``c`` is ``sum_j W[c, j] a_j (+ bias)``, with ``a`` the
    input of its output projection (MLP: the gated hidden units; attention: the heads'
    concatenated outputs) at the element's position.

    Returns
    -------
    pandas.DataFrame
        One row per unit ``j``, largest absolute contribution first: ``unit``,
        ``activation`` (mean over sequences of ``a_j``), ``abs_activation`` (mean of
        ``|a_j|``), ``weight`` (``W[c, j]``), ``contribution`` (mean of ``W[c, j] a_j``),
        ``share`` (contribution over the total write, bias included) and ``rank`` (1 =
        largest absolute contribution).
    """
    layer = decoder_layers(model)[writer["layer"] - 1]
    proj = output_projection(layer, writer["submodule"])
    position, channel = writer["position"], writer["channel"]
    inputs = []
    handle = proj.register_forward_pre_hook(
        lambda module, args: inputs.append(args[0].detach().float()[:, position, :])
    )
    runner = getattr(model, "base_model", model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in range(input_ids.shape[0]):
            runner(input_ids=input_ids[start : start + 1].to(device), use_cache=False)
    finally:
        handle.remove()
        model.train(was_training)
    a = torch.cat(inputs).cpu().double().numpy()
    w = proj.weight[channel].detach().cpu().double().numpy()
    bias = 0.0 if proj.bias is None else float(proj.bias[channel])
    contribution = (a * w).mean(axis=0)
    total = contribution.sum() + bias
    table = pd.DataFrame(
        {
            "unit": np.arange(w.size),
            "activation": a.mean(axis=0),
            "abs_activation": np.abs(a).mean(axis=0),
            "weight": w,
            "contribution": contribution,
            "share": contribution / total if total else np.nan,
        }
    )
    table = table.iloc[np.argsort(-np.abs(contribution), kind="stable")].reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    return table
