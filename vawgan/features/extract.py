"""Feature extraction for a whole corpus: parallel, resumable, warn-and-skip.

:func:`extract_corpus` analyses every utterance of a manifest into
``<feature_dir>/<speaker>/<utt_id>.npz`` (:mod:`vawgan.features.store`).

* **Resumable.** A file that already loads is skipped, so re-running a finished
  stage costs a directory scan. Files are written atomically, so a killed run
  leaves no half file under a final name; a damaged one (it does not load) is
  redone (one with NaN or infinity inside too), and temporary files a killed
  run left behind are removed.
* **One writer.** The run holds the feature folder's lock
  (:func:`vawgan.lock.folder_lock`): a second extraction into the same folder
  stops at once with one line naming the first.
* **Consistent.** The feature settings are saved as ``features.yaml`` in the
  feature folder. Resuming with different settings would mix two kinds of
  features, so when the settings changed (an edited recipe config, say)
  the old files are deleted and every utterance is redone, with a warning
  that says which settings changed.
* **Parallel.** ``jobs`` worker processes, one utterance per task, with a
  tqdm progress bar.
* **Warn and skip.** An unusable recording (:class:`VawganError` from
  :func:`vawgan.features.world.analyze_file`) is reported in one line and
  skipped; the summary counts them. Warnings from the workers (resampled,
  clipped, ...) are printed by the parent above the progress bar. A full
  disk is no unusable recording: every later file would fail too, so it
  stops the run with one :class:`~vawgan.errors.DiskFullError` instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import yaml

from vawgan.config import FeatureConfig
from vawgan.corpus import Utterance
from vawgan.errors import DiskFullError, VawganError
from vawgan.features.store import feature_path, is_complete_feature_file, save_features
from vawgan.features.world import analyze_file
from vawgan.lock import folder_lock
from vawgan.utils import atomic_path, bar_disabled, remove_stale_temporaries

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


def _guarded(fn: Callable[[Any], Any], task: Any) -> tuple[Any, str | None, list[str]]:
    """Worker side of :func:`map_files`: ``(fn(task) or None, error message or None, warnings)``.

    A :class:`DiskFullError` is raised on, to stop the run, not skipped.
    """
    with captured_warnings() as messages:
        try:
            return fn(task), None, messages
        except DiskFullError:
            raise
        except VawganError as exc:
            return None, str(exc), messages


def map_files(fn: Callable[[Any], Any], tasks: Sequence[Any], jobs: int = 1, desc: str = "",
              progress: bool = True) -> Iterator[tuple[Any, Any, str | None]]:
    """Run ``fn(task)`` for every task in ``jobs`` processes, with a progress bar; warn and skip.

    Yields ``(task, result, error)`` in task order; ``error`` is the message of
    a :class:`VawganError` the task raised (``result`` is then None), printed
    as a ``skipped:`` line; a :class:`DiskFullError` is raised here, which
    stops the run. Warnings the tasks log are printed as ``warning:`` lines
    above the bar. ``fn`` must be a module-level function (it is pickled to
    the workers); ``jobs=1`` runs in this process.
    """
    from tqdm import tqdm

    if jobs < 1:
        raise VawganError(f"--jobs {jobs}: must be at least 1")
    if not tasks:
        return
    bar = tqdm(total=len(tasks), desc=desc, unit="utt", file=sys.stderr, disable=bar_disabled(progress),
               leave=False)
    # Workers ignore Ctrl-C: the parent alone stops the run (after the utterances in flight, written whole).
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=signal.signal, initargs=(signal.SIGINT, signal.SIG_IGN)) \
        if jobs > 1 and len(tasks) > 1 else None
    work = functools.partial(_guarded, fn)
    try:
        for task, (result, error, messages) in zip(tasks, pool.map(work, tasks) if pool else map(work, tasks)):
            for message in messages:
                bar.write(f"warning: {message}", file=sys.stderr)
            if error is not None:
                bar.write(f"skipped: {error}", file=sys.stderr)
            bar.update()
            yield task, result, error
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
        bar.close()


def _extract_one(task: tuple[str, str, str, FeatureConfig]) -> None:
    """Analyse one recording and save its features (a :func:`map_files` task)."""
    wav, speaker, out, config = task
    save_features(out, analyze_file(wav, config, speaker=speaker))


def record_settings(feature_dir: Path, config: FeatureConfig) -> list[str]:
    """Save ``config`` in ``feature_dir``; return how it differs from the settings the files there were made with.

    When they differ, the old feature files are deleted first, so that a run
    killed after this point cannot resume into a mix of old and new features.
    Feature files without a settings record (made by hand or by an old
    version) count as a difference.
    """
    path = feature_dir / SETTINGS_FILE
    wanted = dataclasses.asdict(config)
    old_files = list(feature_dir.glob("*/*.npz"))
    changed = []
    if path.is_file():
        # A setting the record lacks was added after those files were made, which was then done as its default does.
        found = {**dataclasses.asdict(FeatureConfig()), **(yaml.safe_load(path.read_text()) or {})}
        changed = [f"{k}: {found.get(k)!r} → {wanted.get(k)!r}"
                   for k in sorted(set(found) | set(wanted)) if found.get(k) != wanted.get(k)]
    elif old_files:
        changed = [f"no record of the settings of the {len(old_files)} files there"]
    if changed:
        for old in old_files:
            old.unlink()
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(wanted, sort_keys=True))
    return changed


def extract_corpus(utterances: Sequence[Utterance], feature_dir: str | os.PathLike, config: FeatureConfig,
                   jobs: int = 1, overwrite: bool = False, progress: bool = True) -> ExtractionSummary:
    """Extract features of ``utterances`` into ``feature_dir`` (see the module notes).

    ``jobs`` is the number of worker processes (1 runs in this process).
    Returns an :class:`ExtractionSummary`; warnings and skipped files are
    printed to stderr as they happen.
    """
    if jobs < 1:
        raise VawganError(f"--jobs {jobs}: must be at least 1")
    feature_dir = Path(feature_dir)
    with folder_lock(feature_dir, "vawgan extract"):
        for folder in [feature_dir, *sorted({feature_dir / utt.speaker for utt in utterances})]:
            remove_stale_temporaries(folder)  # left by a killed run
        changed = record_settings(feature_dir, config)
        if changed:
            logging.getLogger(__name__).warning("%s: feature settings changed (%s); old features deleted, "
                                                "re-extracting every utterance", feature_dir, ", ".join(changed))
        summary = ExtractionSummary()
        tasks = []
        for utt in utterances:
            out = feature_path(feature_dir, utt.speaker, utt.utt_id)
            if not overwrite and is_complete_feature_file(out):
                summary.already_done += 1
                continue
            tasks.append((str(utt.path), utt.speaker, str(out), config))
        for _, _, error in map_files(_extract_one, tasks, jobs, desc="extract", progress=progress):
            if error is None:
                summary.extracted += 1
            else:
                summary.failed.append(error)
    return summary
