"""The analysis figures of SPEC section 5, as PNG files.

Each function takes arrays (or a training log), draws one figure with labelled
axes and a legend, writes it atomically and returns its path. The series are
passed as ``{label: data}`` dicts in drawing order, so the same function serves
"natural vs VAE vs VAW-GAN" and any other comparison. Mel-cepstra are full
(T, D+1) arrays with c0 in column 0, so dimension ``k`` means c_k everywhere.
A ``title`` argument heads the figure; :mod:`vawgan.evaluate.figures` names
the speaker pair, the split and the level (features or wavs) there.

* :func:`plot_scatter` — pairs of mel-cepstral dimensions: over-smoothed
  features shrink towards the mean, adversarial training spreads them again;
* :func:`plot_global_variance` — GV per dimension on a log scale;
* :func:`plot_modulation_spectrum` — power of each dimension's trajectory over
  modulation frequency;
* :func:`plot_trajectory` — one dimension over one utterance;
* :func:`plot_f0_contours` — F0 over one utterance, voiced frames only;
* :func:`plot_f0_histograms` — the distribution of voiced F0, one panel per speaker;
* :func:`plot_aligned_spectrograms` — log-magnitude spectrograms (:func:`log_spectrogram`)
  on one time axis, with F0 over them;
* :func:`plot_training_curves` — the VAE objective across pretraining and
  adversarial training, the critic's D(x) and D(x̃), and its Wasserstein
  estimate and gradient penalty, from ``metrics.csv``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from vawgan.errors import VawganError
from vawgan.runlog import read_scalars
from vawgan.utils import atomic_path

DEFAULT_SCATTER_PAIRS = ((1, 3), (11, 13), (31, 33))
# One colour per role, the same in every figure.
COLORS = {"natural target": "black", "source": "tab:gray", "VAE": "tab:blue", "VAW-GAN": "tab:red",
          "GMM": "tab:green", "VAE + GV postfilter": "tab:purple"}
_FALLBACK_COLORS = ("tab:purple", "tab:orange", "tab:brown", "tab:olive", "tab:cyan")


def _figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, layout="constrained", **kwargs)


def _save(fig, path: str | os.PathLike) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def _suptitle(fig, title: str) -> None:
    if title:
        fig.suptitle(title)


def _hertz_ticks(axis) -> None:
    """Plain numbers (80, 100, 200) instead of powers of ten on a logarithmic frequency axis."""
    from matplotlib.ticker import ScalarFormatter

    for formatter in (axis.set_major_formatter, axis.set_minor_formatter):
        formatter(ScalarFormatter())


def _color(label: str, index: int) -> str:
    role = re.sub(r" α [0-9.]+$", "", label)  # "VAE + GV postfilter α 0.5": the strength keeps the role's colour
    return COLORS.get(role, _FALLBACK_COLORS[index % len(_FALLBACK_COLORS)])


def _check_dims(series: dict[str, np.ndarray], dims) -> None:
    width = min(np.shape(v)[1] for v in series.values())
    bad = [d for d in dims if not 0 <= d < width]
    if bad:
        raise VawganError(f"mel-cepstral dimension(s) {bad} out of range; the features have c0..c{width - 1}")


def plot_scatter(series: dict[str, np.ndarray], path: str | os.PathLike,
                 pairs=DEFAULT_SCATTER_PAIRS, max_points: int = 4000, seed: int = 0, title: str = "",
                 on_top: str = "natural target") -> Path:
    """Scatter of mel-cepstral dimension pairs ``(j, k)`` (c_j on x, c_k on y), one panel per pair.

    ``series`` maps a label to (T, D+1) frames (speech frames of several
    utterances stacked). At most ``max_points`` random frames per series are
    drawn so that dense clouds stay readable. The series labelled ``on_top``
    (the natural data) is drawn last, over the others, so that the systems'
    clouds never hide it; the legend keeps the order of ``series``.
    """
    _check_dims(series, [d for pair in pairs for d in pair])
    rng = np.random.default_rng(seed)
    fig, axes = _figure(1, len(pairs), figsize=(4.6 * len(pairs), 4.4), squeeze=False)
    for ax, (j, k) in zip(axes[0], pairs):
        for i, (label, frames) in enumerate(series.items()):
            frames = np.asarray(frames)
            keep = rng.permutation(len(frames))[:max_points]
            ax.scatter(frames[keep, j], frames[keep, k], s=3, alpha=0.35, color=_color(label, i), label=label,
                       rasterized=True, zorder=3 if label == on_top else 2)
        ax.set_xlabel(f"c{j}")
        ax.set_ylabel(f"c{k}")
        ax.set_title(f"c{j} vs c{k}")
        ax.grid(alpha=0.3, zorder=0)
    legend = axes[0][0].legend(loc="best", markerscale=4, fontsize=9)
    for handle in legend.legend_handles:
        handle.set_alpha(1.0)
    _suptitle(fig, title)
    return _save(fig, path)


def plot_global_variance(gvs: dict[str, np.ndarray], path: str | os.PathLike,
                         reference: str = "natural target", title: str = "") -> Path:
    """GV of c1..cD per dimension, log scale; ``gvs`` maps a label to a (D,) GV (dimension k at index k−1).

    When ``reference`` is one of the labels, the legend also gives every other
    series' GV ratio to it (mean over dimensions of GV / reference GV).
    """
    fig, ax = _figure(figsize=(7.5, 4.5))
    for i, (label, gv) in enumerate(gvs.items()):
        gv = np.asarray(gv)
        legend = label
        if reference in gvs and label != reference:
            legend = f"{label} (GV ratio {np.mean(gv / np.asarray(gvs[reference])):.2f})"
        ax.semilogy(np.arange(1, len(gv) + 1), gv, marker="o", markersize=3, color=_color(label, i), label=legend)
    ax.set_xlabel("mel-cepstral dimension k (c_k)")
    ax.set_ylabel("global variance (log scale)")
    ax.set_title("Global variance per dimension")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    _suptitle(fig, title)
    return _save(fig, path)


def plot_modulation_spectrum(spectra: dict[str, tuple[np.ndarray, np.ndarray]], dims, path: str | os.PathLike,
                             title: str = "") -> Path:
    """Modulation spectra of selected dimensions, one panel each.

    ``spectra`` maps a label to ``(frequencies_hz, power_db)`` with power (F, D+1)
    (see :func:`vawgan.evaluate.metrics.modulation_spectrum`, averaged over utterances).
    """
    fig, axes = _figure(1, len(dims), figsize=(4.4 * len(dims), 4.0), squeeze=False)
    for ax, k in zip(axes[0], dims):
        for i, (label, (freqs, power)) in enumerate(spectra.items()):
            ax.plot(freqs, power[:, k], color=_color(label, i), label=label)
        ax.set_xlabel("modulation frequency [Hz]")
        ax.set_ylabel("power [dB]")
        ax.set_title(f"modulation spectrum of c{k}")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    _suptitle(fig, title)
    return _save(fig, path)


def plot_trajectory(trajectories: dict[str, np.ndarray], dim: int, frame_period_ms: float,
                    path: str | os.PathLike, title: str = "") -> Path:
    """One mel-cepstral dimension over time; ``trajectories`` maps a label to a (T,) series on one time axis."""
    fig, ax = _figure(figsize=(9, 3.8))
    for i, (label, values) in enumerate(trajectories.items()):
        t = np.arange(len(values)) * frame_period_ms / 1000.0
        ax.plot(t, values, color=_color(label, i), label=label, linewidth=1.2)
    ax.set_xlabel("time [s]")
    ax.set_ylabel(f"c{dim}")
    ax.set_title(f"trajectory of c{dim}")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: the curves fill the whole axes
    _suptitle(fig, title)
    return _save(fig, path)


def plot_f0_contours(contours: dict[str, np.ndarray], frame_period_ms: float, path: str | os.PathLike,
                     title: str = "") -> Path:
    """F0 over one utterance, one line per series; ``contours`` maps a label to a (T,) F0 track in Hz on one
    time axis, 0 on unvoiced frames (drawn as gaps). The frequency axis is logarithmic, so that an F0
    transform's shift of the log-F0 mean shows as a constant offset."""
    fig, ax = _figure(figsize=(9, 3.8))
    for i, (label, f0) in enumerate(contours.items()):
        f0 = np.asarray(f0, dtype=np.float64)
        t = np.arange(len(f0)) * frame_period_ms / 1000.0
        ax.plot(t, np.where(f0 > 0, f0, np.nan), color=_color(label, i), label=label, linewidth=1.2)
    ax.set_yscale("log")
    _hertz_ticks(ax.yaxis)
    ax.set_xlabel("time [s]")
    ax.set_ylabel("F0 [Hz, log scale]")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _suptitle(fig, title)
    return _save(fig, path)


def plot_f0_histograms(f0_by_speaker: dict[str, dict[str, np.ndarray]], path: str | os.PathLike,
                       title: str = "", bins: int = 60) -> Path:
    """Distributions of voiced F0, one panel per speaker.

    ``f0_by_speaker`` maps a speaker to ``{label: F0 values in Hz}`` (for
    instance the speaker's natural recordings and conversions into that
    speaker); unvoiced frames (0) are left out. Each series is a density over
    log-spaced bins shared by all panels, with its median in the legend.
    """
    voiced = {speaker: {label: np.asarray(f0, dtype=np.float64)[np.asarray(f0) > 0]
                        for label, f0 in series.items()} for speaker, series in f0_by_speaker.items()}
    values = np.concatenate([f0 for series in voiced.values() for f0 in series.values()] or [np.zeros(0)])
    if values.size == 0:
        raise VawganError("no voiced frames to draw F0 histograms of")
    edges = np.geomspace(values.min(), values.max() * 1.001, bins + 1)
    fig, axes = _figure(1, len(voiced), figsize=(5.0 * len(voiced), 3.8), squeeze=False, sharex=True)
    for ax, (speaker, series) in zip(axes[0], voiced.items()):
        for i, (label, f0) in enumerate(series.items()):
            if f0.size:
                ax.hist(f0, bins=edges, density=True, histtype="step", linewidth=1.5, color=_color(label, i),
                        label=f"{label} (median {np.median(f0):.0f} Hz)")
        ax.set_xscale("log")
        _hertz_ticks(ax.xaxis)
        ax.set_xlabel("F0 [Hz, log scale]")
        ax.set_ylabel("density")
        ax.set_title(speaker)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    _suptitle(fig, title)
    return _save(fig, path)


def log_spectrogram(x: np.ndarray, n_fft: int = 1024, hop_length: int = 80) -> np.ndarray:
    """Log-magnitude STFT of a waveform, (n_fft // 2 + 1, frames), in dB re its loudest bin, floored at −80 dB.

    Column ``i`` is centred on sample ``i · hop_length``, like WORLD's frame
    ``i`` when ``hop_length`` is the frame period in samples.
    """
    import librosa

    spec = np.abs(librosa.stft(np.asarray(x, dtype=np.float32), n_fft=n_fft, hop_length=hop_length))
    return librosa.amplitude_to_db(spec, ref=np.max, top_db=80.0)


def plot_aligned_spectrograms(panels: dict[str, tuple[np.ndarray, np.ndarray]], fs: int, frame_period_ms: float,
                              path: str | os.PathLike, title: str = "") -> Path:
    """Spectrograms on one time axis, one row each, with each row's F0 contour over it.

    ``panels`` maps a label to ``(db, f0)``: a (bins, T) spectrogram in dB
    (:func:`log_spectrogram`, bins from 0 to ``fs / 2``) and a (T,) F0 track
    in Hz, 0 on unvoiced frames (drawn as gaps). Every panel has the same T
    frames of ``frame_period_ms``, for instance each recording warped onto a
    reference's frames, so that the same sound sits at the same x in every
    row. F0 is read on a right-hand axis in Hz with one range for all rows,
    so a converted contour compares with the source's and the target's.
    """
    lengths = {label: (np.shape(db)[1], len(f0)) for label, (db, f0) in panels.items()}
    if len({n for pair in lengths.values() for n in pair}) != 1:
        raise VawganError(f"spectrogram panels must share one time axis; frames (spectrogram, F0): {lengths}")
    voiced = np.concatenate([np.asarray(f0)[np.asarray(f0) > 0] for _, f0 in panels.values()])
    f0_limits = (0.8 * voiced.min(), 1.25 * voiced.max()) if voiced.size else (50.0, 500.0)
    frames = next(iter(lengths.values()))[0]
    seconds = frames * frame_period_ms / 1000.0
    t = np.arange(frames) * frame_period_ms / 1000.0
    fig, axes = _figure(len(panels), 1, figsize=(10, 2.4 * len(panels)), squeeze=False, sharex=True)
    image = None
    for ax, (label, (db, f0)) in zip(axes[:, 0], panels.items()):
        image = ax.imshow(db, origin="lower", aspect="auto", extent=(0.0, seconds, 0.0, fs / 2.0), vmin=-80, vmax=0,
                          cmap="magma", interpolation="nearest")
        ax.set_title(label)
        ax.set_ylabel("frequency [Hz]")
        ax_f0 = ax.twinx()
        f0 = np.asarray(f0, dtype=np.float64)
        ax_f0.plot(t, np.where(f0 > 0, f0, np.nan), color="cyan", linewidth=1.4)
        ax_f0.set_ylim(*f0_limits)
        ax_f0.set_ylabel("F0 [Hz]", color="darkcyan")
        ax_f0.tick_params(axis="y", colors="darkcyan")
    axes[-1, 0].set_xlabel("time of the target recording [s]")
    fig.colorbar(image, ax=axes[:, 0].tolist(), format="%+.0f dB", label="level [dB]", pad=0.08)
    _suptitle(fig, title)
    return _save(fig, path)


def phase_boundaries(scalars: dict[str, tuple[list[int], list[float]]]) -> tuple[int | None, int | None]:
    """Logged epochs where critic pretraining and adversarial training start (None when absent).

    Read from the log itself: the first epoch with a critic scalar, and the
    first epoch with a generator scalar (only the adversarial phase logs one).
    """
    critic = scalars.get("critic/d_real", ([], []))[0]
    generator = scalars.get("generator/loss", ([], []))[0]
    return (min(critic) if critic else None), (min(generator) if generator else None)


def plot_training_curves(metrics_csv: str | os.PathLike, path: str | os.PathLike) -> Path:
    """VAE objective over all epochs (phases marked), the critic's D(x), D(x̃), and its WGAN-GP terms per epoch.

    Reads the long-format training log (``step,tag,value``, one row per epoch
    and tag) written by ``vawgan train``: ``vae/loss`` (NLL + KL), with
    parallel data ``parallel/nll`` beside it, ``critic/d_real`` = E[D(x)] and
    ``critic/d_fake`` = E[D(x̃)], and in a third panel the critic's
    Wasserstein estimate ``critic/wasserstein`` (E[D(x)] − E[D(x̃)]) with its
    gradient penalty ``critic/gradient_penalty`` on a second axis.
    """
    metrics_csv = Path(metrics_csv)
    if not metrics_csv.is_file():
        raise VawganError(f"{metrics_csv}: training log not found; train a model first (vawgan train)")
    try:
        scalars = read_scalars(metrics_csv)
    except (KeyError, ValueError) as exc:
        raise VawganError(f"{metrics_csv}: not a vawgan training log ({exc})") from None
    if "vae/loss" not in scalars:
        raise VawganError(f"{metrics_csv}: no 'vae/loss' scalars; the VAE phase has not logged an epoch yet")
    critic_start, adversarial_start = phase_boundaries(scalars)
    last = max(max(steps) for steps, _ in scalars.values())
    fig, (ax_vae, ax_d, ax_w) = _figure(1, 3, figsize=(17, 4.4))
    curves = [("vae/loss", "VAE objective (NLL + KL)", "tab:blue"),
              ("parallel/nll", "NLL of the aligned parallel pairs' conversions", "tab:green")]
    for tag, label, color in curves:
        if tag not in scalars:  # parallel/nll: only with train.parallel_weight > 0
            continue
        steps, values = np.asarray(scalars[tag][0]), np.asarray(scalars[tag][1])
        # One line per run of consecutive epochs, so the critic-only epochs show as a gap, not a slope.
        for i, run in enumerate(np.split(np.arange(len(steps)), np.flatnonzero(np.diff(steps) > 1) + 1)):
            ax_vae.plot(steps[run], values[run], marker="o", markersize=3, color=color, label=None if i else label)
    ax_vae.set_ylabel("loss per frame")
    ax_vae.set_title("VAE objective" + (" and parallel NLL" if "parallel/nll" in scalars else ""))
    for tag, label, color in (("critic/d_real", "D(x), real target frames", "black"),
                              ("critic/d_fake", "D(x̃), generated frames", "tab:red")):
        if tag in scalars:
            ax_d.plot(*scalars[tag], marker="o", markersize=3, color=color, label=label)
    ax_d.set_ylabel("mean critic output")
    ax_d.set_title("Critic outputs per epoch")
    ax_gp = ax_w.twinx()
    for ax, tag, label, color in ((ax_w, "critic/wasserstein", "Wasserstein estimate E[D(x)] − E[D(x̃)]", "black"),
                                  (ax_gp, "critic/gradient_penalty", "gradient penalty", "tab:purple")):
        if tag in scalars:
            ax.plot(*scalars[tag], marker="o", markersize=3, color=color, label=label)
    ax_w.set_ylabel("Wasserstein estimate")
    ax_gp.set_ylabel("gradient penalty")
    ax_w.set_title("Critic: Wasserstein estimate and gradient penalty")
    handles, labels = (a + b for a, b in zip(ax_w.get_legend_handles_labels(), ax_gp.get_legend_handles_labels()))
    if handles:  # one legend for the lines of both axes
        ax_w.legend(handles, labels, fontsize=9)
    for ax in (ax_vae, ax_d, ax_w):
        if critic_start is not None:
            end = adversarial_start - 0.5 if adversarial_start is not None else last + 0.5
            ax.axvspan(critic_start - 0.5, end, color="tab:orange", alpha=0.12, label="critic pretraining")
        if adversarial_start is not None:
            ax.axvline(adversarial_start - 0.5, color="tab:red", linestyle="--", label="adversarial training starts")
        ax.set_xlabel("epoch (all phases, in order)")
        ax.grid(alpha=0.3)
    ax_vae.legend(fontsize=9)
    ax_d.legend(fontsize=9)
    return _save(fig, path)
