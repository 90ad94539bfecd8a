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
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

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
    # (vawgan.training.realign_pairs; the GMM baseline refines its alignment the same way).
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


# A limit on a setting: a test of the (already typed) value and what it says when the test fails.
Limit = tuple[Callable[[Any], bool], str]


def at_least(low: int) -> Limit:
    return (lambda value: value >= low, f"must be at least {low}")


POSITIVE: Limit = (lambda value: value > 0, "must be greater than 0")
NOT_NEGATIVE: Limit = (lambda value: value >= 0, "must not be negative")
FRACTION: Limit = (lambda value: 0 <= value < 1, "must be at least 0 and below 1")
SIZES: Limit = (lambda value: all(size >= 1 for size in value), "must be layer sizes of at least 1")
BETAS: Limit = (lambda value: len(value) == 2 and all(0 <= beta < 1 for beta in value),
                "must be two numbers, each at least 0 and below 1")


def one_of(*choices: str) -> Limit:
    return (lambda value: value in choices, f"is not one of {', '.join(choices)}")


def _describe(kind) -> str:
    """What a value of type ``kind`` looks like, for messages ("an integer", "a list of numbers")."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return " or ".join("null" if arg is type(None) else _describe(arg) for arg in args)
    if typing.get_origin(kind) is list:
        return f"a list of {_describe(args[0]).removeprefix('an ').removeprefix('a ')}s"
    if typing.get_origin(kind) is dict:
        return f"a mapping of {_describe(args[0])} to {_describe(args[1])}"
    return {bool: "true or false", int: "an integer", float: "a finite number", str: "text"}.get(kind, str(kind))


def typed_value(value: Any, kind) -> Any:
    """``value`` as a value of type ``kind`` (a config field's type); ValueError when it is not one.

    YAML reads ``1e-4`` as text (it wants ``1.0e-4``), so text that is a
    number is taken for a number field; an integer is taken for a number
    field too. Nothing else is converted: ``abc`` is no integer, ``2.5`` no
    integer, ``1`` no true/false. Numbers must be finite.
    """
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        return typed_value(value, next(arg for arg in args if arg is not type(None)))  # every union is X | None
    if origin is list and isinstance(value, list):
        return [typed_value(item, args[0]) for item in value]
    if origin is dict and isinstance(value, dict):
        return {typed_value(k, args[0]): typed_value(v, args[1]) for k, v in value.items()}
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is float and not isinstance(value, bool) and isinstance(value, (int, float, str)):
        try:
            number = float(value)
        except ValueError:
            raise ValueError(kind) from None
        if math.isfinite(number):
            return number
    if kind is str and isinstance(value, str):
        return value
    raise ValueError(kind)


class SectionedConfig:
    """Base of every configuration made of dataclass sections.

    A subclass is a dataclass whose fields are sections, each one a dataclass
    with defaults (``field(default_factory=SectionClass)``). :class:`Config`
    is the speech pipeline's; the secondary GAN models define their own in
    :mod:`vawgan.gans.config` and load them with the same :func:`load_config`.

    Every value read is checked against its field's type (:func:`typed_value`)
    and against the subclass's :attr:`limits` (``"section.key"`` -> a
    :data:`Limit`), so that a bad setting is one line before anything runs or
    is written, not a crash in the middle of training.
    """

    limits: dict[str, Limit] = {}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "config", origins: dict[str, str] | None = None):
        """Build a config from nested dicts, rejecting unknown sections and keys, ill-typed and out-of-range values.

        A message about a value names ``source`` (the file), or the origin
        ``origins`` gives its dotted key (``--set`` for an override).
        """
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
            if not isinstance(values, dict):
                raise VawganError(f"{source}: section '{section_field.name}' must be a mapping of keys to values, "
                                  f"not {values!r}")
            known = {f.name for f in dataclasses.fields(section_cls)}
            bad = set(values) - known
            if bad:
                raise VawganError(f"{source}: unknown key(s) {sorted(bad)} in section '{section_field.name}'; "
                                  f"known: {sorted(known)}")
            kinds = typing.get_type_hints(section_cls)
            typed = {}
            for key, value in values.items():
                dotted = f"{section_field.name}.{key}"
                where = (origins or {}).get(dotted, f"{source}:")
                try:
                    typed[key] = typed_value(value, kinds[key])
                except ValueError:
                    raise VawganError(f"{where} {dotted}={value!r} must be {_describe(kinds[key])}") from None
                check, allowed = cls.limits.get(dotted, (lambda _: True, ""))
                if typed[key] is not None and not check(typed[key]):
                    raise VawganError(f"{where} {dotted}={value!r} {allowed}")
            kwargs[section_field.name] = section_cls(**typed)
        config = cls(**kwargs)
        problem = config.inconsistency()
        if problem is not None:
            key, message = problem
            raise VawganError(f"{(origins or {}).get(key, f'{source}:')} {message}")
        return config

    def inconsistency(self) -> tuple[str, str] | None:
        """``(dotted key, message)`` of the first pair of settings that contradict each other; None if none do.

        For limits that involve two settings (a floor below its ceiling);
        a subclass overrides it where it has such pairs.
        """
        return None


@dataclass
class Config(SectionedConfig):
    """The whole configuration of one experiment."""

    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    limits = {
        "corpus.layout": one_of("auto", "speaker_dirs", "arctic", "vcc"),
        "corpus.dev_fraction": FRACTION,
        "corpus.eval_fraction": FRACTION,
        "features.sample_rate": at_least(1000),
        "features.frame_period": POSITIVE,
        "features.f0_method": one_of("harvest", "dio"),
        "features.f0_floor": POSITIVE,
        "features.f0_ceil": POSITIVE,
        "features.f0_ranges": (lambda ranges: all(len(r) == 2 and 0 < r[0] < r[1] for r in ranges.values()),
                               "must give each speaker [floor, ceil] with 0 < floor < ceil"),
        "features.mcep_order": at_least(1),
        "features.mcep_alpha": (lambda alpha: -1 < alpha < 1, "must be above -1 and below 1"),
        "features.fft_size": at_least(16),
        "features.aperiodicity_step": at_least(1),
        "model.input_dim": at_least(1),
        "model.latent_dim": at_least(1),
        "model.speaker_dim": at_least(1),
        "model.encoder_hidden": SIZES,
        "model.decoder_hidden": SIZES,
        "model.critic_hidden": SIZES,
        "model.decoder_variance": one_of("learned", "unit"),
        "model.decoder_conditioning": one_of("input", "all_layers"),
        "model.context_frames": NOT_NEGATIVE,
        "train.batch_size": at_least(1),
        "train.vae_epochs": NOT_NEGATIVE,
        "train.critic_epochs": NOT_NEGATIVE,
        "train.adversarial_epochs": NOT_NEGATIVE,
        "train.learning_rate": POSITIVE,
        "train.adam_betas": BETAS,
        "train.kl_weight": NOT_NEGATIVE,
        "train.kl_warmup_epochs": NOT_NEGATIVE,
        "train.parallel_weight": NOT_NEGATIVE,
        "train.realign_epochs": NOT_NEGATIVE,
        "train.n_critic": at_least(1),
        "train.gp_lambda": NOT_NEGATIVE,
        "train.alpha_mode": one_of("scale", "fixed"),
        "train.alpha_value": POSITIVE,
        "train.adversarial_target": one_of("conversion", "reconstruction"),
        "train.seed": NOT_NEGATIVE,
        "train.members": at_least(1),
        "train.checkpoint_every": at_least(1),
        "train.num_threads": at_least(1),
    }

    def inconsistency(self) -> tuple[str, str] | None:
        f, c = self.features, self.corpus
        if f.f0_floor >= f.f0_ceil:
            return "features.f0_floor", f"features.f0_floor={f.f0_floor:g} must be below features.f0_ceil={f.f0_ceil:g}"
        if c.dev_fraction + c.eval_fraction >= 1:
            return "corpus.dev_fraction", (f"corpus.dev_fraction={c.dev_fraction:g} and corpus.eval_fraction="
                                           f"{c.eval_fraction:g} must leave a training split (sum below 1)")
        return None


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
        if data.get(section) is None:
            data[section] = {}
        if not isinstance(data[section], dict):
            raise VawganError(f"{source}: section '{section}' must be a mapping of keys to values")
        data[section][key] = value
    return config_cls.from_dict(data, source, origins={dotted: "--set" for dotted in overrides or {}})


def save_config(config: SectionedConfig, path: str | os.PathLike) -> None:
    """Write ``config`` as YAML, atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
