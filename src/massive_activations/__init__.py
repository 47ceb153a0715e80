"""Reproducible companion to 'Hidden Dynamics of Massive Activations in Transformer Training'.

The package follows the paper's pipeline, one subpackage per stage and chapter of the book.
A module imports only from its own stage or the stages listed before it
(``tests/test_layering.py`` checks it); :data:`STAGES` gives the order.

Shared (every stage may use them)
---------------------------------
curve
    The paper's curve model (Eqs. 9-14): evaluation, Jacobians, conversions, peak time.
schedule
    Pythia's checkpoint schedule and scaled-down Pythia-shaped schedules.
reference
    The paper's reported values and the Pythia facts, from one cited data file
    (``reference/paper_values.yml``).
registry
    The one registry of data files (``reference/data_files.yml``): what each file of a data
    folder holds, which stage writes it, its columns; paths, reads and checked, atomic writes.
provenance
    The record of every data file a notebook reads or writes, and the manifest checks.
plots
    Figures shared by the chapters.
tables
    Tables formatted for reading: significant digits, units from the registry, no empty
    columns or meaningless index.
interactive
    Interactive trajectory figures (model, layer and hypothesis menus) for the static book.
parallel
    Independent seeded jobs run in order, in one process or several, with a progress bar.

measurement (chapter 3, "Measuring massive activations")
--------------------------------------------------------
measurement.sources
    Checkpoint series: Pythia revisions on the hub, hub-shaped local caches, local suites,
    a GGUF model.
measurement.measure
    Forward hooks that reduce each decoder layer's output to top-1/2/3 and median (Eqs. 1-8).
measurement.store
    The activation table on disk: resumable per checkpoint, sharded, atomic.
measurement.weights
    Which bytes a checkpoint holds: weight-file SHA-256 from the hub's metadata or the files,
    and the revisions that serve another step's weights.
measurement.extract
    Extraction of a checkpoint series into the table (command line ``extract``).
measurement.ray_executor
    Extraction units as Ray tasks, on a local instance or a cluster, with retries.
measurement.cost
    Tokens, FLOPs and memory of measuring one checkpoint; GPU shares and GPU-hours.
measurement.noise
    The top-1/median ratio of Gaussian noise: the baseline for "no massive activation".
measurement.integrity
    Checks of a table without weights (identical checkpoints, trained-looking initial
    checkpoints, unexplained jumps) and the upstream reports on Pythia's revisions.
measurement.raw_import
    The paper's released raw statistics files, imported into the same table.
measurement.trajectories
    Per-layer trajectories (ratio of means, mean of ratios), variability, top-1 locations.
measurement.first_token
    The evaluation variants side by side: does the first-token activation need a fixed
    first token?

suite (chapter 2, "Training a mini-Pythia suite")
------------------------------------------------
suite.corpus, suite.tokenizer
    The text (packaged plays, pinned Debian documentation) and the BPE tokenizer.
suite.configs
    The suites' architectures, shared recipe, seeds and evaluation sequences.
suite.train
    Training one model with Pythia's recipe, measuring every checkpoint as it goes.
suite.make_data
    The whole suite's data folder, resumable (``make data``).
suite.run_archive
    Finished runs' records (all but weights), so another machine does not retrain them.
suite.data
    Reading a suite's data folder (and building it when asked).
suite.drift
    How far a regeneration drifts from the committed data.
suite.replicates
    Seed replicates and the packing model: how much a new seed moves the results.

datasets (the tables every later chapter analyses)
--------------------------------------------------
datasets.activations
    Activation tables by name: our suites, the paper's release, Pythia models (one, or the
    suite of several), SmolLM2-135M; architectures.
datasets.release
    The paper's released statistics as the suite ``paper``: downloaded at a pinned revision
    or read from a folder, imported once (manifest, skipped files), flagged when synthetic.
datasets.standin
    A synthetic stand-in of the release (its shape, made-up Eq. 9 numbers) for tests,
    benchmarks and smoke builds; never the paper's data.
datasets.edition
    Which data a page shows (our suite, the release, Pythia, a synthetic stand-in): the
    notice at the top of a chapter, labels, the editions' note, Pythia's recipe.

fitting (chapter 4, "Fitting the dynamics")
-------------------------------------------
fitting.hypotheses, fitting.alternatives
    Eq. 9, Eq. 14 and the step responses (Eqs. 15-18) as fit hypotheses.
fitting.problem, fitting.procedures, fitting.batch_lsq
    The least-squares problem, the paper's and our procedures, a batched solver.
fitting.uncertainty
    Covariance, profile-likelihood and bootstrap intervals; identifiability; the regime call.
fitting.intervals
    Intervals that see noise shared across sequences and autocorrelated over checkpoints
    (AR(1) sandwich, block bootstrap); the one interval the package reports.
fitting.regimes
    The regime of a trajectory without a curve: drop from the peak, slope at the end.
fitting.fit_all
    Every layer of a table fitted under every hypothesis; Tables 1 and 5; regimes.
fitting.suite_fits
    A suite's ``fits.parquet``: read when it covers every layer of the table, else fitted.
fitting.bands
    The interactive explorer's tables: measured points with their spread over sequences,
    fitted curves with their delta-method 95 % band.
fitting.synthetic
    Trajectories of known parameters, for the known-parameter check.

regrowth (chapter 9, "Regrowth: the dynamics at full magnitude")
-----------------------------------------------------------------
regrowth.config
    The experiment's settings in one dataclass, named configurations, the log-spaced schedule.
regrowth.models
    The base models (SmolLM2-135M, a tiny Llama with a planted outlier writer) and tokenizers.
regrowth.text
    Training windows and held-out evaluation windows from the Debian-docs corpus.
regrowth.locate, regrowth.ablate
    Where the massive activation is written (layer, sub-module, units); ablating the writer.
regrowth.probe, regrowth.train
    One measurement (statistics, the element's writes, held-out loss); a resumable run.
regrowth.run, regrowth.data
    The data folder ``data/regrowth`` (``make regrowth``), and reading it.
regrowth.fits, regrowth.findings, regrowth.plots
    Trajectories and chapter 4's fits; the decision rules and the ledger rows; the figures.

prediction (chapter 5, "Predicting the dynamics from architecture")
-------------------------------------------------------------------
prediction.features
    Paper Table 4's features of a layer.
prediction.transforms, prediction.data, prediction.estimators
    Target transforms, samples, the five regressors and their search.
prediction.nulls, prediction.validation
    Block permutations that keep model identity and the null of the best regressor; the
    paper's protocols and leave-one-architecture-out, chance levels, Table 3.
prediction.splits, prediction.power, prediction.ceiling, prediction.tables
    The 80/20 split repeated; the power to detect an architecture-driven target; the seed
    noise ceiling; the derived tables computed once for the chapters.
prediction.detection
    Each target's call (detected, not detected, underpowered) from the null and the power.
prediction.unseen, prediction.importance, prediction.synthetic
    Predictions for unseen architectures; permutation importance and SHAP; targets of known
    origin.

audit (chapter 6, "The claims ledger")
--------------------------------------
audit.statistics, audit.verdicts
    The tests' statistics; verdict words and decision thresholds.
audit.claims_activations, audit.claims_fits, audit.claims_prediction
    One function per claim of the paper.
audit.ledger
    The ledger's assembly.

book (the build)
----------------
book.execute, book.status, book.annotate, book.data_card, book.build
    Executing the notebooks, the status page, cell annotations, the data card, the build
    (``python -m massive_activations.book``).
book.cells, book.html_check, book.browse
    Which code cells a reader sees; the check that no page shows stderr, a warning or a
    traceback, and every chapter page opened in headless Chromium (``make check-book``).
book.sphinx_ext
    The book's Sphinx extension (one inline script per page, not Sphinx 7.4's duplicates).

Main entry points, importable from the top level (loaded on first use):
:func:`measure_model`, :func:`extract`, :func:`import_raw`, :func:`trajectories`,
:func:`make_data`, :func:`suite_activations`, :func:`fit_series`, :func:`fit_all`,
:func:`build_regrowth`,
:func:`evaluate`, :func:`fit_predictor`, :func:`build_ledger`, :func:`build_book`.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: The stages in pipeline order; a module may import from its own stage and earlier ones.
STAGES = (
    "shared",
    "measurement",
    "suite",
    "datasets",
    "fitting",
    "regrowth",
    "prediction",
    "audit",
    "book",
)

#: Top-level names and the module each is loaded from.
_ENTRY_POINTS = {
    "measure_model": "massive_activations.measurement.measure",
    "extract": "massive_activations.measurement.extract",
    "import_raw": "massive_activations.measurement.raw_import",
    "trajectories": "massive_activations.measurement.trajectories",
    "make_data": "massive_activations.suite.make_data",
    "suite_activations": "massive_activations.datasets.activations",
    "fit_series": "massive_activations.fitting.procedures",
    "fit_all": "massive_activations.fitting.fit_all",
    "build_regrowth": "massive_activations.regrowth.run",
    "evaluate": "massive_activations.prediction.validation",
    "fit_predictor": "massive_activations.prediction.unseen",
    "build_ledger": "massive_activations.audit.ledger",
    "build_book": "massive_activations.book.build",
}

__all__ = ["STAGES", "__version__", *_ENTRY_POINTS]


def __getattr__(name: str):
    """Load a top-level entry point (or a subpackage) on first use."""
    if name in _ENTRY_POINTS:
        value = getattr(importlib.import_module(_ENTRY_POINTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'massive_activations' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_ENTRY_POINTS})
