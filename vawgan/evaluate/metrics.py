"""Objective measures of converted speech features (SPEC section 5).

Every measure here compares a *converted* utterance with the *natural target*
utterance of the same sentence. The two are not time-aligned, so
:func:`vawgan.alignment.align` first pairs their speech frames by dynamic time
warping (``librosa.sequence.dtw``, Euclidean distance on c1..cD, which is the
MCD's own distance). The same alignment then serves every measure of that pair:

* MCD in dB on c1..cD (c0, the frame energy, excluded) and, for comparison with
  ESPnet-style numbers, on c0..cD;
* F0 RMSE in cents and F0 correlation on aligned frames voiced in both;
* voiced/unvoiced error rate on all aligned frames;
* global variance (GV): per-dimension variance over an utterance's speech
  frames, and its ratio converted / natural (1.0 = no over-smoothing);
* modulation-spectrum distance (:func:`modulation_spectrum_distance`): how far
  the temporal fluctuation of each coefficient is from the natural target's.

Convention (state it next to every number, toolkits differ): speech frames
only (each side's own ``speech`` mask), DTW on c1..cD with librosa's default
steps, distortion averaged over the aligned frame pairs of the warping path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vawgan.alignment import align, mcd_per_frame

CONVENTION = ("MCD in dB = (10/ln 10)·sqrt(2·Σ_d (c_d − ĉ_d)²) on c1..c39 (c0 excluded; 'MCD incl. c0' adds c0), "
              "mean over the frame pairs of a DTW path (librosa.sequence.dtw, Euclidean on c1..c39) between the "
              "speech frames of converted and natural target; F0 RMSE (cents) and correlation (of log-F0) on aligned "
              "frames voiced in both; V/UV error on all aligned frames; GV ratio = mean over c1..c39 of "
              "(utterance-averaged variance of converted) / (same for natural target); MS distance = RMS over "
              "c1..c39 and modulation frequencies of the difference of the modulation spectra (dB, Welch, "
              "64-frame segments of each side's speech frames)")
# Welch segment of the modulation-spectrum distance: 64 frames (0.32 s at 5 ms), 33 modulation frequencies.
MS_SEGMENT = 64


def log_f0_cents(reference_f0: np.ndarray, converted_f0: np.ndarray) -> np.ndarray:
    """Per-frame F0 difference in cents, 1200·log2(converted / reference); inputs must be voiced (> 0)."""
    return 1200.0 * np.log2(np.asarray(converted_f0, dtype=np.float64) / np.asarray(reference_f0, dtype=np.float64))


def f0_scores(reference_f0: np.ndarray, converted_f0: np.ndarray) -> tuple[float, float, float, int]:
    """``(rmse_cents, log_f0_correlation, vuv_error, voiced_frames)`` of two aligned F0 tracks (0 = unvoiced).

    RMSE and correlation use frames voiced in both (NaN when fewer than two
    such frames, or a constant track makes the correlation undefined);
    the V/UV error rate is the fraction of frames whose voicing decisions differ.
    """
    reference_f0 = np.asarray(reference_f0, dtype=np.float64)
    converted_f0 = np.asarray(converted_f0, dtype=np.float64)
    if reference_f0.shape != converted_f0.shape:
        raise ValueError(f"F0 tracks must be aligned, got {reference_f0.shape} and {converted_f0.shape}")
    ref_voiced, conv_voiced = reference_f0 > 0, converted_f0 > 0
    vuv_error = float(np.mean(ref_voiced != conv_voiced)) if reference_f0.size else float("nan")
    both = ref_voiced & conv_voiced
    n = int(both.sum())
    if n < 2:
        return float("nan"), float("nan"), vuv_error, n
    cents = log_f0_cents(reference_f0[both], converted_f0[both])
    rmse = float(np.sqrt(np.mean(cents ** 2)))
    log_ref, log_conv = np.log(reference_f0[both]), np.log(converted_f0[both])
    if np.std(log_ref) == 0 or np.std(log_conv) == 0:
        return rmse, float("nan"), vuv_error, n
    return rmse, float(np.corrcoef(log_ref, log_conv)[0, 1]), vuv_error, n


def global_variance(mcep: np.ndarray) -> np.ndarray:
    """Per-dimension variance over the frames of one utterance, (T, D) → (D,)."""
    return np.var(np.asarray(mcep, dtype=np.float64), axis=0)


def gv_ratio(converted_gv: np.ndarray, natural_gv: np.ndarray) -> np.ndarray:
    """Per-dimension GV ratio converted / natural of utterance-averaged GVs.

    Each argument is a (N, D) stack of per-utterance GVs (or one (D,) GV); the
    GVs are averaged over utterances before dividing.
    """
    converted_gv = np.atleast_2d(np.asarray(converted_gv, dtype=np.float64)).mean(axis=0)
    natural_gv = np.atleast_2d(np.asarray(natural_gv, dtype=np.float64)).mean(axis=0)
    return converted_gv / natural_gv


def modulation_spectrum(trajectory: np.ndarray, frame_period_ms: float, nperseg: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """``(frequencies_hz, power_db)`` of the modulation spectrum of one or more feature trajectories.

    ``trajectory`` is (T,) or (T, D); the power spectral density over time of
    each mean-removed dimension is estimated with ``scipy.signal.welch``
    (segments of ``nperseg`` frames, fewer for short utterances) and returned in dB,
    shape (F,) or (F, D). Over-smoothed features lose power at high modulation
    frequencies.
    """
    from scipy.signal import welch

    trajectory = np.asarray(trajectory, dtype=np.float64)
    fs = 1000.0 / frame_period_ms
    freqs, power = welch(trajectory, fs=fs, nperseg=min(nperseg, trajectory.shape[0]), axis=0, detrend="constant")
    return freqs, 10.0 * np.log10(np.maximum(power, 1e-20))


def modulation_spectrum_distance(reference: np.ndarray, converted: np.ndarray, frame_period_ms: float = 5.0,
                                 nperseg: int = MS_SEGMENT) -> float:
    """RMS difference in dB between the modulation spectra of two (T, D) trajectories, NaN when either is short.

    Each side's spectrum is taken over its own frames (no alignment is
    needed: the spectrum does not depend on timing); an utterance shorter than
    ``nperseg`` frames has too few frames to estimate it. Lower is closer to
    the natural fluctuation; an over-smoothed conversion lies below the
    natural spectrum at high modulation frequencies and scores worse.
    """
    if min(len(reference), len(converted)) < nperseg:
        return float("nan")
    _, natural_db = modulation_spectrum(reference, frame_period_ms, nperseg)
    _, converted_db = modulation_spectrum(converted, frame_period_ms, nperseg)
    return float(np.sqrt(np.mean((converted_db - natural_db) ** 2)))


@dataclass
class PairScores:
    """The measures of one converted utterance against its natural target (see :data:`CONVENTION`)."""

    mcd: float  # dB, c1..cD
    mcd_with_c0: float  # dB, c0..cD
    f0_rmse_cents: float
    f0_corr: float
    vuv_error: float
    gv_converted: np.ndarray  # (D,) variance of c1..cD over the converted utterance's speech frames
    gv_natural: np.ndarray  # (D,) same for the natural target
    aligned_frames: int
    voiced_frames: int
    ms_distance: float = float("nan")  # dB, modulation-spectrum distance on c1..cD (NaN: too short)


def score_pair(reference_mcep: np.ndarray, reference_f0: np.ndarray, reference_speech: np.ndarray,
               converted_mcep: np.ndarray, converted_f0: np.ndarray, converted_speech: np.ndarray) -> PairScores:
    """All measures of one converted utterance against the natural target of the same sentence.

    ``*_mcep`` are (T, D+1) with c0 in column 0, ``*_f0`` (T,) in Hz with 0 on
    unvoiced frames, ``*_speech`` (T,) boolean speech masks (silence frames are
    left out before alignment). Raises ``ValueError`` when a side has no speech frames.
    """
    ref_speech = np.asarray(reference_speech, dtype=bool)
    conv_speech = np.asarray(converted_speech, dtype=bool)
    if not ref_speech.any() or not conv_speech.any():
        raise ValueError("an utterance has no speech frames (silent or wrongly thresholded)")
    ref_mcep = np.asarray(reference_mcep, dtype=np.float64)[ref_speech]
    conv_mcep = np.asarray(converted_mcep, dtype=np.float64)[conv_speech]
    ref_f0 = np.asarray(reference_f0, dtype=np.float64)[ref_speech]
    conv_f0 = np.asarray(converted_f0, dtype=np.float64)[conv_speech]
    ri, ci = align(ref_mcep[:, 1:], conv_mcep[:, 1:])
    mcd = float(mcd_per_frame(ref_mcep[ri, 1:], conv_mcep[ci, 1:]).mean())
    mcd_c0 = float(mcd_per_frame(ref_mcep[ri], conv_mcep[ci]).mean())
    rmse, corr, vuv, voiced = f0_scores(ref_f0[ri], conv_f0[ci])
    return PairScores(mcd=mcd, mcd_with_c0=mcd_c0, f0_rmse_cents=rmse, f0_corr=corr, vuv_error=vuv,
                      gv_converted=global_variance(conv_mcep[:, 1:]), gv_natural=global_variance(ref_mcep[:, 1:]),
                      aligned_frames=int(len(ri)), voiced_frames=voiced,
                      ms_distance=modulation_spectrum_distance(ref_mcep[:, 1:], conv_mcep[:, 1:]))
