"""Fitting each layer's trajectory (chapter 4; paper Section 5, Eqs. 9-18, Tables 1 and 5).

Modules, lowest first: :mod:`~massive_activations.fitting.alternatives` and
:mod:`~massive_activations.fitting.hypotheses` (the curve families),
:mod:`~massive_activations.fitting.problem` (the least-squares problem),
:mod:`~massive_activations.fitting.batch_lsq` (a batched solver),
:mod:`~massive_activations.fitting.procedures` (the paper's and our fitting procedures),
:mod:`~massive_activations.fitting.uncertainty` (intervals, identifiability),
:mod:`~massive_activations.fitting.fit_all` (every layer, Tables 1 and 5, regimes),
:mod:`~massive_activations.fitting.suite_fits` (a suite's stored or refitted fits) and
:mod:`~massive_activations.fitting.synthetic` (trajectories of known parameters).
"""
