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
# validation protocol beside a leave-one-model-out one {cite}`gallego2025hidden`.
#
# **Needs:** a CPU; a few minutes with the book's settings (more permutations take longer).
# It reads the fits that the previous chapter wrote to `data_dir/<suite>/fits.parquet`.
#
# **Parameters (papermill):** `suite`, `data_dir`, `seed`, `n_permutations` (shuffled-target
# runs that give each R² its chance level), `targets` and `model_types` (which predictors to
# validate), `n_synthetic_models` (architectures in the leakage demonstration),
# `predictor_model` (the regressor used for unseen architectures) and `held_out` (the suite
# model left out to test a prediction for an unseen architecture), `n_jobs` (validations run
# in parallel processes), `fits_used` (`"all"`, as the paper, or `"identified"`: which fits the
# importance, SHAP and unseen-architecture sections learn from).

# %% tags=["parameters"]
suite = "default"
data_dir = "data"
seed = 0
n_permutations = 50
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
from IPython.display import Markdown, display
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

# %% [markdown]
# ## Features (paper Table 4)
#
# For layer $\ell$ of a model with $L$ layers, width $d$, $H$ heads and MLP width
# $d_\text{ff}$: $\ell/L$ and its square, cube and square root; $H/d$; $d_\text{ff}/d$;
# $d/L$; $H/L$; $\log d$; $\ell \cdot L$. The paper calls 0 the first layer and 1 the last,
# which no single formula gives for both; we count layers from 1, so $\ell/L = 1$ is the
# last layer and the first is $1/L$. Our suite's architectures and Pythia's, first and last
# layers:

# %%
archs = {**suite_architectures(suite), **pythia_architectures()}
feats = features_table(archs.values())
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
                     architectures=archs_s, seed=seed, n_permutations=n_permutations,
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
# {glue:text}`leak_lomo:.2f` when the test model's layers are never seen in training. Only the
# second protocol answers the question a model designer asks: what will a new architecture do?
#
# ## The suite's fits
#
# The previous chapter flags each parameter that a layer's data do not identify (an unbounded
# profile interval, a correlation near 1 with another parameter). Such a value is one point
# of a ridge of equally good fits, and a predictor trained on it learns noise. The paper
# reports no identifiability and trains on every fit; we validate both ways: on the
# identified values only, and on every finite value as the paper did. Each R² comes with the
# 95th percentile of its chance level, from the same protocol run on shuffled targets.

# %% tags=["hide-input"]
fits = registry.read("fits.parquet", data_dir, suite)
identified_only = fits_used == "identified"
counts = prediction.target_counts(fits, architectures=archs)
display(counts)
results = pd.concat(
    [prediction.evaluate(fits, targets=targets, model_types=model_types, architectures=archs, seed=seed,
                n_permutations=n_permutations, n_jobs=n_jobs, progress=False,
                identified_only=only)
     for only in (True, False)],
    ignore_index=True,
)  # fmt: skip
written = registry.write(results, "predictor.parquet", data_dir, suite)
feasible = results.groupby("fits_used").r2.apply(lambda r: int(r.notna().sum()))
glue("n_feasible_identified", int(feasible.get("identified", 0)), display=False)
glue("n_feasible_all", int(feasible.get("all", 0)), display=False)
glue("n_rows", int((results.fits_used == "all").sum()), display=False)
glue("n_identified_K", int(counts.set_index("target").n_used.get("K", 0)), display=False)
glue("n_layers_K", int(counts.set_index("target").n_layers.get("K", 0)), display=False)
if feasible.max() == 0:
    display(Markdown(
        f"**Too little data.** The `{suite}` suite gives "
        f"{int(counts.n_used.max()) if len(counts) else 0} usable layers at most per target: "
        "no protocol can be run (each row below says why). The default suite's fits are needed."
    ))  # fmt: skip
results[["fits_used", "target", "model_type", "protocol", "r2", "chance_r2_q95", "p_value",
         "n_train", "n_test", "note"]].round(3)  # fmt: skip

# %% [markdown]
# Of the {glue:text}`n_rows` (target, model, protocol) combinations,
# {glue:text}`n_feasible_identified` could be validated on identified values only and
# {glue:text}`n_feasible_all` on every fit; for $K$, {glue:text}`n_identified_K` of
# {glue:text}`n_layers_K` layers have an identified value.
#
# ## Table 3 beside the paper's
#
# The paper's test R² (its 80/20 split) beside ours under each protocol, with the chance
# level's 95th percentile: first on every fit (the paper's handling), then on identified
# values only.

# %%
display(prediction.table3(results[results.fits_used == "all"]).round(3))
prediction.table3(results[results.fits_used == "identified"]).round(3)

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
imps, skipped = drivers(fits, results, targets=[t for t in ("K", "lam") if t in targets],
                        architectures=archs, seed=seed, identified_only=identified_only)  # fmt: skip
write_importances(imps, data_dir, suite)
if imps:
    long = pd.concat([imp.assign(target=t) for t, imp in imps.items()])
    g = sns.catplot(data=long, y="feature", x="importance", col="target", kind="bar",
                    sharex=False, height=3.8, aspect=1.1, color="C0")  # fmt: skip
    g.set_axis_labels("permutation importance (test MSE increase, transformed scale)", "")
    plt.show()
lines = [f"- **{t}** ({imp.attrs['model_type']}): first {imp.feature.iloc[0]}, then "
         f"{imp.feature.iloc[1]}" for t, imp in imps.items()]  # fmt: skip
lines += [f"- **{t}**: {why}." for t, why in skipped.items()]
display(Markdown("Ranking by permutation importance:\n\n" + "\n".join(lines)))

# %% [markdown]
# The paper's SHAP analysis puts attention density $H/d$ first for $K$ and $\ell \cdot L$
# first for $\lambda$; the list above gives our ranking.
#
# SHAP values of the same kind of model trained on every usable layer, as the paper shows
# them: a summary per target, and the waterfall of the layer with the highest predicted $K$.

# %% tags=["hide-input"]
shap_model = best_model(results, "K", fits_used=fits_used) if "K" in imps else None
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
        plt.show()
    shap.plots.waterfall(prediction.explain_highest(explained, "K"), show=False)
    plt.title("The highest predicted K: contribution of each feature")
    plt.show()

# %% [markdown]
# ## An architecture the predictor never saw
#
# The question a model designer asks: train on every model but one, predict the held-out
# model's five parameters for each of its layers, and compare the implied Eq. 9 curves with
# what that model measured. The band is the range over predictors that each left out more
# models (see `predict_architecture`).

# %% tags=["hide-input"]
traj = trajectories(suite_activations(suite, data_dir))
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
    plt.show()

# %% [markdown]
# ## What the suite's predictor says about Pythia (extrapolation)
#
# Trained on every usable layer of our suite, the predictor is asked about the nine Pythia
# models. Their widths, depths and layer products lie far outside the suite's range, so every
# flagged row is an extrapolation: a tree model repeats the edge of its training data, a
# linear one extends a trend it never saw. This is shown to make that limit visible, not as a
# prediction of Pythia.

# %% tags=["hide-input"]
try:
    full = prediction.fit_predictor(
        fits,
        model_type=predictor_model,
        architectures=archs,
        seed=seed,
        identified_only=identified_only,
    )
except ValueError as error:
    full = None
    display(Markdown(f"**No predictor for all five parameters on this suite:** {error}"))
if full is not None:
    pyth = pythia_predictions(full)
    glue("pythia_extrapolated", float(pyth.extrapolation.mean()), display=False)
    ax = sns.lineplot(data=pyth, x="relative_depth", y="K", hue="model", marker="o")
    ax.set_xlabel("relative depth $\\ell / L$")
    ax.set_ylabel("predicted K (top-1 / median)")
    ax.set_title("Extrapolated: Pythia lies outside the suite's feature range")
    plt.show()
    display(pyth.groupby("model", sort=False).agg(
        layers=("layer", "size"), K_mean=("K", "mean"), lam_mean=("lam", "mean"),
        extrapolated=("extrapolation", "mean"),
        features=("extrapolated_features", lambda s: s.iloc[-1]),
    ).round(3))  # fmt: skip
else:
    glue("pythia_extrapolated", float("nan"), display=False)

# %% [markdown]
# {glue:text}`pythia_extrapolated:.0%` of the Pythia layers have at least one feature outside
# the range of the suite's layers.

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
