"""Reproducible companion to 'Hidden Dynamics of Massive Activations in Transformer Training'.

Modules
-------
curve
    The paper's curve model (Eqs. 9-14): evaluation, Jacobians, conversions, peak time.
schedule
    Pythia's checkpoint schedule and scaled-down Pythia-shaped schedules.
book
    Executes the notebooks with papermill and builds the Jupyter Book.
"""

__version__ = "0.1.0"
