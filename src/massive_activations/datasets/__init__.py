"""The activation tables the chapters analyse, by name (our suites, Pythia, SmolLM2-135M).

:mod:`~massive_activations.datasets.activations` loads (or builds) a table and the
architectures of its models.
"""
