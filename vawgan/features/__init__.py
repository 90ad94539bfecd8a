"""WORLD analysis and synthesis, mel-cepstra, and batch extraction of a corpus."""
