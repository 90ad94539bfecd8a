"""Frame distance and DTW alignment of mel-cepstral sequences, shared by features, training, baselines and evaluation.

Two recordings of one sentence are not time-aligned. :func:`align` pairs their
frames along a dynamic-time-warping path (``librosa.sequence.dtw``) under the
Euclidean distance, which is the mel-cepstral distortion's own distance
(:func:`mcd_per_frame`); :func:`align_speakers` does the same for two
*different* voices, on mean-removed low-order coefficients. Evaluation scores
converted speech along such paths; the GMM baseline and the VAW-GAN's parallel
training pairs are built from them; the analysis–synthesis check compares
frames one to one with :func:`mcd_per_frame`.
"""

from __future__ import annotations

import numpy as np

from vawgan.errors import VawganError

MCD_CONSTANT = 10.0 / np.log(10.0) * np.sqrt(2.0)
# The most frame pairs align() takes on: librosa's DTW keeps a cost, an accumulated-cost and a step matrix over
# all of them (~20 bytes each), so 10^8 pairs (two 50 s utterances at 5 ms) need about 2 GB.
MAX_DTW_CELLS = 100_000_000


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


def align(reference: np.ndarray, converted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices ``(ref_idx, conv_idx)`` of the DTW path between two (T, D) arrays, in time order.

    Uses ``librosa.sequence.dtw`` with the Euclidean frame distance, so the path
    minimises the summed MCD. Every frame of both sequences appears on the path
    at least once.
    """
    import librosa

    reference = np.asarray(reference, dtype=np.float64)
    converted = np.asarray(converted, dtype=np.float64)
    if reference.ndim != 2 or converted.ndim != 2 or reference.shape[1] != converted.shape[1]:
        raise ValueError(f"DTW needs two (T, D) arrays with the same D, got {reference.shape} and {converted.shape}")
    if len(reference) == 0 or len(converted) == 0:
        raise ValueError("DTW needs at least one frame on each side")
    cells = len(reference) * len(converted)
    if cells > MAX_DTW_CELLS:
        raise VawganError(f"{len(reference)} x {len(converted)} frames are too long to align by DTW (about "
                          f"{20 * cells / 1e9:.0f} GB); score sentence-length recordings, or cut long ones at pauses")
    _, path = librosa.sequence.dtw(X=reference.T, Y=converted.T, metric="euclidean")
    path = path[::-1]
    return path[:, 0], path[:, 1]


SPEAKER_ALIGN_DIMS = 12


def align_speakers(source: np.ndarray, target: np.ndarray,
                   dims: int = SPEAKER_ALIGN_DIMS) -> tuple[np.ndarray, np.ndarray]:
    """DTW path between two speakers' recordings of one sentence: :func:`align` on c1..c``dims`` minus their means.

    Pass c1..cD of each recording's frames. Two speakers differ by a fixed
    spectral tilt and formant scale that plain DTW on c1..c39 mistakes for
    phonetic differences; subtracting each recording's own mean coefficients
    removes the fixed part, and the low orders carry the phonetic content while
    the high ones add speaker detail and noise. The parallel training pairs of
    the VAW-GAN (``train.parallel_weight``) and of the GMM baseline are aligned
    this way.
    """
    source = np.asarray(source, dtype=np.float64)[:, :dims]
    target = np.asarray(target, dtype=np.float64)[:, :dims]
    return align(source - source.mean(axis=0), target - target.mean(axis=0))
