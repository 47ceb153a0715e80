"""The embedded default: a mini GPT-NeoX suite trained from scratch on a CPU (chapter 2).

Modules, lowest first: :mod:`~massive_activations.suite.corpus` and
:mod:`~massive_activations.suite.tokenizer` (text and tokens),
:mod:`~massive_activations.suite.configs` (architectures, recipe, evaluation sequences),
:mod:`~massive_activations.suite.train` (one model), :mod:`~massive_activations.suite.make_data`
(the suite's data folder), :mod:`~massive_activations.suite.data` (reading it) and
:mod:`~massive_activations.suite.drift` (regeneration drift).
"""
