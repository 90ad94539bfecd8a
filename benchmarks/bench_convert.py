"""Conversion speed: real-time factor of the core and wall time of the CLI.

Prints a Markdown table for a 3 s utterance of the shared corpus (or any file
given with --wav, cut to --seconds):

* core RTF = seconds spent per second of audio by ``Converter.convert_audio``
  (analysis, network, synthesis; one BLAS and one torch thread, as the CLI
  runs; analysis and synthesis on the converter's threads), with each
  step's share, for Harvest, for DIO + StoneMask, and for DIO + StoneMask
  with D4C on 1 frame in ``--aperiodicity-step`` (default 4;
  ``Converter(aperiodicity_step=...)``), on one thread and
  on ``--threads`` (default: every available core; ``Converter(threads=...)``),
  and what ``--vocoder-compensation`` adds to the total (one more synthesis
  and CheapTrick pass, :func:`vawgan.features.synthesis.compensate_vocoder`);
* CLI wall time of ``vawgan convert in.wav --target T -o out.wav`` as a user
  runs it, start-up (imports, model loading) included, and of ``vawgan --help``
  and of importing torch alone (the largest part of the start-up).

Each time is given as wall time and as CPU time (user + system) of the
process: on a shared machine the wall time also counts waiting for a core.

Goals of the project: core RTF ≤ 0.05 with DIO, CLI wall time ≤ 3 s.

    python benchmarks/bench_convert.py [--model DIR] [--repeats 5] [--aperiodicity-step 4]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_WAV = REPO.parent / "shared" / "data" / "speech" / "flite" / "rms" / "fb003.wav"


def median_time(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn()`` over ``repeats`` calls, after one warm-up call.

    CPU time (this process) is reported next to wall time because on a shared
    machine wall time also counts the time other processes hold the core.
    """
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def core_rows(converter, x: np.ndarray, target: str, source: str | None, repeats: int) -> list[tuple]:
    """Per-step and total seconds for one F0 method and thread count, as table rows."""
    from vawgan.features.synthesis import compensate_vocoder, synthesize
    from vawgan.features.world import analyze

    fs = converter.sample_rate
    duration = len(x) / fs
    threads = converter.threads
    feats = analyze(x, fs, converter.feature_config, speaker=source, threads=threads)
    converted = converter.convert_features(feats, source, target)
    steps = {
        "analysis": lambda: analyze(x, fs, converter.feature_config, speaker=source, threads=threads),
        "network + F0": lambda: converter.convert_features(feats, source, target),
        "synthesis": lambda: synthesize(converted, threads=threads),
        "vocoder compensation (added by --vocoder-compensation)":
            lambda: compensate_vocoder(converted, converter.feature_config.f0_range(target)[0], threads=threads),
        "total (convert_audio)": lambda: converter.convert_audio(x, target, source),
    }
    label = f"core, {analysis_label(converter.feature_config)}, {threads} thread{'s' if threads > 1 else ''}"
    rows = []
    for step, fn in steps.items():
        wall, cpu = median_time(fn, repeats)
        rows.append((label, step, wall, cpu, duration))
    return rows


def analysis_label(features) -> str:
    """``dio``, ``harvest``, or ``dio, D4C 1 frame in 4`` when the aperiodicity is analysed on every n-th frame."""
    step = features.aperiodicity_step
    return features.f0_method + (f", D4C 1 frame in {step}" if step > 1 else "")


def cli_time(args: list[str], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``vawgan ARGS`` in a fresh interpreter (start-up included)."""
    return cli_time_of([sys.executable, "-m", "vawgan", *args], repeats)


def cli_time_of(command: list[str], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds (user + system of the child) of running ``command``."""
    walls, cpus = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None,
                        help="model directory or packaged model name (default: the packaged quick model)")
    parser.add_argument("--wav", default=str(SHARED_WAV), help="input recording (default: shared rms/fb003.wav)")
    parser.add_argument("--seconds", type=float, default=3.0, help="cut the input to this length")
    parser.add_argument("--target", default="slt")
    parser.add_argument("--source", default="rms")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="analysis threads compared with one (default: every available core)")
    parser.add_argument("--aperiodicity-step", type=int, default=4,
                        help="the third variant's D4C on 1 frame in N (default 4)")
    args = parser.parse_args()

    import torch

    from vawgan.audio import load_audio, write_audio

    load_before = os.getloadavg()[0]
    from vawgan.convert import Converter
    from vawgan.utils import available_cores

    from threadpoolctl import threadpool_limits

    thread_counts = sorted({1, args.threads or available_cores()})
    variants = (("harvest", 1), ("dio", 1), ("dio", args.aperiodicity_step))
    torch.set_num_threads(1)
    rows = []
    with threadpool_limits(limits=1, user_api="blas"):  # as `vawgan convert` runs
        for method, step in variants:
            for threads in thread_counts:
                converter = Converter(args.model, device="cpu", f0_method=method, threads=threads,
                                      aperiodicity_step=step)
                x = load_audio(args.wav, converter.sample_rate)[: int(args.seconds * converter.sample_rate)]
                rows += core_rows(converter, x, args.target, args.source, args.repeats)
    duration = len(x) / converter.sample_rate

    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "in.wav"
        write_audio(clip, x, converter.sample_rate)
        model = ["--model", args.model] if args.model else []
        for method, step in variants:
            for threads in thread_counts:
                wall, cpu = cli_time(["convert", str(clip), "--target", args.target, "--source", args.source,
                                      "--device", "cpu", "--f0-method", method, "--threads", str(threads),
                                      "--aperiodicity-step", str(step), "-o", str(Path(tmp) / "out.wav"), *model],
                                     args.repeats)
                option = f", --aperiodicity-step {step}" if step > 1 else ""
                rows.append((f"CLI, {method}{option}, --threads {threads}", "`vawgan convert` incl. start-up", wall,
                             cpu, duration))
        wall, cpu = cli_time(["--help"], args.repeats)
        rows.append(("CLI", "`vawgan --help`", wall, cpu, None))
        wall, cpu = cli_time_of([sys.executable, "-c", "import torch"], args.repeats)
        rows.append(("CLI", "`python -c 'import torch'` alone", wall, cpu, None))

    print(f"Conversion of a {duration:.2f} s utterance ({Path(args.wav).name}), median of {args.repeats}, "
          f"one BLAS/torch thread, analysis threads {thread_counts}, model: {converter.model_dir.path}; "
          f"load average before: {load_before:.1f}, "
          f"after: {os.getloadavg()[0]:.1f}\n")
    print("| what | step | wall s | RTF (wall) | CPU s | RTF (CPU) |")
    print("|---|---|---:|---:|---:|---:|")
    for what, step, wall, cpu, dur in rows:
        rtf = (f"{wall / dur:.3f}", f"{cpu / dur:.3f}") if dur else ("", "")
        print(f"| {what} | {step} | {wall:.3f} | {rtf[0]} | {cpu:.3f} | {rtf[1]} |")


if __name__ == "__main__":
    main()
