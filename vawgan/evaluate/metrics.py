"""Objective measures of converted speech features (SPEC section 5)."""

from __future__ import annotations

import numpy as np

MCD_CONSTANT = 10.0 / np.log(10.0) * np.sqrt(2.0)


def mcd_per_frame(reference: np.ndarray, converted: np.ndarray) -> np.ndarray:
    """Mel-cepstral distortion in dB of each frame pair of two aligned (T, D) arrays.

    MCD = (10 / ln 10) · sqrt(2 · Σ_d (c_d − ĉ_d)²). Pass the coefficients to
    compare (usually c1..c39, i.e. ``mcep[:, 1:]``); the frames must already be
    aligned (same length).
    """
    reference = np.asarray(reference, dtype=np.float64)
    converted = np.asarray(converted, dtype=np.float64)
    if reference.shape != converted.shape:
        raise ValueError(f"MCD needs aligned frames of the same shape, got {reference.shape} and {converted.shape}")
    return MCD_CONSTANT * np.sqrt(np.sum((reference - converted) ** 2, axis=1))
