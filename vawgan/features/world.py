"""WORLD analysis of one utterance into mel-cepstral features, and synthesis back.

Analysis (SPEC section 2): F0 by Harvest (default) or DIO + StoneMask, the
spectral envelope by CheapTrick, aperiodicity by D4C, all at
``FeatureConfig.frame_period`` ms (D4C optionally on every n-th frame,
``FeatureConfig.aperiodicity_step``: :func:`coded_aperiodicity`); the envelope
becomes the mel-cepstrum c0..c``mcep_order`` (:mod:`vawgan.features.mcep`), the
aperiodicity a few coded bands (``pyworld.code_aperiodicity``).

Speech/silence mask: a frame is speech when its power — the mean of the
CheapTrick power envelope over frequency, in dB — lies within
``FeatureConfig.silence_threshold_db`` of the utterance's loud frames. "Loud"
is the 95th percentile of frame power rather than the maximum, so that one
click or plosive burst cannot shift the threshold. The rule is relative, so it
does not depend on the recording level.

Threads: StoneMask, CheapTrick and D4C estimate each frame from the whole
signal and that frame's F0 and time alone, and pyworld releases the GIL while
WORLD runs, so ``threads > 1`` analyses contiguous blocks of frames in
parallel (:func:`per_frame_in_blocks`). One utterance then uses several cores,
which is what a single `vawgan convert` needs; corpus extraction runs whole
utterances in parallel processes instead (``--jobs``) and keeps one call per
utterance.

Long signals: WORLD's analysis functions hold the whole signal's
intermediate results in memory — Harvest about 30 MB per second of 16 kHz
audio (9 GB for a 5-minute file), DIO 1.6 MB, and the envelope and
aperiodicity 8 kB per frame each. So F0 is estimated in overlapping segments
of ``SEGMENT_SECONDS`` (:func:`f0_in_segments`), and CheapTrick and D4C run
on at most ``MAX_FRAMES_PER_CALL`` frames at a time, each batch reduced to
mel-cepstra and coded bands before the next (:func:`in_frame_batches`). A
signal short enough for one segment and one batch (every utterance of a
speech corpus) is analysed by one call each, exactly as before.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np
import pyworld

from vawgan.alignment import mcd_per_frame
from vawgan.audio import load_audio, write_audio
from vawgan.config import FeatureConfig
from vawgan.errors import VawganError
from vawgan.features import mcep as mcep_lib
from vawgan.features.store import UtteranceFeatures

F0_METHODS = ("harvest", "dio")
# The reference level of the speech mask: this percentile of the frame powers.
LOUD_PERCENTILE = 95.0
# Fewest frames (0.5 s at 5 ms) worth a thread of their own in per_frame_in_blocks.
MIN_FRAMES_PER_THREAD = 100
# F0 of longer signals is estimated in segments of this many seconds, each with this much signal on either
# side as context (f0_in_segments): Harvest's memory then stays below ~0.7 GB at 16 kHz whatever the length.
SEGMENT_SECONDS = 20.0
SEGMENT_MARGIN_SECONDS = 1.0
# CheapTrick and D4C analyse at most this many frames (20 s at 5 ms, ~33 MB of envelope) per call (in_frame_batches),
# and synthesize renders about this many frames per call.
MAX_FRAMES_PER_CALL = 4000
# A piece of a long synthesis is rendered with this many frames of its neighbours on either side, and the pieces
# are cross-faded over this many frames around each seam.
SYNTHESIS_CONTEXT_FRAMES = 20
SEAM_FADE_FRAMES = 2
# compensate_vocoder averages its correction of the mel-cepstra over this many frames (25 ms at 5 ms).
COMPENSATION_FRAMES = 5

# How a long signal's analysis and synthesis report their advance: ``progress(stage, seconds_done,
# seconds_total)`` after each F0 segment, frame batch or synthesis piece, the stages being "F0", "envelope",
# "aperiodicity" and "synthesis" (the networks between them take a fraction of a second). A user waits
# minutes for an hour-long recording.
Progress = Callable[[str, float, float], None]
# How the loops below report: ``report(done, total)`` in frames (or rows) after each part.
PartReport = Callable[[int, int], None]


def no_report(done: int, total: int) -> None:
    """The :data:`PartReport` of a caller that does not follow the advance."""


def stage_report(progress: Progress | None, stage: str, seconds: float) -> PartReport:
    """A :data:`PartReport` that passes a loop's advance on to ``progress`` as seconds of a ``seconds`` long signal."""
    if progress is None:
        return no_report
    return lambda done, total: progress(stage, seconds * done / total if total else seconds, seconds)


def fft_size_of(config: FeatureConfig) -> int:
    """The CheapTrick FFT size: the configured one, else pyworld's choice for the sample rate."""
    return int(config.fft_size or pyworld.get_cheaptrick_fft_size(config.sample_rate))


def alpha_of(config: FeatureConfig) -> float:
    """The all-pass constant: the configured one, else pysptk's for the sample rate."""
    return float(config.mcep_alpha if config.mcep_alpha is not None else mcep_lib.mcep_alpha(config.sample_rate))


def min_samples(config: FeatureConfig) -> int:
    """The shortest signal we analyse: one CheapTrick analysis window (the FFT size)."""
    return fft_size_of(config)


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
    others = [_analysis_threads(blocks - 1).submit(analysis, x, f0[a:b], times[a:b], fs, **options)
              for a, b in zip(bounds[1:-1], bounds[2:])]
    first = analysis(x, f0[:bounds[1]], times[:bounds[1]], fs, **options)
    return np.concatenate([first, *(future.result() for future in others)])


@functools.lru_cache(maxsize=None)
def _analysis_threads(count: int) -> ThreadPoolExecutor:
    """A pool of ``count`` threads kept for the life of the process (starting threads per call costs milliseconds)."""
    return ThreadPoolExecutor(count, thread_name_prefix="vawgan-world")


# A forked child inherits the pool objects but not their threads: it must start its own.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_analysis_threads.cache_clear)


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


def harvest_decimation(fs: int) -> int:
    """The factor by which Harvest decimates a signal sampled at ``fs`` (to about 8 kHz; WORLD's rule)."""
    return min(max(int(fs / 8000.0 + 0.5), 1), 12)


def f0_in_segments(x: np.ndarray, fs: int, estimator, frame_period: float,
                   segment_seconds: float = SEGMENT_SECONDS,
                   margin_seconds: float = SEGMENT_MARGIN_SECONDS,
                   report: PartReport = no_report) -> tuple[np.ndarray, np.ndarray]:
    """``(f0, times)`` of ``x`` from ``estimator(piece)`` (Harvest or DIO) run on overlapping segments.

    Frames are cut into runs of about ``segment_seconds``; each run is
    estimated from its stretch of signal plus ``margin_seconds`` on either
    side, and keeps the frames of its run. Segments start on a sample where
    a frame starts (after a whole number of samples when a frame is not:
    every 4 frames at 22.05 kHz), and end where the whole signal's sample
    grid after Harvest's decimation would put them — WORLD decimates from
    the signal's end, and a segment one sample longer or shorter moves that
    grid and changes Harvest's voicing decisions in ~1 % of the frames. So
    segments agree with one call on the whole signal about as well as one
    call agrees with calls on its parts (tested). A signal that fits in one
    segment with its margins is estimated by one call. ``report(frames_done,
    frames_total)`` is called after each segment.
    """
    samples_per_frame, step = frame_grid(fs, frame_period)
    core = max(1, round(segment_seconds * 1000.0 / frame_period / step)) * step
    margin = math.ceil(margin_seconds * 1000.0 / frame_period / step) * step
    if len(x) <= (core + 2 * margin) * samples_per_frame:
        f0, times = estimator(x)
        report(len(f0), len(f0))
        return f0, times
    expected_frames = int(len(x) / samples_per_frame) + 1  # WORLD's count, for the report
    decimation = harvest_decimation(fs)
    pieces = []
    first = 0  # the first frame of the current run
    while True:
        context = max(first - margin, 0)
        start, end = int(context * samples_per_frame), int((first + core + margin) * samples_per_frame)
        if end >= len(x):
            pieces.append(estimator(x[start:])[0][first - context:])
            break
        end += (len(x) - end) % decimation
        pieces.append(estimator(x[start:end])[0][first - context:first - context + core])
        first += core
        report(first, expected_frames)
    f0 = np.concatenate(pieces)
    report(len(f0), len(f0))
    return f0, np.arange(len(f0)) * frame_period / 1000.0


def estimate_f0(x: np.ndarray, fs: int, method: str, floor: float, ceil: float,
                frame_period: float, threads: int = 1,
                report: PartReport = no_report) -> tuple[np.ndarray, np.ndarray]:
    """``(f0, times)`` by Harvest or by DIO refined with StoneMask; F0 is 0 on unvoiced frames.

    Harvest and DIO see the signal in segments when it is long
    (:func:`f0_in_segments`, which calls ``report``); ``threads`` applies to StoneMask.
    """
    if method not in F0_METHODS:
        raise VawganError(f"features.f0_method {method!r} is not one of {', '.join(F0_METHODS)}")
    estimator = pyworld.harvest if method == "harvest" else pyworld.dio
    f0, times = f0_in_segments(
        x, fs, lambda piece: estimator(piece, fs, f0_floor=floor, f0_ceil=ceil, frame_period=frame_period),
        frame_period, report=report)
    if method == "dio":
        f0 = per_frame_in_blocks(pyworld.stonemask, x, f0, times, fs, threads)
    return f0, times


def coded_aperiodicity(x: np.ndarray, f0: np.ndarray, times: np.ndarray, fs: int, fft_size: int, step: int = 1,
                       threads: int = 1, report: PartReport = no_report) -> np.ndarray:
    """D4C's aperiodicity of every frame in ``pyworld.code_aperiodicity``'s bands, D4C run on every ``step``-th frame.

    ``step == 1`` is WORLD's analysis: D4C on every frame. D4C is the slowest
    part of a DIO analysis (about two thirds of it at 16 kHz) and what it
    estimates changes slowly: at 16 kHz it is coded as a single band. With
    ``step = n > 1`` D4C analyses every n-th frame (and the last) and each
    band is interpolated linearly in time between them, on the dB scale
    ``code_aperiodicity`` uses. So that voiced frames are interpolated from
    voiced analyses only, an analysed frame counts as voiced when a voiced
    frame lies within n − 1 frames of it, and is analysed at the F0 of its
    voiced neighbours (interpolated across unvoiced gaps); unvoiced frames get
    exactly what D4C gives a frame without F0. ``report(done, total)`` counts
    the analysed frames.
    """
    if step < 1:
        raise VawganError(f"features.aperiodicity_step={step} must be at least 1")
    def coded_d4c(frame_f0: np.ndarray, frame_times: np.ndarray):
        """D4C of the given frames, in batches, coded to bands batch by batch."""
        return in_frame_batches(lambda batch: pyworld.code_aperiodicity(per_frame_in_blocks(
            pyworld.d4c, x, frame_f0[batch], frame_times[batch], fs, threads, fft_size=fft_size), fs), len(frame_f0),
            report=report)

    if step == 1:
        return coded_d4c(f0, times)
    frames = np.arange(len(f0))
    analysed = np.unique(np.append(frames[::step], frames[-1]))
    voiced = f0 > 0
    near_voiced = np.convolve(voiced, np.ones(2 * step - 1))[step - 1:step - 1 + len(f0)] > 0
    filled_f0 = np.interp(frames, frames[voiced], f0[voiced]) if voiced.any() else f0
    analysed_f0 = np.where(near_voiced[analysed], filled_f0[analysed], 0.0)
    coded = coded_d4c(analysed_f0, times[analysed])
    result = np.stack([np.interp(frames, analysed, band) for band in coded.T], axis=1)
    without_f0 = pyworld.d4c(x, np.zeros(1), times[:1].copy(), fs, fft_size=fft_size)
    result[~voiced] = pyworld.code_aperiodicity(without_f0, fs)[0]
    return result


def frame_power_db(sp: np.ndarray) -> np.ndarray:
    """Each frame's mean CheapTrick power over frequency, in dB (what :func:`speech_mask` thresholds)."""
    return 10.0 * np.log10(np.mean(sp, axis=1))


def speech_mask(power_db: np.ndarray, threshold_db: float) -> np.ndarray:
    """True on frames whose power (:func:`frame_power_db`) is within ``threshold_db`` (< 0) of the loud frames."""
    return power_db >= np.percentile(power_db, LOUD_PERCENTILE) + threshold_db


def analyze(x: np.ndarray, fs: int, config: FeatureConfig, speaker: str | None = None,
            name: str = "signal", threads: int = 1, progress: Progress | None = None) -> UtteranceFeatures:
    """WORLD + mel-cepstral features of the mono signal ``x`` sampled at ``fs``.

    ``speaker`` selects that speaker's F0 search range from
    ``config.f0_ranges`` (the default range otherwise). ``name`` is how errors
    refer to the signal (usually its file name). ``threads > 1`` runs
    StoneMask, CheapTrick and D4C on blocks of frames in parallel
    (:func:`per_frame_in_blocks`). ``progress`` hears of each F0 segment and
    frame batch (:data:`Progress`). Raises :class:`VawganError` when ``fs``
    differs from the configured rate or the signal is shorter than one
    analysis window.
    """
    if fs != config.sample_rate:
        raise VawganError(f"{name}: sampled at {fs} Hz but features.sample_rate is {config.sample_rate}; "
                          "load it with vawgan.audio.load_audio, which resamples")
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise VawganError(f"{name}: expected a mono signal, got shape {x.shape}")
    fft_size = fft_size_of(config)
    if x.size < min_samples(config):
        raise VawganError(f"{name}: only {x.size} samples ({1000 * x.size / fs:.1f} ms), shorter than one analysis "
                          f"window ({fft_size} samples, {1000 * fft_size / fs:.0f} ms); remove it from the corpus")
    floor, ceil = config.f0_range(speaker)
    seconds = x.size / fs
    f0, times = estimate_f0(x, fs, config.f0_method, floor, ceil, config.frame_period, threads,
                            report=stage_report(progress, "F0", seconds))
    alpha = alpha_of(config)

    def envelope_features(frames: slice) -> tuple[np.ndarray, np.ndarray]:
        """Mel-cepstra and power (dB) of a batch of frames from their CheapTrick envelopes."""
        sp = per_frame_in_blocks(pyworld.cheaptrick, x, f0[frames], times[frames], fs, threads,
                                 f0_floor=floor, fft_size=fft_size)
        return mcep_lib.sp2mc(sp, config.mcep_order, alpha).astype(np.float32), frame_power_db(sp)

    mcep, power_db = in_frame_batches(envelope_features, len(f0), report=stage_report(progress, "envelope", seconds))
    coded_ap = coded_aperiodicity(x, f0, times, fs, fft_size, config.aperiodicity_step, threads,
                                  report=stage_report(progress, "aperiodicity", seconds))
    return UtteranceFeatures(
        f0=f0, mcep=mcep, coded_ap=coded_ap, speech=speech_mask(power_db, config.silence_threshold_db),
        fs=fs, frame_period=float(config.frame_period), alpha=alpha, fft_size=fft_size)


def analyze_file(path: str | os.PathLike, config: FeatureConfig, speaker: str | None = None,
                 threads: int = 1, progress: Progress | None = None) -> UtteranceFeatures:
    """Load ``path`` with :func:`vawgan.audio.load_audio` and :func:`analyze` it."""
    x = load_audio(path, config.sample_rate)
    return analyze(x, config.sample_rate, config, speaker=speaker, name=str(Path(path)), threads=threads,
                   progress=progress)


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
    elif threads > 1 and n >= 2 * MIN_FRAMES_PER_THREAD:
        seams = synthesis_seams(feats, math.ceil(n / min(threads, n // MIN_FRAMES_PER_THREAD)), unvoiced_only=True)
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
        rendered = _analysis_threads(threads).map(lambda span: _world_synthesis(feats, slice(*span)), spans)
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
    analysis of the training data (:func:`analyze`) run on the rendered
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


def analysis_synthesis(path: str | os.PathLike, config: FeatureConfig, speaker: str | None = None,
                       vocoder_compensation: bool = False) -> np.ndarray:
    """The recording ``path`` analysed like the training data and synthesized again: the evaluation's ceiling.

    ``speaker``'s F0 search range is used when the config sets one;
    ``vocoder_compensation`` renders through :func:`compensate_vocoder`.
    """
    feats = analyze_file(path, config, speaker=speaker)
    return render(feats, vocoder_compensation, config.f0_range(speaker)[0])


def resynthesis_mcd(original: UtteranceFeatures, resynthesized: np.ndarray, config: FeatureConfig,
                    speaker: str | None = None, progress: Progress | None = None) -> float:
    """Mean MCD (dB, c1..cD, the original's speech frames) between ``original`` and a re-analysis of ``resynthesized``.

    Analysis and synthesis share the frame grid, so frames are compared one to
    one (no DTW); the re-analysis may have a frame more or less at the end,
    which is dropped. ``progress`` hears of the re-analysis, its stages named
    "re-analysis: F0" and so on.
    """
    again = analyze(resynthesized, original.fs, config, speaker=speaker, name="resynthesized signal",
                    progress=None if progress is None else (
                        lambda stage, done, total: progress(f"re-analysis: {stage}", done, total)))
    n = min(original.num_frames, again.num_frames)
    speech = original.speech[:n]
    if not speech.any():
        raise VawganError("the original has no speech frames to compare; check features.silence_threshold_db")
    return float(mcd_per_frame(original.mcep[:n, 1:][speech], again.mcep[:n, 1:][speech]).mean())


def resynthesize_file(path: str | os.PathLike, out_path: str | os.PathLike, config: FeatureConfig,
                      speaker: str | None = None, progress: Progress | None = None,
                      vocoder_compensation: bool = False) -> float:
    """Analysis–synthesis round trip of one file: write the result to ``out_path``, return its MCD (dB).

    ``vocoder_compensation`` synthesizes from :func:`compensate_vocoder`'s
    features; the MCD is still measured against the original analysis.
    ``progress`` hears of the analysis, the synthesis and the re-analysis (:data:`Progress`).
    """
    feats = analyze_file(path, config, speaker=speaker, progress=progress)
    y = render(feats, vocoder_compensation, config.f0_range(speaker)[0], progress=progress)
    write_audio(out_path, y, feats.fs)
    return resynthesis_mcd(feats, y, config, speaker=speaker, progress=progress)
