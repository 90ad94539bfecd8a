"""Any-to-many conversion on natural speech: a voice the model never heard, converted into its speakers.

The recordings of ``--speaker`` (a speaker not in the model) are converted
with the source left unknown, as ``vawgan convert in.wav --target T`` does
without ``--source`` (the input's own mean mel-cepstrum and F0 statistics
stand in for its speaker), into every model speaker who recorded the same
sentence; then ``vawgan evaluate`` scores them at the wav level against those
natural recordings, beside the unconverted source (``copy``) and the
analysis–synthesis of the target (``anasyn``). With ``--known-model`` the
sentences that model held out are converted by it too, with the source
speaker known to it (``known``), for comparison.

    python benchmarks/any_to_many.py recipes/arctic/full/exp/parallel_bdl_slt/model \\
        --corpus ../shared/data/speech/arctic --speaker clb \\
        --known-model vawgan/pretrained/arctic --known-ids arctic_a0025-arctic_a0030 --out /tmp/any_to_many

Prints the table of ``vawgan evaluate`` (one for all the speaker's sentences,
one for the held-out ones when ``--known-model`` is given).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from vawgan.convert import Converter
from vawgan.corpus import discover, write_manifest


def convert_all(model, utterances, speaker: str, out_root: Path, system: str, source: str | None) -> int:
    """Convert ``speaker``'s utterances into every model speaker with the same sentence; returns the count."""
    converter = Converter(model)
    recorded = {(u.speaker, u.utt_id) for u in utterances}
    count = 0
    for u in utterances:
        if u.speaker != speaker:
            continue
        for target in converter.speakers:
            if target != speaker and (target, u.utt_id) in recorded:
                converter.convert_file(u.path, out_root / system / f"{speaker}-{target}" / f"{u.utt_id}.wav",
                                       target=target, source=source)
                count += 1
    return count


def evaluate(manifest: Path, converted: Path, out: Path, systems: str, model) -> None:
    """``vawgan evaluate`` on the converted folder, its table printed."""
    subprocess.run([sys.executable, "-m", "vawgan", "evaluate", "--manifest", str(manifest), "--converted",
                    str(converted), "--out", str(out), "--systems", systems, "--jobs", "2", "--no-progress",
                    "--config", str(Path(model) / "config.yaml")], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model directory (or packaged name) that never heard --speaker")
    parser.add_argument("--corpus", required=True, help="corpus with --speaker and the model's speakers")
    parser.add_argument("--speaker", required=True, help="the unseen source speaker")
    parser.add_argument("--known-model", default=None, help="a model that knows --speaker, for comparison")
    parser.add_argument("--known-ids", default=None, metavar="FIRST-LAST",
                        help="the sentence ids --known-model held out (an inclusive range)")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()

    unseen = Converter(args.model)
    if args.speaker in unseen.speakers:
        raise SystemExit(f"{args.model} was trained on {args.speaker}; pick a speaker it never heard")
    utterances = discover(args.corpus, speakers=[args.speaker, *unseen.speakers])
    spoken = {u.utt_id for u in utterances if u.speaker == args.speaker}
    utterances = [u for u in utterances if u.utt_id in spoken]  # only sentences the unseen speaker read
    manifest = args.out / "all.tsv"
    write_manifest(utterances, manifest)
    n = convert_all(args.model, utterances, args.speaker, args.out / "all", "unknown", None)
    print(f"{n} conversions of {args.speaker}'s recordings with the source unknown to {args.model}")
    evaluate(manifest, args.out / "all", args.out / "eval_all", "copy,unknown,anasyn", args.model)

    if args.known_model:
        first, last = args.known_ids.split("-")
        held_out = [u for u in utterances if first <= u.utt_id <= last]
        write_manifest(held_out, args.out / "held_out.tsv")
        convert_all(args.model, held_out, args.speaker, args.out / "held_out", "unknown", None)
        convert_all(args.known_model, held_out, args.speaker, args.out / "held_out", "known", args.speaker)
        print(f"\nthe held-out sentences {first}..{last}: unknown to {args.model}, "
              f"known speaker to {args.known_model}")
        evaluate(args.out / "held_out.tsv", args.out / "held_out", args.out / "eval_held_out",
                 "copy,unknown,known,anasyn", args.model)


if __name__ == "__main__":
    main()
