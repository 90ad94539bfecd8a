"""Figures of the secondary GAN models (matplotlib, written atomically as PNG / GIF)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vawgan.runlog import read_scalars  # noqa: E402
from vawgan.utils import atomic_path  # noqa: E402

GRID_LIMIT = 26.0  # the grid's centres are within +-21; the plots show +-26


def _save(fig, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def grid_samples_with_gmm(samples: np.ndarray, centres: np.ndarray, gmm, title: str, path) -> None:
    """Generated points, the true centres and the ellipses (2 sd) of a fitted Gaussian mixture."""
    from matplotlib.patches import Ellipse

    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.3, label="generated")
    ax.scatter(centres[:, 0], centres[:, 1], marker="x", color="k", s=30, label="true centres")
    for mean, cov, weight in zip(gmm.means_, gmm.covariances_, gmm.weights_):
        eigenvalues, eigenvectors = np.linalg.eigh(cov)
        angle = np.degrees(np.arctan2(eigenvectors[1, 1], eigenvectors[0, 1]))
        width, height = 4 * np.sqrt(np.maximum(eigenvalues[::-1], 0))
        ax.add_patch(Ellipse(mean, width, height, angle=angle, fill=False, color="r",
                             alpha=min(1.0, 0.3 + 10 * weight)))
    ax.set(xlim=(-GRID_LIMIT, GRID_LIMIT), ylim=(-GRID_LIMIT, GRID_LIMIT), aspect="equal", title=title)
    ax.legend(loc="upper right", fontsize=8)
    _save(fig, path)


def potential_heatmap(field: np.ndarray, extent: float, real: np.ndarray, fake: np.ndarray, title: str,
                      label: str, path) -> None:
    """The discriminator's output over the plane (square ``field``), with real and fake points on top."""
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(field, origin="lower", extent=(-extent, extent, -extent, extent), cmap="viridis")
    fig.colorbar(image, ax=ax, label=label)
    ax.scatter(real[:, 0], real[:, 1], s=2, color="w", alpha=0.5, label="real")
    ax.scatter(fake[:, 0], fake[:, 1], s=2, color="r", alpha=0.5, label="generated")
    ax.set(title=title, aspect="equal")
    ax.legend(loc="upper right", fontsize=8)
    _save(fig, path)


def grid_frame(samples: np.ndarray, centres: np.ndarray, title: str, path) -> None:
    """One small frame of the training animation: generated points over the true centres."""
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.4)
    ax.scatter(centres[:, 0], centres[:, 1], marker="x", color="k", s=15)
    ax.set(xlim=(-GRID_LIMIT, GRID_LIMIT), ylim=(-GRID_LIMIT, GRID_LIMIT), aspect="equal")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def assemble_gif(frames: list[Path], path, frame_ms: int = 200) -> None:
    """Join PNG frames into a looping animated GIF (Pillow, which matplotlib depends on)."""
    from PIL import Image

    images = [Image.open(f).convert("P", palette=Image.ADAPTIVE) for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, save_all=True, append_images=images[1:], duration=frame_ms, loop=0)


def image_grid(images: np.ndarray, title: str, path, columns: int = 10) -> None:
    """Images (N, 1, 28, 28) in [0, 1] tiled in rows of ``columns``."""
    n = len(images)
    rows = int(np.ceil(n / columns))
    tiles = np.ones((rows * columns, 28, 28), dtype=np.float32)
    tiles[:n] = images[:, 0]
    mosaic = tiles.reshape(rows, columns, 28, 28).transpose(0, 2, 1, 3).reshape(rows * 28, columns * 28)
    fig, ax = plt.subplots(figsize=(columns * 0.6, rows * 0.6 + 0.4))
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` points (shorter at the start), same length as ``values``."""
    cumulative = np.cumsum(np.insert(np.asarray(values, dtype=np.float64), 0, 0.0))
    index = np.arange(1, len(values) + 1)
    start = np.maximum(index - window, 0)
    return (cumulative[index] - cumulative[start]) / (index - start)


def loss_curves(csv_path, tags: list[str], path, window: int = 50, title: str = "training curves") -> None:
    """One panel per tag of ``metrics.csv``: raw values (faint) and their moving average.

    The window is ``window`` points, narrowed to a twentieth of a tag's points
    for tags logged rarely (per-epoch evaluations), so that it smooths noise
    without hiding the trend.
    """
    scalars = read_scalars(csv_path)
    tags = [t for t in tags if t in scalars]
    fig, axes = plt.subplots(len(tags), 1, figsize=(8, 2.2 * len(tags)), sharex=True, squeeze=False)
    for ax, tag in zip(axes[:, 0], tags):
        steps, values = scalars[tag]
        ax.plot(steps, values, alpha=0.3, lw=0.7, label="raw")
        width = min(window, max(1, len(values) // 20))
        ax.plot(steps, moving_average(np.array(values), width), lw=1.5, label=f"moving average ({width})")
        ax.set_ylabel(tag, fontsize=8)
    axes[0, 0].set_title(title)
    for ax in axes[:, 0]:
        ax.legend(fontsize=7, loc="best")
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    _save(fig, path)
