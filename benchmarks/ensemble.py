"""An ensemble model directory, model by model: how much better do the averages of its models convert?

Every model of the directory (its own, then each of ``members/`` alone) and
the ensemble of its first k models (``Converter(model, members=k)``, the mean
of their converted mel-cepstra) convert every parallel sentence of a split
for every ordered speaker pair (VAW-GAN weights, the source speaker known, as
in recipe stage 6). The table gives the feature-level MCD and GV ratio of
each (``vawgan evaluate --model`` conventions), per split. For the wav level,
convert with ``vawgan convert --model DIR [--members K]`` and score with
``vawgan evaluate``.

    python benchmarks/ensemble.py                     # the packaged `parallel` ensemble (8 models)
    python benchmarks/ensemble.py --model recipes/flite/exp/parallel/model
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "flite"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="parallel",
                        help="an ensemble model directory or packaged model name (default: parallel)")
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="the recipe folder (data/, dump/)")
    parser.add_argument("--splits", nargs="+", default=["eval", "dev"])
    args = parser.parse_args()

    from vawgan.convert import Converter
    from vawgan.corpus import parallel_pairs, read_manifest
    from vawgan.evaluate.metrics import gv_ratio, score_pair
    from vawgan.features.store import feature_path, load_features

    everyone = Converter(args.model, which="vawgan")
    if len(everyone.model_dirs) < 2:
        raise SystemExit(f"{everyone.model_dir.path}: not an ensemble (no members/ with VAW-GAN weights)")
    systems = {f"model {i + 1} ({model_dir.path.name})": Converter(model_dir, which="vawgan", members=1)
               for i, model_dir in enumerate(everyone.model_dirs)}
    systems.update({f"ensemble of {k}": Converter(args.model, which="vawgan", members=k)
                    for k in range(2, len(everyone.model_dirs))})
    systems[f"ensemble of {len(everyone.model_dirs)}"] = everyone

    rows = {}
    for split in args.splits:
        utterances = read_manifest(args.recipe / "data" / f"{split}.tsv")
        scored = {system: [] for system in systems}  # PairScores of each conversion
        for source, target in itertools.permutations(everyone.speakers, 2):
            for src_utt, tgt_utt in parallel_pairs(utterances, source, target, split=None):
                src = load_features(feature_path(args.recipe / "dump" / "features", source, src_utt.utt_id))
                tgt = load_features(feature_path(args.recipe / "dump" / "features", target, tgt_utt.utt_id))
                for system, converter in systems.items():
                    feats = converter.convert_features(src, source, target)
                    scored[system].append(score_pair(tgt.mcep, tgt.f0, tgt.speech, feats.mcep, feats.f0, src.speech))
        rows[split] = {system: (np.mean([scores.mcd for scores in scored[system]]),
                                np.mean(gv_ratio(np.stack([scores.gv_converted for scores in scored[system]]),
                                                 np.stack([scores.gv_natural for scores in scored[system]]))),
                                len(scored[system]))
                       for system in systems}

    header = " | ".join(f"{split} MCD [dB] | {split} GV ratio" for split in args.splits)
    print(f"| system | {header} |")
    print("|---|" + "---:|---:|" * len(args.splits))
    for system in systems:
        cells = " | ".join(f"{rows[split][system][0]:.3f} | {rows[split][system][1]:.3f}" for split in args.splits)
        print(f"| {system} | {cells} |")
    first = next(iter(systems))
    print("\nFeature level (the models' own mel-cepstra before the vocoder); "
          + ", ".join(f"{split}: {rows[split][first][2]} conversions" for split in args.splits) + ".")


if __name__ == "__main__":
    main()
