"""Training logs: scalars to a CSV file (for plots) and to TensorBoard (for curves).

The CSV is in long format, one scalar per row: ``step,tag,value``. Tags are
slash-separated, e.g. ``vae/nll`` or ``critic/gradient_penalty``. Long format
lets every phase log its own set of scalars into one file, and a resumed run
simply appends (when a step is logged twice, :func:`read_scalars` keeps the
last value).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from vawgan.errors import DISK_FULL_ERRNOS, disk_full


class RunLogger:
    """Append scalars to ``<log_dir>/metrics.csv`` and to TensorBoard event files.

    Call :meth:`log` with Python floats (call ``.item()`` once per epoch or per
    logging interval, not per step, to keep GPU training free of host syncs).
    """

    def __init__(self, log_dir: str | os.PathLike, tensorboard: bool = True):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.log_dir / "metrics.csv"
        self._csv_file = open(self.csv_path, "ab", buffering=0)
        self._header_due = self._csv_file.seek(0, os.SEEK_END) == 0
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.log_dir / "tensorboard"))

    def log(self, step: int, scalars: dict[str, float]) -> None:
        """Record each ``tag: value`` pair at ``step`` and write the rows to disk."""
        rows = io.StringIO()
        writer = csv.writer(rows)
        if self._header_due:
            writer.writerow(["step", "tag", "value"])
        for tag, value in scalars.items():
            value = float(value)
            writer.writerow([int(step), tag, repr(value)])
            if self._tb is not None:
                self._tb.add_scalar(tag, value, int(step))
        self._append(rows.getvalue().encode())
        self._header_due = False

    def _append(self, data: bytes) -> None:
        """Append ``data`` to the CSV whole or not at all, so that a full disk leaves no half row behind.

        Raises :class:`~vawgan.errors.DiskFullError` when the disk is full.
        """
        end = self._csv_file.seek(0, os.SEEK_END)
        try:
            rest = memoryview(data)
            while rest:
                rest = rest[self._csv_file.write(rest):]
        except OSError as exc:
            self._csv_file.truncate(end)
            if exc.errno in DISK_FULL_ERRNOS:
                raise disk_full(self.csv_path) from None
            raise

    def close(self) -> None:
        """Flush and close both outputs."""
        self._csv_file.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> "RunLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_scalars(csv_path: str | os.PathLike) -> dict[str, tuple[list[int], list[float]]]:
    """Read a ``metrics.csv`` into ``{tag: (steps, values)}``, steps ascending.

    When the same (tag, step) appears more than once (a resumed run re-logged
    it), the last row wins.
    """
    by_tag: dict[str, dict[int, float]] = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            by_tag.setdefault(row["tag"], {})[int(row["step"])] = float(row["value"])
    return {tag: (sorted(points), [points[s] for s in sorted(points)]) for tag, points in by_tag.items()}
