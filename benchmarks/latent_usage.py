"""How much of its latent space the trained VAE uses, and whether moving latents between speakers helps.

Two diagnostics of a recipe model, at the feature level (the models' own
c1..c39, no vocoder; ``vawgan evaluate --features`` conventions):

1. *Active latent dimensions*: per speaker, how many of the encoder's mean
   outputs μ vary by more than 0.1 (standard deviation over the speaker's
   train-split speech frames). A posterior-collapsed dimension stays at the
   prior's mean for every frame; what the latent carries about the sentence
   lives in the active ones.
2. *Latent alignment*: convert the eval split as ``vawgan convert`` does
   (encode μ, decode with the target's code), and with the source speaker's
   latent distribution moved onto the target's before decoding — shifting the
   mean (``mean``), also scaling each dimension (``diag``), or whitening and
   recolouring with the full covariances (``full``). If the latent still held
   much of the source speaker, this would move the conversion towards the
   target and lower its MCD.

Run the recipe first (``bash recipes/flite/run.sh``), then:

    python benchmarks/latent_usage.py [--model recipes/flite/exp/model]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "flite"
ACTIVE_STD = 0.1
ALIGNMENTS = ("none", "mean", "diag", "full")


def latent_statistics(model, stats, utterances, feature_dir: Path) -> dict:
    """Per speaker: mean, per-dimension std, covariance square root and inverse square root of μ."""
    from vawgan.features.store import feature_path, load_features

    out = {}
    for speaker in sorted({u.speaker for u in utterances}):
        mus = []
        for utt in (u for u in utterances if u.speaker == speaker):
            feats = load_features(feature_path(feature_dir, speaker, utt.utt_id))
            mu, _ = model.encode(stats.normalize(feats.mcep[:, 1:].astype(np.float64), speaker))
            mus.append(mu[feats.speech])
        z = np.concatenate(mus)
        eigenvalues, vectors = np.linalg.eigh(np.cov(z.T) + 1e-6 * np.eye(z.shape[1]))
        out[speaker] = {"mean": z.mean(axis=0), "std": z.std(axis=0),
                        "sqrt": vectors @ np.diag(eigenvalues ** 0.5) @ vectors.T,
                        "inv_sqrt": vectors @ np.diag(eigenvalues ** -0.5) @ vectors.T}
    return out


def align(mu: np.ndarray, source: dict, target: dict, how: str) -> np.ndarray:
    if how == "mean":
        return mu - source["mean"] + target["mean"]
    if how == "diag":
        return (mu - source["mean"]) / source["std"] * target["std"] + target["mean"]
    if how == "full":
        return (mu - source["mean"]) @ source["inv_sqrt"].T @ target["sqrt"].T + target["mean"]
    return mu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="recipe folder with data/ and dump/")
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: RECIPE/exp/model)")
    args = parser.parse_args(argv)
    model_dir = args.model or args.recipe / "exp" / "model"
    feature_dir = args.recipe / "dump" / "features"
    if not (model_dir / "vawgan.pt").is_file() or not feature_dir.is_dir():
        sys.exit(f"{model_dir} or {feature_dir} missing: run `bash recipes/flite/run.sh` first")

    from vawgan.convert import Converter
    from vawgan.corpus import parallel_pairs, read_manifest
    from vawgan.evaluate.metrics import gv_ratio, score_pair
    from vawgan.features.store import feature_path, load_features

    train = read_manifest(args.recipe / "data" / "train.tsv")
    eval_utts = read_manifest(args.recipe / "data" / "eval.tsv")
    sentences: dict[tuple[str, str], list] = {}  # (source, target) -> [(source features, target features)]

    def parallel_sentences(source: str, target: str) -> list:
        """The eval split's parallel sentences of one pair, loaded once for every model and alignment."""
        if (source, target) not in sentences:
            sentences[source, target] = [
                (load_features(feature_path(feature_dir, source, s.utt_id)),
                 load_features(feature_path(feature_dir, target, t.utt_id)))
                for s, t in parallel_pairs(eval_utts, source, target, split=None)]
        return sentences[source, target]

    print(f"## Latent usage and alignment ({model_dir}, feature level, eval split)\n")
    for which in ("vae", "vawgan"):
        converter = Converter(model_dir, which=which, threads=1)
        model, stats = converter.model, converter.model.stats
        latents = latent_statistics(model, stats, train, feature_dir)
        active = {s: int((v["std"] > ACTIVE_STD).sum()) for s, v in latents.items()}
        latent_dim = next(iter(latents.values()))["std"].size
        print(f"{which}: active latent dimensions (std of μ > {ACTIVE_STD}) of {latent_dim}: "
              + ", ".join(f"{s} {n}" for s, n in active.items()) + "\n")
        speakers = sorted(set(latents) & set(converter.speakers))
        pairs = list(itertools.permutations(speakers, 2))
        print("| alignment | MCD [dB] | GV ratio | " + " | ".join(f"{s}-{t}" for s, t in pairs) + " |")
        print("|---|---:|---:|" + "---:|" * len(pairs))
        for how in ALIGNMENTS:
            scores, per_pair = [], []
            for source, target in pairs:
                target_index = converter.check_speaker(target)
                pair_mcd = []
                for src, tgt in parallel_sentences(source, target):
                    mu, _ = model.encode(stats.normalize(src.mcep[:, 1:].astype(np.float64), source))
                    decoded = model.decode(align(mu, latents[source], latents[target], how), target_index)
                    mcep = src.mcep.astype(np.float64)
                    mcep[:, 1:] = stats.denormalize(decoded.astype(np.float64), target)
                    score = score_pair(tgt.mcep, tgt.f0, tgt.speech, mcep, src.f0, src.speech)
                    scores.append(score)
                    pair_mcd.append(score.mcd)
                per_pair.append(np.mean(pair_mcd))
            mcd = np.array([s.mcd for s in scores])
            ratio = gv_ratio(np.stack([s.gv_converted for s in scores]), np.stack([s.gv_natural for s in scores]))
            print(f"| {which}, {how} | {mcd.mean():.2f} | {ratio.mean():.3f} | "
                  + " | ".join(f"{m:.2f}" for m in per_pair) + " |", flush=True)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
