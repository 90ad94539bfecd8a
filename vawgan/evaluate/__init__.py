"""Objective evaluation (MCD, F0, global variance) and the analysis plots."""
