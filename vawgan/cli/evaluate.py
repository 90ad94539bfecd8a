"""`vawgan` verbs of evaluation (recipe stage 7) and of the GMM baseline.

* ``evaluate``     converted wavs vs natural targets → ``results.{md,csv}``, the table printed
* ``plot``         the analysis figures (scatter, GV, modulation spectrum, trajectory, spectrograms,
                   training curves) as PNG
* ``gmm-train``    joint-density GMM per ordered speaker pair on the parallel train split
* ``gmm-convert``  convert a manifest's sentences with those GMMs → ``<out>/<src>-<tgt>/<utt>.wav``
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from vawgan.cli.common import add_config_arguments, add_features_argument, config_from_args

PLOT_KINDS = ("scatter", "gv", "modspec", "trajectory", "f0", "f0hist", "spectrogram", "curves")


def register(subparsers) -> None:
    """Add this area's verbs to the `vawgan` command."""
    p = subparsers.add_parser(
        "evaluate", help="score converted wavs against natural targets and write the comparison table (stage 7)",
        description="Re-analyse every converted wav under CONVERTED/<system>/<src>-<tgt>/<utt>.wav and the "
                    "natural target recording of the same sentence with the config's WORLD settings, and score "
                    "MCD (c1..c39 and with c0, DTW, speech frames), F0 RMSE and correlation, V/UV error and GV "
                    "ratio. Rows: copy (source unchanged; built from the manifest when CONVERTED/copy is absent), "
                    "gmm, vae, vawgan, anasyn (analysis-synthesis of the target; made here when CONVERTED/anasyn "
                    "is absent). Writes OUT/results.md, OUT/results.csv, OUT/per_utterance.csv and prints the table.")
    p.add_argument("--manifest", default="data/eval.tsv", metavar="TSV",
                   help="utterances the wavs were converted from, with the natural targets (default: data/eval.tsv)")
    p.add_argument("--converted", default="exp/converted", metavar="DIR",
                   help="root of the converted wavs (default: exp/converted)")
    p.add_argument("--out", default="exp/eval", metavar="DIR", help="where the tables go (default: exp/eval)")
    p.add_argument("--systems", default=",".join(("copy", "gmm", "vae", "vawgan", "anasyn")), metavar="LIST",
                   help="comma-separated rows in order (default: copy,gmm,vae,vawgan,anasyn)")
    p.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="analysis worker processes (default: 1)")
    p.add_argument("--model", default=None, metavar="DIR|NAME",
                   help="also score the model's own features before the vocoder (feature level: copy, gmm, vae, "
                        "vawgan) into OUT/results_features.{md,csv}; needs --features. A model directory or a "
                        "packaged model's name (quick, parallel; a folder of that name is given as a path, "
                        "e.g. ./quick)")
    add_features_argument(p, "for --model")
    p.add_argument("--gmm", default="exp/gmm", metavar="DIR",
                   help="GMM baseline models, for --model (default: exp/gmm)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_arguments(p)
    p.set_defaults(handler=run_evaluate)

    p = subparsers.add_parser(
        "plot", help="analysis figures as PNG (stage 7)",
        description="Draw the figures of the evaluation into OUT_DIR (for one speaker pair, or each of --pair / "
                    "--pairs-all, the file names carrying the pair): scatter of mel-cepstral dimension pairs and "
                    "GV per dimension and modulation spectra for the natural target, the VAE and the VAW-GAN (and "
                    "the GMM when its model is there) on the manifest's sentences of one speaker pair; the "
                    "trajectory of one dimension and the F0 contour over one utterance; histograms of voiced F0 per "
                    "speaker; spectrograms of source, converted and target wavs, time-aligned to the target by DTW, "
                    "with their F0 over them; training curves from the model's "
                    "metrics.csv.")
    p.add_argument("--kind", action="append", choices=("all", *PLOT_KINDS), metavar="KIND",
                   help=f"which figure ({', '.join(('all', *PLOT_KINDS))}); repeatable (default: all)")
    p.add_argument("--model", default="exp/model", metavar="DIR|NAME",
                   help="trained model directory or a packaged model's name (default: exp/model)")
    add_features_argument(p)
    p.add_argument("--manifest", default="data/eval.tsv", metavar="TSV", help="sentences to draw (default: data/eval.tsv)")
    p.add_argument("--converted", default="exp/converted", metavar="DIR",
                   help="root of the converted wavs, for spectrograms (default: exp/converted)")
    p.add_argument("--gmm", default="exp/gmm", metavar="DIR",
                   help="GMM baseline models; drawn too when <DIR>/<src>-<tgt>.npz exists (default: exp/gmm)")
    p.add_argument("--source", default=None, help="source speaker (default: the first speaker of the manifest)")
    p.add_argument("--target", default=None, help="target speaker (default: the second speaker of the manifest)")
    which_pairs = p.add_mutually_exclusive_group()
    which_pairs.add_argument("--pair", action="append", metavar="SRC-TGT",
                             help="draw the sentence figures for this speaker pair instead of --source/--target; "
                                  "repeatable, one set of files per pair, named after it")
    which_pairs.add_argument("--pairs-all", action="store_true",
                             help="draw the sentence figures for every ordered speaker pair of the manifest")
    p.add_argument("--utt", default=None, metavar="ID",
                   help="utterance for trajectory, F0 contour and spectrograms (default: each pair's first)")
    p.add_argument("--pairs", nargs="+", default=["1,3", "11,13", "31,33"], metavar="J,K",
                   help="dimension pairs of the scatter plot (default: 1,3 11,13 31,33)")
    p.add_argument("--dims", default="1,11,31", metavar="LIST",
                   help="dimensions for the trajectory (first one) and modulation spectra (default: 1,11,31)")
    p.add_argument("--out-dir", default="exp/eval/plots", metavar="DIR", help="where the PNGs go (default: exp/eval/plots)")
    p.set_defaults(handler=run_plot)

    p = subparsers.add_parser(
        "gmm-train", help="train the joint-density GMM baseline for each ordered speaker pair",
        description="Fit one joint-density GMM on DTW-aligned static+delta mel-cepstra (c1..c39, speech frames) "
                    "of the parallel sentences of a manifest (usually the train split) per ordered speaker pair; "
                    "writes OUT/<src>-<tgt>.npz. Pairs already trained are skipped unless --overwrite.")
    p.add_argument("--manifest", default="data/train.tsv", metavar="TSV", help="parallel training sentences (default: data/train.tsv)")
    add_features_argument(p)
    p.add_argument("--out", default="exp/gmm", metavar="DIR", help="model folder (default: exp/gmm)")
    p.add_argument("--pair", action="append", metavar="SRC-TGT", help="only this pair (repeatable; default: all ordered pairs)")
    p.add_argument("--components", type=int, default=16, help="mixture components (default: 16)")
    p.add_argument("--covariance", choices=("full", "diag"), default="full", help="covariance type (default: full)")
    p.add_argument("--max-iter", type=int, default=30, help="EM iterations at most (default: 30)")
    p.add_argument("--max-frames", type=int, default=10000,
                   help="evenly spaced aligned frames used for EM, 0 = all (default: 10000; all ~35k frames of a "
                        "Flite pair took 4x longer for 0.03 dB lower MCD)")
    p.add_argument("--realign", type=int, default=1, metavar="N",
                   help="refinement passes: re-align each sentence along the DTW path between the previous GMM's "
                        "conversion and the target, then refit (default: 1; 0: direct alignment only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="speaker pairs trained at once, one process each (default: 1)")
    p.add_argument("--overwrite", action="store_true", help="retrain pairs that already have a model")
    p.set_defaults(handler=run_gmm_train)

    p = subparsers.add_parser(
        "gmm-convert", help="convert sentences with the GMM baseline → OUT/<src>-<tgt>/<utt>.wav",
        description="Convert every source sentence of a manifest that has a parallel target sentence with the "
                    "GMMs in --gmm (c1..c39 by the GMM with MLPG, F0 by the log-Gaussian transform of the "
                    "statistics, c0 and aperiodicity from the source) and write WORLD-synthesized wavs.")
    p.add_argument("--gmm", default="exp/gmm", metavar="DIR", help="model folder from gmm-train (default: exp/gmm)")
    p.add_argument("--manifest", default="data/eval.tsv", metavar="TSV", help="sentences to convert (default: data/eval.tsv)")
    add_features_argument(p)
    p.add_argument("--stats", default="dump/stats.npz", metavar="FILE",
                   help="statistics with the speakers' log-F0 (default: dump/stats.npz)")
    p.add_argument("--out", default="exp/converted/gmm", metavar="DIR", help="output root (default: exp/converted/gmm)")
    p.add_argument("--vocoder-compensation", action="store_true",
                   help="compensate WORLD's rendering of the converted envelope, as `vawgan convert "
                        "--vocoder-compensation` does (the re-analysis uses the target's F0 floor from --config)")
    add_config_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_gmm_convert)


def _speaker_pairs(utterances, requested: list[str] | None) -> list[tuple[str, str]]:
    """All ordered speaker pairs of a manifest, or the ``SRC-TGT`` ones requested (checked against it)."""
    from vawgan.evaluate.report import split_pair_name

    speakers = sorted({u.speaker for u in utterances})
    if requested:
        return [split_pair_name(name, speakers) for name in requested]
    return list(itertools.permutations(speakers, 2))


def run_evaluate(args: argparse.Namespace) -> int:
    from vawgan.corpus import read_manifest
    from vawgan.errors import VawganError
    from vawgan.evaluate import report

    config = config_from_args(args)
    utterances = read_manifest(args.manifest)
    systems = tuple(s.strip() for s in args.systems.split(",") if s.strip())
    root = Path(args.converted)
    items = report.find_converted(root, utterances, systems)
    pairs = sorted({(i.source, i.target) for i in items}) or list(itertools.permutations(
        sorted({u.speaker for u in utterances}), 2))
    if "copy" in systems and not (root / "copy").is_dir():
        items += report.copy_items(utterances, pairs)
    if "anasyn" in systems and not (root / "anasyn").is_dir():
        items += report.anasyn_items(utterances, sorted({t for _, t in pairs}), Path(args.out) / "anasyn",
                                     config.features)
    missing = [s for s in systems if not any(i.system == s for i in items)]
    if not items:
        raise VawganError(f"{root}: no converted wavs found (expected <system>/<src>-<tgt>/<utt>.wav); "
                          "run `vawgan convert` (recipe stage 6) first")
    results = report.evaluate_converted(items, config.features, jobs=args.jobs, progress=not args.no_progress)
    settings = report.system_settings(root, systems)
    rows = report.summarize(results, systems, settings)
    paths = report.write_results(rows, results, args.out)
    print(report.format_markdown(rows, results))
    for system in missing:
        print(f"note: no wavs for system '{system}' under {root / system}; its row is left out")
    print(f"wrote {paths['md']}, {paths['csv']} and {paths['per_utterance']}")
    if args.model is not None:
        from vawgan.convert import resolve_model_dir

        feature_results = report.evaluate_features(utterances, resolve_model_dir(args.model), args.features,
                                                   args.gmm, systems, progress=not args.no_progress,
                                                   settings=settings)
        feature_rows = report.summarize(feature_results, systems, settings)
        paths = report.write_results(feature_rows, feature_results, args.out, suffix="_features",
                                     note=report.FEATURE_LEVEL_NOTE)
        print("\nModel outputs before the vocoder (feature level):\n")
        print(report.format_markdown(feature_rows, feature_results, report.FEATURE_LEVEL_NOTE))
        print(f"wrote {paths['md']}, {paths['csv']} and {paths['per_utterance']}")
    return 0


def run_plot(args: argparse.Namespace) -> int:
    from vawgan.convert import resolve_model_dir
    from vawgan.errors import VawganError
    from vawgan.evaluate.figures import make_figures

    kinds = PLOT_KINDS if not args.kind or "all" in args.kind else tuple(dict.fromkeys(args.kind))
    scatter_pairs = [_int_list(p, "--pairs", 2) for p in args.pairs]  # argument errors before any file is looked at
    dims = _int_list(args.dims, "--dims")
    if (args.pair or args.pairs_all) and (args.source or args.target):
        raise VawganError(f"{'--pair' if args.pair else '--pairs-all'} chooses the speaker pairs; "
                          "leave out --source and --target")
    written = make_figures(
        kinds=kinds, model_dir=resolve_model_dir(args.model), feature_dir=args.features, manifest=args.manifest,
        converted_root=args.converted, gmm_dir=args.gmm, source=args.source, target=args.target, utt_id=args.utt,
        scatter_pairs=scatter_pairs, dims=dims, out_dir=args.out_dir, pair_names=args.pair,
        all_pairs=args.pairs_all)
    for path in written:
        print(path)
    return 0


def _int_list(text: str, option: str, length: int | None = None) -> tuple[int, ...]:
    from vawgan.errors import VawganError

    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or (length is not None and len(values) != length):
        shape = ",".join(["K"] * length) if length else "K,K,..."
        raise VawganError(f"{option} {text!r}: expected integers like {shape}")
    return values


def _train_gmm_pair(job) -> tuple[str, bool]:
    """Train and save one ordered speaker pair's GMM (one task of ``gmm-train``).

    Returns its summary line and whether EM converged within ``--max-iter``.
    """
    import time

    from vawgan.baselines.gmm import train_pair

    args, utterances, source, target, path = job
    start = time.perf_counter()
    gmm = train_pair(utterances, args.features, source, target, n_components=args.components,
                     covariance_type=args.covariance, max_iter=args.max_iter, seed=args.seed,
                     max_frames=args.max_frames or None, realign=args.realign)
    gmm.save(path)
    line = (f"{path}: {args.components} {args.covariance}-covariance components, {args.realign} re-alignment "
            f"pass(es), {time.perf_counter() - start:.1f} s, {gmm.em_iterations} EM iterations")
    return line, gmm.em_converged


def run_gmm_train(args: argparse.Namespace) -> int:
    from vawgan.baselines.gmm import model_path
    from vawgan.corpus import read_manifest
    from vawgan.errors import VawganError

    if args.jobs < 1:
        raise VawganError(f"--jobs {args.jobs}: use 1 or more worker processes")
    utterances = read_manifest(args.manifest)
    tasks = []
    for source, target in _speaker_pairs(utterances, args.pair):
        path = model_path(args.out, source, target)
        if path.is_file() and not args.overwrite:
            print(f"{path}: exists, skipped (--overwrite retrains)")
            continue
        tasks.append((args, utterances, source, target, path))
    unconverged = []

    def report(results) -> None:
        for task, (line, converged) in zip(tasks, results):
            print(line, flush=True)
            if not converged:
                unconverged.append(task[4].stem)

    if args.jobs > 1 and len(tasks) > 1:
        from concurrent.futures import ProcessPoolExecutor

        # EM runs on one BLAS thread (train_gmm), so N pairs at once use N cores.
        with ProcessPoolExecutor(max_workers=min(args.jobs, len(tasks))) as pool:
            report(pool.map(_train_gmm_pair, tasks))
    else:
        report(map(_train_gmm_pair, tasks))
    if unconverged:
        print(f"EM reached the {args.max_iter}-iteration limit before converging for {len(unconverged)} of "
              f"{len(tasks)} pair(s) ({', '.join(unconverged)}); --max-iter raises the limit", flush=True)
    return 0


def run_gmm_convert(args: argparse.Namespace) -> int:
    from vawgan.baselines.gmm import write_conversions
    from vawgan.corpus import read_manifest
    from vawgan.stats import Statistics

    feature_config = config_from_args(args).features
    from vawgan.audio import scaling_summary

    reductions = write_conversions(args.gmm, read_manifest(args.manifest), args.features, Statistics.load(args.stats),
                                   feature_config, args.out, vocoder_compensation=args.vocoder_compensation,
                                   progress=not args.no_progress)
    scaled = scaling_summary(reductions)
    print(f"wrote {len(reductions)} wavs under {args.out}" + (f" ({scaled})" if scaled else ""))
    return 0
