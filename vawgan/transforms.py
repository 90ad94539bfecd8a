"""Per-utterance transforms of features between speakers, shared by the neural converter and the GMM baseline.

* :func:`convert_f0` moves F0 from the source speaker's log-F0 Gaussian to
  the target's;
* :func:`lf0_statistics_of` and :func:`normalize_unknown_source` estimate
  from the input itself what the statistics cannot give for a speaker the
  model does not know;
* :func:`gv_postfilter` moves an utterance's global variance towards the
  target's.

They take arrays and a :class:`vawgan.stats.Statistics` and know nothing of
models, so every conversion system applies them the same way.
"""

from __future__ import annotations

import numpy as np

# Fewer voiced frames than this (50 ms) give no usable estimate of the input's
# own log-F0 spread; the F0 transform then only shifts the mean.
MIN_VOICED_FRAMES_FOR_STD = 10
# Fewer speech frames than this (100 ms) give no usable mean mel-cepstrum of an unknown speaker's input.
MIN_SPEECH_FRAMES_FOR_MEAN = 20
_MIN_LF0_STD = 1e-3


def convert_f0(f0: np.ndarray, source_lf0: tuple[float, float], target_lf0: tuple[float, float]) -> np.ndarray:
    """Map F0 from the source's log-F0 Gaussian to the target's, on voiced frames.

    ``log f0' = (log f0 − μ_s) / σ_s · σ_t + μ_t`` where ``(μ, σ)`` are the mean
    and standard deviation of log-F0 in Hz. Unvoiced frames (F0 = 0) stay 0.
    """
    f0 = np.asarray(f0, dtype=np.float64)
    src_mean, src_std = source_lf0
    tgt_mean, tgt_std = target_lf0
    out = np.zeros_like(f0)
    voiced = f0 > 0
    out[voiced] = np.exp((np.log(f0[voiced]) - src_mean) / src_std * tgt_std + tgt_mean)
    return out


def gv_postfilter(mcep: np.ndarray, speech: np.ndarray, target_gv: np.ndarray, alpha: float) -> np.ndarray:
    """Move the per-utterance variance of c1..cD towards ``target_gv`` (the classic GV postfilter).

    ``mcep`` is one utterance's (T, D+1) c0..cD; over its ``speech`` frames each
    dimension d of c1..cD is scaled around its mean by
    ``(target_gv[d] / variance[d]) ** (alpha / 2)``: ``alpha = 1`` gives the
    utterance the target's variance, ``0.5`` goes half-way in the log domain,
    0 changes nothing. Silence frames get the same affine map, c0 is kept.
    Over-smoothed conversions have too little variance; this undoes that
    without training (Toda et al. 2007), at some MCD cost (docs/evaluation.md).
    """
    out = np.array(mcep, dtype=np.float64)
    speech = np.asarray(speech, dtype=bool)
    if alpha == 0 or speech.sum() < 2:
        return out
    frames = out[:, 1:]
    mean = frames[speech].mean(axis=0)
    variance = np.maximum(frames[speech].var(axis=0), 1e-12)
    out[:, 1:] = mean + (frames - mean) * (np.asarray(target_gv, dtype=np.float64) / variance) ** (alpha / 2)
    return out


def lf0_statistics_of(f0: np.ndarray, fallback_std: float) -> tuple[float, float] | None:
    """Mean and std of log-F0 over the voiced frames of one utterance.

    Used when the source speaker is unknown. Returns None when nothing is
    voiced (there is no F0 to convert). With too few voiced frames, or a flat
    contour, the spread cannot be estimated and ``fallback_std`` (the target's)
    is returned instead, so that the transform only moves the mean.
    """
    lf0 = np.log(np.asarray(f0, dtype=np.float64)[np.asarray(f0) > 0])
    if lf0.size == 0:
        return None
    std = float(lf0.std())
    if lf0.size < MIN_VOICED_FRAMES_FOR_STD or std < _MIN_LF0_STD:
        std = float(fallback_std)
    return float(lf0.mean()), std


def normalize_unknown_source(mcep: np.ndarray, speech: np.ndarray, stats) -> np.ndarray:
    """Normalize c1..cD of an input whose speaker the model does not know: its own mean, the global std.

    A speaker's mean mel-cepstrum is much of what sets its voice apart (the
    statistics of a known speaker remove it before encoding). The input's own
    mean over its speech frames stands in for that speaker's, as its own log-F0
    statistics do for the F0 transform; its per-dimension spread over one
    utterance is too noisy to stand in for the speaker's, so the global std is
    kept. With fewer than :data:`MIN_SPEECH_FRAMES_FOR_MEAN` speech frames the
    global mean is used instead (docs/conversion.md measures what this gains).
    """
    global_mean, global_std = stats.mean_std(None)
    speech = np.asarray(speech, dtype=bool)
    mean = mcep[speech].mean(axis=0) if speech.sum() >= MIN_SPEECH_FRAMES_FOR_MEAN else global_mean
    return (mcep - mean) / global_std
