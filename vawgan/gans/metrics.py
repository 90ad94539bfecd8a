"""Metrics that tell a working GAN from a collapsed one.

Grid: :func:`mode_coverage` counts the captured modes and the share of
high-quality samples. Digits: a small classifier trained once on the real
training images (:func:`digit_classifier`, cached on disk) scores generated
images by the spread of their predicted classes, the classifier's mean
confidence and a Frechet distance between its feature statistics on real and
generated images (the FID recipe with a digit network in place of Inception).
:func:`detect_collapse` turns those numbers into a yes/no with a reason.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import nn

from vawgan.checkpoint import load_checkpoint, save_checkpoint
from vawgan.gans.data import DigitImages, cache_dir

log = logging.getLogger(__name__)


@dataclass
class ModeCoverage:
    """Grid-metric result: modes captured out of ``n_modes``, the high-quality share and what the rest is."""

    modes: int
    n_modes: int
    high_quality: float  # fraction of samples within 3 sigma of some centre
    counts: list[int]  # samples within 3 sigma of each centre
    near_miss: float  # fraction 3-6 sigma from the nearest centre (modes too wide)

    @property
    def far_out(self) -> float:
        """Fraction more than 6 sigma from every centre (on the grid: between modes)."""
        return max(0.0, 1.0 - self.high_quality - self.near_miss)


def mode_coverage(samples: np.ndarray, centres: np.ndarray, std: float, share: float = 0.2) -> ModeCoverage:
    """Count modes and high-quality samples of generated 2-D points.

    A sample is *high quality* when it lies within 3 ``std`` of its nearest
    centre. A mode is *captured* when at least ``share`` of its fair portion of
    the samples, ``share * N / n_modes``, lie within 3 ``std`` of it (with
    25 000 samples and the default 0.2: 200 points). The rule ignores a handful
    of stray points but does not demand a uniform spread.
    Samples drawn from the true mixture itself score 25/25 and
    ``1 - exp(-4.5)`` = 98.9 % high quality (the 3-sigma disc of a 2-D
    Gaussian), which is the ceiling of the second number.

    ``near_miss``, the share between 3 and 6 ``std`` from the nearest centre
    (1.1 % for the true mixture), tells modes that are too wide from samples
    far from every mode (on the grid: on the bridges between neighbours),
    which make up the rest.
    """
    distances = np.linalg.norm(samples[:, None, :] - centres[None, :, :], axis=2)
    nearest = distances.argmin(axis=1)
    nearest_distance = distances[np.arange(len(samples)), nearest]
    good = nearest_distance <= 3 * std
    counts = np.bincount(nearest[good], minlength=len(centres))
    captured = int((counts >= share * len(samples) / len(centres)).sum())
    near_miss = float(((nearest_distance > 3 * std) & (nearest_distance <= 6 * std)).mean())
    return ModeCoverage(captured, len(centres), float(good.mean()), counts.tolist(), near_miss)


def fit_gmm(samples: np.ndarray, n_components: int = 25, seed: int = 0, max_points: int = 5000):
    """A ``n_components`` Gaussian mixture fitted to (a random subset of) the samples, for plotting.

    The fit runs on one BLAS thread: on a small problem, extra threads only
    spin (it took 17 s instead of 0.6 s on a busy 2-core machine).
    """
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    subset = samples[rng.permutation(len(samples))[:max_points]]
    with threadpool_limits(1):
        return GaussianMixture(n_components, covariance_type="full", init_params="k-means++",
                               random_state=seed).fit(subset)


class DigitClassifier(nn.Module):
    """A small CNN: two conv + pool blocks, a 64-unit feature layer, 10 logits."""

    feature_dim = 64

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, self.feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(self.feature_dim, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(features, logits)``."""
        features = self.body(x)
        return features, self.head(features)


def _fingerprint(digits: DigitImages) -> str:
    """A short hash of the training images and labels, naming the cached classifier."""
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(digits.train_images).tobytes())
    h.update(digits.train_labels.tobytes())
    return h.hexdigest()[:12]


def train_digit_classifier(digits: DigitImages, device, steps: int = 1500, batch_size: int = 64,
                           seed: int = 0) -> tuple[DigitClassifier, float]:
    """Train :class:`DigitClassifier` on the real training images; return it and its test accuracy."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DigitClassifier().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = torch.from_numpy(digits.train_images)
    labels = torch.from_numpy(digits.train_labels)
    model.train()
    for _ in range(steps):
        index = torch.randint(len(images), (batch_size,), generator=generator)
        _, logits = model(images[index].to(device))
        loss = F.cross_entropy(logits, labels[index].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    predicted = classify(model, digits.test_images, device)[1].argmax(1)
    return model, float((predicted == digits.test_labels).mean())


@torch.no_grad()
def classify(model: DigitClassifier, images: np.ndarray | torch.Tensor, device,
             batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, 64) and class probabilities (N, 10) of images (N, 1, 28, 28) in [0, 1]."""
    images = torch.as_tensor(images)
    features, probabilities = [], []
    for start in range(0, len(images), batch_size):
        f, logits = model(images[start:start + batch_size].to(device))
        features.append(f.cpu())
        probabilities.append(logits.softmax(1).cpu())
    return torch.cat(features).numpy().astype(np.float64), torch.cat(probabilities).numpy()


def digit_classifier(digits: DigitImages, device, steps: int = 1500) -> tuple[DigitClassifier, float]:
    """The classifier for these training images: loaded from the cache, or trained once and cached.

    The cache file is ``<cache_dir>/digit_classifier_<hash of the training set>_<steps>.pt``
    (see :func:`vawgan.gans.data.cache_dir`), so MNIST and the fallback digits
    each get their own. Returns the model and its accuracy on the test images.
    The global random generators are left as they were (building and training
    the classifier use forked ones), so a GAN trainer that calls this draws
    the same random numbers whether the classifier was cached or not.
    """
    path = cache_dir() / f"digit_classifier_{_fingerprint(digits)}_{steps}.pt"
    cuda_devices = [device] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        model = DigitClassifier().to(device)
        if path.is_file():
            state = load_checkpoint(path, map_location=device)
            model.load_state_dict(state["model"])
            model.eval()
            return model, state["test_accuracy"]
        log.info("training the digit classifier on %d real images (cached at %s)", len(digits.train_images), path)
        model, accuracy = train_digit_classifier(digits, device, steps)
    save_checkpoint(path, {"model": model.state_dict(), "test_accuracy": accuracy, "source": digits.source})
    return model, accuracy


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (the FID formula).

    ``|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2))``. When the matrix
    square root fails (a singular covariance, e.g. from a collapsed generator)
    it is retried with a tiny ridge on both covariances; the imaginary
    round-off of ``sqrtm`` is dropped.
    """
    mu_a, mu_b = features_a.mean(0), features_b.mean(0)
    cov_a, cov_b = np.cov(features_a, rowvar=False), np.cov(features_b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # singular products are handled below
        root = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():
        ridge = 1e-6 * np.eye(len(cov_a))
        root = linalg.sqrtm((cov_a + ridge) @ (cov_b + ridge))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * np.real(root)))


def pairwise_diversity(images: np.ndarray, max_images: int = 500, seed: int = 0) -> float:
    """Mean Euclidean distance between pairs of images (on a random subset): 0 for identical images."""
    rng = np.random.default_rng(seed)
    flat = torch.from_numpy(np.asarray(images, dtype=np.float32).reshape(len(images), -1))
    flat = flat[torch.from_numpy(rng.permutation(len(flat))[:max_images])]
    distances = torch.cdist(flat, flat)
    n = len(flat)
    return float(distances.sum() / max(n * (n - 1), 1))


@dataclass
class DigitScores:
    """Digit-metric result for one set of images."""

    classes_present: int  # digit classes holding at least 2 % of the predictions
    class_entropy: float  # entropy of the predicted-class histogram / log(10): 1 = uniform, 0 = one class
    mean_confidence: float  # mean of the classifier's top probability
    frechet: float  # Frechet distance of classifier features to the real test images
    diversity: float  # mean pairwise distance of the images
    class_histogram: list[int]

    def as_dict(self) -> dict:
        return asdict(self)


def score_digits(model: DigitClassifier, images: np.ndarray, reference_features: np.ndarray, device) -> DigitScores:
    """Score images against the classifier features of the real test images."""
    features, probabilities = classify(model, images, device)
    histogram = np.bincount(probabilities.argmax(1), minlength=10)
    shares = histogram / histogram.sum()
    nonzero = shares[shares > 0]
    return DigitScores(
        classes_present=int((shares >= 0.02).sum()),
        class_entropy=float(-(nonzero * np.log(nonzero)).sum() / np.log(10)) + 0.0,  # + 0.0: no "-0.000"
        mean_confidence=float(probabilities.max(1).mean()),
        frechet=frechet_distance(features, reference_features),
        diversity=pairwise_diversity(images),
        class_histogram=histogram.tolist(),
    )


class DigitEvaluator:
    """Scores generated digits against the real test images, with the real-vs-real floor.

    The floor scores ``n`` real *training* images the same way as ``n``
    generated ones, so the Frechet distance of a perfect generator is that
    floor rather than 0 (finite-sample bias), and the real data's diversity is
    the yardstick of :func:`detect_collapse`.
    """

    def __init__(self, digits: DigitImages, device, n: int = 1000, seed: int = 0, classifier_steps: int = 1500):
        self.device = device
        self.n = min(n, len(digits.train_images))
        self.model, self.classifier_accuracy = digit_classifier(digits, device, classifier_steps)
        self.reference_features, _ = classify(self.model, digits.test_images, device)
        rng = np.random.default_rng(seed)
        real = digits.train_images[rng.permutation(len(digits.train_images))[: self.n]]
        self.floor = self.score(real)

    def score(self, images: np.ndarray) -> DigitScores:
        return score_digits(self.model, images, self.reference_features, self.device)


def detect_collapse(scores: DigitScores, real: DigitScores, min_classes: int = 8,
                    min_diversity: float = 0.5) -> str | None:
    """Say why the generated images look collapsed, or return None when they don't.

    Collapse is declared when fewer than ``min_classes`` digit classes each hold
    at least 2 % of the samples, or when the samples' pairwise diversity is
    below ``min_diversity`` times the real images'.
    """
    reasons = []
    if scores.classes_present < min_classes:
        reasons.append(f"only {scores.classes_present} of 10 digit classes hold >= 2 % of the samples "
                       f"(threshold {min_classes})")
    ratio = scores.diversity / real.diversity if real.diversity > 0 else 0.0
    if ratio < min_diversity:
        reasons.append(f"sample diversity is {ratio:.2f} of the real images' (threshold {min_diversity})")
    return "; ".join(reasons) or None
