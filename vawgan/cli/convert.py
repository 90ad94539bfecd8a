"""`vawgan convert`: convert one file, or many at once, to a target speaker.

Inputs (positional, one or more):

* one audio file with ``-o out.wav``  → one converted file;
* audio files, folders (searched recursively for .wav/.flac) and list files
  (``.txt``/``.lst``/``.scp``: one path per line, relative paths relative to the
  list's folder) with ``-o DIR`` → ``DIR/<path relative to its folder>.wav``;
* a manifest written by ``vawgan prepare`` (``.tsv``: speaker, utt_id, split,
  path) with ``-o DIR`` → ``DIR/<source>-<target>/<utt_id>.wav``; the source
  speaker comes from the manifest, ``--target`` may be a comma-separated list or
  ``all`` (every other speaker), ``--split`` keeps one split. This is recipe
  stage 6. With a manifest, ``--which copy`` and ``--which anasyn`` write the
  evaluation's reference rows in the same layout instead of conversions: the
  source recording unchanged (no conversion), and analysis–synthesis of the
  target speaker's own recording of the sentence (the ceiling).

Many files load the model once and show a progress bar; ``--jobs N`` converts
them in N worker processes, each analysing one file at a time on one core
(throughput scales with the cores, where ``--threads`` only splits the
per-frame WORLD steps of one file). Outputs that already exist and are newer
than the model's weights are kept (so a re-run is cheap) unless
``--overwrite``. A bad file is skipped with one line; the summary counts the
skipped files and the exit status is then 1.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

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


def register(subparsers) -> None:
    """Add the ``convert`` and ``info`` verbs to the `vawgan` command."""
    from vawgan.pretrained import DEFAULT_PRETRAINED, PRETRAINED_MODELS

    model_help = ("model directory from `vawgan train`, or a packaged pretrained model: "
                  + "; ".join(f"{name}: {what}" for name, what in PRETRAINED_MODELS.items())
                  + f" (default: {DEFAULT_PRETRAINED}). A packaged name always means the packaged model; "
                  "name a folder of the same name as a path, e.g. ./quick")
    p = subparsers.add_parser(
        "convert", help="convert speech to a target speaker's voice",
        description="Convert speech to a target speaker with a trained model directory "
                    "(default: the small pretrained model shipped with vawgan). One audio file and -o FILE "
                    "writes one file; folders, list files (.txt/.lst/.scp) or a manifest (.tsv from "
                    "`vawgan prepare`) with -o DIR convert many files, loading the model once.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio file(s), folder(s), list file(s) or a manifest")
    p.add_argument("--model", default=None, metavar="DIR|NAME", help=model_help)
    p.add_argument("--target", required=True, metavar="SPK",
                   help="target speaker; with a manifest also SPK1,SPK2 or 'all'")
    p.add_argument("--source", default=None, metavar="SPK",
                   help="source speaker, if the model knows it (default: unknown; the input's own mean "
                        "mel-cepstrum and F0 statistics stand in for the speaker's)")
    p.add_argument("-o", "--output", required=True, metavar="PATH",
                   help="output .wav for one input file, else an output folder")
    p.add_argument("--which", choices=MODEL_SYSTEMS + REFERENCE_SYSTEMS, default="vawgan",
                   help="weights after adversarial fine-tuning (vawgan, the default) or after VAE pretraining "
                        "(vae); with a manifest also the evaluation's references: copy (source unchanged) or "
                        "anasyn (analysis-synthesis of the target's own recording)")
    p.add_argument("--device", default="cpu", metavar="cpu|auto|cuda",
                   help="where the network runs (default: cpu; the networks are small and WORLD runs on the CPU "
                        "anyway, so a GPU only adds its start-up time)")
    p.add_argument("--f0-method", choices=("harvest", "dio"), default=None,
                   help="F0 extractor for the input (default: the model's; dio is several times faster)")
    p.add_argument("--aperiodicity-step", type=int, default=None, metavar="N",
                   help="analyse the input's aperiodicity (D4C) on every N-th frame only, interpolating between "
                        "them (default: the model's; 4 for the packaged models, about twice as fast as "
                        "1 = every frame, WORLD's analysis)")
    p.add_argument("--members", type=int, default=None, metavar="N",
                   help="with an ensemble model (members/ folder, `train.members`): average the first N of its "
                        "models (default: all; 1: the directory's own model alone)")
    p.add_argument("--split", choices=("train", "dev", "eval"), default=None,
                   help="with a manifest: convert only this split")
    p.add_argument("--sample", action="store_true",
                   help="decode a sample of the latent posterior instead of its mean")
    p.add_argument("--gv-postfilter", type=float, default=0.0, metavar="ALPHA",
                   help="scale each converted utterance's mel-cepstral variance towards the target speaker's "
                        "global variance: 1 fully, 0.5 half-way, 0 off (default); counters over-smoothing at "
                        "some MCD cost")
    p.add_argument("--vocoder-compensation", action="store_true",
                   help="synthesize, re-analyse the rendered envelope and move the mel-cepstra away from what "
                        "WORLD rendered before the final synthesis: the output's envelope comes closer to the "
                        "converted one (about 0.2 dB lower MCD to the target) for one more synthesis per file; "
                        "with --which anasyn, the same for the ceiling")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for analysing and synthesizing each input (default: one per available "
                        "core; 1 analyses exactly as `vawgan extract` does and synthesizes in one call; more change "
                        "WORLD's aperiodicity dither and cut the synthesis at an unvoiced frame)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="with many inputs: worker processes, each converting one file at a time with one "
                        "analysis thread unless --threads says otherwise (default 1: one file after another, "
                        "each analysed on --threads cores)")
    p.add_argument("--overwrite", action="store_true",
                   help="with many inputs: redo outputs that are already up to date")
    p.set_defaults(handler=run_convert)

    p = subparsers.add_parser(
        "info", help="what a model knows: speakers, features, networks, schedule, trained weights",
        description="Summarize a model directory (default: the packaged pretrained model): its speakers with "
                    "their F0 statistics, the feature settings inputs are analysed with, the network sizes, "
                    "the training schedule and which weights it holds. Every weights file is loaded, so a "
                    "damaged directory is reported as `vawgan convert` would report it.")
    p.add_argument("--model", default=None, metavar="DIR|NAME", help=model_help)
    p.set_defaults(handler=run_info)


def run_info(args: argparse.Namespace) -> int:
    from vawgan.convert import resolve_model_dir
    from vawgan.model_info import describe_model

    print(describe_model(resolve_model_dir(args.model)))
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from threadpoolctl import threadpool_limits

    # Per utterance the matrix products are small: BLAS threads only add
    # overhead (15x slower on a busy 2-core machine than one thread).
    with threadpool_limits(limits=1, user_api="blas"):
        return _convert(args)


def _convert(args: argparse.Namespace) -> int:
    from vawgan.convert import check_output_writable
    from vawgan.errors import VawganError
    from vawgan.utils import check_not_an_input, check_output_folder

    if args.jobs < 1:
        raise VawganError(f"--jobs {args.jobs}: must be at least 1")
    inputs = [Path(p) for p in args.inputs]
    out = Path(args.output)
    is_manifest = len(inputs) == 1 and inputs[0].suffix.lower() == MANIFEST_SUFFIX
    single = len(inputs) == 1 and inputs[0].suffix.lower() not in LIST_SUFFIXES + (MANIFEST_SUFFIX,) \
        and not inputs[0].is_dir()
    if args.which in REFERENCE_SYSTEMS and not is_manifest:
        raise VawganError(f"--which {args.which} writes reference outputs for evaluation and needs a manifest "
                          "(.tsv from `vawgan prepare`) as the only input")
    if args.which in REFERENCE_SYSTEMS and args.gv_postfilter:
        raise VawganError(f"--gv-postfilter applies to conversions (--which vae or vawgan), not to {args.which}")
    if args.which == "copy" and args.vocoder_compensation:
        raise VawganError("--vocoder-compensation applies to synthesized outputs, not to --which copy")
    if single:
        if out.is_dir():
            out = out / f"{inputs[0].stem}.wav"
        check_not_an_input([out], inputs)
        check_output_writable(out)
        if not inputs[0].is_file():
            raise VawganError(f"{inputs[0]}: input file not found")
    else:
        if out.suffix.lower() in AUDIO_SUFFIXES or out.is_file():
            raise VawganError(f"-o {out}: with several inputs, a folder or a list, -o must be an output folder")
        check_output_folder(out, [item for item in inputs if item.is_dir()])
        check_output_writable(out / "x.wav")

    if args.which in REFERENCE_SYSTEMS:
        system = _ReferenceSystem(args.which, _feature_config(args), args.vocoder_compensation)
        return _run_batch(_manifest_jobs(inputs[0], args, known=None), args, system)
    from vawgan.convert import Converter

    # Worker processes share the cores already: each analyses its file on one thread by default.
    threads = 1 if args.jobs > 1 and args.threads is None and not single else args.threads
    if args.jobs > 1 and not single and args.device != "cpu":
        raise VawganError(f"--jobs {args.jobs} runs the networks in worker processes on the CPU: use --device cpu "
                          "(the default; the networks are small) or --jobs 1")
    converter = Converter(args.model, which=args.which, device=args.device, f0_method=args.f0_method,
                          threads=threads, gv_postfilter=args.gv_postfilter,
                          aperiodicity_step=args.aperiodicity_step, vocoder_compensation=args.vocoder_compensation,
                          members=args.members)
    if "torch" in sys.modules:  # the PyTorch backend runs the networks (the NumPy one never imports torch)
        from vawgan.utils import configure_cpu

        # Small MLPs on one utterance at a time: one CPU thread is as fast as
        # several and does not fight other processes for the cores.
        configure_cpu(1)
    if single:
        from vawgan.utils import StageBars

        with StageBars(inputs[0].name) as bars:  # bars for long recordings, on a terminal
            converter.convert_file(inputs[0], out, args.target, source=args.source, sample=args.sample,
                                   progress=bars)
        models = f", {len(converter.networks)} models averaged" if len(converter.networks) > 1 else ""
        print(f"wrote {out} ({converter.which}{models}, {args.source or 'unknown speaker'} -> {args.target})")
        return 0
    if is_manifest:
        jobs = _manifest_jobs(inputs[0], args, known=converter.speakers)
    else:
        jobs = _file_jobs(inputs, args, converter)
    return _run_batch(jobs, args, _ModelSystem(converter, args.sample))


def _feature_config(args: argparse.Namespace):
    """The analysis settings of the model directory (or the packaged model), without loading its weights."""
    from vawgan.convert import analysis_settings, resolve_model_dir
    from vawgan.model_dir import ModelDir

    model_dir = ModelDir(resolve_model_dir(args.model))
    return analysis_settings(model_dir.config.features, args.f0_method, args.aperiodicity_step)


class _ModelSystem:
    """Conversion with a loaded model: analyse each input once, write one output per target."""

    def __init__(self, converter, sample: bool):
        self.converter = converter
        self.sample = sample
        self.name = converter.which
        self.stamp = converter.weights_time

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

    def prepare(self, path: Path, speaker: str | None):
        if self.name == "copy":
            return path
        from vawgan.features.world import analyze_file, render

        feats = analyze_file(path, self.feature_config, speaker=speaker)
        return render(feats, self.vocoder_compensation, self.feature_config.f0_range(speaker)[0])

    def write(self, prepared, job: Job) -> float:
        """Write one output; returns how many dB it was scaled down to avoid clipping (0.0 for a copy)."""
        import shutil

        from vawgan.audio import write_audio
        from vawgan.utils import atomic_path

        if self.name == "copy":
            with atomic_path(job.out_path) as tmp:
                shutil.copyfile(prepared, tmp)
            return 0.0
        return write_audio(job.out_path, prepared, self.feature_config.sample_rate, warn=False)


def _read_list(path: Path) -> list[Path]:
    """Paths listed one per line (blank lines and ``#`` comments skipped)."""
    from vawgan.errors import VawganError

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


def _manifest_jobs(manifest: Path, args: argparse.Namespace, known: list[str] | None) -> list[Job]:
    """Jobs ``<out>/<source>-<target>/<utt_id>.wav`` for every manifest utterance and target.

    A target speaker who is in the manifest gets only the sentences it recorded
    there, so that every output has a natural reference to be scored against
    (CMU ARCTIC's clb read 30 of the 593 sentences bdl and slt read). ``known`` are the model's speakers (None for the reference systems, which
    need no model: the manifest's speakers are the pool of targets).
    """
    from vawgan.corpus import read_manifest
    from vawgan.errors import VawganError

    if args.source is not None:
        raise VawganError(f"{manifest}: the manifest names each file's speaker; drop --source")
    utterances = read_manifest(manifest, split=args.split)
    if not utterances:
        raise VawganError(f"{manifest}: no utterances" + (f" in split {args.split!r}" if args.split else ""))
    speakers = sorted({u.speaker for u in utterances})
    if known is not None:
        unknown = [s for s in speakers if s not in known]
        if unknown:
            raise VawganError(f"{manifest}: speaker(s) {', '.join(unknown)} unknown to the model, which knows "
                              f"{', '.join(known)}; convert their files as a list (source unknown) or train with them")
    pool = known if known is not None else speakers
    targets = pool if args.target == "all" else [t.strip() for t in args.target.split(",") if t.strip()]
    for t in targets:
        if t not in pool:
            raise VawganError(f"unknown target speaker {t!r}; known: {', '.join(pool)}")
    out_dir = Path(args.output)
    recording = {(u.speaker, u.utt_id): u.path for u in utterances}
    in_manifest = set(speakers)
    jobs = []
    for u in utterances:
        for t in targets:
            if args.target == "all" and t == u.speaker:
                continue
            if t in in_manifest and (t, u.utt_id) not in recording:
                continue  # the target is in the manifest but never read this sentence: nothing to compare with
            out = out_dir / f"{u.speaker}-{t}" / f"{u.utt_id}.wav"
            if args.which == "anasyn":  # the target's own recording of the sentence, if it has one
                if (t, u.utt_id) in recording:
                    jobs.append(Job(recording[t, u.utt_id], t, t, out))
            else:
                jobs.append(Job(u.path, u.speaker, t, out))
    return jobs


def _file_jobs(inputs: list[Path], args: argparse.Namespace, converter) -> list[Job]:
    """Jobs for audio files, folders and list files; output names must not collide."""
    from vawgan.errors import VawganError

    if args.split is not None:
        raise VawganError("--split only applies to a manifest (.tsv) input")
    converter.check_speaker(args.target)
    if args.source is not None:
        converter.check_speaker(args.source)
    out_dir = Path(args.output)
    jobs: list[Job] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
            if not found:
                raise VawganError(f"{item}: folder holds no .wav or .flac files")
            jobs += [Job(p, args.source, args.target, out_dir / p.relative_to(item).with_suffix(".wav"))
                     for p in found]
        elif item.suffix.lower() in LIST_SUFFIXES:
            jobs += [Job(p, args.source, args.target, out_dir / f"{p.stem}.wav") for p in _read_list(item)]
        else:
            jobs.append(Job(item, args.source, args.target, out_dir / f"{item.stem}.wav"))
    seen: dict[Path, Path] = {}
    for job in jobs:
        if job.out_path in seen:
            raise VawganError(f"{job.src_path} and {seen[job.out_path]} would both be written to {job.out_path}; "
                              "rename one or convert them separately")
        seen[job.out_path] = job.src_path
    return jobs


def _run_batch(jobs: list[Job], args: argparse.Namespace, system) -> int:
    """Run every job that is not up to date; one line per bad input, a summary at the end.

    Jobs that share an input (one recording, several targets) are one task,
    which prepares the input once; ``args.jobs`` worker processes take tasks
    (:func:`vawgan.features.extract.map_files`, which also prints the
    warnings the workers log). An output is up to date when it is newer than
    its input and the model's weights. No output may be one of the inputs,
    and the output folder is locked for the run (:func:`vawgan.lock.folder_lock`).
    """
    from itertools import groupby

    from tqdm import tqdm

    from vawgan.audio import scaling_summary
    from vawgan.features.extract import map_files
    from vawgan.lock import folder_lock
    from vawgan.utils import check_not_an_input, remove_stale_temporaries

    check_not_an_input([j.out_path for j in jobs], {j.src_path for j in jobs})
    reductions = []
    with folder_lock(args.output, "vawgan convert"):
        for folder in sorted({j.out_path.parent for j in jobs}):
            remove_stale_temporaries(folder)  # left by a run killed while writing
        todo = sorted((j for j in jobs if args.overwrite or not _up_to_date(j, system.stamp)),
                      key=lambda j: (str(j.src_path), j.source or ""))
        tasks = [list(group) for _, group in groupby(todo, key=lambda j: (j.src_path, j.source))]
        for _, (task_reductions, error), _ in map_files(functools.partial(_convert_task, system), tasks, args.jobs,
                                                        desc=f"convert ({system.name})"):
            reductions += task_reductions
            if error is not None:
                tqdm.write(f"vawgan convert: skipped: {error}", file=sys.stderr)
    written = len(reductions)
    failed = len(todo) - written
    kept = len(jobs) - len(todo)
    print(f"{system.name}: wrote {written} file(s) into {args.output}"
          + (f", {kept} already up to date" if kept else "")
          + (f", {failed} not written because of errors" if failed else ""))
    summary = scaling_summary(reductions)
    if summary:
        logging.getLogger(__name__).warning(summary)
    return 1 if failed else 0


def _convert_task(system, group: list[Job]) -> tuple[list[float], str | None]:
    """Prepare one input and write its outputs: ``(dB each written output was scaled down by, error or None)``.

    A :func:`map_files` task: ``system`` (the loaded model, or a reference
    system) is pickled to the worker process with each task — half a
    megabyte for the packaged model's NumPy weights.
    """
    from vawgan.errors import VawganError

    src_path, source = group[0].src_path, group[0].source
    reductions = []
    try:
        prepared = system.prepare(src_path, source)
        for job in group:
            reductions.append(system.write(prepared, job))
    except VawganError as exc:
        return reductions, str(exc) if str(src_path) in str(exc) else f"{src_path}: {exc}"
    return reductions, None


def _up_to_date(job: Job, stamp: float) -> bool:
    """True when the output exists and is newer than its input and ``stamp`` (the weights' time)."""
    try:
        return os.stat(job.out_path).st_mtime >= max(stamp, os.stat(job.src_path).st_mtime)
    except FileNotFoundError:
        return False
