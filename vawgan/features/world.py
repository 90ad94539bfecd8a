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
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyworld

from vawgan.audio import load_audio
from vawgan.config import FeatureConfig
from vawgan.errors import VawganError
from vawgan.features import mcep as mcep_lib
from vawgan.features.store import UtteranceFeatures

F0_METHODS = ("harvest", "dio")
# The reference level of the speech mask: this percentile of the frame powers.
LOUD_PERCENTILE = 95.0
# Fewest frames (0.5 s at 5 ms) worth a thread of their own in per_frame_in_blocks.
MIN_FRAMES_PER_THREAD = 100


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


def estimate_f0(x: np.ndarray, fs: int, method: str, floor: float, ceil: float,
                frame_period: float, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(f0, times)`` by Harvest or by DIO refined with StoneMask; F0 is 0 on unvoiced frames.

    ``threads`` applies to StoneMask (Harvest and DIO work on the whole signal).
    """
    if method == "harvest":
        return pyworld.harvest(x, fs, f0_floor=floor, f0_ceil=ceil, frame_period=frame_period)
    if method == "dio":
        f0, times = pyworld.dio(x, fs, f0_floor=floor, f0_ceil=ceil, frame_period=frame_period)
        return per_frame_in_blocks(pyworld.stonemask, x, f0, times, fs, threads), times
    raise VawganError(f"features.f0_method {method!r} is not one of {', '.join(F0_METHODS)}")


def coded_aperiodicity(x: np.ndarray, f0: np.ndarray, times: np.ndarray, fs: int, fft_size: int, step: int = 1,
                       threads: int = 1) -> np.ndarray:
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
    exactly what D4C gives a frame without F0.
    """
    if step < 1:
        raise VawganError(f"features.aperiodicity_step={step} must be at least 1")
    if step == 1:
        return pyworld.code_aperiodicity(per_frame_in_blocks(pyworld.d4c, x, f0, times, fs, threads,
                                                             fft_size=fft_size), fs)
    frames = np.arange(len(f0))
    analysed = np.unique(np.append(frames[::step], frames[-1]))
    voiced = f0 > 0
    near_voiced = np.convolve(voiced, np.ones(2 * step - 1))[step - 1:step - 1 + len(f0)] > 0
    filled_f0 = np.interp(frames, frames[voiced], f0[voiced]) if voiced.any() else f0
    analysed_f0 = np.where(near_voiced[analysed], filled_f0[analysed], 0.0)
    coded = pyworld.code_aperiodicity(per_frame_in_blocks(pyworld.d4c, x, analysed_f0, times[analysed], fs,
                                                          threads, fft_size=fft_size), fs)
    result = np.stack([np.interp(frames, analysed, band) for band in coded.T], axis=1)
    without_f0 = pyworld.d4c(x, np.zeros(1), times[:1].copy(), fs, fft_size=fft_size)
    result[~voiced] = pyworld.code_aperiodicity(without_f0, fs)[0]
    return result


def speech_mask(sp: np.ndarray, threshold_db: float) -> np.ndarray:
    """True on frames whose mean envelope power is within ``threshold_db`` (< 0) of the loud frames."""
    power_db = 10.0 * np.log10(np.mean(sp, axis=1))
    return power_db >= np.percentile(power_db, LOUD_PERCENTILE) + threshold_db


def analyze(x: np.ndarray, fs: int, config: FeatureConfig, speaker: str | None = None,
            name: str = "signal", threads: int = 1) -> UtteranceFeatures:
    """WORLD + mel-cepstral features of the mono signal ``x`` sampled at ``fs``.

    ``speaker`` selects that speaker's F0 search range from
    ``config.f0_ranges`` (the default range otherwise). ``name`` is how errors
    refer to the signal (usually its file name). ``threads > 1`` runs
    StoneMask, CheapTrick and D4C on blocks of frames in parallel
    (:func:`per_frame_in_blocks`). Raises :class:`VawganError`
    when ``fs`` differs from the configured rate or the signal is shorter than
    one analysis window.
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
    f0, times = estimate_f0(x, fs, config.f0_method, floor, ceil, config.frame_period, threads)
    sp = per_frame_in_blocks(pyworld.cheaptrick, x, f0, times, fs, threads, f0_floor=floor, fft_size=fft_size)
    coded_ap = coded_aperiodicity(x, f0, times, fs, fft_size, config.aperiodicity_step, threads)
    alpha = alpha_of(config)
    return UtteranceFeatures(
        f0=f0, mcep=mcep_lib.sp2mc(sp, config.mcep_order, alpha).astype(np.float32),
        coded_ap=coded_ap, speech=speech_mask(sp, config.silence_threshold_db),
        fs=fs, frame_period=float(config.frame_period), alpha=alpha, fft_size=fft_size)


def analyze_file(path: str | os.PathLike, config: FeatureConfig, speaker: str | None = None,
                 threads: int = 1) -> UtteranceFeatures:
    """Load ``path`` with :func:`vawgan.audio.load_audio` and :func:`analyze` it."""
    x = load_audio(path, config.sample_rate)
    return analyze(x, config.sample_rate, config, speaker=speaker, name=str(Path(path)), threads=threads)


def synthesize(feats: UtteranceFeatures) -> np.ndarray:
    """Waveform (float64, at ``feats.fs``) from F0, mel-cepstrum and coded aperiodicity.

    The mel-cepstrum goes back to a spectral envelope (the inverse of the
    analysis map, :func:`vawgan.features.mcep.mc2sp`), the coded aperiodicity
    is decoded, and ``pyworld.synthesize`` renders the signal.
    """
    sp = mcep_lib.mc2sp(feats.mcep, feats.alpha, feats.fft_size)
    ap = pyworld.decode_aperiodicity(np.ascontiguousarray(feats.coded_ap, dtype=np.float64), feats.fs, feats.fft_size)
    f0 = np.ascontiguousarray(feats.f0, dtype=np.float64)
    return pyworld.synthesize(f0, sp, ap, feats.fs, frame_period=feats.frame_period)


def resynthesis_mcd(original: UtteranceFeatures, resynthesized: np.ndarray, config: FeatureConfig,
                    speaker: str | None = None) -> float:
    """Mean MCD (dB, c1..cD, the original's speech frames) between ``original`` and a re-analysis of ``resynthesized``.

    Analysis and synthesis share the frame grid, so frames are compared one to
    one (no DTW); the re-analysis may have a frame more or less at the end,
    which is dropped.
    """
    from vawgan.evaluate.metrics import mcd_per_frame

    again = analyze(resynthesized, original.fs, config, speaker=speaker, name="resynthesized signal")
    n = min(original.num_frames, again.num_frames)
    speech = original.speech[:n]
    if not speech.any():
        raise VawganError("the original has no speech frames to compare; check features.silence_threshold_db")
    return float(mcd_per_frame(original.mcep[:n, 1:][speech], again.mcep[:n, 1:][speech]).mean())


def resynthesize_file(path: str | os.PathLike, out_path: str | os.PathLike, config: FeatureConfig,
                      speaker: str | None = None) -> float:
    """Analysis–synthesis round trip of one file: write the result to ``out_path``, return its MCD (dB)."""
    from vawgan.audio import write_audio

    feats = analyze_file(path, config, speaker=speaker)
    y = synthesize(feats)
    write_audio(out_path, y, feats.fs)
    return resynthesis_mcd(feats, y, config, speaker=speaker)
