"""`vawgan` verbs of the feature pipeline (recipe stages 0–2 and tools around them).

* ``prepare``  corpus folder → ``data/{all,train,dev,eval}.tsv`` manifests (stage 0)
* ``extract``  manifest → one feature file per utterance (stage 1)
* ``stats``    feature files of the train split → ``stats.npz`` (stage 2)
* ``resynth``  analysis–synthesis round trip of one file or a manifest, with its MCD
* ``f0range``  per-speaker F0 histograms (PNG) and estimated F0 search ranges (YAML)

Every verb takes ``--config FILE`` and ``--set section.key=value``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vawgan.cli.common import add_config_arguments, add_features_argument, config_from_args


def register(subparsers) -> None:
    """Add this area's verbs to the `vawgan` command."""
    p = subparsers.add_parser(
        "prepare", help="list a corpus's utterances and splits (recipe stage 0)",
        description="Find the speakers and utterances of a corpus (one folder per speaker, CMU ARCTIC or VCC "
                    "layout; WAV or FLAC) and write manifests OUT/{all,train,dev,eval}.tsv with speaker, utt_id, "
                    "split, path. Splits come from the config's corpus.split_ranges when set, else from a hash "
                    "of the utterance id. With corpus.protocol: non_parallel, train.tsv keeps each sentence for "
                    "one speaker only and OUT/train_parallel.tsv lists all train sentences for the GMM baseline.")
    p.add_argument("--corpus", default=None, metavar="DIR",
                   help="corpus root (default: the config's corpus.root, else the shared Flite corpus)")
    p.add_argument("--out", default="data", metavar="DIR", help="where the manifests go (default: data)")
    add_config_arguments(p)
    p.set_defaults(handler=run_prepare)

    p = subparsers.add_parser(
        "extract", help="extract WORLD + mel-cepstral features of a corpus (recipe stage 1)",
        description="Analyse every utterance of a manifest (WORLD F0, CheapTrick, D4C; mel-cepstrum c0..c39, "
                    "coded aperiodicity, speech mask) into OUT/<speaker>/<utt_id>.npz. Finished files are "
                    "skipped, so an interrupted run resumes; unusable recordings are reported and skipped.")
    p.add_argument("--manifest", default="data/all.tsv", metavar="TSV",
                   help="manifest from `vawgan prepare` (default: data/all.tsv)")
    p.add_argument("--out", default="dump/features", metavar="DIR", help="feature folder (default: dump/features)")
    p.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="worker processes (default: 1)")
    p.add_argument("--overwrite", action="store_true", help="redo every utterance, also finished ones")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_arguments(p)
    p.set_defaults(handler=run_extract)

    p = subparsers.add_parser(
        "stats", help="normalization and log-F0 statistics (recipe stage 2)",
        description="Mean and standard deviation of c1..c39 over speech frames (global and per speaker) and "
                    "per-speaker log-F0 mean and standard deviation over voiced frames, from the feature files "
                    "of a manifest (usually the train split), into one .npz file.")
    p.add_argument("--manifest", default="data/train.tsv", metavar="TSV",
                   help="utterances to use (default: data/train.tsv)")
    add_features_argument(p)
    p.add_argument("--out", default="dump/stats.npz", metavar="FILE", help="statistics file (default: dump/stats.npz)")
    p.set_defaults(handler=run_stats)

    p = subparsers.add_parser(
        "resynth", help="analysis–synthesis round trip (no model) and its MCD",
        description="Analyse speech into the model's features (WORLD + mel-cepstrum) and synthesize it back, "
                    "then report the MCD (dB, c1..c39, speech frames, frame by frame) between the original's "
                    "mel-cepstrum and that of the resynthesized audio: the ceiling of any conversion. Either one "
                    "file (INPUT -o OUT.wav) or a manifest (--manifest TSV --out-dir DIR).")
    p.add_argument("input", nargs="?", metavar="INPUT", help="audio file to resynthesize")
    p.add_argument("-o", "--output", metavar="OUT.wav", help="resynthesized audio file")
    p.add_argument("--speaker", default=None, help="speaker of INPUT, for its configured F0 range")
    p.add_argument("--manifest", metavar="TSV", help="resynthesize every utterance of this manifest instead")
    p.add_argument("--out-dir", metavar="DIR", help="with --manifest: write DIR/<speaker>/<utt_id>.wav")
    p.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="with --manifest: worker processes")
    p.add_argument("--vocoder-compensation", action="store_true",
                   help="synthesize from mel-cepstra corrected for WORLD's rendering (as `vawgan convert "
                        "--vocoder-compensation`): a lower round-trip MCD for one more synthesis")
    add_config_arguments(p)
    p.set_defaults(handler=run_resynth)

    p = subparsers.add_parser(
        "f0range", help="per-speaker F0 histograms and F0 search ranges",
        description="Track F0 (40–800 Hz, the configured method) over a few utterances per speaker, plot one "
                    "histogram per speaker to OUT/f0_histograms.png, estimate each speaker's F0 search range "
                    "(0.75 x first quartile .. 1.5 x third quartile) and write it to OUT/f0_ranges.yaml "
                    "as a features.f0_ranges block to copy into a recipe config.")
    p.add_argument("--manifest", default="data/train.tsv", metavar="TSV", help="utterances (default: data/train.tsv)")
    p.add_argument("--out", default="exp/f0range", metavar="DIR", help="output folder (default: exp/f0range)")
    p.add_argument("--utterances", type=int, default=10, metavar="N", help="utterances per speaker (default: 10)")
    add_config_arguments(p)
    p.set_defaults(handler=run_f0range)


def _print_warnings(messages: list[str]) -> None:
    for message in messages:
        print(f"warning: {message}", file=sys.stderr)


def run_prepare(args: argparse.Namespace) -> int:
    from vawgan.corpus import SPLITS, discover, write_manifests

    config = config_from_args(args)
    c = config.corpus
    utterances = discover(args.corpus or c.root, c.layout, c.speakers, c.dev_fraction, c.eval_fraction,
                          c.split_ranges, c.speaker_split_ranges)
    out = Path(args.out)
    manifests = write_manifests(utterances, out, c.protocol)
    speakers = sorted({u.speaker for u in utterances})
    counts = ", ".join(f"{s} {len(manifests[s])}" for s in SPLITS)
    print(f"{len(utterances)} utterances of {len(speakers)} speakers ({', '.join(speakers)}); "
          f"split: {counts}; {c.protocol.replace('_', '-')} protocol; manifests in {out}/")
    return 0


def run_extract(args: argparse.Namespace) -> int:
    from vawgan.corpus import read_manifest
    from vawgan.errors import VawganError
    from vawgan.features.extract import extract_corpus

    config = config_from_args(args)
    utterances = read_manifest(args.manifest)
    if not utterances:
        raise VawganError(f"{args.manifest}: the manifest lists no utterances")
    summary = extract_corpus(utterances, args.out, config.features, jobs=args.jobs, overwrite=args.overwrite,
                             progress=not args.no_progress)
    print(f"{args.out}: {summary.line()}")
    if summary.failed and summary.extracted + summary.already_done == 0:
        raise VawganError(f"{args.manifest}: no utterance could be analysed (see the lines above)")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    import numpy as np

    from vawgan.corpus import read_manifest
    from vawgan.stats import compute_corpus_statistics

    utterances = read_manifest(args.manifest)
    stats, missing = compute_corpus_statistics(utterances, args.features)
    if missing:
        print(f"warning: {missing} utterance(s) of {args.manifest} have no feature file in {args.features} "
              "(skipped during extraction?) and were left out", file=sys.stderr)
    stats.save(args.out)
    print(f"{args.out}: statistics of {len(utterances) - missing} utterances")
    print(f"{'speaker':<10}{'speech frames':>14}{'F0 mean (Hz)':>14}{'log-F0 std':>12}{'mean std c1..':>15}")
    for spk in stats.speakers:
        print(f"{spk:<10}{stats.frames[spk]:>14}{np.exp(stats.lf0_mean[spk]):>14.1f}{stats.lf0_std[spk]:>12.3f}"
              f"{stats.speaker_mcep_std[spk].mean():>15.3f}")
    return 0


def run_resynth(args: argparse.Namespace) -> int:
    from vawgan.errors import VawganError

    config = config_from_args(args)
    if args.manifest:
        if args.input or not args.out_dir:
            raise VawganError("resynth: use either INPUT -o OUT.wav or --manifest TSV --out-dir DIR")
        return _resynth_manifest(args.manifest, Path(args.out_dir), config.features, args.jobs,
                                 args.vocoder_compensation)
    if not args.input or not args.output:
        raise VawganError("resynth: give INPUT and -o OUT.wav (or --manifest TSV --out-dir DIR)")
    from vawgan.convert import check_output_writable
    from vawgan.features.world import resynthesize_file
    from vawgan.utils import StageBars, check_not_an_input

    check_not_an_input([args.output], [args.input])
    check_output_writable(args.output)

    with StageBars(Path(args.input).name) as bars:  # bars for long recordings, on a terminal
        mcd = resynthesize_file(args.input, args.output, config.features, speaker=args.speaker, progress=bars,
                                vocoder_compensation=args.vocoder_compensation)
    print(f"{args.output}: round-trip MCD {mcd:.2f} dB (c1..c{config.features.mcep_order}, speech frames)")
    return 0


def _resynth_task(task) -> float:
    """One utterance of ``resynth --manifest`` (a picklable worker task)."""
    from vawgan.features.world import resynthesize_file

    wav, out, config, speaker, vocoder_compensation = task
    return resynthesize_file(wav, out, config, speaker=speaker, vocoder_compensation=vocoder_compensation)


def _resynth_manifest(manifest: str, out_dir: Path, features_config, jobs: int, vocoder_compensation: bool) -> int:
    import numpy as np

    from vawgan.corpus import read_manifest
    from vawgan.errors import VawganError
    from vawgan.features.extract import map_files
    from vawgan.lock import folder_lock
    from vawgan.utils import check_not_an_input, remove_stale_temporaries

    utterances = read_manifest(manifest)
    tasks = [(u.path, out_dir / u.speaker / f"{u.utt_id}.wav", features_config, u.speaker, vocoder_compensation)
             for u in utterances]
    check_not_an_input([task[1] for task in tasks], [u.path for u in utterances])
    mcds: dict[str, list[float]] = {}
    skipped = 0
    with folder_lock(out_dir, "vawgan resynth"):
        for folder in sorted({task[1].parent for task in tasks}):
            remove_stale_temporaries(folder)  # left by a run killed while writing
        for task, mcd, error in map_files(_resynth_task, tasks, jobs, desc="resynth"):
            if error is None:
                mcds.setdefault(task[3], []).append(mcd)
            else:
                skipped += 1
    if not mcds:
        raise VawganError(f"{manifest}: no utterance could be resynthesized")
    print(f"round-trip MCD (dB, c1..c{features_config.mcep_order}, speech frames, frame by frame), {out_dir}/:")
    for spk, values in sorted(mcds.items()):
        print(f"  {spk:<8} mean {np.mean(values):.2f} ± {np.std(values):.2f}, max {np.max(values):.2f}  "
              f"({len(values)} utterances)")
    every = np.concatenate([np.asarray(v) for v in mcds.values()])
    print(f"  {'all':<8} mean {every.mean():.2f} ± {every.std():.2f}, max {every.max():.2f}  "
          f"({every.size} utterances, {skipped} skipped)")
    return 0


def run_f0range(args: argparse.Namespace) -> int:
    import numpy as np
    import yaml

    from vawgan.corpus import read_manifest
    from vawgan.errors import VawganError
    from vawgan.features.f0range import collect_f0, estimate_range, plot_histograms
    from vawgan.utils import atomic_path

    config = config_from_args(args)
    if args.utterances < 1:
        raise VawganError(f"--utterances {args.utterances}: must be at least 1")
    f0 = collect_f0(read_manifest(args.manifest), config.features, per_speaker=args.utterances)
    unvoiced = [spk for spk, values in f0.items() if values.size == 0]
    if unvoiced:
        raise VawganError(f"{args.manifest}: no voiced frames for speaker(s) {', '.join(unvoiced)}; "
                          "check their recordings")
    ranges = {spk: estimate_range(values) for spk, values in f0.items()}
    out = Path(args.out)
    plot_histograms(f0, ranges, out / "f0_histograms.png",
                    default_range=(config.features.f0_floor, config.features.f0_ceil))
    block = {"features": {"f0_ranges": {spk: list(r) for spk, r in ranges.items()}}}
    with atomic_path(out / "f0_ranges.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(block, default_flow_style=None, sort_keys=True))
    print(f"{'speaker':<10}{'frames':>8}{'median Hz':>11}{'floor':>8}{'ceil':>8}")
    for spk in sorted(f0):
        print(f"{spk:<10}{f0[spk].size:>8}{np.median(f0[spk]):>11.1f}{ranges[spk][0]:>8.0f}{ranges[spk][1]:>8.0f}")
    print(f"histograms: {out / 'f0_histograms.png'}; ranges for the config: {out / 'f0_ranges.yaml'}")
    return 0
