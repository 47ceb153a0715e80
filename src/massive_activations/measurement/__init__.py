"""Measuring massive activations (chapter 3; paper Section 3, Eqs. 1-8).

Modules, lowest first: :mod:`~massive_activations.measurement.store` (the activation table
on disk), :mod:`~massive_activations.measurement.measure` (the hooks),
:mod:`~massive_activations.measurement.sources` (checkpoint series),
:mod:`~massive_activations.measurement.raw_import` (the paper's released files),
:mod:`~massive_activations.measurement.extract` (series -> table) and
:mod:`~massive_activations.measurement.trajectories` (table -> per-layer trajectories).
"""
