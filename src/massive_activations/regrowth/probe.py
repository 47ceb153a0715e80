"""One measurement of a model during the regrowth runs: every layer's statistics, the
outlier element's value and writes, and the held-out loss.

:func:`measure_point` runs :func:`massive_activations.measurement.measure.measure_model`
(top-1/2/3, median, where the top-1 sits, attention to position 0) with extra hooks that, in
the same forward passes, read at the outlier's element ``(position, channel)`` each layer's
output and its attention's and MLP's writes.  :func:`heldout_loss` is the mean cross-entropy
of the evaluation windows.  Both run in float32 in eval mode, whatever the training precision.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from massive_activations.measurement.measure import decoder_layers, measure_model
from massive_activations.regrowth.locate import submodule

__all__ = ["TRACKED", "heldout_loss", "measure_point"]

#: Columns added to measure_model's: what the element holds after the layer, and the writes.
TRACKED = {"output": "tracked_value", "attention": "attn_write", "mlp": "mlp_write"}


def _first(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple | list) else output


def measure_point(
    model: nn.Module, eval_ids: torch.Tensor, position: int, channel: int
) -> pd.DataFrame:
    """Statistics of every decoder layer and sequence, and the element's value.

    Returns
    -------
    pandas.DataFrame
        :func:`~massive_activations.measurement.measure.measure_model`'s table with
        ``attention_sink=True`` (one row per layer and sequence), plus ``tracked_value``
        (the layer's output at ``(position, channel)``, signed), ``attn_write`` and
        ``mlp_write`` (what the layer's attention and MLP add there).
    """
    layers = decoder_layers(model)
    records: dict[tuple[int, str], list[torch.Tensor]] = {}

    def hook(key):
        def record(module, args, output):
            out = _first(output).detach()
            records.setdefault(key, []).append(out[:, position, channel].float().cpu())

        return record

    handles = []
    for i, layer in enumerate(layers, start=1):
        handles.append(layer.register_forward_hook(hook((i, "output"))))
        for kind in ("attention", "mlp"):
            handles.append(submodule(layer, kind).register_forward_hook(hook((i, kind))))
    try:
        table = measure_model(model, eval_ids, attention_sink=True)
    finally:
        for handle in handles:
            handle.remove()
    for kind, column in TRACKED.items():
        values = [torch.cat(records[(i, kind)]).double().numpy() for i in range(1, len(layers) + 1)]
        table[column] = np.concatenate(values)  # layer-major, as measure_model's rows
    return table


@torch.no_grad()
def heldout_loss(model: nn.Module, eval_ids: torch.Tensor, batch_size: int = 4) -> float:
    """Mean next-token cross-entropy (nats per token) over the evaluation windows, float32."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for start in range(0, eval_ids.shape[0], batch_size):
            batch = eval_ids[start : start + batch_size].to(device)
            n_tokens = batch.shape[0] * (batch.shape[1] - 1)
            total += float(model(input_ids=batch, labels=batch).loss) * n_tokens
            count += n_tokens
    finally:
        model.train(was_training)
    return total / count
