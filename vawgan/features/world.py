"""WORLD analysis of one utterance into mel-cepstral features, and the analysis–synthesis round trip.

Analysis (SPEC section 2): F0 by Harvest (default) or DIO + StoneMask, the
spectral envelope by CheapTrick, aperiodicity by D4C, all at
``FeatureConfig.frame_period`` ms (D4C optionally on every n-th frame,
``FeatureConfig.aperiodicity_step``: :func:`coded_aperiodicity`); the envelope
becomes the mel-cepstrum c0..c``mcep_order`` (:mod:`vawgan.features.mcep`), the
aperiodicity a few coded bands (``pyworld.code_aperiodicity``). Synthesis
back is :mod:`vawgan.features.synthesis`; :func:`analysis_synthesis` and
:func:`resynthesize_file` run both, the evaluation's ceiling.

Speech/silence mask: a frame is speech when its power — the mean of the
CheapTrick power envelope over frequency, in dB — lies within
``FeatureConfig.silence_threshold_db`` of the utterance's loud frames. "Loud"
is the 95th percentile of frame power rather than the maximum, so that one
click or plosive burst cannot shift the threshold. The rule is relative, so it
does not depend on the recording level.

Threads and long signals: StoneMask, CheapTrick and D4C run on blocks of
frames in threads when ``threads > 1`` and on batches of frames in bounded
memory (:mod:`vawgan.features.batching`). WORLD's F0 estimators hold the
whole signal's intermediate results in memory — Harvest about 30 MB per
second of 16 kHz audio (9 GB for a 5-minute file), DIO 1.6 MB — so F0 is
estimated in overlapping segments of ``SEGMENT_SECONDS``
(:func:`f0_in_segments`). A signal short enough for one segment and one
batch (every utterance of a speech corpus) is analysed by one call each.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pyworld

from vawgan.alignment import mcd_per_frame
from vawgan.audio import load_audio, write_audio
from vawgan.config import FeatureConfig
from vawgan.errors import VawganError
from vawgan.features import mcep as mcep_lib
from vawgan.features.batching import (PartReport, Progress, frame_grid, in_frame_batches, no_report,
                                      per_frame_in_blocks, stage_report)
from vawgan.features.store import UtteranceFeatures
from vawgan.features.synthesis import render

F0_METHODS = ("harvest", "dio")
# The reference level of the speech mask: this percentile of the frame powers.
LOUD_PERCENTILE = 95.0
# F0 of longer signals is estimated in segments of this many seconds, each with this much signal on either
# side as context (f0_in_segments): Harvest's memory then stays below ~0.7 GB at 16 kHz whatever the length.
SEGMENT_SECONDS = 20.0
SEGMENT_MARGIN_SECONDS = 1.0


def fft_size_of(config: FeatureConfig) -> int:
    """The CheapTrick FFT size: the configured one, else pyworld's choice for the sample rate."""
    return int(config.fft_size or pyworld.get_cheaptrick_fft_size(config.sample_rate))


def alpha_of(config: FeatureConfig) -> float:
    """The all-pass constant: the configured one, else pysptk's for the sample rate."""
    return float(config.mcep_alpha if config.mcep_alpha is not None else mcep_lib.mcep_alpha(config.sample_rate))


def min_samples(config: FeatureConfig) -> int:
    """The shortest signal we analyse: one CheapTrick analysis window (the FFT size)."""
    return fft_size_of(config)


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
