"""The weights files of a model directory and the two backends that run them.

A phase's weights are written as ``<which>.pt`` (PyTorch state dicts) and, in
the same save, ``<which>.npz``: the same encoder and decoder weights as plain
arrays, with the SHA-256 of the ``.pt`` they came from. Both hashes go into the
folder's ``weights.sha256`` (:func:`vawgan.checkpoint.hashed_write`).

Two backends convert normalized frames with them, behind one interface
(:class:`Networks`: ``speakers``, ``speaker_index``, ``step``, ``convert_frames``):

* :class:`NumpyModel` evaluates the small MLPs with NumPy from the ``.npz``,
  so a conversion on the CPU never imports PyTorch (about 1.5 s of start-up);
* :class:`LoadedModel` holds the PyTorch modules, for CUDA, for training code
  and for directories without a current NumPy copy.

Nothing here writes into a model directory when loading: a copy that is
missing or stale (its ``.pt`` was replaced) is simply not used.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vawgan.checkpoint import check_hash, forget_hash, hashed_write, load_checkpoint, sha256_of
from vawgan.config import Config
from vawgan.errors import VawganError
from vawgan.features.context import stack_context
from vawgan.features.batching import in_frame_batches
from vawgan.stats import Statistics

if TYPE_CHECKING:  # imported lazily at run time: a CPU conversion never imports torch
    import torch

    from vawgan.models import Decoder, Encoder

WEIGHT_FILES = {"vae": "vae.pt", "vawgan": "vawgan.pt"}


def check_finite_weights(path: str | os.PathLike, weights: dict) -> None:
    """Raise :class:`VawganError` naming the first of ``weights`` (name -> array or CPU tensor) with NaN or infinity.

    Such weights convert every input into NaN samples; better said when the
    model is loaded than as a crash when the output is written.
    """
    for name, values in weights.items():
        if not np.isfinite(np.asarray(values)).all():
            raise VawganError(f"{path}: the weights {name} are not finite (NaN or infinity); the model is damaged, "
                              "retrain it or use another model")


def is_inference_only(data) -> bool:
    """Whether an opened NumPy weights copy (``np.load``) is marked as the weights themselves, its ``.pt`` deleted."""
    return "inference_only" in data.files and bool(data["inference_only"])


def has_weights(model_dir: str | os.PathLike, which: str) -> bool:
    """Whether ``model_dir`` holds the ``which`` weights: ``<which>.pt``, or an inference-only NumPy copy.

    An inference-only copy is one :func:`export_numpy_weights` marked as such;
    a plain copy whose ``.pt`` has gone does not count.
    """
    weights = Path(model_dir) / WEIGHT_FILES[which]
    if weights.is_file():
        return True
    try:
        with np.load(weights.with_suffix(".npz")) as data:
            return is_inference_only(data)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False


def _write_numpy_copy(weights: Path, state: dict, inference_only: bool = False) -> Path:
    """Write ``<weights>.npz`` from the state of the ``.pt`` file ``weights``; returns its path.

    Keys are ``encoder/<state-dict key>`` and ``decoder/<state-dict key>``, plus
    ``source_sha256``, the hash of the ``.pt`` file, so that a retrained model
    never runs with stale NumPy weights, ``speakers``, the speaker order the
    weights were trained with, ``step``, the training step, and
    ``inference_only`` (see :func:`export_numpy_weights`).
    """
    arrays = {f"{net}/{key}": value.detach().cpu().numpy()
              for net in ("encoder", "decoder") for key, value in state[net].items()}
    out = weights.with_suffix(".npz")
    with hashed_write(out) as tmp:
        np.savez(tmp, source_sha256=np.array(sha256_of(weights)), speakers=np.array(state["speakers"], dtype=str),
                 step=np.array(int(state.get("step", 0))), inference_only=np.array(bool(inference_only)), **arrays)
    return out


def save_weights(path: str | os.PathLike, encoder, decoder, speakers: list[str], step: int, critic=None) -> None:
    """Write the inference weights file (``vae.pt`` / ``vawgan.pt``) atomically, and its NumPy copy beside it.

    The copy (``vae.npz`` / ``vawgan.npz``) lets a CPU conversion start
    without importing PyTorch; it is written here, by training, because
    loading a model for conversion never writes into its directory.
    """
    from vawgan.checkpoint import save_checkpoint

    state = {"encoder": encoder.state_dict(), "decoder": decoder.state_dict(), "speakers": list(speakers),
             "step": int(step)}
    if critic is not None:
        state["critic"] = critic.state_dict()
    save_checkpoint(path, state)
    _write_numpy_copy(Path(path), state)


def export_numpy_weights(model_dir: str | os.PathLike, which: str = "vawgan", inference_only: bool = False) -> Path:
    """Write ``<which>.npz`` next to ``<which>.pt`` from that file (see :func:`save_weights`). Needs PyTorch.

    For weights saved before training wrote the copy itself. With
    ``inference_only=True`` the copy is marked as the weights themselves and
    the ``.pt`` deleted (half the size; how the packaged ensemble's members
    ship): :func:`load_numpy` and :func:`read_numpy_weights` take it without
    its source. A plain copy whose ``.pt`` has gone is not used.
    """
    weights = Path(model_dir) / WEIGHT_FILES[which]
    out = _write_numpy_copy(weights, load_checkpoint(weights), inference_only)
    if inference_only:
        weights.unlink()
        forget_hash(weights)
    return out


def read_numpy_weights(path: str | os.PathLike) -> dict:
    """The weights state (as in ``vawgan.pt``) of a NumPy copy, for loading it into the PyTorch modules.

    For directories that ship the copy alone (ensemble members of a packaged
    model), so that PyTorch, on a GPU for example, can still load them.
    """
    import torch

    from vawgan.utils import read_npz

    if Path(path).is_file():
        check_hash(path)
    with read_npz(path, "NumPy weights file", "export it again with vawgan.weights.export_numpy_weights",
                  "it is damaged; export it again from the .pt weights or retrain") as data:
        state = {net: {key.split("/", 1)[1]: torch.from_numpy(np.array(data[key]))
                       for key in data.files if key.startswith(f"{net}/")} for net in ("encoder", "decoder")}
        state["speakers"] = data["speakers"].tolist()
        state["step"] = int(data["step"]) if "step" in data.files else 0
    return state


@dataclass
class Networks:
    """A trained encoder and decoder with everything needed to use them; what both backends share.

    Frames are normalized with their own speaker's statistics
    (``stats.normalize(mcep[:, 1:], speaker)``); :meth:`convert_frames` maps
    one utterance's normalized frames to the target speaker's.
    """

    config: Config
    stats: Statistics
    speakers: list[str]
    which: str
    step: int

    def speaker_index(self, name: str) -> int:
        """The decoder's id of speaker ``name``; :class:`VawganError` listing the known ones otherwise."""
        try:
            return self.speakers.index(name)
        except ValueError:
            raise VawganError(f"unknown speaker {name!r}; this model knows: {', '.join(self.speakers)}") from None

    def convert_frames(self, normalized: np.ndarray, target_index: int, sample: bool = False) -> np.ndarray:
        """One utterance's normalized frames (T, D) encoded and decoded with speaker ``target_index``, (T, D) float64.

        Each frame is encoded with its window of neighbouring frames when the
        model was trained with encoder context, and decoded from the posterior
        mean μ, or from a draw of the posterior when ``sample``.
        """
        raise NotImplementedError


@dataclass
class LoadedModel(Networks):
    """The PyTorch backend: ``encoder`` and ``decoder`` modules in eval mode on :attr:`device`.

    ``encoder(x)`` maps normalized c1..cD frames (N, D) to ``(mu, logvar)``;
    ``decoder(z, speaker_ids)`` maps latents (N, latent_dim) and speaker ids
    (N,) to normalized frames.
    """

    encoder: Encoder
    decoder: Decoder
    device: torch.device

    def convert_frames(self, normalized: np.ndarray, target_index: int, sample: bool = False) -> np.ndarray:
        from vawgan.models.networks import decode_utterance

        return decode_utterance(self.encoder, self.decoder, normalized, target_index,
                                self.config.model.context_frames, sample=sample)


def _linear_layers(data, net: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``(weight, bias)`` pairs of ``<net>/net.<i>.weight`` in layer order (ReLU between them)."""
    indices = sorted(int(key.split(".")[1]) for key in data.files
                     if key.startswith(f"{net}/net.") and key.endswith(".weight"))
    return [(data[f"{net}/net.{i}.weight"], data[f"{net}/net.{i}.bias"]) for i in indices]


def _mlp(x: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]], code: np.ndarray | None = None) -> np.ndarray:
    """Linear layers with ReLU between them, as :func:`vawgan.models.mlp` builds them.

    With a speaker ``code`` (C,), a layer whose weight has more inputs than
    the activations have columns takes the code concatenated to them (the
    decoder's first layer only, or every layer: ``model.decoder_conditioning``).
    """
    x = x.astype(np.float32)
    for i, (weight, bias) in enumerate(layers):
        if i:
            x = np.maximum(x, 0.0)
        if code is not None and weight.shape[1] > x.shape[1]:
            x = np.hstack([x, np.broadcast_to(code.astype(np.float32), (x.shape[0], code.shape[0]))])
        x = x @ weight.T + bias
    return x


@dataclass
class NumpyModel(Networks):
    """The NumPy backend: the encoder's and decoder's layers as arrays, evaluated on the CPU without torch."""

    encoder_layers: list[tuple[np.ndarray, np.ndarray]]
    decoder_layers: list[tuple[np.ndarray, np.ndarray]]
    embedding: np.ndarray | None
    device: str = "cpu"

    def encode(self, frames: np.ndarray, rows: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """(μ, log σ²) of frames ``rows`` (default all) of one utterance's normalized frames (T, D).

        With encoder context each frame is encoded with its window of
        neighbouring frames, as in training (:func:`vawgan.features.context.stack_context`).
        """
        inputs = stack_context(frames, self.config.model.context_frames, rows)
        mu, logvar = np.split(_mlp(inputs, self.encoder_layers), 2, axis=1)
        return mu, logvar

    def decode(self, z: np.ndarray, speaker_index: int) -> np.ndarray:
        """Normalized frames decoded from latents ``z`` (N, latent) with one speaker's code."""
        code = self.embedding[speaker_index] if self.embedding is not None else None
        return _mlp(z, self.decoder_layers, code)

    def convert_frames(self, normalized: np.ndarray, target_index: int, sample: bool = False) -> np.ndarray:
        """See :meth:`Networks.convert_frames`. Long utterances go through the networks in batches of frames
        (:func:`vawgan.features.batching.in_frame_batches`), so that the hidden layers' activations stay small."""
        def batch(rows: slice) -> np.ndarray:
            mu, logvar = self.encode(normalized, rows)
            z = mu + np.random.default_rng().standard_normal(mu.shape) * np.exp(0.5 * logvar) if sample else mu
            return self.decode(z, target_index).astype(np.float64)

        return in_frame_batches(batch, len(normalized))


def load_numpy(weights: Path, config: Config, stats: Statistics, speakers: list[str],
               which: str) -> NumpyModel | None:
    """The NumPy backend from the copy of the ``.pt`` file ``weights`` (``<which>.npz``); None when it is unusable.

    Unusable: missing, unreadable, exported from another ``.pt`` (stale), a
    plain copy whose ``.pt`` has gone, or trained for other speakers. The
    PyTorch loader then decides, and reports what is wrong with the weights.
    """
    arrays = weights.with_suffix(".npz")
    if not arrays.is_file():
        return None
    check_hash(weights if weights.is_file() else arrays)
    try:
        with np.load(arrays) as data:
            if weights.is_file() and str(data["source_sha256"]) != sha256_of(weights):
                return None
            if not weights.is_file() and not is_inference_only(data):
                return None
            trained_speakers = data["speakers"].tolist()
            check_finite_weights(arrays, {key: data[key] for key in data.files
                                          if key.startswith(("encoder/", "decoder/"))})
            encoder, decoder = _linear_layers(data, "encoder"), _linear_layers(data, "decoder")
            embedding = data["decoder/embedding.weight"] if "decoder/embedding.weight" in data.files else None
            step = int(data["step"]) if "step" in data.files else 0
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile):
        return None
    if trained_speakers != speakers or not encoder or not decoder:
        return None
    return NumpyModel(config=config, stats=stats, speakers=speakers, which=which, step=step,
                      encoder_layers=encoder, decoder_layers=decoder, embedding=embedding)


def load_torch(weights: Path, config: Config, stats: Statistics, speakers: list[str], which: str,
               device) -> LoadedModel:
    """The PyTorch backend from the ``.pt`` file ``weights`` (or its inference-only NumPy copy) on ``device``.

    ``device`` is a ``torch.device`` or a string (``auto``, ``cpu``, ``cuda[:N]``).
    The weights must be trained for ``speakers`` and fit ``config.model``.
    """
    import torch

    from vawgan.models import build_models
    from vawgan.utils import resolve_device

    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    if weights.is_file():
        state = load_checkpoint(weights, map_location="cpu")
    else:
        weights = weights.with_suffix(".npz")
        state = read_numpy_weights(weights)
    if state.get("speakers") != speakers:
        raise VawganError(f"{weights}: trained for speakers {state.get('speakers')}, but the model directory "
                          f"lists {speakers}; the directory is inconsistent, retrain")
    check_finite_weights(weights, {f"{net}/{key}": value for net in ("encoder", "decoder")
                                   for key, value in state.get(net, {}).items()})
    encoder, decoder, _ = build_models(config.model, len(speakers))
    try:
        encoder.load_state_dict(state["encoder"])
        decoder.load_state_dict(state["decoder"])
    except (KeyError, RuntimeError) as exc:
        raise VawganError(f"{weights}: weights do not fit the network sizes of the model's config "
                          f"({str(exc).splitlines()[0]}); the directory is inconsistent, retrain") from None
    encoder.to(device).eval()
    decoder.to(device).eval()
    return LoadedModel(config=config, stats=stats, speakers=speakers, which=which, step=int(state.get("step", 0)),
                       encoder=encoder, decoder=decoder, device=device)
