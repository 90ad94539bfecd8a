"""Conversion with the source speaker known and unknown, on the recipe's eval split, at the feature and wav level.

For each model (a directory or a packaged name) and each ordered speaker pair
and parallel eval sentence, the source recording's features are converted
three ways: with the source speaker's statistics (``--source`` given), as an
unknown speaker (the converter's default without ``--source``: the input's own
mean, the global std), and as an unknown speaker normalized with the global
statistics of all training speakers (an earlier way, kept for comparison). The
wav level synthesizes each conversion and re-analyses it, as ``vawgan
evaluate`` does. Run the recipe's stages 0-2 first.

    python benchmarks/unknown_source.py quick parallel
"""

from __future__ import annotations

import argparse
import itertools
import logging
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "flite"
WAYS = ("known", "unknown", "unknown_global")


def global_statistics(mcep: np.ndarray, speech: np.ndarray, stats) -> np.ndarray:
    """The earlier normalization of an unknown source: the global statistics of all training speakers."""
    return stats.normalize(mcep, None)


def convert(converter, feats, source: str, target: str, way: str):
    """``feats`` converted from ``source`` to ``target`` one of the three ways (see the module docstring)."""
    if way == "known":
        return converter.convert_features(feats, source, target)
    if way == "unknown":
        return converter.convert_features(feats, None, target)
    with mock.patch("vawgan.convert.normalize_unknown_source", global_statistics):
        return converter.convert_features(feats, None, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="model directories or packaged model names")
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="the recipe folder (data/, dump/)")
    parser.add_argument("--jobs", type=int, default=2, help="processes for the wav-level re-analysis")
    args = parser.parse_args()
    logging.getLogger("vawgan").setLevel(logging.ERROR)  # not the peak-rescaling warning of every loud wav

    from vawgan.audio import write_audio
    from vawgan.convert import Converter
    from vawgan.corpus import parallel_pairs, read_manifest
    from vawgan.evaluate.metrics import score_pair
    from vawgan.evaluate.report import ConvertedUtterance, evaluate_converted, summarize
    from vawgan.features.store import feature_path, load_features
    from vawgan.features.synthesis import synthesize

    utterances = read_manifest(args.recipe / "data" / "eval.tsv")
    features = args.recipe / "dump" / "features"
    print("| model | way | feature-level MCD [dB] | wav-level MCD [dB] | wav-level GV ratio |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            converter = Converter(model, threads=1)
            feature_mcd = {way: [] for way in WAYS}
            items = []
            for source, target in itertools.permutations(converter.speakers, 2):
                for src_utt, tgt_utt in parallel_pairs(utterances, source, target, split=None):
                    src = load_features(feature_path(features, source, src_utt.utt_id))
                    tgt = load_features(feature_path(features, target, tgt_utt.utt_id))
                    for way in WAYS:
                        converted = convert(converter, src, source, target, way)
                        feature_mcd[way].append(score_pair(tgt.mcep, tgt.f0, tgt.speech, converted.mcep,
                                                           converted.f0, src.speech).mcd)
                        wav = Path(tmp) / way / f"{source}-{target}" / f"{src_utt.utt_id}.wav"
                        write_audio(wav, synthesize(converted), converter.sample_rate)
                        items.append(ConvertedUtterance(way, source, target, src_utt.utt_id, wav, Path(tgt_utt.path)))
            rows = summarize(evaluate_converted(items, converter.feature_config, jobs=args.jobs, progress=False), WAYS)
            for row in rows:
                way = row["system"]
                print(f"| {model} | {way} | {np.mean(feature_mcd[way]):.2f} | {row['mcd']:.2f} "
                      f"| {row['gv_ratio']:.3f} |")


if __name__ == "__main__":
    main()
