"""Where two systems' conversion errors differ, by band of the mel-cepstrum, before and after the vocoder.

For every ordered speaker pair and parallel eval sentence of a recipe run,
this scores the GMM baseline and the VAW-GAN twice: at the feature level
(the systems' own c1..c39, on the source's speech frames) and at the wav level
(the converted wavs of recipe stage 6, re-analysed), next to the target's own
analysis-synthesis (the ``anasyn`` row: what the vocoder alone costs). Along
the same DTW path
as `vawgan evaluate` it prints, per band of coefficients, the mean over
aligned frames of the squared difference to the natural target summed over
the band's coefficients; MCD is 10/ln10 · sqrt(2 · that sum over c1..c39).
Synthesis and re-analysis add about the same error to every system, so the
difference of two systems' MCDs shrinks after the vocoder even where the
difference of their squared errors would not (docs/evaluation.md).

    python benchmarks/mcd_by_band.py --exp recipes/flite/exp/parallel
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "flite"
BANDS = ((1, 4), (5, 12), (13, 24), (25, 39))
SYSTEMS = ("gmm", "vawgan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exp", type=Path, default=RECIPE / "exp" / "parallel",
                        help="a recipe experiment folder with model/, gmm/ and converted/ (stages 3-7 run)")
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="the recipe folder (data/, dump/)")
    args = parser.parse_args()

    from vawgan.alignment import align
    from vawgan.baselines.gmm import PairModels
    from vawgan.convert import Converter
    from vawgan.corpus import parallel_pairs, read_manifest
    from vawgan.evaluate.report import system_outputs
    from vawgan.features.store import feature_path, load_features
    from vawgan.features.world import analyze_file

    utterances = read_manifest(args.recipe / "data" / "eval.tsv")
    converter = Converter(args.exp / "model", which="vawgan")
    gmms = PairModels(args.exp / "gmm", converter.model.stats)
    squared = {}  # (system, level) -> list of (aligned frames, 39) squared differences
    for source, target in itertools.permutations(converter.speakers, 2):
        for src_utt, tgt_utt in parallel_pairs(utterances, source, target, split=None):
            src = load_features(feature_path(args.recipe / "dump" / "features", source, src_utt.utt_id))
            tgt = load_features(feature_path(args.recipe / "dump" / "features", target, tgt_utt.utt_id))
            outputs = system_outputs(src, source, target, {"vawgan": converter}, gmms)
            anasyn = analyze_file(args.exp / "converted" / "anasyn" / f"{source}-{target}" / f"{tgt_utt.utt_id}.wav",
                                  converter.feature_config, speaker=target)
            levels = {("anasyn", "wav"): (anasyn.mcep, anasyn.speech)}
            for system in SYSTEMS:
                wav = args.exp / "converted" / system / f"{source}-{target}" / f"{src_utt.utt_id}.wav"
                resynthesized = analyze_file(wav, converter.feature_config, speaker=target)
                levels[system, "feature"] = outputs[system].mcep, src.speech
                levels[system, "wav"] = resynthesized.mcep, resynthesized.speech
            for key, (mcep, speech) in levels.items():
                reference, converted = tgt.mcep[tgt.speech, 1:], mcep[speech, 1:]
                ri, ci = align(reference, converted)
                squared.setdefault(key, []).append((reference[ri] - converted[ci]) ** 2)

    scale = 10.0 / np.log(10.0) * np.sqrt(2.0)
    print("| level | system | MCD [dB], frames pooled | " + " | ".join(f"c{a}..c{b}" for a, b in BANDS) + " |")
    print("|---|---|---:|" + "---:|" * len(BANDS))
    for system, level in [(system, "feature") for system in SYSTEMS] + [(system, "wav") for system in SYSTEMS] \
            + [("anasyn", "wav")]:
        d2 = np.concatenate(squared[system, level])
        mcd = float(np.mean(scale * np.sqrt(d2.sum(axis=1))))
        bands = " | ".join(f"{d2[:, a - 1:b].sum(axis=1).mean():.4f}" for a, b in BANDS)
        print(f"| {level} | {system} | {mcd:.3f} | {bands} |")


if __name__ == "__main__":
    main()
