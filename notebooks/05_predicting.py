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
# # Predicting the dynamics from architecture
#
# **Reproduces:** the paper's Section 6: the architecture features of **Table 4**, the
# predictors of Eq. 9's parameters and their test R² (**Table 3**), with the paper's
# validation protocol (an 80/20 split over layers, here repeated to show its spread) beside a
# leave-one-architecture-out one {cite}`gallego2025hidden`.
#
# **Needs:** a CPU; a few minutes. The heavy statistics (hundreds of block permutations per
# validation, the repeated splits, the power check) are computed once into the suite's data
# folder (`predictor*.parquet`, see the data card) and read here; `recompute=True` computes
# them again (about a quarter of an hour on 2 cores for the default suite with the book's
# settings, `notebooks/profiles.yml`; this notebook's own defaults add the boosted regressors,
# which take far longer). It reads the fits that the
# previous chapter wrote to `data_dir/<suite>/fits.parquet`.
#
# **Parameters (papermill):** `suite`, `data_dir`, `paper_data` (for `suite="paper"`: the
# folder of the paper's release, see chapter 3), `seed`, `recompute` (compute the derived
# tables again instead of reading them), `n_permutations` (block permutations of each
# validation's null), `n_repeats` (repeats of the 80/20 split), `n_replicates` and
# `power_permutations` (synthetic targets of the power check and the permutations of each),
# `power_protocols`, `targets` and `model_types` (which predictors to validate),
# `variant` (the evaluation sequences, as in chapter 3), `n_synthetic_models` (architectures
# in the leakage demonstration), `predictor_model` (the
# regressor used for unseen architectures) and `held_out` (the model left out to test a
# prediction for an unseen architecture), `n_jobs` (parallel processes), `fits_used`
# (`"all"`, as the paper, or `"identified"`: which fits the tables, importance, SHAP and
# unseen-architecture sections show).

# %% tags=["parameters"]
suite = "default"
data_dir = "data"
paper_data = None
variant = "raw"
seed = 0
recompute = False
n_permutations = 200
n_repeats = 20
n_replicates = 20
power_permutations = 200
power_protocols = ["paper_split"]
targets = ["A", "lam", "gam", "t0", "K"]
model_types = ["mean", "Ridge", "Lasso", "RandomForest", "GradientBoosting", "XGBoost"]
n_synthetic_models = 12
predictor_model = "RandomForest"
held_out = "L4-d128-h4"
n_jobs = 2
fits_used = "all"

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import shap
from IPython.display import HTML, Markdown, display
from myst_nb import glue

from massive_activations import prediction, registry
from massive_activations.datasets.activations import suite_activations
from massive_activations.measurement.trajectories import trajectories
from massive_activations.prediction.features import (
    FEATURE_NAMES,
    features_table,
    pythia_architectures,
    suite_architectures,
)
from massive_activations.prediction.importance import best_model, drivers, write_importances
from massive_activations.prediction.synthetic import architecture_fits
from massive_activations.prediction.unseen import held_out_curves, pythia_predictions

sns.set_theme(context="notebook", style="whitegrid")

# %% tags=["hide-input"]
table = suite_activations(suite, data_dir, paper_data=paper_data, variant=variant)
if table.attrs.get("synthetic"):
    display(HTML(
        '<div class="admonition danger"><p class="admonition-title">Synthetic stand-in</p><p>'
        "This page analyses a synthetic stand-in of the paper's release: made-up curves of the "
        "release's shape, never the paper's data. Its numbers test the chapter's path and say "
        "nothing about the paper or Pythia.</p></div>"
    ))  # fmt: skip
traj = trajectories(table)
archs = suite_architectures(suite)
fits = registry.read("fits.parquet", data_dir, suite)

# %% [markdown]
# ## Features (paper Table 4)
#
# For layer $\ell$ (counted from 1) of a model with $L$ layers, width $d$, $H$ heads and MLP
# width $d_\text{ff}$: the relative depth $r = (\ell - 1)/(L - 1)$ and its square, cube and
# square root (the paper writes $\ell/L$ and defines it as 0 at the first layer and 1 at the
# last, which is what $r$ is); $H/d$; $d_\text{ff}/d$; $d/L$; $H/L$; $\log d$; $\ell \cdot L$.
# The suite's architectures and Pythia's, first and last layers:

# %%
shown = {**{a.name: a for a in pythia_architectures().values()}, **archs}
feats = features_table(shown.values())
ends = feats[(feats.layer == 1) | (feats.layer == feats.n_layers)]
ends.set_index(["model", "layer"])[list(FEATURE_NAMES)].round(3)

# %% [markdown]
# ## What the paper's split can and cannot show
#
# The paper splits its 188 layers 80/20 at random, so layers of one model sit on both sides.
# A predictor can then score by recognising the model rather than by learning how
# architecture shapes the dynamics. Two synthetic data sets make the difference visible: in
# the first, every target is a known function of $H/d$ and $d_\text{ff}/d$; in the second,
# $K$ is a random constant per model, with no relation to the architecture at all.

# %% tags=["hide-input"]
demo = []
for kind, per_model in (
    ("K depends on H/d and d_ff/d", False),
    ("K is a per-model constant", True),
):
    fits_s, archs_s = architecture_fits(n_synthetic_models, seed, per_model=per_model)
    res = prediction.evaluate(fits_s, targets=("K",), model_types=("Ridge", "RandomForest"),
                              architectures=archs_s, seed=seed, n_permutations=0,
                              n_jobs=n_jobs, progress=False)  # fmt: skip
    demo.append(res.assign(data=kind))
demo = pd.concat(demo)
leak = demo[demo.data.str.contains("constant") & (demo.model_type == "RandomForest")]
leak = leak.set_index("protocol").r2
glue("leak_cv5", float(leak["paper_cv5"]), display=False)
glue("leak_lomo", float(leak["lomo"]), display=False)
demo.pivot_table(index=["data", "model_type"], columns="protocol", values="r2").round(3)

# %% [markdown]
# On the per-model constant, which no architecture feature explains, a random forest scores
# R² = {glue:text}`leak_cv5:.2f` under the paper's 5-fold CV over layers, and
# {glue:text}`leak_lomo:.2f` when the test architecture's layers are never seen in training.
# Only the second protocol answers the question a model designer asks: what will a new
# architecture do? The same leak sets the chance level: shuffling the targets layer by layer
# breaks the link between a model and its layers, which the split exploits, so its chance
# level is far too low. Our null exchanges whole models' target vectors among models of the
# same depth (a block permutation): it keeps model identity and loses only the link between
# architecture and target.
#
# ## The suite's fits and the derived tables
#
# The previous chapter flags each parameter that a layer's data do not identify. The paper
# reports no identifiability and trains on every fit; the tables hold both choices, and this
# page shows `fits_used`. Targets are on log scales for $\lambda$, $\gamma$ and $t_0$
# (their values span decades), `slog1p` for $A$ and Yeo-Johnson for $K$.

# %% tags=["hide-input"]
counts = prediction.target_counts(fits, architectures=archs)
display(counts)
tabs = prediction.load_predictor_tables(
    fits, data_dir, suite, recompute=recompute, architectures=archs, targets=targets,
    model_types=model_types, seed=seed, n_permutations=n_permutations, n_repeats=n_repeats,
    n_replicates=n_replicates, power_permutations=power_permutations,
    power_protocols=power_protocols, n_jobs=n_jobs,
)  # fmt: skip
results, null, splits, power, ceiling = (tabs[name] for name in prediction.PREDICTOR_FILES)
calls = prediction.detection_table(null, power, splits)


def mine(t: pd.DataFrame) -> pd.DataFrame:
    """The rows of the fits this page shows, on our target scales."""
    return t[(t.fits_used == fits_used) & (t.transforms == "ours")]


shown_results, shown_calls = mine(results), mine(calls)
feasible = int(shown_results.r2.notna().sum())
glue("n_feasible", feasible, display=False)
glue("n_rows", len(shown_results), display=False)
n_perm = shown_calls.n_permutations.max()
glue("n_perm", f"{n_perm:.0f} permutations" if n_perm > 0 else "none here: no protocol ran",
     display=False)  # fmt: skip
glue("n_repeats", int(splits.n_repeats.max()), display=False)
if feasible == 0:
    display(Markdown(
        f"**Too little data.** The `{suite}` suite gives "
        f"{int(counts.n_used.max()) if len(counts) else 0} usable layers at most per target: "
        "no protocol can be run (each row below says why)."
    ))  # fmt: skip
shown_results[["target", "model_type", "protocol", "r2", "chance_r2_q95", "p_value",
               "n_train", "n_test", "n_architectures", "note"]].round(3)  # fmt: skip

# %% [markdown]
# Of the {glue:text}`n_rows` (target, regressor, protocol) combinations,
# {glue:text}`n_feasible` could be validated on these fits. Each regressor's chance level
# above (`chance_r2_q95`) is its own; the claim "a target is predictable" rests on the best
# of the regressors, whose chance level is the next section's.
#
# ## Table 3 beside the paper's
#
# The paper's test R² (one 80/20 split) beside ours: the median of the 80/20 split over
# {glue:text}`n_repeats` seeds with its 5-95 % range (`split_*`; the row `best` takes in
# each repeat the best regressor, the statistic of the claims ledger), then each protocol's
# R² and its chance level. With a few dozen layers the test set of one split holds a
# handful: a test set of near-identical values makes R² hugely negative, a lucky one near 1,
# which is why a single split decides nothing.

# %%
prediction.table3(shown_results, mine(splits)).round(3)

# %% [markdown]
# ## Chance levels and power: which targets are predictable
#
# For each target and protocol, the best regressor's R² against the null of the best
# regressor (the maximum over regressors on the same block-permuted targets;
# {glue:text}`n_perm`), and the power check: the protocol run on a synthetic
# target that *is* driven by architecture ($H/d$ and $d_\text{ff}/d$, random widths and heads
# per architecture), on exactly the real data's layout (same models, layers, replicates,
# split and null). A target above its null is **detected**. A target that is not is called
# **not detected** only when the power check detected the synthetic target in at least
# 80 % of its replicates; otherwise the call is **underpowered**: at this size the protocol
# would miss a predictable target too, so its silence is no evidence of "not predictable".

# %% tags=["hide-input"]
cols = [
    "target",
    "protocol",
    "call",
    "best_model_type",
    "best_r2",
    "null_max_q95",
    "p_value",
    "split_r2_median",
    "split_r2_q05",
    "split_r2_q95",
    "power",
    "power_lo",
    "power_hi",
]
display(shown_calls[cols].round(3))
display(Markdown("\n".join(f"- **{r.target}**, {r.protocol}: {r.call} ({r.reason})."
                            for r in shown_calls.itertuples())))  # fmt: skip
shown_power = mine(power)
shown_power[["target", "protocol", "power", "n_detected", "n_replicates", "best_r2_median",
             "null_q95_median", "n_used", "n_models", "n_architectures", "note"]].round(3)  # fmt: skip

# %% [markdown]
# The power table's `best_r2_median` is what the protocol scores on a strong architecture
# signal at this size, and `null_q95_median` what it must beat: where the two are close, the
# block null (few models, few distinct arrangements) leaves no room to detect anything.
#
# ## The seed noise ceiling
#
# Seed replicates of one architecture have identical features, so no predictor can tell them
# apart: the spread of a target across the seeds of one architecture, at one layer, bounds
# how much of its variance architecture can explain (`ceiling_r2 = 1 - var_seed /
# var_total`), and the one-way ANOVA tests whether architectures differ by more than seeds.

# %% tags=["hide-input"]
shown_ceiling = mine(ceiling)
if shown_ceiling.ceiling_r2.notna().any():
    display(shown_ceiling[["target", "scale", "n_used", "n_architectures", "n_replicated_cells",
                           "var_seed", "var_between", "icc", "ceiling_r2", "p_value",
                           "note"]].round(3))  # fmt: skip
else:
    why = shown_ceiling.note.dropna()
    display(Markdown(
        "**The seed noise ceiling cannot be computed on this suite:** it has no seed "
        "replicates of an architecture with usable layers"
        + (f" ({why.iloc[0]})" if len(why) else "") + ". The default suite trains three "
        "architectures with three seeds each for this."
    ))  # fmt: skip

# %% [markdown]
# ## What drives $K$ and $\lambda$ (paper Figs. 9-10)
#
# The paper explains its predictors with SHAP values of a model trained on every layer. We
# rank the features first by permutation importance on held-out layers (the increase of the
# test error when one feature is shuffled), for the model type that validated best under the
# paper's 5-fold protocol; the claims ledger (chapter 6) tests the paper's rankings with it.
# These sections learn from the fits that `fits_used` names (every fit, by default, as the
# paper did).

# %% tags=["hide-input"]
identified_only = fits_used == "identified"
imps, skipped = drivers(fits, shown_results, targets=[t for t in ("K", "lam") if t in targets],
                        architectures=archs, seed=seed, identified_only=identified_only)  # fmt: skip
write_importances(imps, data_dir, suite)
if imps:
    long = pd.concat([imp.assign(target=t) for t, imp in imps.items()])
    g = sns.catplot(data=long, y="feature", x="importance", col="target", kind="bar",
                    sharex=False, height=3.8, aspect=1.1, color="C0")  # fmt: skip
    g.set_axis_labels("permutation importance (test MSE increase, transformed scale)", "")
    glue("fig-predicting-importance", g.figure, display=False)
    plt.close("all")
else:
    glue("fig-predicting-importance", Markdown("*No target could be ranked: no figure.*"),
         display=False)  # fmt: skip
glue("held_out", held_out, display=False)
glue("fits_used", fits_used, display=False)
lines = [f"- **{t}** ({imp.attrs['model_type']}): first {imp.feature.iloc[0]}, then "
         f"{imp.feature.iloc[1]}" for t, imp in imps.items()]  # fmt: skip
lines += [f"- **{t}**: {why}." for t, why in skipped.items()]
display(Markdown("Ranking by permutation importance:\n\n" + "\n".join(lines)))

# %% [markdown]
# ```{glue:figure} fig-predicting-importance
# :name: fig-predicting-importance
#
# Permutation importance of each feature for $K$ and $\lambda$: the increase of the held-out
# mean squared error (transformed target scale) when the feature is shuffled, for the model
# type that validated best under the paper's 5-fold protocol (fits used:
# {glue:text}`fits_used`).
# ```

# %% [markdown]
# The paper's SHAP analysis puts attention density $H/d$ first for $K$ and $\ell \cdot L$
# first for $\lambda$; the list above gives our ranking.
#
# SHAP values of the same kind of model trained on every usable layer, as the paper shows
# them: a summary per target, and the waterfall of the layer with the highest predicted $K$.

# %% tags=["hide-input"]
shap_model = best_model(shown_results, "K", fits_used=fits_used) if "K" in imps else None
if shap_model is None:
    display(Markdown("**No SHAP plots:** no model for $K$ could be validated on this suite."))
else:
    explained = prediction.fit_predictor(fits, model_type=shap_model, targets=list(imps),
                                architectures=archs, seed=seed,
                                identified_only=identified_only)  # fmt: skip
    for t in explained.targets:
        shap.plots.beeswarm(prediction.explain(explained, t), show=False)
        plt.title(f"SHAP values for {t} ({shap_model}; transformed target scale)")
        plt.xlabel(f"SHAP value (effect on transformed {t})")
        glue(f"fig-predicting-shap-{t}", plt.gcf(), display=False)
        plt.close("all")
    shap.plots.waterfall(prediction.explain_highest(explained, "K"), show=False)
    plt.title("The highest predicted K: contribution of each feature")
    glue("fig-predicting-waterfall", plt.gcf(), display=False)
    plt.close("all")
shown_shap = [] if shap_model is None else list(explained.targets)
missing = [f"shap-{t}" for t in ("K", "lam") if t not in shown_shap]
for key in missing + ([] if shown_shap else ["waterfall"]):
    glue(f"fig-predicting-{key}", Markdown("*No SHAP values for it here: no figure.*"),
         display=False)  # fmt: skip

# %% [markdown]
# ```{glue:figure} fig-predicting-shap-K
# :name: fig-predicting-shap-K
#
# SHAP values of each feature for $K$ (transformed scale), one dot per layer, coloured by the
# feature's value (paper Fig. 9).
# ```
#
# ```{glue:figure} fig-predicting-shap-lam
# :name: fig-predicting-shap-lam
#
# SHAP values of each feature for $\lambda$ (transformed scale), one dot per layer, coloured
# by the feature's value (paper Fig. 10).
# ```
#
# ```{glue:figure} fig-predicting-waterfall
# :name: fig-predicting-waterfall
#
# The layer with the highest predicted $K$: how each feature moves its prediction from the
# average (SHAP waterfall, transformed scale).
# ```

# %% [markdown]
# ## An architecture the predictor never saw
#
# The question a model designer asks: train on every model but one, predict the held-out
# model's five parameters for each of its layers, and compare the implied Eq. 9 curves with
# what that model measured. The band is the range over predictors that each left out more
# models (see `predict_architecture`).

# %% tags=["hide-input"]
try:
    heldout = held_out_curves(fits, traj, held_out, model_type=predictor_model,
                              architectures=archs, seed=seed,
                              identified_only=identified_only)  # fmt: skip
except ValueError as error:
    heldout = None
    display(Markdown(f"**No held-out comparison on this suite:** {error}"))
if heldout is not None:
    g = sns.FacetGrid(heldout, col="layer", col_wrap=4, height=2.6, sharey=False)
    for (_, part), ax in zip(heldout.groupby("layer"), g.axes.flat, strict=True):
        part = part[part.step > 0]
        ax.plot(part.step, part.measured, "o", ms=3, label="measured")
        ax.plot(part.step, part.value, "-", label="predicted (Eq. 9)")
        ax.fill_between(part.step, part.value_lo, part.value_hi, alpha=0.25, label="members' range")
        ax.set_xscale("log")
    g.set_axis_labels("training step (log scale)", "top-1 / median")
    g.axes.flat[0].legend(fontsize=8)
    glue("fig-predicting-heldout", g.figure, display=False)
    plt.close("all")
else:
    glue("fig-predicting-heldout", Markdown("*No held-out comparison here: no figure.*"),
         display=False)  # fmt: skip

# %% [markdown]
# ```{glue:figure} fig-predicting-heldout
# :name: fig-predicting-heldout
#
# The model left out, {glue:text}`held_out`: per layer, its measured ratio at every
# checkpoint and the Eq. 9 curve its predicted parameters imply, with the range over
# predictors that each left out more models (log step axis).
# ```

# %% [markdown]
# ## What the suite's predictor says about Pythia (extrapolation)
#
# Trained on every usable layer of our suite, the predictor is asked about the nine Pythia
# models. Their widths, depths and layer products lie far outside the suite's range, so every
# flagged row is an extrapolation: a tree model repeats the edge of its training data, a
# linear one extends a trend it never saw. This is shown to make that limit visible, not as a
# prediction of Pythia.

# %% tags=["hide-input"]
pythia_suite = all(a.name.startswith("pythia") for a in archs.values())
try:
    if pythia_suite:
        raise ValueError(
            "the suite is Pythia itself: every Pythia layer is in the training data, so there "
            "is no extrapolation to show (the held-out section above tests an unseen model)"
        )
    full = prediction.fit_predictor(
        fits,
        model_type=predictor_model,
        architectures=archs,
        seed=seed,
        identified_only=identified_only,
    )
except ValueError as error:
    full = None
    display(Markdown(f"**No extrapolation to Pythia on this suite:** {str(error).rstrip('.')}."))
if full is not None:
    pyth = pythia_predictions(full)
    ax = sns.lineplot(data=pyth, x="relative_depth", y="K", hue="model", marker="o")
    ax.set_xlabel("relative depth $(\\ell - 1) / (L - 1)$")
    ax.set_ylabel("predicted K (top-1 / median)")
    ax.set_title("Extrapolated: Pythia lies outside the suite's feature range")
    glue("fig-predicting-pythia", ax.figure, display=False)
    plt.close("all")
    display(pyth.groupby("model", sort=False).agg(
        layers=("layer", "size"), K_mean=("K", "mean"), lam_mean=("lam", "mean"),
        extrapolated=("extrapolation", "mean"),
        features=("extrapolated_features", lambda s: s.iloc[-1]),
    ).round(3))  # fmt: skip
    display(Markdown(f"{pyth.extrapolation.mean():.0%} of the Pythia layers have at least one "
                     "feature outside the range of the suite's layers."))  # fmt: skip
else:
    glue("fig-predicting-pythia", Markdown("*No extrapolation to Pythia here: no figure.*"),
         display=False)  # fmt: skip

# %% [markdown]
# ```{glue:figure} fig-predicting-pythia
# :name: fig-predicting-pythia
#
# Extrapolation: the $K$ that the suite's predictor gives each layer of the Pythia models,
# over relative depth; the Pythia models lie outside the suite's feature range.
# ```

# %% [markdown]
# ## Exercises
#
# 1. In the leakage demonstration, set `n_synthetic_models = 4`. What happens to the
#    leave-one-model-out R² of the architecture-driven target, and why?
# 2. Which feature would you expect to matter most for $K$ if the paper's SHAP analysis
#    (attention density $H/d$) holds? Check it with `prediction.permutation_importances` on a
#    validation run of $K$.
#
# :::{admonition} Solutions
# :class: dropdown
#
# 1. With few models, each held-out model's $H/d$ or $d_\text{ff}/d$ often lies outside the
#    range the others span, and tree models cannot extrapolate: the R² falls.
# 2. `run = prediction.cross_validate(prediction.target_data(fits, "K", architectures=archs), "RandomForest",
#    "lomo")`, then `prediction.permutation_importances(run)`; $H/d$ first would agree with the paper.
# :::
