"""Ablations of the massive activation's writer, and how fast AdamW can rebuild it.

``"zero_row"``
    Zero the row of the writer's output projection that feeds the outlier's channel (the
    matching bias too, if any): the writer's output at that channel becomes zero at every
    position, and nothing else of the model changes.  The most surgical removal: the units
    that fire, every other channel and every other layer are left intact, so whatever the
    model loses is what the activation was doing, and its return (or not) is a question of
    whether training rebuilds the same weights.
``"reinit"``
    Re-initialise every weight of the writer sub-module (``N(0, initializer_range)``,
    biases zero, seeded): the mechanism that decides when to fire is gone too, so a return
    needs a new detector as well as a new write.

:func:`adam_rate_limit` bounds the regrowth speed at the zeroed row: an Adam update moves
each weight by at most the learning rate when ``1 - beta1 <= sqrt(1 - beta2)`` (Kingma and Ba
2015, Section 2.1; true for the runs' 0.9 and 0.95, and AdamW without weight decay is Adam),
so the write ``sum_j W[c, j] a_j`` can change by at most about ``lr * sum_j |a_j|`` per step
while the units' activations ``a`` stay as they are.
"""

from __future__ import annotations

import torch
from torch import nn

from massive_activations.measurement.measure import decoder_layers
from massive_activations.regrowth.config import ABLATIONS
from massive_activations.regrowth.locate import output_projection, submodule

__all__ = ["ablate", "adam_rate_limit"]


@torch.no_grad()
def ablate(model: nn.Module, writer: dict, kind: str, *, seed: int = 0) -> dict:
    """Apply an ablation to the writer, in place.

    Parameters
    ----------
    model : torch.nn.Module
        The model (Llama or GPT-NeoX family).
    writer : dict
        :func:`massive_activations.regrowth.locate.writer_of`: ``layer`` (1-based),
        ``submodule`` (``"attention"`` or ``"mlp"``) and ``channel``.
    kind : {"zero_row", "reinit"}
        See the module docstring.
    seed : int
        Seed of the re-initialisation.

    Returns
    -------
    dict
        ``kind``, ``layer``, ``submodule``, ``channel``, the ``parameters`` changed (names)
        and ``n_changed`` (elements set).
    """
    if kind not in ABLATIONS:
        raise ValueError(f"Unknown ablation {kind!r}; choose one of {ABLATIONS}.")
    layer = decoder_layers(model)[writer["layer"] - 1]
    names = {id(p): n for n, p in model.named_parameters()}
    changed, n_changed = [], 0
    if kind == "zero_row":
        proj = output_projection(layer, writer["submodule"])
        proj.weight[writer["channel"]] = 0.0
        changed.append(names[id(proj.weight)])
        n_changed += proj.weight.shape[1]
        if proj.bias is not None:
            proj.bias[writer["channel"]] = 0.0
            changed.append(names[id(proj.bias)])
            n_changed += 1
    else:
        std = float(getattr(getattr(model, "config", None), "initializer_range", 0.02))
        generator = torch.Generator().manual_seed(int(seed))
        module = submodule(layer, writer["submodule"])
        for param in module.parameters():
            if param.ndim >= 2:
                values = torch.randn(param.shape, generator=generator, dtype=torch.float32)
                param.copy_(values.to(param.dtype) * std)
            else:
                param.zero_()
            changed.append(names[id(param)])
            n_changed += param.numel()
    return {
        "kind": kind,
        "layer": int(writer["layer"]),
        "submodule": str(writer["submodule"]),
        "channel": int(writer["channel"]),
        "parameters": changed,
        "n_changed": int(n_changed),
    }


def adam_rate_limit(units, lr: float) -> float:
    """About the fastest an AdamW step can change the writer's output at the element.

    Parameters
    ----------
    units : pandas.DataFrame
        :func:`massive_activations.regrowth.locate.writer_units` (its ``abs_activation``).
    lr : float
        The learning rate.

    Returns
    -------
    float
        ``lr * sum_j |a_j|``: the change per step if every weight of the row moved by ``lr``
        in the direction that grows the write, with the units' activations held fixed.
    """
    return float(lr * units["abs_activation"].sum())
