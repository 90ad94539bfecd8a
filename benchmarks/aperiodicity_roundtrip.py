"""How far does D4C on 1 frame in n move the coded aperiodicity, next to WORLD's own round trip?

For every recording of a manifest (default: the recipe's eval split):

* A₀: its coded aperiodicity with D4C on every frame (WORLD's analysis);
* for each step n: the coded aperiodicity analysed with ``aperiodicity_step``
  n, its difference from A₀ on voiced frames ("analysis error");
* the features analysed with step n, synthesized, and the result re-analysed
  with D4C on every frame: its coded aperiodicity against A₀ on frames voiced
  in both ("round trip").

The round trip with n = 1 is the error WORLD itself makes (synthesis does
not reproduce the aperiodicity it was given); if the round trip with n > 1 is
barely larger, the step costs little in what a listener gets. Prints a
Markdown table (band 1, dB; at 16 kHz the coded aperiodicity has one band).
Run the recipe's stage 0 first (``bash recipes/flite/run.sh --stop-stage 0``).

    python benchmarks/aperiodicity_roundtrip.py [--manifest recipes/flite/data/eval.tsv] [--steps 1 2 4]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "flite"


def main(argv: list[str] | None = None) -> int:
    from vawgan.audio import load_audio
    from vawgan.config import load_config
    from vawgan.corpus import read_manifest
    from vawgan.features.synthesis import synthesize
    from vawgan.features.world import analyze

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=RECIPE / "data" / "eval.tsv")
    parser.add_argument("--conf", type=Path, default=RECIPE / "conf" / "quick.yaml")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args(argv)
    every_frame = dataclasses.replace(load_config(args.conf).features, aperiodicity_step=1)
    rate = every_frame.sample_rate
    analysis_error = {n: [] for n in args.steps}
    round_trip = {n: [] for n in args.steps}
    utterances = read_manifest(args.manifest)
    for utt in utterances:
        x = load_audio(utt.path, rate)
        reference = analyze(x, rate, every_frame, speaker=utt.speaker)
        for n in args.steps:
            feats = analyze(x, rate, dataclasses.replace(every_frame, aperiodicity_step=n), speaker=utt.speaker)
            voiced = reference.f0 > 0
            analysis_error[n].append((feats.coded_ap - reference.coded_ap)[voiced])
            again = analyze(synthesize(feats), rate, every_frame, speaker=utt.speaker)
            m = min(again.num_frames, reference.num_frames)
            both = (reference.f0[:m] > 0) & (again.f0[:m] > 0)
            round_trip[n].append((again.coded_ap[:m] - reference.coded_ap[:m])[both])

    print(f"## Coded aperiodicity against WORLD's analysis ({len(utterances)} recordings of {args.manifest.name}, "
          "band 1, dB)\n")
    print("| aperiodicity_step | analysis error, RMS | round trip, RMS | round trip, mean |")
    print("|---:|---:|---:|---:|")
    for n in args.steps:
        error = np.concatenate(analysis_error[n])[:, 0]
        trip = np.concatenate(round_trip[n])[:, 0]
        print(f"| {n} | {np.sqrt(np.mean(error ** 2)):.2f} | {np.sqrt(np.mean(trip ** 2)):.2f} | {trip.mean():+.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
