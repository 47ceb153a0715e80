"""The cost model of one checkpoint's measurement: FLOPs, memory, GPU share, GPU-hours."""

from __future__ import annotations

import pandas as pd
import pytest

from massive_activations.measurement.cost import (
    CUDA_CONTEXT_BYTES,
    GPU_HEADROOM,
    checkpoint_architecture,
    gpu_hours,
    gpu_share,
    measure_cost,
    measurement_cost,
    pythia_architecture,
    pythia_costs,
)
from massive_activations.measurement.sources import local_checkpoints

# Non-embedding parameters of Pythia as Biderman et al. 2023 (Table 1) print them.
PYTHIA_NON_EMBEDDING = {"70M": 18_915_328, "160M": 85_056_000, "12B": 11_327_027_200}


def test_flops_use_the_non_embedding_parameters():
    for size, non_embedding in PYTHIA_NON_EMBEDDING.items():
        arch = pythia_architecture(size)
        cost = measurement_cost(**arch, n_sequences=10, seq_len=2048, dtype="fp16")
        per_token = 2 * non_embedding + 2 * arch["n_layers"] * 2048 * arch["d_model"]
        assert cost["tokens"] == 20480
        assert cost["flops"] == 20480 * per_token
        assert cost["weights_bytes"] == 2 * arch["n_params"]
    with pytest.raises(ValueError, match="Unknown Pythia size '13B'"):
        pythia_architecture("13B")


def test_pythia_costs_table():
    costs = pythia_costs()
    assert len(costs) == 18 and set(costs.dtype) == {"float16", "float32"}
    wide = costs.pivot(index="model", columns="dtype", values="weights_bytes")
    assert (wide["float32"] == 2 * wide["float16"]).all()
    sink = measurement_cost(**pythia_architecture("1B"), n_sequences=1, seq_len=2048,
                            dtype="fp32", attention_sink=True)  # fmt: skip
    plain = measurement_cost(**pythia_architecture("1B"), n_sequences=1, seq_len=2048,
                             dtype="fp32")  # fmt: skip
    assert sink["workspace_bytes"] - plain["workspace_bytes"] == 8 * 2048 * 2048 * 8


def test_gpu_share():
    gib = 2**30
    gpu = 80 * gib

    def memory_for(share):  # the largest memory that still fits in ``share`` of the GPU
        return (share * gpu - CUDA_CONTEXT_BYTES) / GPU_HEADROOM

    assert gpu_share(memory_for(0.125), gpu) == 0.125
    assert gpu_share(memory_for(0.125) + 1e6, gpu) == 0.25
    assert gpu_share(memory_for(1.0), gpu) == 1.0
    with pytest.raises(ValueError, match=r"more than one GPU of 80 GiB.*--dtype float16"):
        gpu_share(memory_for(1.0) + 1e6, gpu)
    twelve = measurement_cost(**pythia_architecture("12B"), n_sequences=10, seq_len=2048,
                              dtype="fp16")  # fmt: skip
    assert gpu_share(twelve["memory_bytes"], gpu) == 0.5  # 22 GiB of weights


def test_checkpoint_architecture_counts_the_parameters(tiny_suite):
    checkpoint = local_checkpoints(tiny_suite, ["a"], [0])[0]
    arch = checkpoint_architecture(checkpoint)
    model = checkpoint.load()
    assert arch["n_params"] == sum(p.numel() for p in model.parameters())
    assert (arch["n_layers"], arch["d_model"], arch["n_heads"], arch["d_ff"]) == (2, 32, 4, 64)
    assert arch["vocab_size"] == 128


def test_measured_memory_holds_the_weights():
    arch = {"n_layers": 2, "d_model": 256, "n_heads": 4, "d_ff": 1024, "vocab_size": 8192}
    measured = measure_cost(arch, dtype="float32", n_sequences=1, seq_len=64, threads=1)
    computed = measurement_cost(**arch, n_params=measured["n_params"], n_sequences=1,
                                seq_len=64, dtype="float32")  # fmt: skip
    assert measured["n_params"] == 2 * 8192 * 256 + 2 * (12 * 256 * 256 + 13 * 256) + 2 * 256
    assert measured["peak_mib"] >= 0.9 * computed["weights_bytes"] / 2**20
    assert measured["load_s"] > 0 and measured["measure_s"] > 0


def test_gpu_hours():
    costs = pd.DataFrame(
        {"model": ["x", "x"], "dtype": ["float16", "float32"], "flops": [3.6e15, 3.6e15],
         "weights_bytes": [1e9, 2e9]}
    )  # fmt: skip
    hours = gpu_hours(costs, {"x": 100}, tflops={"float16": 100, "float32": 10},
                      utilisation=0.5, load_gb_per_s=1.0)  # fmt: skip
    # fp16: 3.6e15 / 5e13 = 72 s + 1 s; fp32: 720 s + 2 s; x 100 checkpoints
    assert hours.seconds_per_checkpoint.tolist() == pytest.approx([73.0, 722.0])
    assert hours.gpu_hours.tolist() == pytest.approx([73.0 * 100 / 3600, 722.0 * 100 / 3600])
    with pytest.raises(ValueError, match="utilisation must be in"):
        gpu_hours(costs, {"x": 1}, tflops={}, utilisation=0, load_gb_per_s=1)
