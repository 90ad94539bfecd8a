"""WORLD analysis and synthesis, mel-cepstra, and batch extraction of a corpus."""

import warnings

# pysptk and pyworld import the deprecated ``pkg_resources`` and setuptools warns
# about it on every run; the notice is about their packaging, not the user's data.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
