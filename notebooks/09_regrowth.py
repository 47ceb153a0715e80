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
# # Regrowth: the dynamics at full magnitude
#
# **Reproduces:** nothing of the paper: this is our own experiment, and every finding below
# is ours, not the paper's. The paper studies how activations of 100 to 10,000
# times the median grow over training {cite}`gallego2025hidden`. Our mini suite can be
# trained here but its ratios reach tens (chapter 3); SmolLM2-135M has a genuine massive
# activation, about ten thousand times the median at position 0 {cite}`sun2024massive`, but
# no training history. This chapter makes a history with both: it removes SmolLM2's massive
# activation and watches, under continued training, whether and how it comes back, beside a
# control run trained the same way without the ablation. Neither the paper, its release nor
# Sun et al. contain this experiment.
#
# **Needs:** the committed data folder `data/regrowth` (seconds). Regenerating it
# (`make regrowth`, resumable) trains SmolLM2-135M twice for about 40 minutes each on two CPU
# cores; the smoke profile runs a tiny random Llama with a planted outlier writer instead
# (under a minute).
#
# **Parameters (papermill):** `config` (`"default"` or `"smoke"`), `data_dir`, `reuse` (read
# the committed folder; False runs the experiment), `threads` (torch threads for a run),
# `n_bootstrap` (replicates over evaluation windows for the featured fits),
# `comparison_suite` (the mini suite shown beside the regrowth), `seed`.

# %% tags=["parameters"]
config = "default"
data_dir = "data"
reuse = True
threads = None
n_bootstrap = 100
comparison_suite = "default"
seed = 0

# %% tags=["hide-input"]
import json

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from IPython.display import HTML, Markdown, display
from myst_nb import glue

from massive_activations import provenance, registry
from massive_activations.datasets.edition import admonition
from massive_activations.fitting.bands import SPREADS
from massive_activations.interactive import trajectory_explorer
from massive_activations.regrowth import findings as rules
from massive_activations.regrowth.data import regrowth_data
from massive_activations.regrowth.findings import ledger_rows, regrowth_findings
from massive_activations.regrowth.fits import (
    best_hypotheses,
    explorer_tables,
    featured_layers,
    fit_regrowth,
    original_values,
    regrowth_trajectories,
    suite_curves,
)
from massive_activations.regrowth.plots import (
    plot_ablation,
    plot_beside_suite,
    plot_element_map,
    plot_fits,
    plot_locate,
    plot_losses,
    plot_runs,
)

sns.set_theme(context="notebook", style="whitegrid")
glue("rule_regrown", rules.REGROWN, display=False)
glue("rule_partial", rules.PARTIAL, display=False)
glue("rule_same", rules.SAME_ELEMENT, display=False)

# %% [markdown]
# ## The question and the decision rules
#
# Written before the runs. Let $r_\ell(t)$ be layer $\ell$'s top-1/median ratio of means
# (paper Eq. 8) over the evaluation windows at continued-training step $t$; "original" is
# the unmodified model (the control run at step 0), $r_\ell(0)$ the ablated model before any
# update, $T$ the last measured step and $\ell^*$ the layer whose sub-module writes the
# massive activation.
#
# 1. **Does the activation come back?** The regained fraction
#    $f = (r(T) - r(0)) / (r_\text{original} - r(0))$, in the writer's layer $\ell^*$ and for
#    the largest ratio over layers: *yes* when $f \ge$ {glue:text}`rule_regrown`, *partly*
#    when $f \ge$ {glue:text}`rule_partial`, *no* otherwise. The control run's change over
#    the same steps is the fine-tuning drift to read it against.
# 2. **At the same position and channel?** *Yes* when, at step $T$, the top-1 of the layer
#    with the largest ratio sits on the original element in at least
#    {glue:text}`rule_same` of the windows.
# 3. **How large, relative to the original?** $r(T) / r_\text{original}$.
# 4. **How fast?** The first measured step at which the writer's layer has regained half of
#    its final regain, set against the fastest AdamW can rebuild the write (below).
# 5. **Eq. 9 or a step response?** Chapter 4's hypotheses and "ours" procedure on the ablated
#    run's trajectories: one is preferred when its AIC is lower by more than 2, else they
#    are indistinguishable.
#
# No regrowth within the budget is a result: it bounds how fast the model rebuilds it.

# %% tags=["hide-input"]
if threads is not None:
    torch.set_num_threads(int(threads))
data = regrowth_data(config, data_dir, reuse=reuse)
cfg, writer = data.config, data.writer
if cfg.model != "smollm2":
    display(HTML(admonition("warning", "Demonstration configuration", (
        f"This page shows the <strong>demonstration configuration</strong> "
        f"<code>{cfg.name}</code>: a tiny random Llama with a planted outlier writer, trained "
        "here in seconds, not SmolLM2-135M. Its numbers test the machinery only. <code>make "
        "regrowth</code> builds the SmolLM2 data (<code>data/regrowth</code>), which this page "
        'reads with <code>config="default"</code>.'))))  # fmt: skip
traj = regrowth_trajectories(data.activations, writer, data.log)
original = original_values(traj)
layers = featured_layers(traj, writer)
n_layers = int(traj.layer.max())
glue("model", data.record["model"], display=False)
glue("w_layer", writer["layer"], display=False)
glue("w_sub", writer["submodule"], display=False)
glue("w_pos", writer["position"], display=False)
glue("w_chan", writer["channel"], display=False)
glue("w_value", writer["value"], display=False)
glue("w_peak", writer["peak"], display=False)
glue("n_layers", n_layers, display=False)
glue("n_eval", cfg.n_eval, display=False)

# %% [markdown]
# ## Where the massive activation is written
#
# A decoder layer adds two writes to the residual stream, its attention's output and its
# MLP's. The element is found from the data: in the layer with the largest ratio, the
# position and channel that hold the top-1 in most of the {glue:text}`n_eval` evaluation
# windows. Per layer, the mean absolute attention write, MLP write and layer output there;
# the writer is the first write that reaches half of the element's peak
# ({numref}`fig-regrowth-locate`).

# %% tags=["hide-input"]
glue("fig-regrowth-locate", plot_locate(data.locate).figure, display=False)
plt.close("all")

# %% [markdown]
# ```{glue:figure} fig-regrowth-locate
# :name: fig-regrowth-locate
#
# Per decoder layer of {glue:text}`model`, at the tracked element: the mean absolute
# attention write, MLP write and layer output over the evaluation windows (log scale); the
# star marks the writer.
# ```

# %% tags=["hide-input"]
data.locate[data.locate.layer.between(writer["layer"] - 1, writer["layer"] + 1)].round(3)

# %% [markdown]
# In {glue:text}`model` the element at position {glue:text}`w_pos`, channel
# {glue:text}`w_chan` is written by the **{glue:text}`w_sub` of layer {glue:text}`w_layer`**
# (of {glue:text}`n_layers`): it adds {glue:text}`w_value:,.0f` there, and the element's
# peak over layers is {glue:text}`w_peak:,.0f`. The write is a sum over the units that feed
# the writer's output projection, $\sum_j W_{cj} a_j$; a few units carry almost all of it:

# %% tags=["hide-input"]
units = data.writer_units
rate = data.record["adam_rate_limit_per_step"]
glue("top2_share", float(units.share.head(2).sum()), display=False)
glue("max_weight", float(units.weight.head(2).abs().max()), display=False)
glue("rate", rate, display=False)
glue("lr", cfg.lr, display=False)
glue("bound_steps", abs(writer["value"]) / rate, display=False)
glue("weight_steps", float(units.weight.head(2).abs().max()) / cfg.lr, display=False)
units.head(6).round(3)

# %% [markdown]
# The two largest units carry {glue:text}`top2_share:.1%` of the write, through weights up to
# {glue:text}`max_weight:.2f`. This sets a speed limit on regrowth at the same place: an
# Adam step moves each weight by at most the learning rate ({glue:text}`lr`) when
# $1 - \beta_1 \le \sqrt{1 - \beta_2}$, as here {cite}`kingma2015adam` (Section 2.1; no weight
# decay), so with the units firing as in the original the write can grow by at most about
# $\text{lr} \sum_j |a_j| =$ {glue:text}`rate:,.2f` per step, and rebuilding it takes at
# least {glue:text}`bound_steps:,.0f` steps; restoring those weights themselves takes at
# least {glue:text}`weight_steps:,.0f`.
#
# ## The ablation
#
# The ablated run zeroes the row of the writer's output projection that feeds the element's
# channel (`zero_row`): the writer's output at that channel becomes zero at every position
# and nothing else changes, so whatever the model loses is what the activation was doing,
# and its return is a question of whether training rebuilds those weights. (Re-initialising
# the whole sub-module, `ablation="reinit"`, removes the detector that decides when to fire
# as well, and damages the layer's other functions.)

# %% tags=["hide-input"]
glue("fig-regrowth-ablation", plot_ablation(traj), display=False)
plt.close("all")
ablated0 = traj[(traj.run == "ablated") & (traj.step == 0)].set_index("layer")
glue("loss_orig", float(original.heldout_loss.iloc[0]), display=False)
glue("loss_abl", float(ablated0.heldout_loss.iloc[0]), display=False)
glue("ratio_orig", float(original.ratio.max()), display=False)
glue("ratio_abl", float(ablated0.ratio.max()), display=False)
glue("sink_orig", float(original.attn_first_pos.mean()), display=False)
glue("sink_abl", float(ablated0.attn_first_pos.mean()), display=False)

# %% [markdown]
# ```{glue:figure} fig-regrowth-ablation
# :name: fig-regrowth-ablation
#
# The original model and the just-ablated one (step 0), per decoder layer: the top-1/median
# ratio (left) and the attention that queries put on position 0 (right).
# ```
#
# Before any training the ablation raises the held-out loss from {glue:text}`loss_orig:.2f`
# to {glue:text}`loss_abl:.2f` nats per token and lowers the largest ratio over layers from
# {glue:text}`ratio_orig:,.0f` to {glue:text}`ratio_abl:,.0f`; the attention that queries put
# on position 0, averaged over layers, goes from {glue:text}`sink_orig:.2f` to
# {glue:text}`sink_abl:.2f`.
#
# ## Continued training
#
# Both runs continue from their step-0 model with the same text, order and optimiser:

# %%
timings_path = data.folder / "timings.json"
timing = {}
if timings_path.is_file():
    provenance.record(timings_path, "read")
    timing = json.loads(timings_path.read_text())["runs"]
settings = {
    "training steps": cfg.steps,
    "tokens per step": f"{cfg.batch_size} x {cfg.seq_len}",
    "training tokens": cfg.steps * cfg.tokens_per_step,
    "corpus": f"{cfg.corpus} (training and evaluation documents disjoint)",
    "evaluation windows": f"{cfg.n_eval} x {cfg.seq_len}, one held-out document each",
    "optimiser": f"AdamW, lr {cfg.lr:g} after {cfg.warmup_steps} warm-up steps, constant; "
    f"betas ({cfg.beta1}, {cfg.beta2}), weight decay {cfg.weight_decay}, clip {cfg.grad_clip}",
    "precision": "bf16 autocast, float32 master weights; measured in float32",
    "measured steps": ", ".join(map(str, cfg.schedule())),
    **{f"wall time, {run}": f"{t['train_s'] + t['measure_s'] + t['save_s']:,.0f} s "
       f"({t['train_s_per_step']:.2f} s per training step, {t['threads']} threads)"
       for run, t in timing.items()},
}  # fmt: skip
display(Markdown("\n".join(f"- **{k}:** {v}" for k, v in settings.items())))

# %% [markdown]
# The held-out and training losses of both runs ({numref}`fig-regrowth-losses`).

# %% tags=["hide-input"]
glue("fig-regrowth-losses", plot_losses(traj, data.log).figure, display=False)
plt.close("all")

# %% [markdown]
# ```{glue:figure} fig-regrowth-losses
# :name: fig-regrowth-losses
#
# Cross-entropy of the ablated and control runs over continued training: held-out loss at the
# measured steps and training loss (50-step mean); the original model's held-out loss dashed.
# ```

# %% [markdown]
# The ratio of the featured layers (the writer's, the next one, the ablated run's largest at
# the end, the last two, and others spaced over depth) in both runs
# ({numref}`fig-regrowth-runs`); every layer, with its fits, is in
# {numref}`fig-regrowth-explorer`.

# %% tags=["hide-input"]
glue("fig-regrowth-runs", plot_runs(traj, layers), display=False)
plt.close("all")

# %% [markdown]
# ```{glue:figure} fig-regrowth-runs
# :name: fig-regrowth-runs
#
# The top-1/median ratio (ratio of means over the evaluation windows) of the featured layers
# over continued training, one panel per layer, both runs; the original's value dashed.
# ```

# %% [markdown]
# The element itself: its mean absolute value in every layer and at every measured step
# ({numref}`fig-regrowth-element-map`, {numref}`fig-regrowth-element`). Where it comes back,
# the map shows in which layer it is written now.

# %% tags=["hide-input"]
glue("fig-regrowth-element-map", plot_element_map(traj), display=False)
plt.close("all")
glue("fig-regrowth-element", plot_runs(traj, layers, quantity="element_abs",
     ylabel="mean |value| at the element (residual units, log)"), display=False)  # fmt: skip
plt.close("all")

# %% [markdown]
# ```{glue:figure} fig-regrowth-element-map
# :name: fig-regrowth-element-map
#
# The tracked element's mean absolute value over the evaluation windows, per decoder layer
# (rows) and measured step (columns), in the ablated and control runs (one colour scale, log).
# ```
#
# ```{glue:figure} fig-regrowth-element
# :name: fig-regrowth-element
#
# The tracked element's mean absolute value in the featured layers over continued training,
# both runs; the original's value dashed.
# ```

# %% [markdown]
# ## Fits (chapter 4's machinery)
#
# Each layer's ratio trajectory of both runs, fitted with Eq. 9 and the first- and
# second-order step responses by chapter 4's "ours" procedure (bounds, multi-start, relative
# weights, the window from the early minimum), with covariance intervals (and Eq. 9's profile
# intervals where its early peak is confirmed, as in chapter 4), and a bootstrap over the
# evaluation windows for the featured layers.

# %% tags=["hide-input"]
fits = fit_regrowth(data.activations, n_bootstrap=n_bootstrap, bootstrap_layers=layers,
                    seed=seed, suite=data.folder.name)  # fmt: skip
registry.write(fits.table, "regrowth_fits.parquet", data.folder.parent, data.folder.name)
glue("fig-regrowth-fits", plot_fits(fits, traj, "ablated", layers[:3]), display=False)
plt.close("all")
best = best_hypotheses(fits.table)
columns = ["run", "layer", "hypothesis", "status", "r2", "aic", "K", "K_cov_lo", "K_cov_hi"]
display(fits.table.loc[fits.table.layer.isin(layers), columns].round(3))
verdicts = best.groupby("run").verdict.value_counts().unstack(fill_value=0)
verdicts

# %% tags=["remove-cell"]
points, fit_grid = explorer_tables(data.activations, fits.table)
explorer = trajectory_explorer(points, fit_grid, log_x=True, log_y=True,
                               name="explorer-regrowth",
                               spread_label="2.5-97.5 % of windows",
                               band_label="95 % band (delta method)")  # fmt: skip
glue("fig-regrowth-explorer", explorer, display=False)
glue("spread_meaning", SPREADS["range95"], display=False)

# %% [markdown]
# ```{glue:figure} fig-regrowth-fits
# :name: fig-regrowth-fits
#
# The ablated run's measured ratio in three featured layers with every fitted hypothesis
# (chapter 4's "ours" procedure; AIC in the legend) and Eq. 9's 95 % covariance band.
# ```
#
# ```{glue:figure} fig-regrowth-explorer
# :name: fig-regrowth-explorer
#
# Interactive: for the chosen run (menu "Model": ablated or control), layer and hypothesis (or
# all), the measured ratio of means at every measured step (error bars:
# {glue:text}`spread_meaning`, over the evaluation windows), the curve fitted by chapter 4's "ours" procedure
# and its pointwise 95 % band (delta method on the parameters' covariance; none where the fit
# did not converge); log axes, step 0 left out.
# ```

# %% [markdown]
# ## Beside the birth of the phenomenon
#
# The ablated run's ratios next to the mini suite's, trained from scratch (chapters 2 and 3):
# regrowth starts from a trained model that has lost one element, birth from random weights.

# %% tags=["hide-input"]
suite_traj, suite_model, note = suite_curves(comparison_suite, data_dir)
glue("fig-regrowth-birth", plot_beside_suite(traj, layers, suite_traj, suite_model),
     display=False)  # fmt: skip
plt.close("all")
if note:
    display(Markdown(f"The mini suite's curves are not shown: {note}"))

# %% [markdown]
# ```{glue:figure} fig-regrowth-birth
# :name: fig-regrowth-birth
#
# Regrowth beside birth: the ablated run's featured layers over continued training, the
# original's values dashed (left), and every layer of the mini suite's deepest model over its
# training from scratch (right, when the suite's data is available); log axes.
# ```

# %% [markdown]
# ## Findings
#
# The decision rules above, applied:

# %% tags=["hide-input"]
found = regrowth_findings(traj, data.activations, writer, rate, fits.table)
answers = found.set_index("key").answer
for key in ("returns_at_writer", "returns_anywhere", "same_element", "hypothesis"):
    glue(f"ans_{key}", answers[key], display=False)
glue("last_step", int(traj.step.max()), display=False)
with pd.option_context("display.max_colwidth", None):
    display(found[["question", "value", "uncertainty", "answer"]])

# %% [markdown]
# By step {glue:text}`last_step`: does the activation come back in the writer's layer?
# **{glue:text}`ans_returns_at_writer`**; anywhere? **{glue:text}`ans_returns_anywhere`**; at
# the original element? **{glue:text}`ans_same_element`**. The hypothesis the AIC prefers in
# the writer's layer: **{glue:text}`ans_hypothesis`**.
#
# The rows whose reading starts with "post hoc" answer no question fixed before the runs:
# they describe what the runs showed (whether the ratio first fell below its just-ablated
# value and how far it climbed from there; how close the ablated run's loss came to the
# control's), so they are evidence to weigh, not tests that were passed or failed.
#
# These rows enter the claims ledger as our own findings, marked as not the paper's: they are
# written beside this experiment's data (`regrowth_ledger.csv`), and chapter 6 shows them
# under the ledger of the paper's claims.

# %%
ledger = pd.DataFrame(ledger_rows(found), columns=list(rules.LEDGER_FIELDS))
written = registry.write(ledger, "regrowth_ledger.csv", data.folder.parent, data.folder.name)
display(Markdown(f"{len(ledger)} ledger rows, keys: "
                 + ", ".join(f"`{k}`" for k in ledger.key)
                 + f"; written to `{data.folder.name}/{written.name}`"))  # fmt: skip
