"""Training frames: feature files + manifest + statistics → normalized tensors.

Each frame of c1..cD is normalized with *its own speaker's* statistics
(``Statistics.normalize(mcep[:, 1:], speaker)``), which removes most of the
speaker identity from the input of the speaker-independent encoder; the
decoder adds the target's identity back, and conversion denormalizes with the
target speaker's statistics. Silence frames (``speech == False`` in the
feature file) are left out by default, as they are from the statistics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vawgan.corpus import read_manifest
from vawgan.errors import VawganError
from vawgan.features.store import feature_path, load_features
from vawgan.stats import Statistics


@dataclass
class FrameSet:
    """Normalized frames and their speakers, sorted by speaker.

    ``frames`` (N, D) float32, ``speaker_ids`` (N,) int64 indexing ``speakers``
    (sorted names). Frames of one speaker are contiguous, so the frames of
    speaker k are ``frames[offsets[k]:offsets[k] + counts[k]]``.
    """

    frames: np.ndarray
    speaker_ids: np.ndarray
    speakers: list[str]

    def __post_init__(self):
        self.frames = np.ascontiguousarray(self.frames, dtype=np.float32)
        self.speaker_ids = np.asarray(self.speaker_ids, dtype=np.int64)
        if self.frames.ndim != 2 or self.speaker_ids.shape != (self.frames.shape[0],):
            raise ValueError(f"frames {self.frames.shape} and speaker ids {self.speaker_ids.shape} do not match")
        if self.speaker_ids.size and (self.speaker_ids.min() < 0 or self.speaker_ids.max() >= len(self.speakers)):
            raise ValueError("speaker ids out of range of the speaker list")
        order = np.argsort(self.speaker_ids, kind="stable")
        self.frames, self.speaker_ids = self.frames[order], self.speaker_ids[order]

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def counts(self) -> np.ndarray:
        """Frames per speaker, in the order of :attr:`speakers`."""
        return np.bincount(self.speaker_ids, minlength=len(self.speakers))

    @property
    def offsets(self) -> np.ndarray:
        """Index of each speaker's first frame."""
        return np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)


def load_frames(feature_dir: str | os.PathLike, manifest: str | os.PathLike, stats: Statistics,
                exclude_silence: bool = True, split: str | None = None) -> FrameSet:
    """Load the utterances of ``manifest`` from ``feature_dir`` as normalized frames.

    Feature files are ``<feature_dir>/<speaker>/<utt_id>.npz``. ``split``
    keeps only one split of the manifest (None: every row). Every speaker must
    be in ``stats``; the mel-cepstral order must match the statistics'. Errors
    are :class:`VawganError` naming the file and what to do.
    """
    feature_dir, manifest = Path(feature_dir), Path(manifest)
    utterances = read_manifest(manifest, split=split)
    if not utterances:
        raise VawganError(f"{manifest}: no utterances{f' in split {split!r}' if split else ''}; "
                          "check the manifest (`vawgan prepare`)")
    speakers = sorted({u.speaker for u in utterances})
    unknown = [s for s in speakers if s not in stats.speaker_mcep_mean]
    if unknown:
        raise VawganError(f"speaker(s) {unknown} of {manifest} have no statistics; "
                          f"re-run `vawgan stats` on this manifest (statistics know: {', '.join(stats.speakers)})")
    dim = stats.mcep_mean.shape[0]
    index = {s: k for k, s in enumerate(speakers)}
    parts, ids = [], []
    for utt in utterances:
        path = feature_dir / utt.speaker / f"{utt.utt_id}.npz"
        feats = load_features(path)
        if feats.mcep.ndim != 2 or feats.mcep.shape[1] != dim + 1:
            raise VawganError(f"{path}: {feats.mcep.shape[-1]} mel-cepstral coefficients per frame, but the "
                              f"statistics are for c1..c{dim}; re-run `vawgan stats` with these features")
        mcep = feats.mcep[feats.speech, 1:] if exclude_silence else feats.mcep[:, 1:]
        if not np.isfinite(mcep).all():
            raise VawganError(f"{path}: non-finite mel-cepstra; delete the file and re-run `vawgan extract`")
        parts.append(stats.normalize(mcep.astype(np.float64), utt.speaker).astype(np.float32))
        ids.append(np.full(mcep.shape[0], index[utt.speaker], dtype=np.int64))
    frames = FrameSet(np.concatenate(parts), np.concatenate(ids), speakers)
    empty = [s for s, n in zip(speakers, frames.counts) if n == 0]
    if empty:
        raise VawganError(f"speaker(s) {empty} have no {'speech ' if exclude_silence else ''}frames in {manifest}; "
                          "check their recordings and the silence threshold")
    return frames


@dataclass
class PairSet:
    """DTW-aligned frame pairs of parallel sentences, for semi-supervised training (``train.parallel_weight``).

    Row i pairs a speech frame of a source speaker with the frame of a target
    speaker saying the same sentence that DTW matched to it: ``source`` and
    ``target`` (N, D) float32, each normalized with its own speaker's
    statistics; ``target_ids`` (N,) int64 index ``speakers``. Both directions
    of every speaker pair are included. ``sentences`` counts the (source,
    target) sentence pairs the rows come from.
    """

    source: np.ndarray
    target: np.ndarray
    target_ids: np.ndarray
    speakers: list[str]
    sentences: int

    @property
    def num_pairs(self) -> int:
        return int(self.source.shape[0])


def parallel_speech_frames(utterances: list, feature_dir: str | os.PathLike, source: str,
                           target: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(source c1..cD, target c1..cD) speech frames of each sentence both speakers recorded, unaligned.

    The parallel training data of the GMM baseline and of :func:`load_pairs`;
    ``utterances`` is a manifest (or split), features are ``vawgan extract``'s.
    """
    from vawgan.corpus import parallel_pairs

    pairs = []
    for src_utt, tgt_utt in parallel_pairs(utterances, source, target, split=None):
        src = load_features(feature_path(feature_dir, source, src_utt.utt_id))
        tgt = load_features(feature_path(feature_dir, target, tgt_utt.utt_id))
        pairs.append((src.mcep[src.speech, 1:], tgt.mcep[tgt.speech, 1:]))
    return pairs


def load_pairs(feature_dir: str | os.PathLike, manifest: str | os.PathLike, stats: Statistics,
               speakers: list[str]) -> PairSet:
    """Align every parallel sentence of ``manifest`` (same utterance id, two of ``speakers``) frame by frame.

    The speech frames of both recordings are aligned along a DTW path on their
    c1..cD (:func:`vawgan.evaluate.metrics.align`, as for the GMM baseline),
    once per speaker pair; the path read both ways gives the pairs of both
    directions. A manifest without parallel sentences is a :class:`VawganError`.
    """
    import itertools

    from vawgan.evaluate.metrics import align

    utterances = read_manifest(manifest)
    sources, targets, target_ids, sentences = [], [], [], 0
    for a, b in itertools.combinations(speakers, 2):
        for frames_a, frames_b in parallel_speech_frames(utterances, feature_dir, a, b):
            if not len(frames_a) or not len(frames_b):
                continue
            frames_a, frames_b = frames_a.astype(np.float64), frames_b.astype(np.float64)
            index_a, index_b = align(frames_a, frames_b)
            normalized_a = stats.normalize(frames_a[index_a], a).astype(np.float32)
            normalized_b = stats.normalize(frames_b[index_b], b).astype(np.float32)
            sources += [normalized_a, normalized_b]
            targets += [normalized_b, normalized_a]
            target_ids += [np.full(len(index_a), speakers.index(b), dtype=np.int64),
                           np.full(len(index_a), speakers.index(a), dtype=np.int64)]
            sentences += 2
    if not sentences:
        raise VawganError(f"{manifest}: no parallel sentences (the same utterance id for two of the speakers "
                          f"{', '.join(speakers)}); train.parallel_weight needs them: set it to 0 to train "
                          "without parallel data")
    return PairSet(np.concatenate(sources), np.concatenate(targets), np.concatenate(target_ids), list(speakers),
                   sentences)
