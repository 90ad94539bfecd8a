"""What the adversarial phase buys, against the classic fix for over-smoothing: a GV postfilter.

Over-smoothed conversions have too little variance per utterance (global
variance, GV). The classic remedy (Toda et al. 2007; sprocket applies it to its
GMM) needs no training: scale each mel-cepstral dimension of the converted
utterance around its own mean so that its variance moves towards the target
speaker's average utterance variance,

    c'_d = mean_d + (c_d - mean_d) * (GV_target,d / var_d) ** (alpha / 2),

alpha = 1 matching the GV fully, alpha = 0.5 half-way in the log domain. This
script applies it to the VAE's and the VAW-GAN's conversions of the eval split
at the feature level (the models' own c1..c39, no vocoder; ``vawgan evaluate
--features`` conventions) and prints MCD and GV ratio for each, so the two
routes to more variance can be compared at equal GV. The postfilter is
``vawgan.transforms.gv_postfilter`` (``vawgan convert --gv-postfilter ALPHA``);
the target GV is the model's ``stats.npz`` one: the mean over the target
speaker's train-split utterances of the per-utterance variance of its speech
frames.

Run the recipe first (``bash recipes/flite/run.sh``), then:

    python benchmarks/gv_postfilter.py [--model recipes/flite/exp/model] [--alphas 0.5 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from pathlib import Path

import numpy as np

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "flite"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="recipe folder with data/ and dump/")
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: RECIPE/exp/model)")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, 1.0])
    args = parser.parse_args(argv)
    model_dir = args.model or args.recipe / "exp" / "model"
    features = args.recipe / "dump" / "features"
    if not (model_dir / "vawgan.pt").is_file() or not features.is_dir():
        sys.exit(f"{model_dir} or {features} missing: run `bash recipes/flite/run.sh` first")

    from vawgan.convert import Converter
    from vawgan.corpus import parallel_pairs, read_manifest
    from vawgan.evaluate.metrics import gv_ratio, score_pair
    from vawgan.features.store import feature_path, load_features
    from vawgan.transforms import gv_postfilter

    converters = {which: Converter(model_dir, which=which, threads=1) for which in ("vae", "vawgan")}
    eval_utts = read_manifest(args.recipe / "data" / "eval.tsv")
    speakers = sorted({u.speaker for u in eval_utts} & set(converters["vae"].speakers))
    stats = converters["vae"].model.stats
    rows: dict[str, list] = {}
    for source, target in itertools.permutations(speakers, 2):
        for src_utt, tgt_utt in parallel_pairs(eval_utts, source, target, split=None):
            src = load_features(feature_path(features, source, src_utt.utt_id))
            tgt = load_features(feature_path(features, target, tgt_utt.utt_id))
            for which, converter in converters.items():
                converted = converter.convert_features(src, source, target)
                outputs = {which: converted}
                for alpha in args.alphas:
                    mcep = gv_postfilter(converted.mcep, src.speech, stats.gv(target), alpha)
                    outputs[f"{which} + GV postfilter, alpha {alpha:g}"] = dataclasses.replace(converted, mcep=mcep)
                for name, out in outputs.items():
                    # converted frames keep the source's timeline, hence the source's speech mask
                    rows.setdefault(name, []).append(score_pair(tgt.mcep, tgt.f0, tgt.speech,
                                                                out.mcep, out.f0, src.speech))

    print(f"## GV postfilter against adversarial training ({model_dir}, feature level, eval split, "
          f"{len(next(iter(rows.values())))} conversions)\n")
    print("| system | MCD [dB] | GV ratio |")
    print("|---|---:|---:|")
    for name, scores in rows.items():
        mcd = np.array([s.mcd for s in scores])
        ratio = gv_ratio(np.stack([s.gv_converted for s in scores]), np.stack([s.gv_natural for s in scores]))
        print(f"| {name} | {mcd.mean():.2f} ± {mcd.std():.2f} | {ratio.mean():.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
