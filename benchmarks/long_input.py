"""Peak memory and wall time of ``vawgan convert`` on long recordings.

Builds recordings of the requested lengths by concatenating the shared
corpus's real rms sentences, converts each with the CLI in a child process
(rms -> slt, each requested F0 method and model), and prints a table of wall
time, real-time factor and the child's peak resident memory (from
``os.wait4``). Long signals are analysed and synthesized in
segments (docs/conversion.md, "Long recordings"); before, Harvest alone held
~30 MB per second of audio.

    python benchmarks/long_input.py --seconds 60 300 --f0-methods dio harvest --models quick
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

def long_recording(seconds: float, path: Path) -> Path:
    """The corpus's rms sentences one after another (repeated as needed), cut to ``seconds``, as 16-bit PCM."""
    from vawgan.corpus import resolve_corpus_root

    files = sorted((resolve_corpus_root(None) / "rms").glob("*.wav"))
    if not files:
        sys.exit("no rms recordings in the corpus; the shared Flite corpus belongs beside the checkout")
    sentences = [sf.read(f, dtype="float64")[0] for f in files]
    rate = sf.info(files[0]).samplerate
    needed = int(seconds * rate)
    signal = np.concatenate(sentences * (needed // sum(map(len, sentences)) + 1))[:needed]
    sf.write(path, signal, rate, subtype="PCM_16")
    return path


def convert_in_child(wav: Path, out: Path, f0_method: str, model: str) -> tuple[float, float]:
    """(wall seconds, peak resident MB) of one ``vawgan convert`` run in its own process."""
    command = [sys.executable, "-m", "vawgan", "convert", str(wav), "--model", model, "--source", "rms",
               "--target", "slt", "--f0-method", f0_method, "-o", str(out)]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command)} failed")
    return wall, usage.ru_maxrss / 1024.0  # kB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[60.0, 300.0])
    parser.add_argument("--f0-methods", nargs="+", default=["dio", "harvest"])
    parser.add_argument("--models", nargs="+", default=["quick"])
    args = parser.parse_args()
    print("| input | F0 | model | wall [s] | RTF | peak memory [MB] |")
    print("|---:|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.seconds:
            wav = long_recording(seconds, Path(tmp) / f"rms_{seconds:g}s.wav")
            for f0_method in args.f0_methods:
                for model in args.models:
                    wall, peak = convert_in_child(wav, Path(tmp) / "out.wav", f0_method, model)
                    print(f"| {seconds:g} s | {f0_method} | {model} | {wall:.1f} | {wall / seconds:.3f} | {peak:.0f} |",
                          flush=True)


if __name__ == "__main__":
    main()
