"""Per-speaker F0 search ranges from F0 histograms, as sprocket does it.

F0 trackers search between a floor and a ceiling. Too wide a range invites
octave errors (a male voice tracked at twice its pitch, creaky voice at half);
too narrow a range cuts real pitch off. The range therefore belongs to the
speaker: :func:`collect_f0` tracks F0 over a few utterances per speaker with a
deliberately wide range, :func:`estimate_range` derives a floor and a ceiling
from the quartiles of the voiced frames, and :func:`plot_histograms` draws the
histograms with the estimates so that a person can check them.

The quartile rule (0.75 × first quartile, 1.5 × third quartile) is the one
Hirst and De Looze proposed for setting pitch-tracker limits per speaker: an
octave below the bulk of the voice is never needed, and the ceiling leaves room
for emphatic rises.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from vawgan.audio import load_audio
from vawgan.config import FeatureConfig
from vawgan.corpus import Utterance
from vawgan.features.world import estimate_f0
from vawgan.utils import atomic_path

# The search range for collecting histograms: wider than any adult voice.
WIDE_FLOOR = 40.0
WIDE_CEIL = 800.0
FLOOR_FACTOR = 0.75
CEIL_FACTOR = 1.5


def collect_f0(utterances: Sequence[Utterance], config: FeatureConfig,
               per_speaker: int = 10) -> dict[str, np.ndarray]:
    """Voiced F0 values (Hz) of the first ``per_speaker`` utterances of each speaker, tracked 40–800 Hz.

    Uses ``config.f0_method`` and the configured sample rate and frame period.
    """
    chosen: dict[str, list[Utterance]] = {}
    for utt in utterances:
        if len(chosen.setdefault(utt.speaker, [])) < per_speaker:
            chosen[utt.speaker].append(utt)
    values = {}
    for speaker, utts in sorted(chosen.items()):
        parts = []
        for utt in utts:
            x = load_audio(utt.path, config.sample_rate)
            f0, _ = estimate_f0(x, config.sample_rate, config.f0_method, WIDE_FLOOR, WIDE_CEIL, config.frame_period)
            parts.append(f0[f0 > 0])
        values[speaker] = np.concatenate(parts)
    return values


def estimate_range(f0: np.ndarray) -> tuple[float, float]:
    """``(floor, ceil)`` in Hz: 0.75 × the first and 1.5 × the third quartile of voiced F0, rounded to 5 Hz."""
    f0 = np.asarray(f0, dtype=np.float64)
    f0 = f0[f0 > 0]
    if f0.size == 0:
        raise ValueError("no voiced frames to estimate an F0 range from")
    q1, q3 = np.percentile(f0, [25, 75])
    return float(5 * np.floor(FLOOR_FACTOR * q1 / 5)), float(5 * np.ceil(CEIL_FACTOR * q3 / 5))


def plot_histograms(f0_by_speaker: dict[str, np.ndarray], ranges: dict[str, tuple[float, float]],
                    path: str | os.PathLike, default_range: tuple[float, float] | None = None) -> None:
    """One histogram of voiced F0 per speaker (log-spaced bins), with the estimated range marked; a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    speakers = sorted(f0_by_speaker)
    fig, axes = plt.subplots(len(speakers), 1, figsize=(7, 2.0 * len(speakers) + 0.6), sharex=True, squeeze=False)
    bins = np.geomspace(WIDE_FLOOR, WIDE_CEIL, 120)
    for ax, speaker in zip(axes[:, 0], speakers):
        values = f0_by_speaker[speaker]
        ax.hist(values, bins=bins, color="tab:blue", alpha=0.8)
        floor, ceil = ranges[speaker]
        ax.axvline(floor, color="tab:red", label=f"estimated range {floor:.0f}–{ceil:.0f} Hz")
        ax.axvline(ceil, color="tab:red")
        if default_range:
            for i, v in enumerate(default_range):
                ax.axvline(v, color="grey", linestyle="--", label="default range" if i == 0 else None)
        ax.set_xscale("log")
        ax.set_ylabel("frames")
        ax.set_title(f"{speaker}: {values.size} voiced frames, median {np.median(values):.0f} Hz", fontsize=10)
        ax.legend(fontsize=8, loc="upper right")
    axes[-1, 0].set_xlabel("F0 (Hz, log scale)")
    ticks = [50, 75, 100, 150, 200, 300, 400, 600, 800]
    axes[-1, 0].set_xticks(ticks, [str(t) for t in ticks])
    axes[-1, 0].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
