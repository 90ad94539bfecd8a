"""The wall time of each recipe stage, from the log of a recipe run, as a table.

A recipe's ``run.sh`` prints ``=== stage N: what (HH:MM:SS) ===`` as each
stage starts; a stage lasts until the next one starts, and the last one until
the log file was last written. Run a recipe with its output kept, then:

    bash recipes/arctic/run.sh --corpus ../shared/data/speech/arctic --work full 2>&1 | tee arctic.log
    python benchmarks/stage_times.py arctic.log [more.log ...]

Logs of runs that cover different stages (e.g. stages 0-2 in one, 3-5 in
another) can be given together; each is timed on its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
from pathlib import Path

STAGE = re.compile(r"^=== stage (?P<n>\d+): (?P<what>.*) \((?P<clock>\d\d:\d\d:\d\d)\) ===$")


def stage_times(log: Path) -> list[tuple[int, str, float]]:
    """``(stage, description, seconds)`` for each stage the log shows starting."""
    starts = []
    for line in log.read_text(errors="replace").splitlines():
        m = STAGE.match(line.strip())
        if m:
            starts.append((int(m["n"]), m["what"], dt.datetime.strptime(m["clock"], "%H:%M:%S")))
    if not starts:
        raise SystemExit(f"{log}: no '=== stage N: ... (HH:MM:SS) ===' lines; is it the output of a recipe run?")
    written = dt.datetime.fromtimestamp(os.path.getmtime(log), dt.timezone.utc)  # run.sh prints UTC clocks
    end = dt.datetime.strptime(written.strftime("%H:%M:%S"), "%H:%M:%S")
    rows = []
    for (n, what, start), following in zip(starts, [*starts[1:], (None, None, end)]):
        seconds = (following[2] - start).total_seconds() % 86400  # a run past midnight
        rows.append((n, what, seconds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", nargs="+", type=Path)
    args = parser.parse_args()
    print("| log | stage | what | wall time |\n|---|---:|---|---:|")
    for log in args.logs:
        for n, what, seconds in stage_times(log):
            print(f"| {log.name} | {n} | {what} | {int(seconds // 60)} min {int(seconds % 60):02d} s |")


if __name__ == "__main__":
    main()
