# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Extracting all of Pythia
#
# **Reproduces:** the scale of the paper's measurement {cite}`gallego2025hidden`: every
# checkpoint of the nine Pythia models {cite}`biderman2023pythia`, each measured on 10
# sequences of 2,048 tokens. This page says what one checkpoint costs, measures it here for
# the sizes a CPU can run, computes it for the rest, and estimates the GPU-hours of the
# release's subsets and of the full schedule; then gives the command that runs it on a cluster.
#
# **Needs:** a CPU and, for the measured sizes, a minute or so per size and dtype; nothing
# is downloaded (the measured models have random weights of the given shape, which cost the
# same as trained ones).
#
# **Parameters (papermill):** `n_sequences`, `seq_len` (the paper's evaluation: 10 x 2048),
# `measured` (shapes measured here: Pythia sizes such as `"14M"`, or `"tiny"`),
# `measured_n_sequences`, `measured_seq_len`, `dtypes`, `utilisation` and `load_gb_per_s`
# (the two assumptions of the GPU-hour estimate, see below).

# %% tags=["parameters"]
n_sequences = 10
seq_len = 2048
measured = ["14M", "70M"]
measured_n_sequences = 2
measured_seq_len = 2048
dtypes = ["float16", "float32"]
utilisation = 0.3
load_gb_per_s = 1.0

# %%
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from massive_activations import reference
from massive_activations.measurement import cost, integrity
from massive_activations.schedule import pythia_steps

GIB = 2**30
gpu = reference.entry("gpu_throughput")
release = reference.table("release_checkpoints")["value"]

# %% [markdown]
# ## One checkpoint, per model
#
# A unit of work is one (model, step, dtype): load the checkpoint, run the base model over the
# evaluation sequences with the statistics' hooks, write its rows. Its forward FLOPs are those
# of Kaplan et al.'s Table 1 {cite}`kaplan2020scaling` (the reference file's `forward_flops`: 2 per non-embedding
# parameter and token, plus the attention's); its memory is the weights in the dtype plus one
# layer's activations for one sequence and the float32 copies the statistics take. The GPU
# share is what a Ray task asks for on one {glue:text}`gpu_name` (the smallest of 1/8, 1/4,
# 1/2, 1 that holds 1.25 x the memory plus 1 GiB for CUDA).

# %% tags=["hide-input"]
costs = cost.pythia_costs(n_sequences=n_sequences, seq_len=seq_len, dtypes=dtypes)
costs["GPU share"] = [cost.gpu_share(m, gpu["memory_gib"] * GIB) for m in costs.memory_bytes]
n_schedule = len(pythia_steps())
glue("gpu_name", gpu["gpu"], display=False)
glue("n_schedule", n_schedule, display=False)
glue("tokens", int(costs.tokens.iloc[0]), display=False)
view = costs.assign(
    checkpoints=n_schedule,
    release=costs.model.map(release).astype(int),
    **{"TFLOP": costs.flops / 1e12, "weights GiB": costs.weights_bytes / GIB,
       "memory GiB": costs.memory_bytes / GIB},
)[["model", "dtype", "checkpoints", "release", "tokens", "TFLOP", "weights GiB", "memory GiB",
   "GPU share"]]  # fmt: skip
view.round(3)

# %% [markdown]
# Every model has {glue:text}`n_schedule` checkpoints on the hub; the paper's release measured
# the subset of each in the `release` column. One checkpoint is {glue:text}`tokens:,` tokens.

# %% [markdown]
# ## Measured here
#
# The sizes a CPU can run, measured as an extraction unit runs: a model of that shape with
# random weights is saved, loaded in the dtype and measured on
# {glue:text}`measured_tokens:,` tokens, in a fresh process (peak resident memory above the
# process's memory before loading). The computed column is the cost model above for the same
# shape and tokens.

# %% tags=["hide-input"]
shapes = {
    "tiny": {"n_layers": 2, "d_model": 32, "n_heads": 4, "d_ff": 128, "vocab_size": 128},
    **{size: cost.pythia_architecture(size) for size in reference.table("pythia_architectures").index},
}  # fmt: skip
rows = []
for name in measured:
    arch = {k: v for k, v in shapes[name].items() if k != "n_params"}
    for dtype in dtypes:
        got = cost.measure_cost(arch, dtype=dtype, n_sequences=measured_n_sequences,
                                seq_len=measured_seq_len)  # fmt: skip
        want = cost.measurement_cost(**arch, n_params=got["n_params"], dtype=dtype,
                                     n_sequences=measured_n_sequences, seq_len=measured_seq_len)  # fmt: skip
        rows.append({
            "shape": name, "dtype": dtype, "parameters": got["n_params"],
            "load s": got["load_s"], "measure s": got["measure_s"],
            "GFLOP/s": want["flops"] / got["measure_s"] / 1e9,
            "peak MiB (measured)": got["peak_mib"],
            "memory MiB (computed)": want["memory_bytes"] / 2**20,
            "weights MiB (computed)": want["weights_bytes"] / 2**20,
        })  # fmt: skip
here = pd.DataFrame(rows)
gap = here["peak MiB (measured)"] - here["memory MiB (computed)"]
glue("measured_tokens", measured_n_sequences * measured_seq_len, display=False)
glue("gap_min", float(gap.min()), display=False)
glue("gap_max", float(gap.max()), display=False)
here.round(2)

# %% [markdown]
# The measured peak differs from the computed memory by {glue:text}`gap_min:+,.0f` to
# {glue:text}`gap_max:+,.0f` MiB: what the allocator and the loader keep besides the tensors,
# which dominates for the smallest shapes, and the cost model's allowance for activations,
# an upper bound of what one layer holds at a time. The throughput column is
# this machine's CPU (shared with other jobs while the book is built), the scale against which
# a GPU's tens to hundreds of TFLOP/s are to be read.

# %% [markdown]
# ## GPU-hours
#
# An estimate, from two assumptions named here: the GPU runs the forward pass at
# `utilisation` = {glue:text}`utilisation` of its peak dense throughput (the reference file's
# `gpu_throughput`: the {glue:text}`gpu_name` datasheet, {glue:text}`tflops_fp16` TFLOP/s in
# float16 on the Tensor Cores, {glue:text}`tflops_fp32` TFLOP/s in float32 without TF32), and
# a checkpoint's weights are read at `load_gb_per_s` = {glue:text}`load_gbps` GB/s (a local or
# network file system; downloading from the hub is slower and not counted). One sequence per
# forward pass keeps the GPU far from its peak, so the utilisation is the assumption to
# question first; the reading time dominates the small models.

# %% tags=["hide-input"]
glue("utilisation", utilisation, display=False)
glue("load_gbps", load_gb_per_s, display=False)
glue("tflops_fp16", gpu["values"]["float16"], display=False)
glue("tflops_fp32", gpu["values"]["float32"], display=False)
reports = integrity.upstream_reports()
skipped = reports.groupby("model").size()
glue("skip_2p8b", int(skipped.get("pythia-2.8b", 0)), display=False)
plans = {
    "release subsets": {m: int(release[m]) for m in release.index},
    "full schedule": {m: n_schedule for m in release.index},
}
hours = []
for plan, counts in plans.items():
    h = cost.gpu_hours(costs, counts, tflops=gpu["values"], utilisation=utilisation,
                       load_gb_per_s=load_gb_per_s)  # fmt: skip
    hours.append(h.assign(plan=plan))
    half = costs[costs.dtype == "float16"]
    read = float((half.weights_bytes * half.model.map(counts)).sum())
    glue(f"tb_{plan.split()[0]}", read / 1e12, display=False)
hours = pd.concat(hours, ignore_index=True)
totals = hours.pivot_table(index="plan", columns="dtype", values="gpu_hours", aggfunc="sum")
for plan in plans:
    for dtype in dtypes:
        glue(f"hours_{plan.split()[0]}_{dtype}", float(totals.loc[plan, dtype]), display=False)
display(hours.pivot_table(index="model", columns=["plan", "dtype"], values="gpu_hours",
                          sort=False).round(2))  # fmt: skip
totals.round(1)

# %% [markdown]
# The release's subsets take about {glue:text}`hours_release_float16:,.1f` GPU-hours in float16
# ({glue:text}`hours_release_float32:,.1f` in float32); the full schedule of the nine models
# about {glue:text}`hours_full_float16:,.1f` ({glue:text}`hours_full_float32:,.1f`). The
# deduplicated models double it. The data moved is what makes it days rather than hours when
# the weights come from the hub: {glue:text}`tb_release:,.1f` TB of float16 weights for the
# release's subsets, {glue:text}`tb_full:,.1f` TB for the full schedule, read once per
# checkpoint whatever the GPU. By default the weight check skips the step branches that
# serve another step's weights (chapter "Checkpoint integrity"): for pythia-2.8b,
# {glue:text}`skip_2p8b` of its {glue:text}`n_schedule` branches.

# %% [markdown]
# ## On a cluster
#
# Each unit is one Ray task: it loads its checkpoint on the share of a GPU given above, measures
# it with the same hooks, and the driver writes its rows through the same store as the
# in-process path, so an interrupted run resumes, a finished unit is never redone and no row
# is written twice. A failed unit is retried (twice by default) and then reported with its
# reason; the others complete. The package (with its pinned Ray) is installed on every node,
# the data folder is the driver's, and the checkpoints are read where the tasks run (the hub
# cache of each node, or a shared `--cache-dir`). Started from a machine of the cluster
# (`ray start` done there):

# %%
models = " ".join(f"pythia-{m.lower()}" for m in release.index)
command = (
    "python -m massive_activations.measurement.extract extract --suite pythia \\\n"
    f"    --pythia {models} \\\n"
    f"    --steps all --text eval.txt --n-sequences {n_sequences} --seq-len {seq_len} \\\n"
    "    --dtype float16 --device cuda --executor ray --address auto"
)
display(Markdown(f"```bash\n{command}\n```"))

# %% [markdown]
# The same from Python is `extract(checkpoints, ids, store, executor=RayExecutor(address=
# "auto"))` (`massive_activations.measurement.ray_executor`), and the measuring chapter's
# `suite="pythia-<size>"` path takes `executor="ray"`. Without `--address` a Ray instance is
# started on this machine only, bound to 127.0.0.1, and stopped at the end; nothing contacts
# another address. `--gpus-per-task` overrides the derived share; `benchmarks/extraction.py
# --executor ray` measures the Ray path's overhead per unit against the in-process path.
