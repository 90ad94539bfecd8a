"""`vawgan convert`: convert one file, or many at once, to a target speaker.

Inputs (positional, one or more):

* one audio file with ``-o out.wav``  → one converted file;
* audio files, folders (searched recursively for .wav/.flac) and list files
  (``.txt``/``.lst``/``.scp``: one path per line, relative paths relative to the
  list's folder) with ``-o DIR`` → ``DIR/<path relative to its folder>.wav``;
* a manifest written by ``vawgan prepare`` (``.tsv``: speaker, utt_id, split,
  path) with ``-o DIR`` → ``DIR/<source>-<target>/<utt_id>.wav``; the source
  speaker comes from the manifest, ``--target`` may be a comma-separated list or
  ``all`` (every other speaker), ``--split`` keeps one split.

Many files load the model once and show a progress bar. Outputs that already
exist and are newer than the model's weights are kept (so a re-run is cheap)
unless ``--overwrite``. A bad file is skipped with one line; the summary counts
the skipped files and the exit status is then 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

AUDIO_SUFFIXES = (".wav", ".flac")
LIST_SUFFIXES = (".txt", ".lst", ".list", ".scp")
MANIFEST_SUFFIX = ".tsv"


@dataclass(frozen=True)
class Job:
    """One conversion: input file, source speaker (None = unknown), target, output file."""

    src_path: Path
    source: str | None
    target: str
    out_path: Path


def register(subparsers) -> None:
    """Add the ``convert`` verb to the `vawgan` command."""
    p = subparsers.add_parser(
        "convert", help="convert speech to a target speaker's voice",
        description="Convert speech to a target speaker with a trained model directory "
                    "(default: the small pretrained model shipped with vawgan). One audio file and -o FILE "
                    "writes one file; folders, list files (.txt/.lst/.scp) or a manifest (.tsv from "
                    "`vawgan prepare`) with -o DIR convert many files, loading the model once.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio file(s), folder(s), list file(s) or a manifest")
    p.add_argument("--model", default=None, metavar="DIR",
                   help="model directory from `vawgan train` (default: the packaged pretrained model)")
    p.add_argument("--target", required=True, metavar="SPK",
                   help="target speaker; with a manifest also SPK1,SPK2 or 'all'")
    p.add_argument("--source", default=None, metavar="SPK",
                   help="source speaker, if the model knows it (default: unknown; global statistics "
                        "and the input's own F0 statistics are used)")
    p.add_argument("-o", "--output", required=True, metavar="PATH",
                   help="output .wav for one input file, else an output folder")
    p.add_argument("--which", choices=("vawgan", "vae"), default="vawgan",
                   help="weights after adversarial fine-tuning (vawgan, the default) or after VAE pretraining (vae)")
    p.add_argument("--device", default="auto", metavar="auto|cpu|cuda", help="where the network runs (default: auto)")
    p.add_argument("--f0-method", choices=("harvest", "dio"), default=None,
                   help="F0 extractor for the input (default: the model's; dio is several times faster)")
    p.add_argument("--split", choices=("train", "dev", "eval"), default=None,
                   help="with a manifest: convert only this split")
    p.add_argument("--sample", action="store_true",
                   help="decode a sample of the latent posterior instead of its mean")
    p.add_argument("--overwrite", action="store_true",
                   help="with many inputs: redo outputs that are already up to date")
    p.set_defaults(handler=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    from vawgan.convert import check_output_writable
    from vawgan.errors import VawganError

    inputs = [Path(p) for p in args.inputs]
    single = len(inputs) == 1 and inputs[0].suffix.lower() not in LIST_SUFFIXES + (MANIFEST_SUFFIX,) \
        and not inputs[0].is_dir()
    if single:
        out = Path(args.output)
        if out.is_dir():
            out = out / f"{inputs[0].stem}.wav"
        check_output_writable(out)
        if not inputs[0].is_file():
            raise VawganError(f"{inputs[0]}: input file not found")
    else:
        out = Path(args.output)
        if out.suffix.lower() in AUDIO_SUFFIXES or out.is_file():
            raise VawganError(f"-o {out}: with several inputs, a folder or a list, -o must be an output folder")
        check_output_writable(out / "x.wav")
    converter = _load_converter(args)
    if single:
        converter.convert_file(inputs[0], out, args.target, source=args.source, sample=args.sample)
        print(f"wrote {out} ({converter.which}, {args.source or 'unknown speaker'} -> {args.target})")
        return 0
    jobs = _batch_jobs(inputs, args, converter)
    return _run_batch(jobs, args, converter)


def _load_converter(args: argparse.Namespace):
    from vawgan.convert import Converter

    return Converter(args.model, which=args.which, device=args.device, f0_method=args.f0_method)


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


def _batch_jobs(inputs: list[Path], args: argparse.Namespace, converter) -> list[Job]:
    """Expand the inputs into conversion jobs, checking speakers and output names first."""
    from vawgan.corpus import read_manifest
    from vawgan.errors import VawganError

    out_dir = Path(args.output)
    manifests = [p for p in inputs if p.suffix.lower() == MANIFEST_SUFFIX]
    if manifests:
        if len(inputs) > 1:
            raise VawganError("give a manifest (.tsv) alone, not together with other inputs")
        if args.source is not None:
            raise VawganError(f"{manifests[0]}: the manifest names each file's speaker; drop --source")
        utterances = read_manifest(manifests[0], split=args.split)
        if not utterances:
            raise VawganError(f"{manifests[0]}: no utterances" + (f" in split {args.split!r}" if args.split else ""))
        for spk in sorted({u.speaker for u in utterances}):
            converter.check_speaker(spk)
        if args.target == "all":
            targets = converter.speakers
        else:
            targets = [t.strip() for t in args.target.split(",") if t.strip()]
            for t in targets:
                converter.check_speaker(t)
        return [Job(u.path, u.speaker, t, out_dir / f"{u.speaker}-{t}" / f"{u.utt_id}.wav")
                for u in utterances for t in targets if not (args.target == "all" and t == u.speaker)]

    if args.split is not None:
        raise VawganError("--split only applies to a manifest (.tsv) input")
    converter.check_speaker(args.target)
    if args.source is not None:
        converter.check_speaker(args.source)
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


def _run_batch(jobs: list[Job], args: argparse.Namespace, converter) -> int:
    """Convert every job (skipping up-to-date outputs), one line per bad file, a summary at the end."""
    from tqdm import tqdm

    from vawgan.errors import VawganError

    weights = converter.model_dir / f"{converter.which}.pt"
    weights_time = weights.stat().st_mtime if weights.is_file() else float("inf")
    todo = [j for j in jobs if args.overwrite or not _up_to_date(j.out_path, weights_time)]
    failed = 0
    for job in tqdm(todo, desc=f"convert ({converter.which})", unit="file", disable=not todo):
        try:
            converter.convert_file(job.src_path, job.out_path, job.target, source=job.source, sample=args.sample)
        except VawganError as exc:
            failed += 1
            tqdm.write(f"vawgan convert: skipped {job.src_path}: {exc}", file=sys.stderr)
    done = len(todo) - failed
    kept = len(jobs) - len(todo)
    print(f"converted {done} file(s) into {args.output}" + (f", {kept} already up to date" if kept else "")
          + (f", {failed} skipped because of errors" if failed else ""))
    return 1 if failed else 0


def _up_to_date(path: Path, weights_time: float) -> bool:
    try:
        return os.stat(path).st_mtime >= weights_time
    except FileNotFoundError:
        return False
