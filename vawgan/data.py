"""Training frames: feature files + manifest + statistics → normalized tensors.

Each frame of c1..cD is normalized with *its own speaker's* statistics
(``Statistics.normalize(mcep[:, 1:], speaker)``), which removes most of the
speaker identity from the input of the speaker-independent encoder; the
decoder adds the target's identity back, and conversion denormalizes with the
target speaker's statistics. Silence frames (``speech == False`` in the
feature file) are left out by default, as they are from the statistics.

Encoder context (``model.context_frames`` k > 0): the encoder then sees each
frame with its k neighbours on either side, 2k + 1 frames of the same
utterance side by side (:func:`vawgan.features.context.context_windows`; the
first and last frame repeated beyond the utterance's ends). Neighbours are taken from *all* frames
of the utterance, silence included, as conversion sees them. Rather than
stacking every window (17 × 39 floats per frame at k = 8), a set keeps each
utterance's normalized frames once in a table and every row's window as
indices into it; a training step gathers its batch's windows.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vawgan.alignment import align, align_speakers
from vawgan.corpus import read_manifest
from vawgan.errors import VawganError
from vawgan.features.context import context_windows
from vawgan.features.store import load_features, parallel_features
from vawgan.stats import Statistics


@dataclass
class ContextTable:
    """Encoder windows of a set's rows: the frames of their utterances once, and indices into them.

    ``table`` (M, D) float32 holds every frame (silence included) of the
    utterances the rows come from, each normalized with its speaker's
    statistics; ``windows`` (N, 2k + 1) int64 holds row i's window
    (:func:`context_windows`) as indices into ``table``.
    """

    table: np.ndarray
    windows: np.ndarray

    @property
    def context(self) -> int:
        return (self.windows.shape[1] - 1) // 2

    def inputs(self, rows=slice(None)) -> np.ndarray:
        """The encoder inputs of ``rows``, (n, (2k + 1) · D)."""
        windows = self.windows[rows]
        return self.table[windows].reshape(len(windows), -1)


class _ContextBuilder:
    """Collects utterances into a :class:`ContextTable` while a loader walks through them."""

    def __init__(self, context: int):
        self.context = context
        self.tables: list[np.ndarray] = []
        self.windows: list[np.ndarray] = []
        self.size = 0

    def add(self, normalized: np.ndarray, rows: np.ndarray) -> None:
        """Add one utterance's normalized frames (all of them) and the windows of its ``rows`` (frame indices)."""
        self.windows.append(self.size + context_windows(len(normalized), self.context)[rows])
        self.tables.append(normalized.astype(np.float32))
        self.size += len(normalized)

    def build(self) -> ContextTable | None:
        if not self.context:
            return None
        return ContextTable(np.concatenate(self.tables), np.concatenate(self.windows))


@dataclass
class FrameSet:
    """Normalized frames and their speakers, sorted by speaker.

    ``frames`` (N, D) float32, ``speaker_ids`` (N,) int64 indexing ``speakers``
    (sorted names). Frames of one speaker are contiguous, so the frames of
    speaker k are ``frames[offsets[k]:offsets[k] + counts[k]]``.
    ``context`` holds the encoder windows of the frames when the encoder sees
    neighbouring frames (``model.context_frames`` > 0), else None.
    """

    frames: np.ndarray
    speaker_ids: np.ndarray
    speakers: list[str]
    context: ContextTable | None = None

    def __post_init__(self):
        self.frames = np.ascontiguousarray(self.frames, dtype=np.float32)
        self.speaker_ids = np.asarray(self.speaker_ids, dtype=np.int64)
        if self.frames.ndim != 2 or self.speaker_ids.shape != (self.frames.shape[0],):
            raise ValueError(f"frames {self.frames.shape} and speaker ids {self.speaker_ids.shape} do not match")
        if self.speaker_ids.size and (self.speaker_ids.min() < 0 or self.speaker_ids.max() >= len(self.speakers)):
            raise ValueError("speaker ids out of range of the speaker list")
        order = np.argsort(self.speaker_ids, kind="stable")
        self.frames, self.speaker_ids = self.frames[order], self.speaker_ids[order]
        if self.context is not None:
            if len(self.context.windows) != len(self.frames):
                raise ValueError(f"{len(self.context.windows)} context windows for {len(self.frames)} frames")
            self.context = ContextTable(self.context.table, self.context.windows[order])

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
                exclude_silence: bool = True, split: str | None = None, context: int = 0) -> FrameSet:
    """Load the utterances of ``manifest`` from ``feature_dir`` as normalized frames.

    Feature files are ``<feature_dir>/<speaker>/<utt_id>.npz``. ``split``
    keeps only one split of the manifest (None: every row). ``context`` > 0
    also builds the frames' encoder windows of 2 · context + 1 frames. Every speaker must
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
    parts, ids, windows = [], [], _ContextBuilder(context)
    for utt in utterances:
        path = feature_dir / utt.speaker / f"{utt.utt_id}.npz"
        feats = load_features(path)
        if feats.mcep.ndim != 2 or feats.mcep.shape[1] != dim + 1:
            raise VawganError(f"{path}: {feats.mcep.shape[-1]} mel-cepstral coefficients per frame, but the "
                              f"statistics are for c1..c{dim}; re-run `vawgan stats` with these features")
        rows = np.flatnonzero(feats.speech) if exclude_silence else np.arange(len(feats.mcep))
        normalized = stats.normalize(feats.mcep[:, 1:].astype(np.float64), utt.speaker).astype(np.float32)
        parts.append(normalized[rows])
        ids.append(np.full(len(rows), index[utt.speaker], dtype=np.int64))
        if context:
            windows.add(normalized, rows)
    frames = FrameSet(np.concatenate(parts), np.concatenate(ids), speakers, windows.build())
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
    target) sentence pairs the rows come from. ``context`` holds the source
    frames' encoder windows when the encoder sees neighbouring frames.
    """

    source: np.ndarray
    target: np.ndarray
    target_ids: np.ndarray
    speakers: list[str]
    sentences: int
    context: ContextTable | None = None

    @property
    def num_pairs(self) -> int:
        return int(self.source.shape[0])


def load_pairs(feature_dir: str | os.PathLike, manifest: str | os.PathLike, stats: Statistics,
               speakers: list[str], context: int = 0, convert=None) -> PairSet:
    """Align every parallel sentence of ``manifest`` (same utterance id, two of ``speakers``) frame by frame.

    The speech frames of both recordings are aligned along a DTW path
    (:func:`vawgan.alignment.align_speakers`, as for the GMM baseline),
    once per speaker pair; the path read both ways gives the pairs of both
    directions. With ``convert`` (a callable ``(features, source, target)``
    returning the source utterance's c1..cD converted to ``target``, frame for
    frame), the path is instead plain DTW between the converted source and
    the target: both are then the target's voice, so the MCD's own distance
    applies (the refinement of :func:`vawgan.training.realign_pairs`).
    ``context`` > 0 also builds the source frames' encoder windows. A
    manifest without parallel sentences is a :class:`VawganError`.
    """
    utterances = read_manifest(manifest)
    sources, targets, target_ids, sentences = [], [], [], 0
    windows = _ContextBuilder(context)
    for a, b in itertools.combinations(speakers, 2):
        for feats_a, feats_b in parallel_features(utterances, feature_dir, a, b):
            speech_a, speech_b = np.flatnonzero(feats_a.speech), np.flatnonzero(feats_b.speech)
            if not len(speech_a) or not len(speech_b):
                continue
            normalized_a = stats.normalize(feats_a.mcep[:, 1:].astype(np.float64), a).astype(np.float32)
            normalized_b = stats.normalize(feats_b.mcep[:, 1:].astype(np.float64), b).astype(np.float32)
            if convert is None:
                index_a, index_b = align_speakers(feats_a.mcep[speech_a, 1:], feats_b.mcep[speech_b, 1:])
            else:
                index_a, index_b = align(convert(feats_a, a, b)[speech_a], feats_b.mcep[speech_b, 1:])
            rows_a, rows_b = speech_a[index_a], speech_b[index_b]
            sources += [normalized_a[rows_a], normalized_b[rows_b]]
            targets += [normalized_b[rows_b], normalized_a[rows_a]]
            target_ids += [np.full(len(index_a), speakers.index(b), dtype=np.int64),
                           np.full(len(index_a), speakers.index(a), dtype=np.int64)]
            if context:
                windows.add(normalized_a, rows_a)
                windows.add(normalized_b, rows_b)
            sentences += 2
    if not sentences:
        raise VawganError(f"{manifest}: no parallel sentences (the same utterance id for two of the speakers "
                          f"{', '.join(speakers)}); train.parallel_weight needs them: set it to 0 to train "
                          "without parallel data")
    return PairSet(np.concatenate(sources), np.concatenate(targets), np.concatenate(target_ids), list(speakers),
                   sentences, windows.build())
