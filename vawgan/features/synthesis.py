"""WORLD synthesis of mel-cepstral features, in pieces for long signals, and the vocoder compensation.

:func:`synthesize` renders F0, mel-cepstrum and coded aperiodicity back to a
waveform; a long utterance is cut at quiet unvoiced frames
(:func:`synthesis_seams`) so that its full-resolution envelope never sits in
memory at once, and a sentence may be cut into pieces rendered in threads.
:func:`compensate_vocoder` corrects the mel-cepstra for what WORLD's
rendering does to them, measured by a re-analysis (:func:`rendered_mcep`);
:func:`render` is the synthesis with or without it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pyworld

from vawgan.features import batching
from vawgan.features import mcep as mcep_lib
from vawgan.features.batching import (MAX_FRAMES_PER_CALL, Progress, frame_grid, in_frame_batches,
                                      per_frame_in_blocks, stage_report, worker_threads)
from vawgan.features.store import UtteranceFeatures

# A piece of a long synthesis is rendered with this many frames of its neighbours on either side, and the pieces
# are cross-faded over this many frames around each seam.
SYNTHESIS_CONTEXT_FRAMES = 20
SEAM_FADE_FRAMES = 2
# compensate_vocoder averages its correction of the mel-cepstra over this many frames (25 ms at 5 ms).
COMPENSATION_FRAMES = 5


def _world_synthesis(feats: UtteranceFeatures, frames: slice) -> np.ndarray:
    """``pyworld.synthesize`` of a run of frames: envelope from the mel-cepstrum, aperiodicity decoded."""
    sp = mcep_lib.mc2sp(feats.mcep[frames], feats.alpha, feats.fft_size)
    ap = pyworld.decode_aperiodicity(np.ascontiguousarray(feats.coded_ap[frames], dtype=np.float64),
                                     feats.fs, feats.fft_size)
    f0 = np.ascontiguousarray(feats.f0[frames], dtype=np.float64)
    return pyworld.synthesize(f0, sp, ap, feats.fs, frame_period=feats.frame_period)


def synthesis_seams(feats: UtteranceFeatures, max_frames: int = MAX_FRAMES_PER_CALL,
                    unvoiced_only: bool = False) -> list[int]:
    """Frames at which :func:`synthesize` cuts an utterance: one near every ``max_frames``-th frame.

    Each seam is the quietest unvoiced frame (lowest c0) within a quarter of
    ``max_frames`` of its target, among frames that start on a whole sample;
    the quietest frame of any kind when that stretch has no unvoiced frame.
    With ``unvoiced_only`` (cuts for parallel rendering, where pieces of
    equal length matter more than a pause) it is the unvoiced frame nearest
    the target within a third of ``max_frames`` (so that seams stay apart),
    and no seam there when that stretch has none.
    """
    _, step = frame_grid(feats.fs, feats.frame_period)
    n = feats.num_frames
    seams = []
    reach = max_frames // 3 if unvoiced_only else max_frames // 4
    for target in range(max_frames, n - reach, max_frames):
        candidates = np.arange(target - reach, min(target + reach, n - 1))
        candidates = candidates[candidates % step == 0]
        unvoiced = candidates[feats.f0[candidates] == 0]
        if unvoiced_only:
            if unvoiced.size:
                seams.append(int(unvoiced[np.argmin(np.abs(unvoiced - target))]))
            continue
        pool = unvoiced if unvoiced.size else candidates
        seams.append(int(pool[np.argmin(feats.mcep[pool, 0])]))
    return seams


def synthesize(feats: UtteranceFeatures, max_frames: int = MAX_FRAMES_PER_CALL,
               progress: Progress | None = None, threads: int = 1) -> np.ndarray:
    """Waveform (float64, at ``feats.fs``) from F0, mel-cepstrum and coded aperiodicity.

    The mel-cepstrum goes back to a spectral envelope (the inverse of the
    analysis map, :func:`vawgan.features.mcep.mc2sp`), the coded aperiodicity
    is decoded, and ``pyworld.synthesize`` renders the signal.

    An utterance of up to ``max_frames`` frames is rendered by one call. A
    longer one would need its whole 513-bin envelope and aperiodicity in
    memory at once (8 kB per frame each: 6 GB for an hour), so it is cut at
    quiet unvoiced frames (:func:`synthesis_seams`) and each piece is
    rendered with ``SYNTHESIS_CONTEXT_FRAMES`` of its neighbours, then
    cross-faded into the output over ``SEAM_FADE_FRAMES`` around each seam.
    The output has one call's length and, up to the first seam, one call's
    samples to rounding; after a seam WORLD's pulse train starts afresh, so
    pulses move by part of a period, from a pause on. (A 60 s recording cut
    every 4000 or 1000 frames: resynthesis MCD 3.99 dB against one call's
    3.97, no jump at a seam above the signal's usual sample-to-sample steps.)

    ``threads > 1`` renders the pieces in parallel threads (pyworld releases
    the GIL), and cuts an utterance short enough for one call into up to
    ``threads`` pieces of at least ``MIN_FRAMES_PER_THREAD`` frames — at
    unvoiced frames only; one that has no unvoiced frame near a cut stays in
    one piece there. A sentence is then rendered in less time on two cores,
    its samples the same as one call's up to the first seam. After it the
    pulses and WORLD's noise differ from one call's, so a re-analysis
    differs by 1.3–1.5 dB MCD, as two renderings may; both are as close to
    the features (analysis–synthesis of the 30 Flite eval recordings, 28 of
    them cut: 3.363 dB either way). ``progress`` hears of each piece
    (:data:`Progress`, stage "synthesis").
    """
    n = feats.num_frames
    report = stage_report(progress, "synthesis", n * feats.frame_period / 1000.0)
    if n > max_frames:
        seams = synthesis_seams(feats, max_frames)
    elif threads > 1 and n >= 2 * batching.MIN_FRAMES_PER_THREAD:
        seams = synthesis_seams(feats, math.ceil(n / min(threads, n // batching.MIN_FRAMES_PER_THREAD)), unvoiced_only=True)
    else:
        seams = []
    if not seams:
        output = _world_synthesis(feats, slice(0, n))
        report(n, n)
        return output
    samples_per_frame, step = frame_grid(feats.fs, feats.frame_period)
    # Context of whole steps, so that every piece starts on a frame that starts on a whole sample: a piece's
    # samples lie on the output's grid, and the last piece ends where one call's output would.
    context = math.ceil(SYNTHESIS_CONTEXT_FRAMES / step) * step
    fade = float(SEAM_FADE_FRAMES * samples_per_frame)
    bounds = [0, *seams, n]
    spans = [(max(first - context, 0), min(last + context, n)) for first, last in zip(bounds[:-1], bounds[1:])]
    if threads > 1:
        rendered = worker_threads(threads).map(lambda span: _world_synthesis(feats, slice(*span)), spans)
    else:
        rendered = (_world_synthesis(feats, slice(*span)) for span in spans)
    output = np.zeros(int(n * samples_per_frame))
    for first, last, (start, _), piece in zip(bounds[:-1], bounds[1:], spans, rendered):
        offset = int(start * samples_per_frame)
        where = offset + np.arange(len(piece), dtype=np.float64)
        weight = np.ones(len(piece))
        if first > 0:
            weight *= np.clip((where - (int(first * samples_per_frame) - fade / 2)) / fade, 0.0, 1.0)
        if last < n:
            weight *= np.clip(((int(last * samples_per_frame) + fade / 2) - where) / fade, 0.0, 1.0)
        output[offset:offset + len(piece)] += weight * piece
        report(last, n)
    return output


def rendered_mcep(y: np.ndarray, feats: UtteranceFeatures, f0_floor: float, threads: int = 1) -> np.ndarray:
    """Mel-cepstra of ``y``, a synthesis of ``feats``, re-analysed by CheapTrick at ``feats``' own F0 and frames.

    What the listener gets of the envelope ``feats.mcep`` asked for: the
    analysis of the training data (:func:`vawgan.features.world.analyze`) run on the rendered
    signal, except that F0 is not estimated again but taken from ``feats``.
    ``f0_floor`` is the analysis' F0 floor (the speaker's search range), which
    CheapTrick also uses for unvoiced frames.
    """
    f0 = np.ascontiguousarray(feats.f0, dtype=np.float64)
    times = np.arange(feats.num_frames) * (feats.frame_period / 1000.0)
    y = np.ascontiguousarray(y, dtype=np.float64)

    def envelope(frames: slice) -> np.ndarray:
        sp = per_frame_in_blocks(pyworld.cheaptrick, y, f0[frames], times[frames], feats.fs, threads,
                                 f0_floor=f0_floor, fft_size=feats.fft_size)
        return mcep_lib.sp2mc(sp, feats.mcep.shape[1] - 1, feats.alpha)

    return in_frame_batches(envelope, feats.num_frames)


def compensate_vocoder(feats: UtteranceFeatures, f0_floor: float, threads: int = 1,
                       progress: Progress | None = None) -> UtteranceFeatures:
    """Features whose synthesis re-analyses closer to ``feats.mcep``: c + smooth(c − rendered c).

    WORLD synthesis does not render exactly the envelope it is given: a
    re-analysis of natural speech's analysis–synthesis is 3.3 dB MCD from the
    original analysis (the corpus ceiling), and part of that difference is
    systematic (the re-analysed spectra are more peaked: their global variance
    is ~20 % higher). This synthesizes ``feats`` once, re-analyses the
    envelope (:func:`rendered_mcep`) and moves each frame's c0..cD away from
    the rendering by the difference — one step of a fixed-point iteration —
    averaged over ``COMPENSATION_FRAMES`` frames. The average keeps the
    systematic part and drops the frame-to-frame noise of the re-analysis:
    corrected frame by frame, a lone unvoiced frame inside voiced speech got
    a correction that rendered a click 4× the utterance's peak (Flite eval
    split, `rms` → `slt` fb084); averaged, no output's peak grew by more than
    21 %, and the MCD to the targets fell a little further. It costs one more
    synthesis and one CheapTrick pass. ``progress`` hears of that first
    synthesis (stage "compensation").
    """
    from scipy.ndimage import uniform_filter1d

    first = synthesize(feats, threads=threads, progress=None if progress is None else (
        lambda stage, done, total: progress("compensation", done, total)))
    mcep = np.asarray(feats.mcep, dtype=np.float64)
    correction = uniform_filter1d(mcep - rendered_mcep(first, feats, f0_floor, threads), COMPENSATION_FRAMES,
                                  axis=0, mode="nearest")
    return dataclasses.replace(feats, mcep=(mcep + correction).astype(feats.mcep.dtype))


def render(feats: UtteranceFeatures, vocoder_compensation: bool, f0_floor: float, threads: int = 1,
           progress: Progress | None = None) -> np.ndarray:
    """:func:`synthesize` ``feats``, after :func:`compensate_vocoder` when ``vocoder_compensation``.

    ``f0_floor`` is the F0 floor the voice being rendered is analysed with
    (its speaker's search range); only the compensation uses it.
    """
    if vocoder_compensation:
        feats = compensate_vocoder(feats, f0_floor, threads=threads, progress=progress)
    return synthesize(feats, progress=progress, threads=threads)
