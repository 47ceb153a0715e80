"""Reproducible companion to 'Hidden Dynamics of Massive Activations in Transformer Training'.

Modules
-------
curve
    The paper's curve model (Eqs. 9-14): evaluation, Jacobians, conversions, peak time.
schedule
    Pythia's checkpoint schedule and scaled-down Pythia-shaped schedules.
corpus, tokenizer, suite, train, make_data
    The embedded default: a mini GPT-NeoX suite trained from scratch on a CPU.
measure, sources, store, extract, raw_import
    Massive-activation statistics from any checkpoint series (Pythia revisions, local suites,
    a GGUF model) and the paper's released raw files, into one resumable parquet table.
suite_data, activation_data
    The notebooks' loaders: a suite's data folder, and activation tables from any source.
trajectories, hypotheses, alternatives, fit_problem, fitting, uncertainty, batch_lsq,
fit_suite, synthetic
    Per-layer trajectories and their curve fits with uncertainty, tested on synthetic
    trajectories of known parameters.
features, predictor
    Architecture features (paper Table 4) and the predictors of the curve parameters.
reference
    The paper's reported values, from one cited data file.
plots
    Figures shared by the notebooks.
book
    Executes the notebooks with papermill and builds the Jupyter Book.
"""

__version__ = "0.1.0"
