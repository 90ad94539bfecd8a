"""Mel-cepstrum ↔ spectral envelope as one matrix product per batch of frames.

``pysptk.sp2mc`` takes the log of a power spectrum, an inverse FFT to the real
cepstrum, and warps the frequency axis with ``freqt``. Every step after the log
is linear, so the whole map from a log power spectrum (F = fft_size/2 + 1 bins)
to the mel-cepstrum c0..cD is a fixed (F, D+1) matrix for a given FFT size,
order and all-pass constant. We build that matrix once by running pysptk itself
on the unit vectors of the log-spectral domain, so its definition is pysptk's
and only the evaluation changes: ``log(sp) @ M`` for all frames at once instead
of a Python-level loop over frames (``pysptk`` handles 2-D input frame by frame).
The inverse, ``pysptk.mc2sp``, is linear in the same sense
(``log(sp) = mc @ W``), so synthesis gets the same treatment.

Both matrices are plain arrays and work unchanged as ``torch`` tensors on a
GPU. :func:`sp2mc` matches ``pysptk.sp2mc`` to floating-point rounding
(checked in ``tests/test_features_mcep.py``).
"""

from __future__ import annotations

import functools

import numpy as np
import pysptk  # vawgan.features silences its pkg_resources notice


@functools.lru_cache(maxsize=8)
def mcep_alpha(sample_rate: int) -> float:
    """The all-pass constant that approximates the mel scale at ``sample_rate``.

    pysptk finds it by a grid search over 1000 candidates (about 55 ms, a
    fifth of analysing a 3 s utterance with DIO), so it is computed once per
    sample rate.
    """
    return float(pysptk.util.mcepalpha(sample_rate))


@functools.lru_cache(maxsize=8)
def analysis_matrix(fft_size: int, order: int, alpha: float) -> np.ndarray:
    """The (fft_size/2+1, order+1) matrix M with ``sp2mc(sp) == log(sp) @ M``."""
    bins = fft_size // 2 + 1
    # Row i of M is pysptk's answer for a log spectrum equal to the i-th unit vector.
    matrix = pysptk.sp2mc(np.exp(np.eye(bins)), order=order, alpha=alpha)
    matrix.setflags(write=False)
    return matrix


@functools.lru_cache(maxsize=8)
def synthesis_matrix(fft_size: int, order: int, alpha: float) -> np.ndarray:
    """The (order+1, fft_size/2+1) matrix W with ``mc2sp(mc) == exp(mc @ W)``."""
    matrix = np.log(pysptk.mc2sp(np.eye(order + 1), alpha=alpha, fftlen=fft_size))
    matrix.setflags(write=False)
    return matrix


def sp2mc(sp: np.ndarray, order: int, alpha: float) -> np.ndarray:
    """Mel-cepstrum c0..c``order`` of a (T, F) power spectral envelope, like ``pysptk.sp2mc``."""
    sp = np.asarray(sp, dtype=np.float64)
    fft_size = 2 * (sp.shape[-1] - 1)
    return np.log(sp) @ analysis_matrix(fft_size, order, float(alpha))


def mc2sp(mc: np.ndarray, alpha: float, fft_size: int) -> np.ndarray:
    """(T, fft_size/2+1) power spectral envelope of a (T, D+1) mel-cepstrum, like ``pysptk.mc2sp``."""
    mc = np.asarray(mc, dtype=np.float64)
    return np.exp(mc @ synthesis_matrix(int(fft_size), mc.shape[-1] - 1, float(alpha)))
