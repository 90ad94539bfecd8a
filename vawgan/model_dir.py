"""The model directory: everything needed to use a trained model, in one folder.

Layout (written by ``vawgan train``, read once by :class:`ModelDir`)::

    config.yaml     the full Config the model was trained with
    stats.npz       normalization statistics (vawgan.stats.Statistics)
    speakers.txt    training speakers, one per line; line k is speaker id k
    checkpoint.pt   latest full training state (all nets, optimizers, RNG, phase, step)
    weights.sha256  the SHA-256 of each weights file above (vawgan.checkpoint), checked on loading
    vae.pt          encoder + decoder at the end of VAE pretraining
    vawgan.pt       encoder + decoder + critic at the end of adversarial training
    vae.npz, vawgan.npz  the encoder and decoder of each as plain arrays, written with it
                    (vawgan.weights): a CPU conversion runs them without importing PyTorch
    metrics.csv     per-epoch training scalars (vawgan.runlog), tensorboard/ likewise
    alignment/      with train.realign_epochs > 0: the provisional VAE that re-aligned the
                    parallel pairs (a model directory of its own; vawgan.training.realign_pairs)
    members/        with train.members > 1: the ensemble's other models, each a complete
                    model directory seed-<k>/ trained with seed k (member_dir); conversion
                    averages what the models convert (vawgan.convert.Converter)
    card.yaml       optional, written by vawgan.model_info.write_model_card for a model one hands on (the packaged
                    ones): what it was trained on and its scores on held-out sentences;
                    `vawgan info` prints it

A weights file may also be present as its NumPy copy alone (``vawgan.npz``
without ``vawgan.pt``, exported with ``inference_only=True`` by
:func:`vawgan.weights.export_numpy_weights`): a smaller directory that can
convert but not train on, as the packaged ensemble's members are.

Reading a model directory never writes to it.

``vae.pt`` is kept when the adversarial phase runs, so the over-smoothed VAE
and the VAW-GAN can be compared from the same directory.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from vawgan.config import Config, read_config_file, save_config
from vawgan.errors import VawganError
from vawgan.stats import Statistics
from vawgan.utils import atomic_path, remove_stale_temporaries
from vawgan.weights import WEIGHT_FILES, LoadedModel, Networks, has_weights, load_numpy, load_torch

CONFIG_FILE = "config.yaml"
STATS_FILE = "stats.npz"
SPEAKERS_FILE = "speakers.txt"
CHECKPOINT_FILE = "checkpoint.pt"
MEMBERS_DIR = "members"
# Model settings added after the first model directories were written, with the value those
# directories were trained with: a config.yaml without the key gets this value, not today's default.
LEGACY_MODEL_SETTINGS = {"decoder_variance": "unit", "decoder_conditioning": "input"}


def read_speakers(path: str | os.PathLike) -> list[str]:
    """The speaker list of a model directory (``speakers.txt``)."""
    path = Path(path)
    if not path.is_file():
        raise VawganError(f"{path}: speaker list not found; is this a model directory written by `vawgan train`?")
    speakers = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not speakers:
        raise VawganError(f"{path}: speaker list is empty")
    return speakers


def write_speakers(path: str | os.PathLike, speakers: list[str]) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(f"{s}\n" for s in speakers))


def speaker_with_other_statistics(a: Statistics, b: Statistics, speakers: list[str]) -> str | None:
    """The first of ``speakers`` whose mel-cepstral mean or std differs between ``a`` and ``b``; None if none does.

    Compared within float rounding: the same corpus analysed on another CPU
    gives statistics that differ in the last bits only.
    """
    for spk in speakers:
        if not (np.allclose(a.speaker_mcep_mean[spk], b.speaker_mcep_mean[spk])
                and np.allclose(a.speaker_mcep_std[spk], b.speaker_mcep_std[spk])):
            return spk
    return None


def prepare_model_dir(model_dir: str | os.PathLike, config: Config, stats: Statistics, speakers: list[str]) -> Path:
    """Create ``model_dir`` with its config, statistics and speaker list.

    When the directory already holds a trained model (``checkpoint.pt``), its
    speakers, network sizes and statistics must be the ones given: training
    on with other speakers or statistics would silently produce a model that
    converts wrongly. The config is rewritten (the schedule may change between
    phases, e.g. more adversarial epochs). Call it holding the directory's
    lock (:func:`vawgan.lock.folder_lock`, as :func:`vawgan.training.train_model`
    does): it removes the temporary files a killed run left.
    """
    model_dir = Path(model_dir)
    if (model_dir / CHECKPOINT_FILE).is_file():
        old_speakers = read_speakers(model_dir / SPEAKERS_FILE)
        if old_speakers != list(speakers):
            raise VawganError(f"{model_dir}: holds a model of speakers {old_speakers}, but the training data has "
                              f"{list(speakers)}; use another --model-dir or delete this one to start over")
        old_config = load_model_config(model_dir)
        if old_config.model != config.model:
            raise VawganError(f"{model_dir}: holds a model with other network sizes ({old_config.model}); "
                              "use another --model-dir or delete this one to start over")
        spk = speaker_with_other_statistics(Statistics.load(model_dir / STATS_FILE), stats, speakers)
        if spk is not None:
            raise VawganError(f"{model_dir}: the model was trained with other statistics for speaker {spk!r} "
                              f"than the --stats file; pass the same statistics or start a new --model-dir")
    model_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(model_dir)  # left by a run killed while saving
    save_config(config, model_dir / CONFIG_FILE)
    stats.save(model_dir / STATS_FILE)
    write_speakers(model_dir / SPEAKERS_FILE, list(speakers))
    return model_dir


def member_dir(model_dir: str | os.PathLike, seed: int) -> Path:
    """Where the ensemble member trained with ``seed`` lives in ``model_dir``: ``members/seed-<seed>``."""
    return Path(model_dir) / MEMBERS_DIR / f"seed-{seed}"


def member_dirs(model_dir: str | os.PathLike) -> list[Path]:
    """The ensemble members of a model directory (every folder in ``members/``), by seed; [] for a single model."""
    root = Path(model_dir) / MEMBERS_DIR
    if not root.is_dir():
        return []

    def by_seed(path: Path) -> tuple[int, str]:
        number = path.name.removeprefix("seed-")
        return (int(number) if number.isdigit() else -1, path.name)

    return sorted((path for path in root.iterdir() if path.is_dir()), key=by_seed)


def load_model_config(model_dir: str | os.PathLike) -> Config:
    """The ``config.yaml`` of a model directory, with :data:`LEGACY_MODEL_SETTINGS` for keys it predates."""
    path = Path(model_dir) / CONFIG_FILE
    data = read_config_file(path)
    if isinstance(data, dict):
        # vawgan train writes every section; one missing means a truncated or edited file, and
        # defaults in its place would analyse or build the model differently from its training.
        missing = [f.name for f in dataclasses.fields(Config) if not data.get(f.name)]
        if missing:
            raise VawganError(f"{path}: no {', '.join(missing)} section(s); `vawgan train` writes them all, so the "
                              "file is truncated or was edited: restore it or retrain")
        if isinstance(data["model"], dict):
            data["model"] = {**LEGACY_MODEL_SETTINGS, **data["model"]}
    return Config.from_dict(data, str(path))  # reports unknown sections and keys, ill-typed values


def load_model(model_dir: str | os.PathLike, which: str = "vawgan", device="cpu") -> LoadedModel:
    """The PyTorch encoder and decoder (``which``: ``"vawgan"`` or ``"vae"``) of a model directory on ``device``.

    ``device`` is a ``torch.device`` or a string (``auto``, ``cpu``, ``cuda[:N]``).
    """
    return ModelDir(model_dir).networks(which, device, numpy=False)


class ModelDir:
    """A model directory read once: its config, statistics and speakers, checked on opening.

    Weights are loaded on demand by :meth:`networks` (once per weights file,
    backend and device) and ensemble members by :meth:`member`, each opened
    once and checked against this directory. Callers use the attributes
    instead of reading the directory's files again. Nothing is ever written.
    """

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        if not path.is_dir():
            raise VawganError(f"{path}: model directory not found; train one with `vawgan train`")
        if not (path / CONFIG_FILE).is_file():
            raise VawganError(f"{path}: not a vawgan model directory (no {CONFIG_FILE}); "
                              "give the --model-dir of a `vawgan train` run")
        self.path = path
        self.config = load_model_config(path)
        self.stats = Statistics.load(path / STATS_FILE)
        self.speakers = read_speakers(path / SPEAKERS_FILE)
        self._members: dict[Path, ModelDir] = {}
        self._networks: dict[tuple, Networks] = {}

    def has_weights(self, which: str) -> bool:
        """Whether the directory holds the ``which`` weights (``<which>.pt``, or an inference-only NumPy copy)."""
        return has_weights(self.path, which)

    def weights_time(self, which: str) -> float:
        """When the ``which`` weights were written (the ``.pt``, or its NumPy copy without one)."""
        weights = self.path / WEIGHT_FILES[which]
        return (weights if weights.is_file() else weights.with_suffix(".npz")).stat().st_mtime

    def networks(self, which: str = "vawgan", device="cpu", numpy: bool = True) -> Networks:
        """The ``which`` encoder and decoder, loaded once: the NumPy backend when it can, else the PyTorch one.

        The NumPy backend is used on the CPU (``device="cpu"``, ``numpy``)
        when the directory holds a current NumPy copy of the weights; otherwise
        the PyTorch modules (:func:`vawgan.weights.load_torch`), which report
        weights that do not fit the directory.
        """
        if which not in WEIGHT_FILES:
            raise VawganError(f"which={which!r} is not one of {', '.join(WEIGHT_FILES)}")
        key = (which, str(device), numpy)
        if key not in self._networks:
            weights = self.path / WEIGHT_FILES[which]
            if not self.has_weights(which):
                phase = "vae" if which == "vae" else "adversarial"
                raise VawganError(f"{weights}: not found; the {phase} phase has not finished in this model "
                                  f"directory (run `vawgan train --phase {phase}`"
                                  f"{'' if which == 'vae' else ' or use the vae weights'})")
            loaded = None
            if numpy and device == "cpu":
                loaded = load_numpy(weights, self.config, self.stats, self.speakers, which)
            if loaded is None:
                loaded = load_torch(weights, self.config, self.stats, self.speakers, which, device)
            self._networks[key] = loaded
        return self._networks[key]

    def member_paths(self, which: str | None = None) -> list[Path]:
        """The ensemble's other models (folders of ``members/``, by seed); with ``which``, those holding its weights."""
        return [path for path in member_dirs(self.path) if which is None or has_weights(path, which)]

    def member(self, path: Path) -> ModelDir:
        """The ensemble member at ``path`` (one of :meth:`member_paths`), opened once and checked against this one."""
        if path not in self._members:
            self._members[path] = self._open_member(path)
        return self._members[path]

    def _open_member(self, path: Path) -> ModelDir:
        """Open the ensemble member at ``path``; :class:`VawganError` unless it fits this directory.

        Averaging the outputs of models only makes sense when they read and
        write the same frames: the same speakers in the same order, the same
        features and network sizes, and the same normalization statistics (up
        to float rounding: the same corpus analysed on another CPU). The seed
        and the schedule may differ.
        """
        if not (path / CONFIG_FILE).is_file():
            raise VawganError(f"{path}: an ensemble member must be a model directory (no {CONFIG_FILE}); "
                              f"remove it from {self.path / MEMBERS_DIR}")
        member = ModelDir(path)
        problem = None
        if member.speakers != self.speakers:
            problem = f"speakers {member.speakers}, not {self.speakers}"
        elif member.config.model != self.config.model:
            problem = "other network sizes"
        elif member.config.features != self.config.features:
            problem = "other feature settings"
        else:
            spk = speaker_with_other_statistics(self.stats, member.stats, self.speakers)
            if spk is not None:
                problem = f"other statistics for speaker {spk!r}"
        if problem:
            raise VawganError(f"{path}: this ensemble member was trained with {problem} than {self.path}; "
                              "retrain it with the same data and config, or remove it")
        return member
