"""vawgan: VAW-GAN speech feature conversion on WORLD mel-cepstra.

The package is a library first: every stage of the recipe (corpus listing,
feature extraction, statistics, training, conversion, evaluation, plots) is a
Python function, and the ``vawgan`` command only wires them together.
"""

__version__ = "0.1.0"
