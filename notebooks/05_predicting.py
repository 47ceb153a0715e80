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
# **Needs:** a CPU; about a minute with the book's settings (more permutations take longer).
# It reads the fits that the previous chapter wrote to `data_dir/<suite>/fits.parquet`.
#
# **Parameters (papermill):** `suite`, `data_dir`, `seed`, `n_permutations` (shuffled-target
# runs that give each R² its chance level), `targets` and `model_types` (which predictors to
# validate), `n_synthetic_models` (architectures in the leakage demonstration).

# %% tags=["parameters"]
suite = "default"
data_dir = "data"
seed = 0
n_permutations = 50
targets = ["A", "lam", "gam", "t0", "K"]
model_types = ["mean", "Ridge", "Lasso", "RandomForest", "GradientBoosting", "XGBoost"]
n_synthetic_models = 12

# %%
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display
from myst_nb import glue

from massive_activations import predictor as P
from massive_activations.features import (
    FEATURE_NAMES,
    features_table,
    pythia_architectures,
    suite_architectures,
)
from massive_activations.fit_suite import read_fits
from massive_activations.synthetic import architecture_fits

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

# %%
demo = []
for kind, per_model in (
    ("K depends on H/d and d_ff/d", False),
    ("K is a per-model constant", True),
):
    fits_s, archs_s = architecture_fits(n_synthetic_models, seed, per_model=per_model)
    res = P.evaluate(fits_s, targets=("K",), model_types=("Ridge", "RandomForest"),
                     architectures=archs_s, seed=seed, n_permutations=n_permutations,
                     progress=False)  # fmt: skip
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
# Each target uses only the layers whose parameter the fit identified (previous chapter), and
# each R² comes with the 95th percentile of its chance level, from the same protocol run on
# shuffled targets.

# %%
fits = read_fits(data_dir, suite)
counts = P.target_counts(fits, architectures=archs)
display(counts)
results = P.evaluate(fits, targets=targets, model_types=model_types, architectures=archs,
                     seed=seed, n_permutations=n_permutations, progress=False)  # fmt: skip
written = P.write_predictor(results, data_dir, suite)
n_feasible = int(results.r2.notna().sum())
glue("n_feasible", n_feasible, display=False)
glue("n_rows", len(results), display=False)
if n_feasible == 0:
    display(Markdown(
        f"**Too little data.** The `{suite}` suite gives "
        f"{int(counts.n_used.max()) if len(counts) else 0} usable layers at most per target: "
        "no protocol can be run (each row below says why). The default suite's fits are needed."
    ))  # fmt: skip
results[["target", "model_type", "protocol", "r2", "chance_r2_q95", "p_value", "n_train",
         "n_test", "note"]].round(3)  # fmt: skip

# %% [markdown]
# {glue:text}`n_feasible` of {glue:text}`n_rows` (target, model, protocol) combinations could
# be validated on this suite.
#
# ## Table 3 beside the paper's
#
# The paper's test R² (its 80/20 split) beside ours under each protocol, with the chance
# level's 95th percentile.

# %%
P.table3(results).round(3)

# %% [markdown]
# ## Exercises
#
# 1. In the leakage demonstration, set `n_synthetic_models = 4`. What happens to the
#    leave-one-model-out R² of the architecture-driven target, and why?
# 2. Which feature would you expect to matter most for $K$ if the paper's SHAP analysis
#    (attention density $H/d$) holds? Check it with `P.permutation_importances` on a
#    validation run of $K$.
#
# :::{admonition} Solutions
# :class: dropdown
#
# 1. With few models, each held-out model's $H/d$ or $d_\text{ff}/d$ often lies outside the
#    range the others span, and tree models cannot extrapolate: the R² falls.
# 2. `run = P.cross_validate(P.target_data(fits, "K", architectures=archs), "RandomForest",
#    "lomo")`, then `P.permutation_importances(run)`; $H/d$ first would agree with the paper.
# :::
