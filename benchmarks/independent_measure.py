"""Converted wavs scored by analysers other than WORLD's: is a lower MCD a real step towards the target?

The MCD of `vawgan evaluate` re-analyses every wav with WORLD's CheapTrick
and mel-cepstral analysis, the same analyser that vocoder compensation
(``--vocoder-compensation``) uses to correct its output. A change that only
fits the output to that analyser would lower the MCD without bringing the
speech closer to the natural target. This script scores the wavs of recipe
stages 6–7 with two measures that share no code with WORLD, both from librosa
on the short-time Fourier transform (1024-point window, 5 ms hop, the speech
frames of the features' masks), DTW-aligned to the natural target with
librosa's DTW:

* ``log-mel``: RMS difference in dB of 40-band log-mel spectra, each frame's
  mean level removed first (as the MCD leaves c0 out);
* ``MFCC``: Euclidean distance of MFCCs 1..24 (librosa's DCT of a 128-band
  log-mel spectrum).

It prints each system's mean over the eval conversions, and for each pair of
systems given with ``--compare A:B`` in how many conversions B is closer
to the target than A on each measure.

    python benchmarks/independent_measure.py --exp recipes/flite/exp \\
        --systems anasyn,anasyn_vc,gmm,gmm_vc,vawgan,vawgan_vc --compare anasyn:anasyn_vc,gmm:gmm_vc,vawgan:vawgan_vc
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "flite"
N_FFT = 1024
MEL_BANDS = 40
MFCC_ORDER = 24
MEASURES = ("log-mel", "MFCC")


def frame_features(path: Path, speech: np.ndarray, hop: int) -> dict[str, np.ndarray]:
    """Both measures' per-frame vectors of the speech frames of one wav (frames at the features' hop)."""
    import librosa
    import soundfile as sf

    signal, fs = sf.read(path, dtype="float64")
    power = librosa.feature.melspectrogram(y=signal, sr=fs, n_fft=N_FFT, hop_length=hop, n_mels=MEL_BANDS)
    log_mel = librosa.power_to_db(power, top_db=None).T
    log_mel = (log_mel - log_mel.mean(axis=1, keepdims=True)) / np.sqrt(MEL_BANDS)
    mfcc = librosa.feature.mfcc(y=signal, sr=fs, n_mfcc=MFCC_ORDER + 1, n_fft=N_FFT, hop_length=hop)[1:].T
    frames = min(len(mfcc), len(speech))
    keep = np.asarray(speech[:frames], dtype=bool)
    return {"log-mel": log_mel[:frames][keep], "MFCC": mfcc[:frames][keep]}


def distance(reference: np.ndarray, converted: np.ndarray) -> float:
    """Mean Euclidean frame distance along the DTW path between two (T, D) arrays."""
    import librosa

    _, path = librosa.sequence.dtw(X=reference.T, Y=converted.T, metric="euclidean")
    return float(np.linalg.norm(reference[path[:, 0]] - converted[path[:, 1]], axis=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exp", type=Path, default=RECIPE / "exp", help="a recipe experiment folder with converted/")
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="the recipe folder (data/, dump/)")
    parser.add_argument("--systems", default="anasyn,anasyn_vc,gmm,gmm_vc,vawgan,vawgan_vc",
                        help="comma-separated folders of <exp>/converted to score")
    parser.add_argument("--compare", default="anasyn:anasyn_vc,gmm:gmm_vc,vawgan:vawgan_vc",
                        help="comma-separated A:B pairs: count the conversions where B is closer than A")
    args = parser.parse_args()

    from vawgan.corpus import parallel_pairs, read_manifest
    from vawgan.features.store import feature_path, load_features

    systems = args.systems.split(",")
    comparisons = [tuple(pair.split(":")) for pair in args.compare.split(",") if pair]
    for pair in comparisons:
        if len(pair) != 2 or not set(pair) <= set(systems):
            raise SystemExit(f"--compare {':'.join(pair)}: give A:B with both in --systems")
    utterances = read_manifest(args.recipe / "data" / "eval.tsv")
    speakers = sorted({u.speaker for u in utterances})
    scores = {(system, measure): [] for system in systems for measure in MEASURES}
    for source, target in itertools.permutations(speakers, 2):
        for src_utt, tgt_utt in parallel_pairs(utterances, source, target, split=None):
            src = load_features(feature_path(args.recipe / "dump" / "features", source, src_utt.utt_id))
            tgt = load_features(feature_path(args.recipe / "dump" / "features", target, tgt_utt.utt_id))
            hop = int(round(tgt.fs * tgt.frame_period / 1000))  # the features' frames, for the speech masks
            natural = frame_features(Path(tgt_utt.path), tgt.speech, hop)
            for system in systems:
                # anasyn renders the target's own features (the target's timeline); conversions keep the source's.
                speech, utt_id = (tgt.speech, tgt_utt.utt_id) if system.startswith("anasyn") else \
                    (src.speech, src_utt.utt_id)
                wav = args.exp / "converted" / system / f"{source}-{target}" / f"{utt_id}.wav"
                if not wav.is_file():
                    raise SystemExit(f"{wav} not found: run recipe stages 6-7 for {args.exp} first")
                converted = frame_features(wav, speech, hop)
                for measure in MEASURES:
                    scores[system, measure].append(distance(natural[measure], converted[measure]))

    print(f"| system | log-mel distance [dB] | MFCC 1..{MFCC_ORDER} distance | conversions |")
    print("|---|---:|---:|---:|")
    for system in systems:
        means = [np.mean(scores[system, measure]) for measure in MEASURES]
        print(f"| {system} | {means[0]:.3f} | {means[1]:.2f} | {len(scores[system, MEASURES[0]])} |")
    if comparisons:
        print("\n| B closer than A | log-mel | MFCC |\n|---|---:|---:|")
        for first, second in comparisons:
            counts = []
            for measure in MEASURES:
                a, b = np.array(scores[first, measure]), np.array(scores[second, measure])
                counts.append(f"{int((b < a).sum())} of {len(a)}")
            print(f"| {second} vs {first} | {counts[0]} | {counts[1]} |")


if __name__ == "__main__":
    main()
