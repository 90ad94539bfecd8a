"""Data sets of the secondary GAN models.

* :func:`grid_centres` / :func:`make_grid_data`: the 25-Gaussian grid of SPEC
  section 6 (centres {-21, -10.5, 0, 10.5, 21}^2, variance 0.1, 4000 points each).
* :func:`read_idx`: a parser for the IDX files that MNIST is distributed in,
  plain or gzipped.
* :func:`load_digit_images`: MNIST from local files (never downloaded) or, when
  none are found, scikit-learn's bundled 8 x 8 digits upsampled to 28 x 28.
"""

from __future__ import annotations

import gzip
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vawgan.errors import VawganError


def cache_dir() -> Path:
    """Where trained helper models (the digit classifier) are kept.

    ``$VAWGAN_CACHE`` if set, else ``$XDG_CACHE_HOME/vawgan``, else ``~/.cache/vawgan``.
    """
    if os.environ.get("VAWGAN_CACHE"):
        return Path(os.environ["VAWGAN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vawgan"


def grid_centres(grid_values: list[float]) -> np.ndarray:
    """The mixture's centres: every (x, y) pair of ``grid_values``, shape (len^2, 2)."""
    return np.array(list(itertools.product(grid_values, grid_values)), dtype=np.float32)


def make_grid_data(grid_values: list[float], variance: float, samples_per_mode: int, seed: int = 0) -> np.ndarray:
    """``samples_per_mode`` isotropic Gaussian points around each centre, shuffled, float32 (N, 2)."""
    rng = np.random.default_rng(seed)
    centres = grid_centres(grid_values)
    points = np.repeat(centres, samples_per_mode, axis=0)
    points += rng.normal(0.0, np.sqrt(variance), size=points.shape).astype(np.float32)
    return points[rng.permutation(len(points))]


# IDX type byte -> big-endian NumPy dtype (the IDX format's table).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (``*-idx3-ubyte`` and friends), gzipped when the name ends in ``.gz``.

    The header is two zero bytes, a type byte, the number of dimensions, then
    each dimension as a big-endian 32-bit integer; the data follow. A file whose
    header or length does not match raises :class:`VawganError` naming it.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise VawganError(f"{path}: cannot read IDX file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise VawganError(f"{path}: not an IDX file (bad magic number); expected MNIST's *-ubyte files")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise VawganError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise VawganError(f"{path}: IDX header promises shape {shape} ({expected} bytes) but the file holds "
                          f"{len(raw) - header} bytes of data; the file is truncated or damaged")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def mnist_search_dirs(mnist_dir: str | None = None) -> list[Path]:
    """The places searched for MNIST, in order.

    ``mnist_dir`` (the config's ``data.mnist_dir``) when given; otherwise
    ``$VAWGAN_MNIST_DIR``, ``<cache_dir>/mnist``, ``./data/MNIST/raw`` (the
    torchvision layout) and ``~/data/mnist``.
    """
    if mnist_dir:
        return [Path(mnist_dir)]
    dirs = [Path(os.environ["VAWGAN_MNIST_DIR"])] if os.environ.get("VAWGAN_MNIST_DIR") else []
    return dirs + [cache_dir() / "mnist", Path("data/MNIST/raw"), Path.home() / "data" / "mnist"]


def _find_mnist_file(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


@dataclass
class DigitImages:
    """Digit images as float32 (N, 1, 28, 28) in [0, 1] with int64 labels, and where they came from."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str  # one line for logs and reports
    is_fallback: bool


def load_mnist(directory: Path) -> DigitImages:
    """Read the four MNIST IDX files from ``directory`` (each may be gzipped)."""
    paths = {key: _find_mnist_file(directory, stem) for key, stem in MNIST_FILES.items()}
    missing = [MNIST_FILES[k] for k, p in paths.items() if p is None]
    if missing:
        raise VawganError(f"{directory}: MNIST file(s) missing: {', '.join(missing)} (optionally .gz)")
    arrays = {key: read_idx(path) for key, path in paths.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise VawganError(f"{paths[f'{split}_images']}: expected N x 28 x 28 images matching "
                              f"{len(labels)} labels, found shape {images.shape}")
    return DigitImages(
        (arrays["train_images"][:, None] / 255.0).astype(np.float32), arrays["train_labels"].astype(np.int64),
        (arrays["test_images"][:, None] / 255.0).astype(np.float32), arrays["test_labels"].astype(np.int64),
        source=f"MNIST from {directory}", is_fallback=False)


def load_sklearn_digits(test_fraction: float = 0.2, seed: int = 0) -> DigitImages:
    """scikit-learn's bundled 1797 8 x 8 digits, bilinearly upsampled to 28 x 28.

    A real (small, blurry) handwritten-digit set that ships with a package, so
    the image GANs and their metrics work without any download. The split is
    stratified and fixed by ``seed``.
    """
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    small = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    images = F.interpolate(small, size=(28, 28), mode="bilinear", align_corners=False).clamp_(0, 1).numpy()
    labels = digits.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(images, labels, test_size=test_fraction,
                                                        random_state=seed, stratify=labels)
    return DigitImages(train_x, train_y, test_x, test_y,
                       source="scikit-learn's 8x8 digits upsampled to 28x28 (fallback: no MNIST files found)",
                       is_fallback=True)


def load_digit_images(mnist_dir: str | None = None, allow_fallback: bool = True) -> DigitImages:
    """MNIST from the first searched place that has it, else the scikit-learn digits.

    Nothing is ever downloaded. When ``mnist_dir`` is given it must hold MNIST
    (a wrong path is an error, not a silent fallback). Otherwise, when no
    searched place has the files, the fallback's ``source`` line names every
    place that was searched; with ``allow_fallback=False`` that becomes an error.
    """
    dirs = mnist_search_dirs(mnist_dir)
    if mnist_dir:
        return load_mnist(dirs[0])
    for directory in dirs:
        if _find_mnist_file(directory, MNIST_FILES["train_images"]):
            return load_mnist(directory)
    looked = ", ".join(str(d) for d in dirs)
    if not allow_fallback:
        raise VawganError(f"no MNIST files ({MNIST_FILES['train_images']}[.gz] ...) in: {looked}; "
                          "put them in one of these places or set data.mnist_dir")
    digits = load_sklearn_digits()
    digits.source = f"{digits.source}; looked in: {looked}"
    return digits
