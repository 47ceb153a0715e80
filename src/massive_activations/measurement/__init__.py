"""Measuring massive activations (chapter 3; paper Section 3, Eqs. 1-8).

Modules, lowest first: :mod:`~massive_activations.measurement.store` (the activation table
on disk), :mod:`~massive_activations.measurement.measure` (the hooks),
:mod:`~massive_activations.measurement.sources` (checkpoint series),
:mod:`~massive_activations.measurement.raw_import` (the paper's released files),
:mod:`~massive_activations.measurement.noise` (the Gaussian baseline),
:mod:`~massive_activations.measurement.trajectories` (table -> per-layer trajectories),
:mod:`~massive_activations.measurement.weights` (which bytes a checkpoint holds),
:mod:`~massive_activations.measurement.integrity` (checks of a table without weights),
:mod:`~massive_activations.measurement.cost` (what a checkpoint costs to measure),
:mod:`~massive_activations.measurement.ray_executor` (units as Ray tasks) and
:mod:`~massive_activations.measurement.extract` (series -> table).
"""
