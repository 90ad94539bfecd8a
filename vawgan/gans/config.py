"""Configurations of the secondary GAN models, loaded like the speech pipeline's.

Each verb has its own :class:`~vawgan.config.SectionedConfig` with the
sections ``data``, ``model`` and ``train``; :func:`vawgan.config.load_config`
reads a recipe's YAML into it (``config_cls=Grid2DConfig`` and so on), so
unknown keys are an error here too. The defaults are the reference
hyperparameters of SPEC section 6; only the run lengths (and BEGAN's width)
are cut so that a default run finishes on a CPU in minutes (the recipes'
``*_full.yaml`` restore the reference lengths).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vawgan.config import BETAS, NOT_NEGATIVE, POSITIVE, SectionedConfig, at_least

# The settings every GAN run shares, with what they may be (vawgan.config.SectionedConfig.limits).
RUN_LIMITS = {
    "train.epochs": NOT_NEGATIVE,
    "train.batch_size": at_least(1),
    "train.learning_rate": POSITIVE,
    "train.adam_betas": BETAS,
    "train.seed": NOT_NEGATIVE,
    "train.num_threads": at_least(1),
    "model.noise_dim": at_least(1),
}


@dataclass
class RunSettings:
    """Settings every GAN trainer has: seed, device and CPU threads, TensorBoard logging."""

    seed: int = 0
    device: str = "auto"
    num_threads: int | None = None  # None: PyTorch's default; 1 is fastest for these small nets on a busy CPU
    tensorboard: bool = False


@dataclass
class GridDataConfig:
    """The 5 x 5 mixture of Gaussians (SPEC section 6)."""

    grid_values: list[float] = field(default_factory=lambda: [-21.0, -10.5, 0.0, 10.5, 21.0])
    variance: float = 0.1
    samples_per_mode: int = 4000


@dataclass
class GridModelConfig:
    """Generator and discriminator MLPs for the grid."""

    kind: str = "coulomb"  # coulomb | vanilla
    noise_dim: int = 4  # uniform noise in [-1, 1]
    hidden: int = 128
    layers: int = 3


@dataclass
class GridTrainConfig(RunSettings):
    """Optimizer, Coulomb-potential and evaluation settings for the grid."""

    # One epoch = one pass over the 100 000 training points = 195 iterations. 300 epochs took 887 s
    # in all (824 s of training) on one lightly loaded CPU core, 696 s on a quiet one without the
    # per-epoch frames: the 15-minute budget.
    epochs: int = 300
    batch_size: int = 512
    # One intra-op thread: a second one makes these 128-unit networks only ~25 % faster on an idle
    # 2-core machine (5 epochs in 9 s instead of 12 s), but two runs sharing the two cores each
    # took 174 s instead of 13 s (threads spin-waiting for each other). The *_full.yaml configs,
    # run one at a time, set null (PyTorch's default: every core).
    num_threads: int | None = 1
    learning_rate: float = 1e-3
    adam_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    lr_decay: float = 1e-4  # lr_t = lr / (1 + lr_decay * t)
    epsilon: float = 3.0  # Plummer kernel softening, Coulomb GAN only
    epsilon_halve_every: int = 5000  # iterations
    # Lower bound of epsilon (0: none, as in the reference). Without one, epsilon reaches 3e-5 by
    # iteration 90 000 and the potential targets (~1/epsilon) blow up: the reference's 500 epochs
    # ended collapsed here (docs/gans.md). conf/coulomb_full.yaml sets one.
    epsilon_min: float = 0.0
    plummer_dim: int = 3
    eval_samples: int = 25000
    mode_share: float = 0.2  # a mode counts with >= this share of its fair 1/25 of the samples
    frames: bool = True  # one PNG per epoch, assembled into an animated GIF


@dataclass
class Grid2DConfig(SectionedConfig):
    """``vawgan gan2d``: vanilla or Coulomb GAN on the 25-Gaussian grid."""

    data: GridDataConfig = field(default_factory=GridDataConfig)
    model: GridModelConfig = field(default_factory=GridModelConfig)
    train: GridTrainConfig = field(default_factory=GridTrainConfig)

    limits = RUN_LIMITS


@dataclass
class DigitsDataConfig:
    """Where the digit images come from (see :func:`vawgan.gans.data.load_digit_images`)."""

    mnist_dir: str | None = None  # None: search the documented places, then fall back to sklearn digits
    allow_fallback: bool = True  # use sklearn's 8x8 digits upsampled to 28x28 when no MNIST is found
    max_train_images: int | None = None  # cap the training set (None: all of it)


@dataclass
class ImageModelConfig:
    """DCGAN (SPEC section 6) or a fully connected GAN."""

    kind: str = "dcgan"  # dcgan | mlp
    noise_dim: int = 62
    mlp_hidden: list[int] = field(default_factory=lambda: [256, 512])  # MLP GAN only, generator order
    leaky_slope: float = 0.2


@dataclass
class ImageTrainConfig(RunSettings):
    """Adam with BCE, as in the reference DCGAN."""

    # 60 epochs of the fallback digits = 660 steps: about 6 CPU minutes for the DCGAN. It draws all ten
    # digits from about epoch 40 on; at 10 epochs (110 steps) it still drew one grey blob (docs/gans.md).
    epochs: int = 60
    batch_size: int = 128
    learning_rate: float = 2e-4
    adam_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    sample_epochs: list[int] = field(default_factory=lambda: [1, 10, 30, 60])  # sample grids (and the last epoch)
    eval_every: int = 10  # epochs between digit-metric evaluations
    eval_samples: int = 1000
    classifier_steps: int = 1500  # training steps of the metric's digit classifier (cached per value)
    collapse_min_classes: int = 8  # fewer digit classes than this holding >= 2 % each: collapse
    collapse_min_diversity: float = 0.5  # sample diversity below this fraction of the real data's: collapse


@dataclass
class ImageGanConfig(SectionedConfig):
    """``vawgan mnist``: DCGAN or MLP GAN on digits."""

    data: DigitsDataConfig = field(default_factory=DigitsDataConfig)
    model: ImageModelConfig = field(default_factory=ImageModelConfig)
    train: ImageTrainConfig = field(default_factory=ImageTrainConfig)

    limits = RUN_LIMITS


@dataclass
class BeganModelConfig:
    """Generator and autoencoder discriminator sizes."""

    noise_dim: int = 64
    hidden: int = 64  # the autoencoder's bottleneck size
    channels: int = 16


@dataclass
class BeganTrainConfig(ImageTrainConfig):
    """BEGAN's equilibrium control (Berthelot et al. 2017) on top of the image-GAN settings."""

    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-4
    sample_epochs: list[int] = field(default_factory=lambda: [1, 5, 10, 20])
    gamma: float = 0.5  # diversity ratio, (0, 1]
    lambda_k: float = 0.001


@dataclass
class BeganConfig(SectionedConfig):
    """``vawgan began``: BEGAN on digits."""

    data: DigitsDataConfig = field(default_factory=DigitsDataConfig)
    model: BeganModelConfig = field(default_factory=BeganModelConfig)
    train: BeganTrainConfig = field(default_factory=BeganTrainConfig)

    limits = RUN_LIMITS
