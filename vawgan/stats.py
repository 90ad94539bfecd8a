"""Normalization and F0 statistics (SPEC section 3).

Per-dimension mean and standard deviation of the mel-cepstrum c1..cD over
speech frames, globally and per speaker; per-speaker global variance (GV: the
mean over utterances of each utterance's variance of c1..cD, the target of the
GV postfilter, :func:`vawgan.transforms.gv_postfilter`); per-speaker mean and
standard deviation of log-F0 over voiced frames. One ``.npz`` file holds them
all and travels with every model directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from vawgan.errors import VawganError
from vawgan.features.store import feature_path, load_features
from vawgan.utils import read_npz, save_npz_atomic

_STD_FLOOR = 1e-8


@dataclass
class Statistics:
    """Normalization statistics of c1..cD and log-F0.

    ``mcep_mean``/``mcep_std`` are global (all speakers); ``speaker_mcep_*``,
    ``speaker_gv`` and ``lf0_*`` are per speaker. ``frames`` counts the speech
    frames each speaker contributed. ``speaker_gv`` is empty in files written
    before it existed (:meth:`gv` says how to add it).
    """

    mcep_mean: np.ndarray
    mcep_std: np.ndarray
    speaker_mcep_mean: dict[str, np.ndarray] = field(default_factory=dict)
    speaker_mcep_std: dict[str, np.ndarray] = field(default_factory=dict)
    lf0_mean: dict[str, float] = field(default_factory=dict)
    lf0_std: dict[str, float] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)
    speaker_gv: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def speakers(self) -> list[str]:
        return sorted(self.speaker_mcep_mean)

    def mean_std(self, speaker: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of c1..cD for ``speaker``, or the global ones for None."""
        if speaker is None:
            return self.mcep_mean, self.mcep_std
        if speaker not in self.speaker_mcep_mean:
            raise VawganError(f"unknown speaker {speaker!r}; known speakers: {', '.join(self.speakers)}")
        return self.speaker_mcep_mean[speaker], self.speaker_mcep_std[speaker]

    def gv(self, speaker: str) -> np.ndarray:
        """The global variance of c1..cD of ``speaker`` (mean over its utterances of the per-utterance variance)."""
        self.mean_std(speaker)  # a clear error for an unknown speaker
        if speaker not in self.speaker_gv:
            raise VawganError(f"these statistics have no global variance for {speaker!r} (written by an older "
                              "vawgan); re-run `vawgan stats` and put the new stats.npz in the model directory "
                              "(means and deviations stay the same)")
        return self.speaker_gv[speaker]

    def normalize(self, mcep: np.ndarray, speaker: str | None = None) -> np.ndarray:
        """(x - mean) / std on c1..cD; ``mcep`` has D columns (c0 already removed)."""
        mean, std = self.mean_std(speaker)
        return (mcep - mean) / std

    def denormalize(self, mcep: np.ndarray, speaker: str | None = None) -> np.ndarray:
        """Inverse of :meth:`normalize`."""
        mean, std = self.mean_std(speaker)
        return mcep * std + mean

    def _arrays(self) -> dict[str, np.ndarray]:
        """Every statistic by its key in the ``.npz`` file."""
        arrays = {"mcep_mean": self.mcep_mean, "mcep_std": self.mcep_std,
                  "speakers": np.array(self.speakers, dtype=str)}
        for spk in self.speakers:
            arrays[f"spk/{spk}/mcep_mean"] = self.speaker_mcep_mean[spk]
            arrays[f"spk/{spk}/mcep_std"] = self.speaker_mcep_std[spk]
            arrays[f"spk/{spk}/lf0"] = np.array([self.lf0_mean[spk], self.lf0_std[spk]])
            arrays[f"spk/{spk}/frames"] = np.int64(self.frames.get(spk, 0))
            if spk in self.speaker_gv:
                arrays[f"spk/{spk}/gv"] = self.speaker_gv[spk]
        return arrays

    def nonfinite_key(self) -> str | None:
        """The key of the first statistic holding NaN or infinity (``spk/awb/mcep_std``); None when all are finite."""
        for key, values in self._arrays().items():
            if key != "speakers" and not np.isfinite(values).all():
                return key
        return None

    def save(self, path: str | os.PathLike) -> None:
        """Write all statistics to one ``.npz`` file, atomically; non-finite statistics are refused, not written."""
        bad = self.nonfinite_key()
        if bad is not None:
            raise VawganError(f"{path}: the statistics {bad} are not finite (NaN or infinity); nothing was written; "
                              "check the feature files with `vawgan extract`")
        save_npz_atomic(path, **self._arrays())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Statistics":
        """Read a file written by :meth:`save`; missing or damaged is a :class:`VawganError`."""
        with read_npz(path, "statistics file", "run `vawgan stats` first", "re-run `vawgan stats`") as data:
            stats = cls(mcep_mean=data["mcep_mean"], mcep_std=data["mcep_std"])
            for spk in data["speakers"].tolist():
                stats.speaker_mcep_mean[spk] = data[f"spk/{spk}/mcep_mean"]
                stats.speaker_mcep_std[spk] = data[f"spk/{spk}/mcep_std"]
                stats.lf0_mean[spk], stats.lf0_std[spk] = (float(v) for v in data[f"spk/{spk}/lf0"])
                stats.frames[spk] = int(data[f"spk/{spk}/frames"])
                if f"spk/{spk}/gv" in data.files:
                    stats.speaker_gv[spk] = data[f"spk/{spk}/gv"]
        bad = stats.nonfinite_key()
        if bad is not None:
            raise VawganError(f"{path}: the statistics {bad} are not finite (NaN or infinity); re-run `vawgan stats` "
                              "on finite features (or retrain the model)")
        return stats


def compute_statistics(utterances: Iterable[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> Statistics:
    """Statistics from ``(speaker, mcep, f0, speech_mask)`` tuples.

    ``mcep`` is (T, D+1) with c0 in column 0, which is left out. Mel-cepstral
    statistics use speech frames only; log-F0 statistics use voiced frames.
    The global variance averages the variance of each utterance with at least
    two speech frames.
    Sums are accumulated in float64 so that the result matches a direct NumPy
    computation over the concatenated frames.
    """
    sums: dict[str, _SpeakerSums] = {}
    for speaker, mcep, f0, speech in utterances:
        frames = np.asarray(mcep, dtype=np.float64)[np.asarray(speech, dtype=bool), 1:]
        acc = sums.setdefault(speaker, _SpeakerSums())
        acc.count += frames.shape[0]
        acc.sum = acc.sum + frames.sum(axis=0)
        acc.sum_of_squares = acc.sum_of_squares + (frames ** 2).sum(axis=0)
        acc.lf0.append(np.log(f0[f0 > 0]))
        if frames.shape[0] >= 2:
            acc.utterance_variances.append(frames.var(axis=0))
    if not sums:
        raise VawganError("no utterances to compute statistics from; run `vawgan extract` first")
    for speaker, acc in sums.items():
        if acc.count == 0:
            raise VawganError(f"speaker {speaker!r} has no speech frames; check its recordings or the silence threshold")
        if sum(part.size for part in acc.lf0) == 0:
            raise VawganError(f"speaker {speaker!r} has no voiced frames; check its recordings or F0 range")
    total = sum(acc.count for acc in sums.values())
    stats = Statistics(*_mean_std(sum(acc.sum for acc in sums.values()),
                                  sum(acc.sum_of_squares for acc in sums.values()), total))
    for speaker, acc in sums.items():
        mean, std = _mean_std(acc.sum, acc.sum_of_squares, acc.count)
        lf0 = np.concatenate(acc.lf0)
        stats.speaker_mcep_mean[speaker] = mean
        stats.speaker_mcep_std[speaker] = std
        stats.lf0_mean[speaker] = float(lf0.mean())
        stats.lf0_std[speaker] = float(lf0.std())
        stats.frames[speaker] = int(acc.count)
        stats.speaker_gv[speaker] = (np.mean(acc.utterance_variances, axis=0) if acc.utterance_variances
                                     else std ** 2)
    return stats


@dataclass
class _SpeakerSums:
    """Running sums of one speaker's speech frames (float64) and its log-F0 and per-utterance variances."""

    count: int = 0
    sum: np.ndarray | float = 0.0
    sum_of_squares: np.ndarray | float = 0.0
    lf0: list[np.ndarray] = field(default_factory=list)
    utterance_variances: list[np.ndarray] = field(default_factory=list)


def _mean_std(total: np.ndarray, total_of_squares: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (floored at ``_STD_FLOOR``) from running sums."""
    mean = total / count
    return mean, np.maximum(np.sqrt(np.maximum(total_of_squares / count - mean ** 2, 0.0)), _STD_FLOOR)


def compute_corpus_statistics(utterances, feature_dir: str | os.PathLike) -> tuple[Statistics, int]:
    """Statistics over the feature files of ``utterances`` (e.g. the train split).

    ``utterances`` are :class:`vawgan.corpus.Utterance` records; their files are
    ``<feature_dir>/<speaker>/<utt_id>.npz``. Utterances without a feature file
    (skipped as unusable during extraction) are left out and counted; none at
    all is an error. Returns ``(statistics, number left out)``.
    """
    utterances = list(utterances)
    present = [(u, feature_path(feature_dir, u.speaker, u.utt_id)) for u in utterances]
    present = [(u, p) for u, p in present if p.is_file()]
    if not present:
        raise VawganError(f"{feature_dir}: no feature files for the {len(utterances)} utterance(s) given; "
                          "run `vawgan extract` first")

    def frames():
        for utt, path in present:
            feats = load_features(path)
            yield utt.speaker, feats.mcep, feats.f0, feats.speech

    return compute_statistics(frames()), len(utterances) - len(present)
