"""Feature extraction speed: real-time factor per core of each step, and corpus wall time.

Prints two Markdown tables:

1. CPU seconds per second of audio (RTF; lower is faster) and the matching
   "× real time" for each analysis step, over the first N utterances of every
   speaker of the corpus: F0 by Harvest and by DIO + StoneMask, CheapTrick,
   D4C, the mel-cepstrum by ``pysptk.sp2mc`` and by our matrix form
   (:mod:`vawgan.features.mcep`), aperiodicity coding, and the coded
   aperiodicity with D4C on every n-th frame only (``--aperiodicity-step``,
   default 4; :func:`vawgan.features.world.coded_aperiodicity`); then the
   whole pipeline with each F0 method (with our mel-cepstrum), with D4C on
   every frame and on every n-th.
2. Wall time of :func:`vawgan.features.extract.extract_corpus` over the whole
   corpus with ``jobs=1`` and ``jobs=2`` (into a temporary folder).

CPU time is ``time.process_time`` of this process (one core; pyworld and
pysptk are single-threaded, and BLAS is held to one thread here). The project's
goals: whole pipeline ≥ 30× real time per core with Harvest, ≥ 100× with DIO.

    python benchmarks/bench_extract.py [--config recipes/flite/conf/full.yaml] [--corpus DIR]
                                       [--utterances 5] [--aperiodicity-step 4] [--skip-wall]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: BLAS must not spread the matrix products
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402

import numpy as np  # noqa: E402


def cpu_seconds_per_step(utterances, config, aperiodicity_step: int) -> tuple[dict[str, float], float]:
    """CPU seconds spent in each analysis step over ``utterances``, and their total audio duration."""
    import pysptk
    import pyworld

    from vawgan.audio import load_audio
    from vawgan.features import mcep
    from vawgan.features.world import alpha_of, coded_aperiodicity, estimate_f0, fft_size_of

    fs, fft_size, alpha = config.sample_rate, fft_size_of(config), alpha_of(config)
    mcep.analysis_matrix(fft_size, config.mcep_order, alpha)  # built once per run, not per utterance
    spent: dict[str, float] = defaultdict(float)
    audio_seconds = 0.0

    def timed(name, fn, *args, **kwargs):
        start = time.process_time()
        result = fn(*args, **kwargs)
        spent[name] += time.process_time() - start
        return result

    for utt in utterances:
        x = load_audio(utt.path, fs)
        audio_seconds += x.size / fs
        floor, ceil = config.f0_range(utt.speaker)
        timed("F0: DIO + StoneMask", estimate_f0, x, fs, "dio", floor, ceil, config.frame_period)
        f0, times = timed("F0: Harvest", estimate_f0, x, fs, "harvest", floor, ceil, config.frame_period)
        sp = timed("CheapTrick envelope", pyworld.cheaptrick, x, f0, times, fs, f0_floor=floor, fft_size=fft_size)
        ap = timed("D4C aperiodicity", pyworld.d4c, x, f0, times, fs, fft_size=fft_size)
        timed("aperiodicity coding", pyworld.code_aperiodicity, ap, fs)
        timed(f"coded aperiodicity, D4C on 1 frame in {aperiodicity_step}", coded_aperiodicity,
              x, f0, times, fs, fft_size, aperiodicity_step)
        reference = timed("mel-cepstrum: pysptk.sp2mc", pysptk.sp2mc, sp, order=config.mcep_order, alpha=alpha)
        ours = timed("mel-cepstrum: matrix (ours)", mcep.sp2mc, sp, config.mcep_order, alpha)
        assert np.allclose(ours, reference, atol=1e-10)
    return spent, audio_seconds


def corpus_wall_time(utterances, config, jobs: int) -> float:
    from vawgan.features.extract import extract_corpus

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = extract_corpus(utterances, tmp, config, jobs=jobs, progress=False)
        elapsed = time.perf_counter() - start
    assert summary.extracted == len(utterances), summary.line()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=None, help="corpus root (default: the shared Flite corpus)")
    parser.add_argument("--utterances", type=int, default=5, help="utterances per speaker for the RTF table")
    parser.add_argument("--aperiodicity-step", type=int, default=4,
                        help="also time D4C on every N-th frame (features.aperiodicity_step; default 4)")
    parser.add_argument("--skip-wall", action="store_true", help="skip the whole-corpus wall times")
    parser.add_argument("--config", default=None,
                        help="YAML config whose features section to use, e.g. recipes/flite/conf/full.yaml "
                             "(per-speaker F0 ranges make Harvest faster); default: the built-in defaults")
    args = parser.parse_args()

    from vawgan.config import load_config
    from vawgan.corpus import discover

    config = load_config(args.config).features
    corpus = discover(args.corpus)
    per_speaker: dict[str, list] = defaultdict(list)
    for utt in corpus:
        if len(per_speaker[utt.speaker]) < args.utterances:
            per_speaker[utt.speaker].append(utt)
    subset = [u for utts in per_speaker.values() for u in utts]

    step = args.aperiodicity_step
    spent, audio = cpu_seconds_per_step(subset, config, step)
    envelope = spent["CheapTrick envelope"] + spent["mel-cepstrum: matrix (ours)"]
    every_frame = envelope + spent["D4C aperiodicity"] + spent["aperiodicity coding"]
    every_nth = envelope + spent[f"coded aperiodicity, D4C on 1 frame in {step}"]
    for method, f0_step in (("Harvest", "F0: Harvest"), ("DIO", "F0: DIO + StoneMask")):
        spent[f"whole pipeline, {method}"] = spent[f0_step] + every_frame
        spent[f"whole pipeline, {method}, D4C on 1 frame in {step}"] = spent[f0_step] + every_nth
    load = os.getloadavg()
    ranges = "per-speaker F0 ranges" if config.f0_ranges else f"F0 range {config.f0_floor:.0f}–{config.f0_ceil:.0f} Hz"
    print(f"## Extraction speed ({len(subset)} utterances, {audio:.1f} s of audio, {ranges}, "
          f"{os.cpu_count()} CPU cores, load average {load[0]:.1f} during the run)\n")
    print("| step | CPU s per s of audio (RTF) | × real time per core |")
    print("|---|---:|---:|")
    for name, seconds in spent.items():
        rtf = seconds / audio
        print(f"| {name} | {rtf:.4f} | {1 / rtf:.0f}× |")
    speedup = spent["mel-cepstrum: pysptk.sp2mc"] / spent["mel-cepstrum: matrix (ours)"]
    print(f"\nmatrix mel-cepstrum vs pysptk.sp2mc: {speedup:.0f}× faster, same values (max |diff| < 1e-10)")

    if not args.skip_wall:
        total = sum(1 for _ in corpus)
        print(f"\n## Whole corpus, {config.f0_method} ({total} utterances, extract_corpus wall time)\n")
        print("| jobs | wall time (s) |")
        print("|---:|---:|")
        for jobs in (1, 2):
            print(f"| {jobs} | {corpus_wall_time(corpus, config, jobs):.1f} |", flush=True)
        print(f"\nload average after the run: {os.getloadavg()[0]:.1f} (other processes share these cores)")


if __name__ == "__main__":
    main()
