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
skipped files and the exit status is then 1. The batch is
:func:`vawgan.batch.convert_batch`; this module parses and prints.
"""

from __future__ import annotations

import argparse
from pathlib import Path


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
    p.add_argument("--which", choices=("vawgan", "vae", "copy", "anasyn"), default="vawgan",
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
    from vawgan.batch import REFERENCE_SYSTEMS, convert_batch, is_single_file
    from vawgan.errors import VawganError

    if args.jobs < 1:
        raise VawganError(f"--jobs {args.jobs}: must be at least 1")
    inputs = [Path(p) for p in args.inputs]
    if is_single_file(inputs) and args.which not in REFERENCE_SYSTEMS:
        return _convert_one(inputs[0], Path(args.output), args)
    result = convert_batch(inputs, args.output, args.target, model=args.model, which=args.which,
                           source=args.source, split=args.split, device=args.device, f0_method=args.f0_method,
                           aperiodicity_step=args.aperiodicity_step, members=args.members, sample=args.sample,
                           gv_postfilter=args.gv_postfilter, vocoder_compensation=args.vocoder_compensation,
                           threads=args.threads, jobs=args.jobs, overwrite=args.overwrite)
    scaled = result.scaling_summary()
    print(result.summary() + (f" ({scaled})" if scaled else ""))
    return 1 if result.failed else 0


def _convert_one(source_file: Path, out: Path, args: argparse.Namespace) -> int:
    """Convert one audio file to ``out`` (a file, or a folder to write ``<stem>.wav`` into), with progress bars."""
    from vawgan.batch import one_thread_for_torch
    from vawgan.convert import Converter, check_output_writable
    from vawgan.errors import VawganError
    from vawgan.utils import StageBars, check_not_an_input

    if out.is_dir():
        out = out / f"{source_file.stem}.wav"
    check_not_an_input([out], [source_file])
    check_output_writable(out)
    if not source_file.is_file():
        raise VawganError(f"{source_file}: input file not found")
    converter = Converter(args.model, which=args.which, device=args.device, f0_method=args.f0_method,
                          threads=args.threads, gv_postfilter=args.gv_postfilter,
                          aperiodicity_step=args.aperiodicity_step, vocoder_compensation=args.vocoder_compensation,
                          members=args.members)
    one_thread_for_torch()
    with StageBars(source_file.name) as bars:  # bars for long recordings, on a terminal
        converter.convert_file(source_file, out, args.target, source=args.source, sample=args.sample, progress=bars)
    models = f", {len(converter.networks)} models averaged" if len(converter.networks) > 1 else ""
    print(f"wrote {out} ({converter.which}{models}, {args.source or 'unknown speaker'} -> {args.target})")
    return 0
