"""Batch conversion: many inputs to an output folder, loading the model once.

Inputs are audio files, folders (searched recursively for .wav/.flac), list
files (``.txt``/``.lst``/``.scp``: one path per line, relative paths relative
to the list's folder) → ``<output>/<path relative to its folder>.wav``; or one
manifest written by ``vawgan prepare`` (``.tsv``) → ``<output>/<source>-<target>/<utt_id>.wav``,
the source speaker taken from the manifest and ``target`` a comma-separated
list or ``all`` (every other speaker). With a manifest, the ``copy`` and
``anasyn`` systems write the evaluation's reference rows in the same layout:
the source recording unchanged, and analysis–synthesis of the target
speaker's own recording of the sentence (the ceiling).

:func:`convert_batch` is what ``vawgan convert`` runs for more than one
input; a notebook can call it the same way. Outputs newer than their input
and the model's weights are kept unless ``overwrite``; the output folder is
locked for the run and temporaries a killed run left there are removed; a bad
input is skipped with one ``skipped:`` line on stderr and counted in the
:class:`BatchResult`, while a full disk stops the run with one line. What the
outputs were made with is recorded in ``<output>/system.yaml``
(:class:`vawgan.systems.SystemSettings`); outputs made with other settings are
redone, however new they are.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

from vawgan.audio import scaling_summary, write_audio
from vawgan.convert import Converter, analysis_settings, check_output_writable, resolve_model_dir
from vawgan.corpus import read_manifest
from vawgan.errors import DiskFullError, VawganError
from vawgan.features.extract import map_files
from vawgan.features.world import analysis_synthesis
from vawgan.lock import folder_lock
from vawgan.model_dir import ModelDir
from vawgan.systems import SystemSettings
from vawgan.utils import atomic_path, check_not_an_input, check_output_folder, remove_stale_temporaries

AUDIO_SUFFIXES = (".wav", ".flac")
LIST_SUFFIXES = (".txt", ".lst", ".list", ".scp")
MANIFEST_SUFFIX = ".tsv"
MODEL_SYSTEMS = ("vawgan", "vae")
REFERENCE_SYSTEMS = ("copy", "anasyn")


@dataclass(frozen=True)
class Job:
    """One conversion: input file, source speaker (None = unknown), target, output file."""

    src_path: Path
    source: str | None
    target: str
    out_path: Path


@dataclass
class BatchResult:
    """What :func:`convert_batch` did: outputs written, kept (up to date) and not written because of errors."""

    system: str
    output: Path
    written: int
    kept: int
    failed: int
    reductions_db: list[float] = field(default_factory=list)  # how far each written output was scaled down

    def summary(self) -> str:
        """One line: how many files were written, kept and not written."""
        return (f"{self.system}: wrote {self.written} file(s) into {self.output}"
                + (f", {self.kept} already up to date" if self.kept else "")
                + (f", {self.failed} not written because of errors" if self.failed else ""))

    def scaling_summary(self) -> str | None:
        """One line on the outputs scaled down to avoid clipping; None when none was."""
        return scaling_summary(self.reductions_db)


def is_manifest(inputs: list[Path]) -> bool:
    """Whether the inputs are one manifest (``.tsv`` from ``vawgan prepare``)."""
    return len(inputs) == 1 and inputs[0].suffix.lower() == MANIFEST_SUFFIX


def is_single_file(inputs: list[Path]) -> bool:
    """Whether the inputs are one audio file (not a folder, list or manifest): one output file, no batch."""
    return (len(inputs) == 1 and inputs[0].suffix.lower() not in LIST_SUFFIXES + (MANIFEST_SUFFIX,)
            and not inputs[0].is_dir())


def convert_batch(inputs: list[str | os.PathLike], output: str | os.PathLike, target: str, *,
                  model: ModelDir | str | os.PathLike | None = None, which: str = "vawgan",
                  source: str | None = None, split: str | None = None, device: str = "cpu",
                  f0_method: str | None = None, aperiodicity_step: int | None = None, members: int | None = None,
                  sample: bool = False, gv_postfilter: float = 0.0, vocoder_compensation: bool = False,
                  threads: int | None = None, jobs: int = 1, overwrite: bool = False) -> BatchResult:
    """Convert audio files, folders, list files or one manifest into the folder ``output``.

    ``which`` is a model system (``vawgan``, ``vae``) or, with a manifest, a
    reference system (``copy``, ``anasyn``). The other settings are those of
    :class:`~vawgan.convert.Converter`; ``jobs`` worker processes each
    convert one input at a time, analysing it on one thread unless
    ``threads`` says otherwise. Every setting and path is checked before any
    work; a :class:`VawganError` says what is wrong.
    """
    inputs, output = [Path(p) for p in inputs], Path(output)
    if jobs < 1:
        raise VawganError(f"--jobs {jobs}: must be at least 1")
    if which in REFERENCE_SYSTEMS and not is_manifest(inputs):
        raise VawganError(f"--which {which} writes reference outputs for evaluation and needs a manifest "
                          "(.tsv from `vawgan prepare`) as the only input")
    if which in REFERENCE_SYSTEMS and gv_postfilter:
        raise VawganError(f"--gv-postfilter applies to conversions (--which vae or vawgan), not to {which}")
    if which == "copy" and vocoder_compensation:
        raise VawganError("--vocoder-compensation applies to synthesized outputs, not to --which copy")
    if output.suffix.lower() in AUDIO_SUFFIXES or output.is_file():
        raise VawganError(f"-o {output}: with several inputs, a folder or a list, -o must be an output folder")
    check_output_folder(output, [item for item in inputs if item.is_dir()])
    check_output_writable(output / "x.wav")

    if which in REFERENCE_SYSTEMS:
        model_dir = model if isinstance(model, ModelDir) else ModelDir(resolve_model_dir(model))
        features = analysis_settings(model_dir.config.features, f0_method, aperiodicity_step)
        system = _ReferenceSystem(which, features, vocoder_compensation)
        return run_jobs(manifest_jobs(inputs[0], output, target, source, split, which, known=None), output,
                        system, jobs, overwrite)
    if jobs > 1 and device != "cpu":
        raise VawganError(f"--jobs {jobs} runs the networks in worker processes on the CPU: use --device cpu "
                          "(the default; the networks are small) or --jobs 1")
    # Worker processes share the cores already: each analyses its file on one thread by default.
    converter = Converter(model, which=which, device=device, f0_method=f0_method,
                          threads=1 if jobs > 1 and threads is None else threads, gv_postfilter=gv_postfilter,
                          aperiodicity_step=aperiodicity_step, vocoder_compensation=vocoder_compensation,
                          members=members)
    one_thread_for_torch()
    if is_manifest(inputs):
        found = manifest_jobs(inputs[0], output, target, source, split, which, known=converter.speakers)
    else:
        found = file_jobs(inputs, output, target, source, split, converter)
    return run_jobs(found, output, _ModelSystem(converter, sample), jobs, overwrite)


def one_thread_for_torch() -> None:
    """Run PyTorch's CPU work on one thread, when the PyTorch backend is in use (the NumPy one never imports it).

    The networks are small MLPs applied to one utterance at a time: one
    thread is as fast as several and does not fight other processes for the cores.
    """
    if "torch" in sys.modules:
        from vawgan.utils import configure_cpu

        configure_cpu(1)


class _ModelSystem:
    """Conversion with a loaded model: analyse each input once, write one output per target."""

    def __init__(self, converter: Converter, sample: bool):
        self.converter = converter
        self.sample = sample
        self.name = converter.which
        self.stamp = converter.weights_time
        self.settings = SystemSettings(converter.which, converter.gv_postfilter, converter.vocoder_compensation,
                                       str(converter.model_dir.path.resolve()))

    def prepare(self, path: Path, speaker: str | None):
        return self.converter.analyze_file(path, speaker)

    def write(self, feats, job: Job) -> float:
        """Write one output; returns how many dB it was scaled down to avoid clipping."""
        return self.converter.write_converted(feats, job.out_path, job.target, job.source, sample=self.sample,
                                              warn=False)


class _ReferenceSystem:
    """The evaluation's references: ``copy`` (the input file unchanged) or ``anasyn`` (WORLD analysis–synthesis,
    vocoder-compensated when ``vocoder_compensation``)."""

    def __init__(self, name: str, feature_config, vocoder_compensation: bool = False):
        self.name = name
        self.feature_config = feature_config
        self.vocoder_compensation = vocoder_compensation
        self.stamp = 0.0
        self.settings = SystemSettings(name, vocoder_compensation=vocoder_compensation)

    def prepare(self, path: Path, speaker: str | None):
        if self.name == "copy":
            return path
        return analysis_synthesis(path, self.feature_config, speaker, self.vocoder_compensation)

    def write(self, prepared, job: Job) -> float:
        """Write one output; returns how many dB it was scaled down to avoid clipping (0.0 for a copy)."""
        if self.name == "copy":
            with atomic_path(job.out_path) as tmp:
                shutil.copyfile(prepared, tmp)
            return 0.0
        return write_audio(job.out_path, prepared, self.feature_config.sample_rate, warn=False)


def read_list(path: Path) -> list[Path]:
    """Paths listed one per line (blank lines and ``#`` comments skipped), relative ones to the list's folder."""
    if not path.is_file():
        raise VawganError(f"{path}: list file not found")
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise VawganError(f"{path}: list file is not text; give one audio path per line") from None
    entries = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not entries:
        raise VawganError(f"{path}: list file names no audio files")
    return [p if p.is_absolute() else path.parent / p for p in map(Path, entries)]


def manifest_jobs(manifest: Path, output: Path, target: str, source: str | None, split: str | None, which: str,
                  known: list[str] | None) -> list[Job]:
    """Jobs ``<output>/<source>-<target>/<utt_id>.wav`` for every manifest utterance and target.

    A target speaker who is in the manifest gets only the sentences it recorded
    there, so that every output has a natural reference to be scored against
    (CMU ARCTIC's clb read 30 of the 593 sentences bdl and slt read). ``known``
    are the model's speakers (None for the reference systems, which need no
    model: the manifest's speakers are the pool of targets).
    """
    if source is not None:
        raise VawganError(f"{manifest}: the manifest names each file's speaker; drop --source")
    utterances = read_manifest(manifest, split=split)
    if not utterances:
        raise VawganError(f"{manifest}: no utterances" + (f" in split {split!r}" if split else ""))
    speakers = sorted({u.speaker for u in utterances})
    if known is not None:
        unknown = [s for s in speakers if s not in known]
        if unknown:
            raise VawganError(f"{manifest}: speaker(s) {', '.join(unknown)} unknown to the model, which knows "
                              f"{', '.join(known)}; convert their files as a list (source unknown) or train with them")
    pool = known if known is not None else speakers
    targets = pool if target == "all" else [t.strip() for t in target.split(",") if t.strip()]
    for t in targets:
        if t not in pool:
            raise VawganError(f"unknown target speaker {t!r}; known: {', '.join(pool)}")
    recording = {(u.speaker, u.utt_id): u.path for u in utterances}
    in_manifest = set(speakers)
    jobs = []
    for u in utterances:
        for t in targets:
            if target == "all" and t == u.speaker:
                continue
            if t in in_manifest and (t, u.utt_id) not in recording:
                continue  # the target is in the manifest but never read this sentence: nothing to compare with
            out = output / f"{u.speaker}-{t}" / f"{u.utt_id}.wav"
            if which == "anasyn":  # the target's own recording of the sentence, if it has one
                if (t, u.utt_id) in recording:
                    jobs.append(Job(recording[t, u.utt_id], t, t, out))
            else:
                jobs.append(Job(u.path, u.speaker, t, out))
    return jobs


def file_jobs(inputs: list[Path], output: Path, target: str, source: str | None, split: str | None,
              converter: Converter) -> list[Job]:
    """Jobs for audio files, folders and list files; output names must not collide."""
    if split is not None:
        raise VawganError("--split only applies to a manifest (.tsv) input")
    converter.check_speaker(target)
    if source is not None:
        converter.check_speaker(source)
    jobs: list[Job] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
            if not found:
                raise VawganError(f"{item}: folder holds no .wav or .flac files")
            jobs += [Job(p, source, target, output / p.relative_to(item).with_suffix(".wav")) for p in found]
        elif item.suffix.lower() in LIST_SUFFIXES:
            jobs += [Job(p, source, target, output / f"{p.stem}.wav") for p in read_list(item)]
        else:
            jobs.append(Job(item, source, target, output / f"{item.stem}.wav"))
    seen: dict[Path, Path] = {}
    for job in jobs:
        if job.out_path in seen:
            raise VawganError(f"{job.src_path} and {seen[job.out_path]} would both be written to {job.out_path}; "
                              "rename one or convert them separately")
        seen[job.out_path] = job.src_path
    return jobs


def run_jobs(jobs: list[Job], output: Path, system, workers: int = 1, overwrite: bool = False) -> BatchResult:
    """Run every job that is not up to date with ``system``; one ``skipped:`` line per bad input.

    Jobs that share an input (one recording, several targets) are one task,
    which prepares the input once; ``workers`` processes take tasks
    (:func:`vawgan.features.extract.map_files`, which also prints the
    warnings the workers log). An output is up to date when it is newer than
    its input and the model's weights and the folder's ``system.yaml`` records
    ``system.settings``, which the run then writes. No output may be one of
    the inputs, and the output folder is locked for the run
    (:func:`vawgan.lock.folder_lock`).
    """
    from tqdm import tqdm

    check_not_an_input([j.out_path for j in jobs], {j.src_path for j in jobs})
    reductions = []
    with folder_lock(output, "vawgan convert"):
        for folder in sorted({j.out_path.parent for j in jobs}):
            remove_stale_temporaries(folder)  # left by a run killed while writing
        recorded = SystemSettings.load(output)
        overwrite = overwrite or (recorded is not None and recorded != system.settings)
        system.settings.save(output)
        todo = sorted((j for j in jobs if overwrite or not _up_to_date(j, system.stamp)),
                      key=lambda j: (str(j.src_path), j.source or ""))
        tasks = [list(group) for _, group in groupby(todo, key=lambda j: (j.src_path, j.source))]
        for _, (task_reductions, error), _ in map_files(functools.partial(_convert_task, system), tasks, workers,
                                                        desc=f"convert ({system.name})"):
            reductions += task_reductions
            if error is not None:
                tqdm.write(f"skipped: {error}", file=sys.stderr)
    return BatchResult(system.name, output, written=len(reductions), kept=len(jobs) - len(todo),
                       failed=len(todo) - len(reductions), reductions_db=reductions)


def _convert_task(system, group: list[Job]) -> tuple[list[float], str | None]:
    """Prepare one input and write its outputs: ``(dB each written output was scaled down by, error or None)``.

    A :func:`map_files` task: ``system`` (the loaded model, or a reference
    system) is pickled to the worker process with each task — half a
    megabyte for the packaged model's NumPy weights.
    """
    src_path, source = group[0].src_path, group[0].source
    reductions = []
    try:
        prepared = system.prepare(src_path, source)
        for job in group:
            reductions.append(system.write(prepared, job))
    except DiskFullError:
        raise  # every later output would fail too: stop the run
    except VawganError as exc:
        return reductions, str(exc) if str(src_path) in str(exc) else f"{src_path}: {exc}"
    return reductions, None


def _up_to_date(job: Job, stamp: float) -> bool:
    """True when the output exists and is newer than its input and ``stamp`` (the weights' time)."""
    try:
        return os.stat(job.out_path).st_mtime >= max(stamp, os.stat(job.src_path).st_mtime)
    except FileNotFoundError:
        return False
