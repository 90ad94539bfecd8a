"""Rebuild this folder's small natural corpus from a full CMU ARCTIC set A.

    python data/arctic/build.py ../shared/data/speech/arctic

The source may be in the folder-per-speaker layout (``<root>/bdl/arctic_a0001.wav``)
or the official one (``<root>/cmu_us_bdl_arctic/wav/arctic_a0001.wav``). The
recordings are copied sample for sample into 16-bit FLAC (lossless; the only
modification), keeping the ids of the sentences below, which cover the ARCTIC
recipe's fixed splits: for bdl and slt 54 train sentences, 10 dev and 26 eval
ones; clb's 30 recordings are all of that speaker in set A.
"""

from __future__ import annotations

import sys
from pathlib import Path

import soundfile as sf

HERE = Path(__file__).resolve().parent


def _ids(first: int, last: int) -> list[str]:
    return [f"arctic_a{n:04d}" for n in range(first, last + 1)]


SENTENCES = {
    "bdl": _ids(1, 60) + _ids(494, 503) + _ids(544, 563),
    "slt": _ids(1, 60) + _ids(494, 503) + _ids(544, 563),
    "clb": _ids(1, 30),
}


def source_file(root: Path, speaker: str, utt_id: str) -> Path:
    """The recording in either layout; an error naming both places when it is in neither."""
    for candidate in (root / speaker / f"{utt_id}.wav", root / f"cmu_us_{speaker}_arctic" / "wav" / f"{utt_id}.wav"):
        if candidate.is_file():
            return candidate
    sys.exit(f"build.py: {utt_id} of {speaker} is not under {root} (either layout); pass a full ARCTIC set A")


def main(root: Path) -> None:
    for speaker, ids in SENTENCES.items():
        (HERE / speaker).mkdir(exist_ok=True)
        for utt_id in ids:
            audio, rate = sf.read(source_file(root, speaker, utt_id), dtype="int16")
            sf.write(HERE / speaker / f"{utt_id}.flac", audio, rate, subtype="PCM_16")
    print(f"wrote {sum(map(len, SENTENCES.values()))} FLAC files under {HERE}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
