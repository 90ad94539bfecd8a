"""Several trained models averaged: how much does an ensemble convert better than its members?

Each model converts every parallel sentence of a split for every ordered
speaker pair (VAW-GAN weights, the source speaker known, as in recipe stage
6); the ensemble of the first k models is the mean of their converted
mel-cepstra (c1..c39; c0, F0 and aperiodicity are the source's, the same in
every model). The table gives the feature-level MCD and GV ratio of each
model and of each ensemble (``vawgan evaluate --model`` conventions), per
split. Members must share the statistics and speakers (models trained by the
same recipe with different ``train.seed``).

``--wav-out DIR`` also writes the eval split's conversions by the ensemble of
all models as ``DIR/<src>-<tgt>/<utt>.wav`` (and, with
``--vocoder-compensation``, compensated), to be scored at the wav level by
``vawgan evaluate --converted <parent of DIR> --systems ...,<name of DIR>``.

    for seed in 1 2 3; do (cd recipes/flite && vawgan train --config conf/parallel.yaml \\
        --set train.seed=$seed --model-dir exp/parallel_seed$seed); done
    python benchmarks/ensemble.py --models parallel recipes/flite/exp/parallel_seed{1,2,3} \\
        --wav-out recipes/flite/exp/parallel/converted/ensemble4
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "flite"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", required=True,
                        help="model directories or packaged model names, at least two")
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="the recipe folder (data/, dump/)")
    parser.add_argument("--splits", nargs="+", default=["eval", "dev"])
    parser.add_argument("--wav-out", type=Path, help="write the eval conversions of the whole ensemble here")
    parser.add_argument("--vocoder-compensation", action="store_true", help="render --wav-out with it")
    args = parser.parse_args()
    if len(args.models) < 2:
        raise SystemExit("--models: give at least two models")

    from vawgan.audio import write_audio
    from vawgan.convert import Converter
    from vawgan.corpus import parallel_pairs, read_manifest
    from vawgan.evaluate.metrics import gv_ratio, score_pair
    from vawgan.features.store import feature_path, load_features

    members = [Converter(model, which="vawgan", vocoder_compensation=args.vocoder_compensation)
               for model in args.models]
    stats = members[0].model.stats
    for model, member in zip(args.models[1:], members[1:]):
        same = member.speakers == members[0].speakers and member.model.stats.lf0_mean == stats.lf0_mean and all(
            np.allclose(member.model.stats.mean_std(speaker), stats.mean_std(speaker)) for speaker in stats.speakers)
        if not same:
            raise SystemExit(f"{model}: not trained on the same speakers and statistics as {args.models[0]}")
    systems = [f"model {i + 1}" for i in range(len(members))] + \
        [f"ensemble of {k}" for k in range(2, len(members) + 1)]

    rows = {}
    for split in args.splits:
        utterances = read_manifest(args.recipe / "data" / f"{split}.tsv")
        scored = {system: [] for system in systems}  # PairScores of each conversion
        for source, target in itertools.permutations(members[0].speakers, 2):
            for src_utt, tgt_utt in parallel_pairs(utterances, source, target, split=None):
                src = load_features(feature_path(args.recipe / "dump" / "features", source, src_utt.utt_id))
                tgt = load_features(feature_path(args.recipe / "dump" / "features", target, tgt_utt.utt_id))
                converted = [member.convert_features(src, source, target) for member in members]
                outputs = {f"model {i + 1}": feats for i, feats in enumerate(converted)}
                for k in range(2, len(members) + 1):
                    mean = np.mean([feats.mcep for feats in converted[:k]], axis=0)
                    outputs[f"ensemble of {k}"] = dataclasses.replace(converted[0], mcep=mean)
                for system, feats in outputs.items():
                    scored[system].append(score_pair(tgt.mcep, tgt.f0, tgt.speech, feats.mcep, feats.f0, src.speech))
                if args.wav_out is not None and split == "eval":
                    path = args.wav_out / f"{source}-{target}" / f"{src_utt.utt_id}.wav"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    everyone = outputs[f"ensemble of {len(members)}"]
                    write_audio(path, members[0].render(everyone, target), members[0].sample_rate)
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
    print("\nFeature level (the models' own mel-cepstra before the vocoder); "
          + ", ".join(f"{split}: {rows[split][systems[0]][2]} conversions" for split in args.splits) + ".")
    if args.wav_out is not None:
        print(f"wrote the eval conversions of the ensemble of {len(members)} into {args.wav_out}")


if __name__ == "__main__":
    main()
