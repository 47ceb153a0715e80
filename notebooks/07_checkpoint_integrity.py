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
# # Checkpoint integrity
#
# **Reproduces:** nothing of the paper. It asks whether the checkpoints behind a trajectory
# hold the weights of their step. Two open reports on the Pythia repository say that some
# Hugging Face step branches of Pythia {cite}`biderman2023pythia` do not, which bears on every
# trajectory extracted from them, the paper's {cite}`gallego2025hidden` included.
#
# **Needs:** the activation table of the suite (seconds); for our suites also their
# `checkpoints.parquet`. With `suite="pythia-<size>"` the table is extracted from the hub
# (network or its cache, and a GPU beyond the smallest sizes); any other name reads an
# imported table (`extract import --suite NAME`, e.g. the paper's released statistics).
#
# **Parameters (papermill):** `suite`, `data_dir`, `reuse` (our suites: read the committed
# data), `max_step` (the initial-checkpoint check looks at steps up to it), `seed` (unused
# by the checks, which are deterministic; kept for the fits of the last section),
# `n_sequences`, `seq_len`, `device` (extraction settings for `pythia-<size>`), `variant`
# (which evaluation sequences of our suites: `"raw"`, the paper's raw text slices, or
# `"eot_first"`; see chapter 3).

# %% tags=["parameters"]
suite = "default"
data_dir = "data"
reuse = True
max_step = 0
seed = 0
n_sequences = 10
seq_len = 2048
device = "cpu"
variant = "raw"

# %%
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from massive_activations.datasets.activations import architectures_table, suite_activations
from massive_activations.fitting.fit_all import fit_all, table1
from massive_activations.measurement import integrity, weights
from massive_activations.measurement.sources import PYTHIA_SIZES
from massive_activations.measurement.store import read_table
from massive_activations.suite.configs import SUITES

if suite in SUITES or suite.startswith("pythia-"):
    table = suite_activations(suite, data_dir, reuse=reuse, n_sequences=n_sequences,
                              seq_len=seq_len, device=device, variant=variant)  # fmt: skip
    archs = architectures_table(suite, data_dir, seq_len=seq_len)
else:  # an imported table: its models are Pythia's (the paper's release)
    table = read_table(f"{data_dir}/{suite}/activations.parquet")
    archs = architectures_table("pythia-70m", seq_len=seq_len)
models = sorted(table["model"].unique())
shown = f", evaluation sequences `{variant}`" if "variant" in table.columns else ""
display(Markdown(f"Suite `{suite}`: {len(models)} models, {table.step.nunique()} checkpoint "
                 f"steps, {len(table):,} rows{shown}."))  # fmt: skip

# %% [markdown]
# ## What was found upstream
#
# Both reports compare, for every step branch of a repository, the SHA-256 that the hub's
# file metadata gives for each weight file (Git LFS stores it; reading it downloads no
# weights). A branch whose file has the same digest as another branch's serves the same
# bytes. The steps below are typed once, as the reports list them, in the reference file
# (`upstream_checkpoint_reports`); the table is computed from it.

# %% tags=["hide-input"]
reports = integrity.upstream_reports()
per_model = []
for size in PYTHIA_SIZES:
    for name in (f"pythia-{size}", f"pythia-{size}-deduped"):
        hits = reports[reports["model"] == name]
        per_model.append({
            "model": name,
            "affected step branches (of 154)": len(hits),
            "steps": ", ".join(map(str, sorted(hits["step"]))) if len(hits) <= 12
            else f"{hits.step.min()}-{hits.step.max()} ({len(hits)} steps, listed below)",
            "what they serve": "; ".join(sorted(set(hits["same_as"]))) or "nothing reported",
            "report": ", ".join(sorted(set(hits["url"]))),
        })  # fmt: skip
affected = pd.DataFrame(per_model)
glue("n_affected_2p8b", int((reports.model == "pythia-2.8b").sum()), display=False)
glue("n_affected_12b", int((reports.model == "pythia-12b").sum()), display=False)
affected

# %% [markdown]
# For pythia-2.8b, {glue:text}`n_affected_2p8b` of the 154 step branches serve final-era
# weights: step 0 and the whole early grid among them, so its first half of "training" is the
# trained model measured again and again. For pythia-12b, {glue:text}`n_affected_12b` branches
# serve the final checkpoint's first shard (the input embedding and the first layers) with
# their own other shards: a model that never existed. Every other Pythia model, and every
# deduplicated one, is not reported affected (which is not the same as checked clean). The
# paper's Table 1 R² for 2.8B is its outlier between 1.4B and 6.9B (the reference file's
# `table1_mean_r2`); whether these branches explain it can only be tested on the paper's data.

# %%
reports.groupby(["model", "same_as"])["step"].apply(
    lambda s: ", ".join(map(str, sorted(s)))
).rename("steps").to_frame()

# %% [markdown]
# ## How the companion checks
#
# **Before extracting.** `extract` reads the SHA-256 of every weight file of every checkpoint
# of the series (per shard for a sharded checkpoint), from the hub's metadata for hub
# revisions and by hashing the files of local ones, and writes them beside the table as
# `checkpoints.parquet`. A file equal to another step's, or to `main`'s for a step other than
# the final one, is flagged in its `duplicate_of` column and its checkpoint is not measured
# unless asked (`--allow-duplicates`, which measures and keeps the flag). Sharded
# checkpoints are compared shard by shard, so a single shared shard, the pythia-12b case, is
# named. The tests run this on a local stand-in of the hub cache holding both cases.
#
# **Without the weights.** A table that comes alone (the paper's released statistics, any
# imported table) is checked from its statistics: checkpoints whose top-1/2/3 and median are
# bit-identical at every layer and sequence (one set of weights measured twice); an initial
# checkpoint whose largest top-1/median is far above that of Gaussian noise of the same size
# (the baseline of the ledger's "absent at initialisation" claim); and a change of a layer's
# trajectory between two checkpoints that the neighbouring intervals do not explain. Each
# finding names the model, the steps and the statistic.

# %% [markdown]
# ## What the checks say about this data
#
# ### The weights' record

# %% tags=["hide-input"]
record = weights.read_record(data_dir, suite)
if record is None:
    display(Markdown(f"No `checkpoints.parquet` in `{data_dir}/{suite}/`: this table comes "
                     "without a record of its weights; only the statistics checks apply."))  # fmt: skip
    n_dup = 0
else:
    record = record.assign(duplicate_of=weights.find_duplicates(record, {}, {}))
    n_dup = int((record["duplicate_of"] != "").sum())
    shared = record.groupby("weights_sha256").filter(lambda g: g.model.nunique() > 1)
    across = "; ".join(
        " = ".join(f"{m} step {s}" for m, s in zip(g.model, g.step, strict=True))
        for _, g in shared.groupby("weights_sha256")
    )  # fmt: skip
    display(Markdown(
        f"`checkpoints.parquet` records {record.weights_sha256.nunique()} distinct weight files "
        f"for {len(record[['model', 'step']].drop_duplicates())} checkpoints. Files shared "
        f"between checkpoints of one model: {n_dup}. "
        + (f"Shared between models: {across} (models trained from the same initial weights "
           "share their step 0; the checks compare the steps of one model)." if across else "")
    ))  # fmt: skip
glue("n_dup", n_dup, display=False)

# %% [markdown]
# ### The statistics checks

# %% tags=["hide-input"]
findings, summary = integrity.run_checks(table, archs, max_step=max_step)
glue("n_findings", len(findings), display=False)
summary

# %%
if findings.empty:
    display(Markdown("**Nothing flagged**: no identical checkpoints, no initial checkpoint "
                     "above the noise baseline, no unexplained jump."))  # fmt: skip
else:
    display(findings)

# %% [markdown]
# On this data the weights' record shows {glue:text}`n_dup` shared weight files and the
# statistics checks make {glue:text}`n_findings` findings.

# %% [markdown]
# ### The 2.8B anomaly

# %%
anomaly = integrity.pythia_2p8b_anomaly(table, archs)
display(Markdown(f"{anomaly['finding'][0].upper() + anomaly['finding'][1:]} "
                 f"([the report]({anomaly['source']}))."))  # fmt: skip

# %% [markdown]
# ## On the paper's data
#
# With the paper's released statistics imported (`extract import --suite paper ...`, then this
# page with `suite="paper"`), the cell below lists, per model, the table's checkpoints that
# the reports name, and Table 1 (mean Eq. 9 R² per model, our fitting procedure) with and
# without them.

# %%
mask = integrity.affected_mask(table)
if not mask.any():
    display(Markdown("This table holds no checkpoint the upstream reports name (it holds no "
                     "pythia-2.8b or pythia-12b rows): there is nothing to leave out."))  # fmt: skip
else:
    hit = table[mask].groupby("model").step.apply(lambda s: sorted(set(s)))
    display(hit.rename("checkpoints the reports name").to_frame())
    subset = table[table["model"].isin(hit.index)]

    def t1(rows):
        fits = fit_all(rows, hypotheses=("eq9", "eq14"), procedures=("ours",), n_bootstrap=0,
                       profile=(), seed=seed, progress=False)  # fmt: skip
        return table1(fits).set_index("model")[["r2_eq9", "r2_best", "paper_r2"]]

    without = t1(subset[~mask[subset.index]]).add_suffix(" without them")
    display(t1(subset).join(without).round(4))
