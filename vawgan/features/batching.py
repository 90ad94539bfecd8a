"""Running WORLD over many frames: blocks of frames in threads, batches of frames in bounded memory.

Threads: StoneMask, CheapTrick and D4C estimate each frame from the whole
signal and that frame's F0 and time alone, and pyworld releases the GIL while
WORLD runs, so ``threads > 1`` analyses contiguous blocks of frames in
parallel (:func:`per_frame_in_blocks`). One utterance then uses several cores,
which is what a single `vawgan convert` needs; corpus extraction runs whole
utterances in parallel processes instead (``--jobs``) and keeps one call per
utterance. The synthesis renders its pieces on the same threads
(:func:`worker_threads`).

Memory: CheapTrick's envelope and D4C's aperiodicity take 8 kB per frame
each, so long signals are analysed in batches of at most
``MAX_FRAMES_PER_CALL`` frames, each reduced before the next
(:func:`in_frame_batches`); the networks run over frames the same way.

Progress: the loops report their advance (:data:`PartReport`), which
:func:`stage_report` turns into the seconds of signal a user follows
(:data:`Progress`).
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Callable

import numpy as np

# Fewest frames (0.5 s at 5 ms) worth a thread of their own in per_frame_in_blocks.
MIN_FRAMES_PER_THREAD = 100
# CheapTrick and D4C analyse at most this many frames (20 s at 5 ms, ~33 MB of envelope) per call (in_frame_batches),
# and synthesize renders about this many frames per call.
MAX_FRAMES_PER_CALL = 4000

# How a long signal's analysis and synthesis report their advance: ``progress(stage, seconds_done,
# seconds_total)`` after each F0 segment, frame batch or synthesis piece, the stages being "F0", "envelope",
# "aperiodicity" and "synthesis" (the networks between them take a fraction of a second). A user waits
# minutes for an hour-long recording.
Progress = Callable[[str, float, float], None]
# How the frame loops of the analysis and synthesis report: ``report(done, total)`` in frames (or rows) after each part.
PartReport = Callable[[int, int], None]


def no_report(done: int, total: int) -> None:
    """The :data:`PartReport` of a caller that does not follow the advance."""


def stage_report(progress: Progress | None, stage: str, seconds: float) -> PartReport:
    """A :data:`PartReport` that passes a loop's advance on to ``progress`` as seconds of a ``seconds`` long signal."""
    if progress is None:
        return no_report
    return lambda done, total: progress(stage, seconds * done / total if total else seconds, seconds)


def per_frame_in_blocks(analysis, x: np.ndarray, f0: np.ndarray, times: np.ndarray, fs: int, threads: int,
                        **options) -> np.ndarray:
    """``analysis(x, f0, times, fs, **options)`` (StoneMask, CheapTrick or D4C) over blocks of frames in threads.

    The frames are cut into up to ``threads`` contiguous blocks of at least
    ``MIN_FRAMES_PER_THREAD`` frames, each block is analysed by its own call in
    its own thread, and the results are joined in frame order. StoneMask's
    result is the same as one call's. CheapTrick and D4C add a tiny seeded
    dither (WORLD's ``randn``, restarted by every call) to their analysis
    windows, so a block boundary changes the dither of the frames after it:
    over 60 Flite recordings (two blocks) the mel-cepstra stayed within 1e-6
    and the coded aperiodicity within 0.31 dB (mean 0.004 dB) of one call over
    all frames. For a given number of blocks the results are the same every run.
    """
    blocks = min(threads, len(f0) // MIN_FRAMES_PER_THREAD)
    if blocks <= 1:
        return analysis(x, f0, times, fs, **options)
    bounds = np.linspace(0, len(f0), blocks + 1).astype(int)
    # The caller's thread analyses the first block while the pool's threads take the others.
    others = [worker_threads(blocks - 1).submit(analysis, x, f0[a:b], times[a:b], fs, **options)
              for a, b in zip(bounds[1:-1], bounds[2:])]
    first = analysis(x, f0[:bounds[1]], times[:bounds[1]], fs, **options)
    return np.concatenate([first, *(future.result() for future in others)])


@functools.lru_cache(maxsize=None)
def worker_threads(count: int) -> ThreadPoolExecutor:
    """A pool of ``count`` threads kept for the life of the process (starting threads per call costs milliseconds)."""
    return ThreadPoolExecutor(count, thread_name_prefix="vawgan-world")


# A forked child inherits the pool objects but not their threads: it must start its own.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=worker_threads.cache_clear)


def in_frame_batches(analysis, num_frames: int, max_frames: int | None = None, report: PartReport = no_report):
    """``analysis(frames)`` for consecutive slices of at most ``max_frames`` frames, the results joined in order.

    ``analysis`` maps a slice of frame indices to an array (or a tuple of
    arrays) with one row per frame. Running CheapTrick or D4C and reducing
    their 513-bin rows to mel-cepstra or coded bands inside ``analysis`` keeps
    only one batch of full-resolution rows in memory. One slice covers
    everything when ``num_frames <= max_frames`` (default ``MAX_FRAMES_PER_CALL``).
    ``report(frames_done, num_frames)`` is called after each slice.
    """
    max_frames = max_frames or MAX_FRAMES_PER_CALL
    parts = []
    for start in range(0, max(num_frames, 1), max_frames):  # one (empty) slice when there are no frames
        end = min(start + max_frames, num_frames)
        parts.append(analysis(slice(start, end)))
        report(end, num_frames)
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(column) for column in zip(*parts))
    return np.concatenate(parts)


def frame_grid(fs: int, frame_period: float) -> tuple[Fraction, int]:
    """(samples per frame exactly, the number of frames after which a frame starts on a whole sample)."""
    samples_per_frame = Fraction(str(frame_period)) * fs / 1000
    return samples_per_frame, samples_per_frame.denominator
