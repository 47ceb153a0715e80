"""The activation tables the chapters analyse, by name (our suites, the paper's release,
Pythia, SmolLM2-135M).

:mod:`~massive_activations.datasets.activations` loads (or builds) a table and the
architectures of its models; :mod:`~massive_activations.datasets.release` imports the paper's
released statistics (suite ``paper``); :mod:`~massive_activations.datasets.standin` writes a
synthetic stand-in of that release for tests and smoke builds;
:mod:`~massive_activations.datasets.edition` says on each page which of them it shows.
"""
