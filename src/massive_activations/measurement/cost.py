"""What measuring one checkpoint costs: tokens, FLOPs and memory, computed and measured.

* :func:`measurement_cost`: the forward FLOPs of the evaluation tokens (Kaplan et al. 2020,
  Table 1; the reference file's ``forward_flops``: 2 per non-embedding parameter and token,
  plus the attention's ``2 n_layer n_ctx d_model``; the base model only, as
  :func:`~massive_activations.measurement.measure.measure_model` runs it, so no logits) and
  the memory of one unit: the weights plus the live activations of one layer and the
  statistics' float32 working copies;
* :func:`pythia_costs`: the same for every Pythia model of the reference file;
* :func:`checkpoint_architecture`: a checkpoint's sizes from its ``config.json`` (the
  parameter count exact, from the model built on the ``meta`` device: no weights read);
* :func:`gpu_share`: the GPU fraction a Ray task asks for (whole GPU or 1/2, 1/4, 1/8);
* :func:`measure_cost`: time and peak memory of loading and measuring one random checkpoint
  of a given shape, in a fresh process (the peak resident memory on a CPU);
* :func:`gpu_hours`: time estimates from FLOPs and bytes at an assumed throughput.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Mapping, Sequence

import pandas as pd

from massive_activations import reference
from massive_activations.measurement.sources import Checkpoint, parse_dtype

__all__ = [
    "CUDA_CONTEXT_BYTES",
    "GPU_HEADROOM",
    "checkpoint_architecture",
    "gpu_hours",
    "gpu_share",
    "measure_cost",
    "measurement_cost",
    "peak_rss_mib",
    "pythia_architecture",
    "pythia_costs",
    "reset_peak_rss",
]

#: Memory a CUDA context and the caching allocator take beside the tensors (an allowance).
CUDA_CONTEXT_BYTES = 1 << 30
#: Factor on the computed memory of a unit before it is matched to a GPU share.
GPU_HEADROOM = 1.25
_SHARES = (0.125, 0.25, 0.5, 1.0)
_ARCH_KEYS = ("n_params", "n_layers", "d_model", "n_heads", "d_ff", "vocab_size")


def _itemsize(dtype: str) -> int:
    import torch

    return torch.empty((), dtype=parse_dtype(dtype)[1]).element_size()


def measurement_cost(
    *,
    n_params: int,
    n_layers: int,
    d_model: int,
    n_heads: int,
    d_ff: int,
    vocab_size: int,
    n_sequences: int,
    seq_len: int,
    dtype: str,
    batch_size: int = 1,
    attention_sink: bool = False,
) -> dict:
    """Tokens, forward FLOPs and memory of measuring one checkpoint.

    Returns
    -------
    dict
        ``tokens``; ``flops`` (forward pass of every token, Kaplan et al. 2020 Table 1, with
        the non-embedding parameters ``n_params - 2 vocab_size d_model``: untied input and
        output embeddings, neither multiplied); ``weights_bytes`` (every parameter in
        ``dtype``); ``workspace_bytes`` (one batch through one layer: residual stream, norms,
        query/key/value, attention output, both MLP activations, and three float32 copies of
        ``|h|`` for the statistics; with ``attention_sink`` the eager attention weights and
        their float32 softmax); ``memory_bytes`` (their sum).
    """
    size = _itemsize(dtype)
    flops = reference.entry("forward_flops")
    tokens = int(n_sequences) * int(seq_len)
    non_embedding = max(int(n_params) - 2 * int(vocab_size) * int(d_model), 0)
    per_token = (
        flops["per_parameter"] * non_embedding
        + flops["attention_per_layer_context_width"] * n_layers * seq_len * d_model
    )
    b = max(1, min(int(batch_size), int(n_sequences)))
    workspace = b * seq_len * (8 * d_model + 2 * d_ff) * size + 3 * b * seq_len * d_model * 4
    if attention_sink:
        workspace += b * n_heads * seq_len * seq_len * (size + 4)
    weights = int(n_params) * size
    return {
        "tokens": tokens,
        "flops": float(tokens * per_token),
        "weights_bytes": weights,
        "workspace_bytes": int(workspace),
        "memory_bytes": int(weights + workspace),
    }


def pythia_architecture(size: str) -> dict:
    """Sizes of a Pythia model (``"70M"``, ``"pythia-70m"``) from the reference file."""
    table = reference.table("pythia_architectures")
    key = str(size).upper().removeprefix("PYTHIA-").removesuffix("-DEDUPED")
    if key not in table.index:
        raise ValueError(
            f"Unknown Pythia size {size!r}; the reference file has {list(table.index)}."
        )
    row = table.loc[key]
    return {
        "n_params": int(row["n_params"]),
        "n_layers": int(row["n_layers"]),
        "d_model": int(row["d_model"]),
        "n_heads": int(row["n_heads"]),
        "d_ff": int(row["d_ff"]),
        "vocab_size": int(row["vocab"]),
    }


def pythia_costs(
    n_sequences: int = 10,
    seq_len: int = 2048,
    dtypes: Sequence[str] = ("float16", "float32"),
    batch_size: int = 1,
) -> pd.DataFrame:
    """:func:`measurement_cost` of one checkpoint of every Pythia model, per dtype.

    Returns
    -------
    pandas.DataFrame
        ``model, dtype, n_params, tokens, flops, weights_bytes, workspace_bytes,
        memory_bytes``, models in the reference file's (size) order.
    """
    rows = []
    for size in reference.table("pythia_architectures").index:
        arch = pythia_architecture(size)
        for dtype in dtypes:
            cost = measurement_cost(
                **arch, n_sequences=n_sequences, seq_len=seq_len, dtype=dtype,
                batch_size=batch_size,
            )  # fmt: skip
            rows.append({"model": size, "dtype": parse_dtype(dtype)[0], **arch, **cost})
    return pd.DataFrame(rows)


def checkpoint_architecture(checkpoint: Checkpoint) -> dict:
    """Sizes of a checkpoint from its configuration (no weights read).

    The parameter count is that of the model built on PyTorch's ``meta`` device.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(
        checkpoint.location,
        revision=checkpoint.revision,
        gguf_file=checkpoint.gguf_file,
        cache_dir=checkpoint.cache_dir,
    )
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    d_model = int(config.hidden_size)
    return {
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "n_layers": int(config.num_hidden_layers),
        "d_model": d_model,
        "n_heads": int(config.num_attention_heads),
        "d_ff": int(getattr(config, "intermediate_size", None) or 4 * d_model),
        "vocab_size": int(config.vocab_size),
    }


def gpu_share(memory_bytes: float, gpu_memory_bytes: float) -> float:
    """The GPU fraction for a unit needing ``memory_bytes``: 1/8, 1/4, 1/2 or 1.

    The need is ``GPU_HEADROOM x memory_bytes + CUDA_CONTEXT_BYTES``.

    Raises
    ------
    ValueError
        If the unit needs more than one GPU (a checkpoint is loaded on one device); the
        message gives the need and the fixes.
    """
    need = (GPU_HEADROOM * float(memory_bytes) + CUDA_CONTEXT_BYTES) / float(gpu_memory_bytes)
    for share in _SHARES:
        if need <= share:
            return share
    raise ValueError(
        f"Measuring this checkpoint needs about {need * gpu_memory_bytes / 2**30:,.1f} GiB, more "
        f"than one GPU of {gpu_memory_bytes / 2**30:,.0f} GiB (a checkpoint is loaded on one "
        "device): use --dtype float16, a larger GPU (--gpu-memory-gib), or fewer sequences per "
        "batch."
    )


def reset_peak_rss() -> None:
    """Reset the process's peak resident memory (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # elsewhere the peak counts from the start of the process


def _rss_mib(field: str) -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mib() -> float:
    """Peak resident memory in MiB since the last :func:`reset_peak_rss` (VmHWM)."""
    return _rss_mib("VmHWM")


def _worker(spec: Mapping) -> dict:
    """Build a random GPT-NeoX of the given shape, save it, then time loading + measuring it."""
    import tempfile
    import time

    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from massive_activations.measurement.measure import measure_inputs
    from massive_activations.measurement.sources import load_model

    torch.manual_seed(int(spec["seed"]))
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    config = GPTNeoXConfig(
        vocab_size=spec["vocab_size"],
        hidden_size=spec["d_model"],
        num_hidden_layers=spec["n_layers"],
        num_attention_heads=spec["n_heads"],
        intermediate_size=spec["d_ff"],
        max_position_embeddings=max(2048, spec["seq_len"]),
    )
    ids = torch.randint(0, spec["vocab_size"], (spec["n_sequences"], spec["seq_len"]))
    with tempfile.TemporaryDirectory() as folder:
        model = GPTNeoXForCausalLM(config)
        n_params = int(sum(p.numel() for p in model.parameters()))
        model.to(parse_dtype(spec["dtype"])[1]).save_pretrained(folder)  # stored as loaded
        del model
        before = _rss_mib("VmRSS")
        reset_peak_rss()
        start = time.perf_counter()
        model = load_model(folder, dtype=spec["dtype"])
        loaded = time.perf_counter()
        measure_inputs(model, ids, batch_size=spec["batch_size"])
        end = time.perf_counter()
    return {
        "n_params": n_params,
        "load_s": loaded - start,
        "measure_s": end - loaded,
        "peak_mib": peak_rss_mib() - before,
    }


def measure_cost(
    arch: Mapping,
    *,
    dtype: str,
    n_sequences: int,
    seq_len: int,
    batch_size: int = 1,
    seed: int = 0,
    threads: int = 0,
) -> dict:
    """Time and memory of loading and measuring one random checkpoint of shape ``arch``.

    Runs in a fresh Python process: a GPT-NeoX with ``arch``'s sizes and random weights is
    saved in ``dtype``, then loaded and measured on random tokens as an extraction unit is.

    Returns
    -------
    dict
        ``n_params``, ``load_s``, ``measure_s`` (seconds) and ``peak_mib``: the rise of the
        process's peak resident memory over its memory before loading (Linux; the weights in
        ``dtype``, the activations and the allocator's overhead).
    """
    spec = {k: int(arch[k]) for k in _ARCH_KEYS if k != "n_params"}
    spec.update(
        dtype=parse_dtype(dtype)[0], n_sequences=int(n_sequences), seq_len=int(seq_len),
        batch_size=int(batch_size), seed=int(seed), threads=int(threads),
    )  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "massive_activations.measurement.cost", json.dumps(spec)],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        raise RuntimeError(f"Measuring the cost of {spec} failed:\n{run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def gpu_hours(
    costs: pd.DataFrame,
    checkpoints: Mapping[str, int],
    *,
    tflops: Mapping[str, float],
    utilisation: float,
    load_gb_per_s: float,
) -> pd.DataFrame:
    """GPU-hours to measure ``checkpoints[model]`` checkpoints of each model of ``costs``.

    One checkpoint takes its FLOPs at ``utilisation`` x the peak ``tflops[dtype]`` plus its
    weights read at ``load_gb_per_s`` (GB = 1e9 bytes); both are assumptions the caller names.

    Returns
    -------
    pandas.DataFrame
        ``costs``' ``model, dtype`` with ``checkpoints``, ``seconds_per_checkpoint`` and
        ``gpu_hours``, for the models of ``checkpoints``.
    """
    if not 0 < utilisation <= 1 or load_gb_per_s <= 0:
        raise ValueError(
            f"utilisation must be in (0, 1] and load_gb_per_s > 0; got {utilisation}, "
            f"{load_gb_per_s}."
        )
    out = costs[costs["model"].isin(list(checkpoints))][["model", "dtype"]].copy()
    rows = costs.loc[out.index]
    peak = rows["dtype"].map(lambda d: float(tflops[d]) * 1e12 * utilisation)
    seconds = rows["flops"] / peak + rows["weights_bytes"] / (load_gb_per_s * 1e9)
    out["checkpoints"] = rows["model"].map(checkpoints).astype(int)
    out["seconds_per_checkpoint"] = seconds
    out["gpu_hours"] = seconds * out["checkpoints"] / 3600.0
    return out.reset_index(drop=True)


if __name__ == "__main__":
    print(json.dumps(_worker(json.loads(sys.argv[1]))))
