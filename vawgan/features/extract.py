"""Feature extraction for a whole corpus: parallel, resumable, warn-and-skip.

:func:`extract_corpus` analyses every utterance of a manifest into
``<feature_dir>/<speaker>/<utt_id>.npz`` (:mod:`vawgan.features.store`).

* **Resumable.** A file that already loads is skipped, so re-running a finished
  stage costs a directory scan. Files are written atomically, so a killed run
  leaves no half file under a final name; a damaged one (it does not load) is
  redone, and temporary files a killed run left behind are removed.
* **Consistent.** The feature settings are saved as ``features.yaml`` in the
  feature folder. Resuming with different settings would mix two kinds of
  features, so it is an error unless ``overwrite=True`` (which redoes all).
* **Parallel.** ``jobs`` worker processes, one utterance per task, with a
  tqdm progress bar.
* **Warn and skip.** An unusable recording (:class:`VawganError` from
  :func:`vawgan.features.world.analyze_file`) is reported in one line and
  skipped; the summary counts them. Warnings from the workers (resampled,
  clipped, ...) are printed by the parent above the progress bar.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import yaml

from vawgan.config import FeatureConfig
from vawgan.corpus import Utterance
from vawgan.errors import VawganError
from vawgan.features.store import feature_path, is_complete_feature_file, save_features
from vawgan.utils import atomic_path

SETTINGS_FILE = "features.yaml"


@dataclass
class ExtractionSummary:
    """What one :func:`extract_corpus` call did."""

    extracted: int = 0
    already_done: int = 0
    failed: list[str] = field(default_factory=list)  # one message per skipped utterance

    def line(self) -> str:
        return (f"extracted {self.extracted}, already done {self.already_done}, "
                f"skipped {len(self.failed)} unusable recording(s)")


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def captured_warnings() -> Iterator[list[str]]:
    """Collect the warnings of the ``vawgan`` logger instead of printing them."""
    logger = logging.getLogger("vawgan")
    handler = _ListHandler()
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _extract_one(task: tuple[str, str, str, FeatureConfig]) -> tuple[str, str | None, list[str]]:
    """Worker: analyse one file and save it. Returns ``(output path, error or None, warnings)``."""
    from vawgan.features.world import analyze_file

    wav, speaker, out, config = task
    with captured_warnings() as messages:
        try:
            save_features(out, analyze_file(wav, config, speaker=speaker))
        except VawganError as exc:
            return out, str(exc), messages
    return out, None, messages


def check_settings(feature_dir: Path, config: FeatureConfig, overwrite: bool) -> None:
    """Record ``config`` in ``feature_dir``, refusing to resume with different settings."""
    path = feature_dir / SETTINGS_FILE
    wanted = dataclasses.asdict(config)
    if path.is_file() and not overwrite:
        found = yaml.safe_load(path.read_text()) or {}
        changed = sorted(k for k in set(found) | set(wanted) if found.get(k) != wanted.get(k))
        if changed:
            detail = ", ".join(f"{k}: {found.get(k)!r} → {wanted.get(k)!r}" for k in changed)
            raise VawganError(f"{feature_dir}: features there were extracted with other settings ({detail}); "
                              "pass --overwrite to redo them all, or choose another output folder")
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(wanted, sort_keys=True))


def _remove_stale_temporaries(out: Path) -> None:
    """Delete temporary files of ``out`` that a killed run left (``.<utt>.<random>.npz``)."""
    for stale in out.parent.glob(f".{out.stem}.*{out.suffix}"):
        stale.unlink(missing_ok=True)


def extract_corpus(utterances: Sequence[Utterance], feature_dir: str | os.PathLike, config: FeatureConfig,
                   jobs: int = 1, overwrite: bool = False, progress: bool = True) -> ExtractionSummary:
    """Extract features of ``utterances`` into ``feature_dir`` (see the module notes).

    ``jobs`` is the number of worker processes (1 runs in this process).
    Returns an :class:`ExtractionSummary`; warnings and skipped files are
    printed to stderr as they happen.
    """
    from tqdm import tqdm

    if jobs < 1:
        raise VawganError(f"--jobs {jobs}: must be at least 1")
    feature_dir = Path(feature_dir)
    feature_dir.mkdir(parents=True, exist_ok=True)
    check_settings(feature_dir, config, overwrite)
    summary = ExtractionSummary()
    tasks = []
    for utt in utterances:
        out = feature_path(feature_dir, utt.speaker, utt.utt_id)
        if not overwrite and is_complete_feature_file(out):
            summary.already_done += 1
            continue
        _remove_stale_temporaries(out)
        tasks.append((str(utt.path), utt.speaker, str(out), config))
    if not tasks:
        return summary
    bar = tqdm(total=len(tasks), desc="extract", unit="utt", file=sys.stderr, disable=not progress, leave=False)
    pool = ProcessPoolExecutor(max_workers=jobs) if jobs > 1 else None
    try:
        results = pool.map(_extract_one, tasks) if pool else map(_extract_one, tasks)
        for _, error, messages in results:
            for message in messages:
                bar.write(f"warning: {message}", file=sys.stderr)
            if error is None:
                summary.extracted += 1
            else:
                bar.write(f"skipped: {error}", file=sys.stderr)
                summary.failed.append(error)
            bar.update()
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
        bar.close()
    return summary
