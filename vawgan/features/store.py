"""The on-disk format of one utterance's features, shared by every stage.

One ``.npz`` file per utterance, ``<feature_dir>/<speaker>/<utt_id>.npz``:

=============  ===========  ==================================================
key            shape        meaning
=============  ===========  ==================================================
``f0``         (T,) f64     WORLD F0 in Hz, 0 on unvoiced frames
``mcep``       (T, D+1) f32 mel-cepstrum c0..cD (the model uses c1..cD)
``coded_ap``   (T, B) f64   band aperiodicity from ``pyworld.code_aperiodicity``
``speech``     (T,) bool    True on speech frames (False on silence)
``fs``         ()           sample rate in Hz
``frame_period`` ()         frame shift in ms
``alpha``      ()           all-pass constant of the mel-cepstrum
``fft_size``   ()           FFT size of the spectral envelope
=============  ===========  ==================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vawgan.corpus import parallel_pairs
from vawgan.errors import VawganError
from vawgan.utils import read_npz, save_npz_atomic


@dataclass
class UtteranceFeatures:
    """WORLD + mel-cepstral features of one utterance (see the module table)."""

    f0: np.ndarray
    mcep: np.ndarray
    coded_ap: np.ndarray
    speech: np.ndarray
    fs: int
    frame_period: float
    alpha: float
    fft_size: int

    @property
    def num_frames(self) -> int:
        return int(self.f0.shape[0])


def feature_path(feature_dir: str | os.PathLike, speaker: str, utt_id: str) -> Path:
    """Where the features of ``speaker``'s utterance ``utt_id`` live: ``<feature_dir>/<speaker>/<utt_id>.npz``."""
    return Path(feature_dir) / speaker / f"{utt_id}.npz"


def nonfinite_array(feats: UtteranceFeatures) -> str | None:
    """The name of the first of ``f0``, ``mcep``, ``coded_ap`` that holds NaN or infinity; None when all are finite."""
    for name in ("f0", "mcep", "coded_ap"):
        if not np.isfinite(getattr(feats, name)).all():
            return name
    return None


def save_features(path: str | os.PathLike, feats: UtteranceFeatures) -> None:
    """Write ``feats`` to ``path`` atomically (never a half-written file).

    Features with NaN or infinite values are refused, not written: every later
    stage (statistics, training, conversion) would carry them on silently.
    """
    bad = nonfinite_array(feats)
    if bad is not None:
        raise VawganError(f"{path}: the analysis gave non-finite values (NaN or infinity) in {bad}; nothing was "
                          "written; check the recording")
    save_npz_atomic(path, f0=feats.f0, mcep=feats.mcep.astype(np.float32), coded_ap=feats.coded_ap,
                    speech=feats.speech.astype(bool), fs=np.int64(feats.fs),
                    frame_period=np.float64(feats.frame_period), alpha=np.float64(feats.alpha),
                    fft_size=np.int64(feats.fft_size))


def load_features(path: str | os.PathLike) -> UtteranceFeatures:
    """Read a feature file; a missing or damaged file, NaN or infinity inside included, is a :class:`VawganError`."""
    with read_npz(path, "feature file", "run `vawgan extract` first",
                  "delete it and re-run `vawgan extract`") as data:
        feats = UtteranceFeatures(
            f0=data["f0"], mcep=data["mcep"], coded_ap=data["coded_ap"], speech=data["speech"],
            fs=int(data["fs"]), frame_period=float(data["frame_period"]), alpha=float(data["alpha"]),
            fft_size=int(data["fft_size"]))
    bad = nonfinite_array(feats)
    if bad is not None:
        raise VawganError(f"{path}: non-finite values (NaN or infinity) in {bad}; delete the file and re-run "
                          "`vawgan extract`")
    return feats


def is_complete_feature_file(path: str | os.PathLike) -> bool:
    """True when ``path`` exists and loads, with finite values only; used by extraction to resume."""
    try:
        load_features(path)
    except VawganError:
        return False
    return True


def parallel_features(utterances: list, feature_dir: str | os.PathLike, source: str,
                      target: str) -> list[tuple[UtteranceFeatures, UtteranceFeatures]]:
    """The (source, target) features of each sentence both speakers recorded in ``utterances`` (a manifest)."""
    return [(load_features(feature_path(feature_dir, source, src_utt.utt_id)),
             load_features(feature_path(feature_dir, target, tgt_utt.utt_id)))
            for src_utt, tgt_utt in parallel_pairs(utterances, source, target, split=None)]


def parallel_speech_frames(utterances: list, feature_dir: str | os.PathLike, source: str,
                           target: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(source c1..cD, target c1..cD) speech frames of each sentence both speakers recorded, unaligned.

    The parallel training data of the GMM baseline; ``utterances`` is a
    manifest (or split), features are ``vawgan extract``'s.
    """
    return [(src.mcep[src.speech, 1:], tgt.mcep[tgt.speech, 1:])
            for src, tgt in parallel_features(utterances, feature_dir, source, target)]
