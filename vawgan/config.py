"""One typed configuration object, loaded from YAML, saved next to every model.

Every default lives here and nowhere else. A recipe's ``conf/*.yaml`` only
overrides what it changes; unknown keys are an error (a typo in a config
should not silently fall back to a default).

Sections:

* ``corpus``   where the recordings are and how they are split,
* ``features`` WORLD analysis and mel-cepstrum settings,
* ``model``    network sizes,
* ``train``    the three-phase schedule, optimizers and device.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vawgan.errors import VawganError
from vawgan.utils import atomic_path


@dataclass
class CorpusConfig:
    """Where the corpus lives and how utterances are split (by utterance id)."""

    root: str | None = None  # None: the shared corpus beside the checkout, if present
    layout: str = "auto"  # auto | speaker_dirs | arctic | vcc
    speakers: list[str] | None = None  # None: every speaker found
    dev_fraction: float = 0.1
    eval_fraction: float = 0.1
    # Fixed splits instead of the hash: split -> list of [first, last] utterance-id ranges, inclusive, compared
    # as strings (zero-padded ids such as arctic_a0001 sort correctly). Ranges are tried in the order eval,
    # dev, train; an id in none of them is left out of the manifests. A speaker listed in
    # speaker_split_ranges uses its own ranges instead (e.g. a speaker who recorded only a few sentences).
    split_ranges: dict[str, list[list[str]]] | None = None
    speaker_split_ranges: dict[str, dict[str, list[list[str]]]] = field(default_factory=dict)
    # parallel: every speaker trains on all of its train sentences. non_parallel: each train sentence is kept
    # by one speaker only (vawgan.corpus.non_parallel_train) and training uses no alignment; the parallel
    # pairs are then written to train_parallel.tsv for the GMM baseline alone.
    protocol: str = "parallel"


@dataclass
class FeatureConfig:
    """WORLD analysis and mel-cepstral analysis settings (SPEC section 2)."""

    sample_rate: int = 16000
    frame_period: float = 5.0  # ms
    f0_method: str = "harvest"  # harvest | dio
    f0_floor: float = 60.0  # Hz, default search range for speakers not in f0_ranges
    f0_ceil: float = 500.0
    f0_ranges: dict[str, list[float]] = field(default_factory=dict)  # speaker -> [floor, ceil]
    mcep_order: int = 39  # c0..c39
    mcep_alpha: float | None = None  # None: pysptk.util.mcepalpha(sample_rate)
    fft_size: int | None = None  # None: pyworld.get_cheaptrick_fft_size(sample_rate)
    silence_threshold_db: float = -35.0  # dB below the utterance's 95th-percentile frame power: silence
    # D4C (aperiodicity, most of a DIO analysis's time) on every n-th frame only, the coded aperiodicity
    # interpolated in time between them; 1 analyses every frame as WORLD does. docs/features.md.
    aperiodicity_step: int = 1

    def f0_range(self, speaker: str | None) -> tuple[float, float]:
        """The F0 search range for ``speaker`` (its own if configured, else the default)."""
        floor, ceil = self.f0_ranges.get(speaker, (self.f0_floor, self.f0_ceil)) if speaker else (self.f0_floor, self.f0_ceil)
        return float(floor), float(ceil)


@dataclass
class ModelConfig:
    """Network sizes (SPEC section 4)."""

    input_dim: int = 39  # c1..c39
    latent_dim: int = 64
    speaker_dim: int = 16  # size of the learned speaker embedding fed to the decoder
    encoder_hidden: list[int] = field(default_factory=lambda: [256, 128])
    decoder_hidden: list[int] = field(default_factory=lambda: [128, 256])
    critic_hidden: list[int] = field(default_factory=lambda: [64, 32])
    # The VAE's likelihood N(x; x̂, diag σ²): "learned" trains one σ per dimension; "unit" fixes σ = 1 as
    # in the reference, which on normalized features leaves the latent nearly unused (docs/training.md).
    decoder_variance: str = "learned"
    # Where the decoder sees the speaker code: "input" (concatenated to z, Hsu et al.) or "all_layers"
    # (concatenated to the input of every layer, so the code can act at every depth).
    decoder_conditioning: str = "all_layers"
    critic_conditional: bool = False  # give the critic its own learned speaker embedding too
    # Neighbouring frames the encoder sees on either side of each frame (0: the frame alone, as in the
    # reference). k > 0 encodes 2k + 1 frames of the utterance; decoder and critic stay frame-wise.
    context_frames: int = 0


@dataclass
class TrainConfig:
    """The three-phase schedule of the reference experiment and its options."""

    batch_size: int = 128
    vae_epochs: int = 25
    critic_epochs: int = 5
    adversarial_epochs: int = 25
    learning_rate: float = 1e-3
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    kl_weight: float = 1.0  # weight of the KL term of the VAE loss (1: the ELBO; < 1 keeps more in the latent)
    kl_warmup_epochs: float = 0.0  # ramp the KL weight linearly from 0 over this many VAE epochs (0: off)
    # > 0: semi-supervised training on a parallel corpus. Every VAE and generator step also fits a batch of
    # DTW-aligned frame pairs of the training manifest's parallel sentences (a source frame's posterior mean,
    # decoded with the target speaker's code, against the target's frame), weighted by this (docs/training.md).
    parallel_weight: float = 0.0
    # > 0 (with parallel_weight): train a provisional VAE for this many epochs on the first alignment, then
    # re-align every parallel sentence by DTW between its conversion and the target, and train on those pairs
    # (vawgan.train.realign_pairs; the GMM baseline refines its alignment the same way).
    realign_epochs: int = 0
    n_critic: int = 1  # critic steps per generator step (WGAN-GP papers use 5)
    gp_lambda: float = 10.0
    alpha_mode: str = "scale"  # scale: alpha = |E_rec / E_D| (detached); fixed: alpha = alpha_value
    alpha_value: float = 1.0
    adversarial_target: str = "conversion"  # conversion | reconstruction
    exclude_silence: bool = True
    seed: int = 0
    # > 1: train an ensemble, this many models with seeds seed, seed + 1, ...: the first in the model directory,
    # the others in its members/seed-<k>/ (vawgan.model_dir.member_dir). `vawgan convert` averages their
    # converted mel-cepstra: with conf/parallel.yaml, 8 models convert 0.17 dB closer to the target than
    # one (feature level 3.39 -> 3.22 dB, Flite eval split; docs/training.md).
    members: int = 1
    checkpoint_every: int = 1000  # steps
    device: str = "auto"
    num_threads: int | None = 1  # intra-op CPU threads; None: one per core. See docs/training.md for 1 vs 2
    amp: bool = False  # bf16 autocast (for GPUs; on a CPU only worth it with AVX-512 BF16 or AMX)
    compile: bool = False  # torch.compile encoder, decoder and critic (eager steps; compiling is slow on a CPU)
    cuda_graphs: bool = True  # on one GPU, replay each training step as one captured CUDA graph
    tf32: bool = False  # on a GPU, float32 matrix products in TensorFloat-32: faster (docs/training.md, "On a GPU"); no CPU effect
    tensorboard: bool = True


class SectionedConfig:
    """Base of every configuration made of dataclass sections.

    A subclass is a dataclass whose fields are sections, each one a dataclass
    with defaults (``field(default_factory=SectionClass)``). :class:`Config`
    is the speech pipeline's; the secondary GAN models define their own in
    :mod:`vawgan.gans.config` and load them with the same :func:`load_config`.
    """

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "config"):
        """Build a config from nested dicts, rejecting unknown sections and keys."""
        data = data or {}
        if not isinstance(data, dict):
            raise VawganError(f"{source}: expected a mapping of sections at the top level")
        sections = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = set(data) - set(sections)
        if unknown:
            raise VawganError(f"{source}: unknown section(s) {sorted(unknown)}; known: {sorted(sections)}")
        kwargs = {}
        for section_field in dataclasses.fields(cls):
            section_cls = section_field.default_factory
            values = data.get(section_field.name) or {}
            known = {f.name for f in dataclasses.fields(section_cls)}
            bad = set(values) - known
            if bad:
                raise VawganError(f"{source}: unknown key(s) {sorted(bad)} in section '{section_field.name}'; "
                                  f"known: {sorted(known)}")
            kwargs[section_field.name] = section_cls(**values)
        return cls(**kwargs)


@dataclass
class Config(SectionedConfig):
    """The whole configuration of one experiment."""

    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The nested dicts of a YAML config file, unchecked; one-line errors for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise VawganError(f"{path}: config file not found")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise VawganError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None


def load_config(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None,
                config_cls: type[SectionedConfig] = Config):
    """Load a YAML config (or the defaults when ``path`` is None) and apply overrides.

    ``overrides`` maps dotted keys to values, e.g. ``{"train.vae_epochs": 2}``.
    ``config_cls`` is the configuration type to build (:class:`Config` unless
    another area, such as the GAN models, has its own).
    """
    data = read_config_file(path) if path is not None else {}
    source = str(path) if path is not None else "defaults"
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        if not key:
            raise VawganError(f"override {dotted!r}: expected section.key")
        data.setdefault(section, {})[key] = value
    return config_cls.from_dict(data, source)


def save_config(config: SectionedConfig, path: str | os.PathLike) -> None:
    """Write ``config`` as YAML, atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
