"""Reading and writing speech audio, with one clear line for every bad file.

:func:`load_audio` returns mono float64 samples at the configured sample
rate whatever the file holds (in [-1, 1] for integer formats; floating-point
files may exceed full scale and are kept as they are, since WORLD's analysis
does not depend on the level): several channels are averaged, another
sample rate is resampled (``librosa.resample``, soxr) — each with a one-line
warning on the ``vawgan`` logger, because both silently change what the
model sees. Files that cannot be used (missing, empty, not audio, a
damaged or truncated header, no samples, digital silence) raise
:class:`~vawgan.errors.VawganError` naming the file, the problem and what to do.
Clipped recordings and WAV files cut short after the header are usable but
incomplete or distorted, so they only warn.

:func:`write_audio` writes 16-bit PCM atomically; a signal whose peak would
clip is scaled down instead, with a warning, or with one line for a whole
batch of outputs (:func:`scaling_summary`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from vawgan.errors import VawganError
from vawgan.utils import atomic_path

log = logging.getLogger(__name__)

# Clipping shows as a plateau at the recording's own peak, whatever level the
# file was scaled to after it clipped: a sample within 0.1 % of the peak counts
# as clipped. (In the 297 Flite recordings and pysptk's example at most
# 0.005 % of the samples are that close to the peak.)
CLIP_RATIO = 0.999
# Clipping warns when more than this share of samples sit at the peak, and at
# least this many: clipping flattens whole runs of samples, while in a short
# file a single sample at the peak is already more than 0.1 % of them.
CLIP_WARN_FRACTION = 0.001
CLIP_MIN_SAMPLES = 8
# Below this peak (−40 dBFS) samples at the peak are quantisation steps of a
# quiet signal (room noise at a few 16-bit steps hits its peak often), not clipping.
CLIP_MIN_PEAK = 0.01
# Peak below this (−100 dBFS, under the 16-bit quantisation step), once a
# constant offset is removed, is digital silence: a file that only holds an
# offset carries no sound either.
SILENCE_PEAK = 1e-5


def load_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Read ``path`` as mono float64 at ``sample_rate`` Hz.

    Multi-channel files are averaged to mono and other sample rates resampled,
    each with a warning; clipped audio warns. Raises :class:`VawganError` for
    a missing, empty, unreadable, truncated, sample-less or silent file.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise VawganError(f"{path}: audio file not found")
    if path.stat().st_size == 0:
        raise VawganError(f"{path}: empty file (0 bytes); re-record or remove it from the corpus")
    declared = _riff_declared_size(path)
    try:
        x, fs = sf.read(path, dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        if declared is not None:
            raise VawganError(f"{path}: damaged or truncated WAV header ({_first_line(exc)}); "
                              "re-export the file or remove it from the corpus") from None
        raise VawganError(f"{path}: not a readable audio file ({_first_line(exc)}); "
                          "expected WAV/FLAC/OGG speech; check the file or remove it") from None
    if declared is not None and declared > path.stat().st_size:
        log.warning("%s: truncated file (its header announces %d bytes, %d are there); using the samples present",
                    path, declared, path.stat().st_size)
    if x.shape[0] == 0:
        raise VawganError(f"{path}: the file holds no audio samples (truncated header or empty recording)")
    if x.shape[1] > 1:
        log.warning("%s: %d channels, averaged to mono", path, x.shape[1])
    x = x.mean(axis=1)
    if not np.all(np.isfinite(x)):
        raise VawganError(f"{path}: audio contains NaN or infinite samples; re-export the file")
    peak = float(np.max(np.abs(x)))
    swing = float(np.max(np.abs(x - x.mean())))
    if swing < SILENCE_PEAK:
        offset = f" (only a constant offset of {x.mean():.2g})" if peak >= SILENCE_PEAK else ""
        raise VawganError(f"{path}: the recording is silent{offset}, peak {swing:.1e}; re-record or remove it")
    at_peak = int(np.count_nonzero(np.abs(x) >= CLIP_RATIO * peak))
    clipped = at_peak / x.size
    if clipped > CLIP_WARN_FRACTION and at_peak >= CLIP_MIN_SAMPLES and peak >= CLIP_MIN_PEAK:
        log.warning("%s: clipped: %.1f%% of the samples sit at the peak level (%.2f); features will be distorted",
                    path, 100 * clipped, peak)
    if fs != sample_rate:
        import librosa

        log.warning("%s: sample rate %d Hz, resampled to the configured %d Hz", path, fs, sample_rate)
        x = librosa.resample(x, orig_sr=fs, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(x, dtype=np.float64)


def write_audio(path: str | os.PathLike, x: np.ndarray, fs: int, warn: bool = True) -> float:
    """Write ``x`` as 16-bit PCM WAV to ``path`` atomically; return how many dB it was scaled down by.

    A signal whose peak reaches full scale is scaled down to a peak of 0.99
    instead of being clipped, which would add distortion; 0.0 is returned for
    a signal written as it is. ``warn`` logs one warning for a scaled signal;
    a caller writing many outputs passes False and reports them together
    with :func:`scaling_summary`.
    """
    import soundfile as sf

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"write_audio needs a non-empty 1-D signal, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("write_audio got NaN or infinite samples")
    peak = float(np.max(np.abs(x)))
    reduction_db = 0.0
    if peak >= 1.0:
        reduction_db = float(20 * np.log10(peak / 0.99))
        if warn:
            log.warning("%s: peak %.2f would clip; scaled the whole signal down by %.1f dB", path, peak, reduction_db)
        x = x * (0.99 / peak)
    with atomic_path(path) as tmp:
        sf.write(tmp, x, int(fs), subtype="PCM_16", format="WAV")
    return reduction_db


def scaling_summary(reductions_db: Sequence[float]) -> str | None:
    """One line on the outputs of a batch that :func:`write_audio` scaled down, None when it scaled none.

    ``reductions_db`` holds what :func:`write_audio` returned for each output
    of the batch.
    """
    scaled = [r for r in reductions_db if r > 0]
    if not scaled:
        return None
    return (f"{len(scaled)} of {len(reductions_db)} outputs were scaled down to avoid clipping, "
            f"by at most {max(scaled):.1f} dB")


def _riff_declared_size(path: Path) -> int | None:
    """The file size a RIFF/WAVE header announces, or None for other files and streamed (unknown) sizes."""
    with open(path, "rb") as f:
        head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    size = int.from_bytes(head[4:8], "little")
    return None if size in (0, 0xFFFFFFFF) else size + 8


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
