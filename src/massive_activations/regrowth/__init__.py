"""Regrowth (chapter 9): remove a trained model's massive activation, train on, watch it.

See the package overview (``massive_activations.__doc__``) for the modules of this stage.
"""
