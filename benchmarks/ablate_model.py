"""Model variants side by side: conversion and reconstruction quality per training setting and seed.

Trains one model per (variant, seed) on the recipe's extracted features and
scores it on the eval split at the feature level (the models' own mel-cepstra,
no vocoder), with the project's evaluation code:

* conversion MCD and GV ratio of the VAE and of the VAW-GAN, over every
  ordered speaker pair and parallel eval sentence (``vawgan evaluate
  --features`` conventions);
* reconstruction MCD of the VAE: each eval utterance decoded with its own
  speaker's code, against its own features (speech frames, no DTW needed);
* the VAE's KL (nats per frame) at the end of pretraining.

A variant is ``NAME=JSON`` with dotted config overrides, e.g.
``reference='{"model.decoder_variance": "unit", "model.decoder_conditioning": "input"}'``;
``default={}`` is the config as it is. The ablation table in
docs/training.md was made this way (quick schedule, seeds 0-2). Run the
recipe's stages 0-2 first (``bash recipes/flite/run.sh --stop-stage 2``). Each
model takes about a minute on one CPU core with the quick schedule.

    python benchmarks/ablate_model.py default='{}' \\
        reference='{"model.decoder_variance": "unit", "model.decoder_conditioning": "input"}' --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "flite"


def reconstruction_mcd(model_dir: Path, utterances, feature_dir: Path) -> float:
    """Mean MCD (dB, c1..c39, speech frames) of the VAE's reconstructions of ``utterances``."""
    from vawgan.alignment import mcd_per_frame
    from vawgan.convert import Converter
    from vawgan.features.store import feature_path, load_features

    converter = Converter(model_dir, which="vae", device="cpu")
    values = []
    for utt in utterances:
        feats = load_features(feature_path(feature_dir, utt.speaker, utt.utt_id))
        decoded = converter.convert_features(feats, utt.speaker, utt.speaker)
        speech = feats.speech
        values.append(mcd_per_frame(feats.mcep[speech, 1:].astype(np.float64),
                                    decoded.mcep[speech, 1:].astype(np.float64)).mean())
    return float(np.mean(values))


def score_variant(config, recipe: Path, model_dir: Path) -> dict:
    """Train ``config`` into ``model_dir`` and return its scores (see the module docstring)."""
    from vawgan.corpus import read_manifest
    from vawgan.evaluate.report import evaluate_features, summarize
    from vawgan.runlog import read_scalars
    from vawgan.training import train_model

    features = recipe / "dump" / "features"
    started = time.perf_counter()
    train_model(config, features, recipe / "data" / "train.tsv", recipe / "dump" / "stats.npz", model_dir,
                progress=False)
    seconds = time.perf_counter() - started
    eval_utterances = read_manifest(recipe / "data" / "eval.tsv")
    rows = {row["system"]: row for row in summarize(
        evaluate_features(eval_utterances, model_dir, features, systems=("vae", "vawgan"), progress=False),
        ("vae", "vawgan"))}
    epochs, kl = read_scalars(model_dir / "metrics.csv")["vae/kl"]
    return {"vae_mcd": rows["vae"]["mcd"], "vae_gv": rows["vae"]["gv_ratio"],
            "vawgan_mcd": rows["vawgan"]["mcd"], "vawgan_gv": rows["vawgan"]["gv_ratio"],
            "reconstruction_mcd": reconstruction_mcd(model_dir, eval_utterances, features),
            "vae_kl": kl[epochs.index(config.train.vae_epochs)], "seconds": seconds}


def parse_variant(text: str) -> tuple[str, dict]:
    name, sep, overrides = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=JSON")
    try:
        parsed = json.loads(overrides)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"{name}: overrides are not JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"{name}: overrides must be a JSON object of dotted keys")
    return name, parsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", type=parse_variant, metavar="NAME=JSON")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--conf", type=Path, default=RECIPE / "conf" / "quick.yaml")
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="recipe folder with data/ and dump/")
    args = parser.parse_args(argv)
    if not (args.recipe / "dump" / "stats.npz").is_file():
        sys.exit(f"{args.recipe}/dump/stats.npz not found: run `bash recipes/flite/run.sh --stop-stage 2` first")

    from vawgan.config import load_config

    print(f"## Model variants ({args.conf.name}, feature level, eval split; seeds {args.seeds})\n")
    print("| variant | seed | VAE MCD [dB] | VAE GV | VAW-GAN MCD [dB] | VAW-GAN GV | reconstruction MCD [dB] "
          "| VAE KL [nat/frame] | training s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, overrides in args.variants:
        scores = []
        for seed in args.seeds:
            config = load_config(args.conf, {**overrides, "train.seed": seed, "train.tensorboard": False})
            with tempfile.TemporaryDirectory() as model_dir:
                s = score_variant(config, args.recipe, Path(model_dir))
            scores.append(s)
            print(f"| {name} | {seed} | {s['vae_mcd']:.2f} | {s['vae_gv']:.2f} | {s['vawgan_mcd']:.2f} | "
                  f"{s['vawgan_gv']:.2f} | {s['reconstruction_mcd']:.2f} | {s['vae_kl']:.1f} | {s['seconds']:.0f} |",
                  flush=True)
        if len(scores) > 1:
            mean = {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}
            print(f"| **{name}, mean** | | {mean['vae_mcd']:.2f} | {mean['vae_gv']:.2f} | {mean['vawgan_mcd']:.2f} | "
                  f"{mean['vawgan_gv']:.2f} | {mean['reconstruction_mcd']:.2f} | {mean['vae_kl']:.1f} | "
                  f"{mean['seconds']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
