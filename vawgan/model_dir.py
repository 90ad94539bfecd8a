"""The model directory: everything needed to use a trained model, in one folder.

Layout (written by ``vawgan train``, read by :func:`load_model`)::

    config.yaml     the full Config the model was trained with
    stats.npz       normalization statistics (vawgan.stats.Statistics)
    speakers.txt    training speakers, one per line; line k is speaker id k
    checkpoint.pt   latest full training state (all nets, optimizers, RNG, phase, step)
    weights.sha256  the SHA-256 of each weights file above (vawgan.checkpoint), checked on loading
    vae.pt          encoder + decoder at the end of VAE pretraining
    vawgan.pt       encoder + decoder + critic at the end of adversarial training
    metrics.csv     per-epoch training scalars (vawgan.runlog), tensorboard/ likewise
    alignment/      with train.realign_epochs > 0: the provisional VAE that re-aligned the
                    parallel pairs (a model directory of its own; vawgan.train.realign_pairs)
    members/        with train.members > 1: the ensemble's other models, each a complete
                    model directory seed-<k>/ trained with seed k (member_dir); conversion
                    averages what the models convert (vawgan.convert.Converter)
    card.yaml       optional, written by write_model_card for a model one hands on (the packaged
                    ones): what it was trained on and its scores on held-out sentences;
                    `vawgan info` prints it

A weights file may also be present as its NumPy copy alone (``vawgan.npz``
without ``vawgan.pt``, exported with ``inference_only=True`` by
:func:`vawgan.convert.export_numpy_weights`): a smaller directory that can
convert but not train on, as the packaged ensemble's members are.

``vae.pt`` is kept when the adversarial phase runs, so the over-smoothed VAE
and the VAW-GAN can be compared from the same directory.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

from vawgan.config import Config, read_config_file, save_config
from vawgan.errors import VawganError
from vawgan.stats import Statistics
from vawgan.utils import atomic_path, remove_stale_temporaries

if TYPE_CHECKING:  # imported lazily at run time: `vawgan convert` on the CPU never imports torch
    import torch

    from vawgan.models import Decoder, Encoder

CONFIG_FILE = "config.yaml"
STATS_FILE = "stats.npz"
SPEAKERS_FILE = "speakers.txt"
CHECKPOINT_FILE = "checkpoint.pt"
WEIGHT_FILES = {"vae": "vae.pt", "vawgan": "vawgan.pt"}
MEMBERS_DIR = "members"
CARD_FILE = "card.yaml"
# The measures a model card keeps per system, from `vawgan evaluate`'s results.csv, and how `vawgan info` shows them.
CARD_MEASURES = (("mcd", "MCD {:.2f} dB"), ("f0_rmse_cents", "F0 RMSE {:.0f} cent"), ("vuv_error", "V/UV {:.1f} %"),
                 ("gv_ratio", "GV ratio {:.2f}"), ("ms_distance", "MS distance {:.2f} dB"))

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
    lock (:func:`vawgan.lock.folder_lock`, as :func:`vawgan.train.train_model`
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


def is_inference_only(data) -> bool:
    """Whether an opened NumPy weights copy (``np.load``) is marked as the weights themselves, its ``.pt`` deleted."""
    return "inference_only" in data.files and bool(data["inference_only"])


def has_weights(model_dir: str | os.PathLike, which: str) -> bool:
    """Whether ``model_dir`` holds the ``which`` weights: ``<which>.pt``, or an inference-only NumPy copy.

    An inference-only copy is one :func:`vawgan.convert.export_numpy_weights`
    marked as such; a plain copy whose ``.pt`` has gone does not count.
    """
    weights = Path(model_dir) / WEIGHT_FILES[which]
    if weights.is_file():
        return True
    try:
        with np.load(weights.with_suffix(".npz")) as data:
            return is_inference_only(data)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False


def check_member(model_dir: str | os.PathLike, member: str | os.PathLike) -> None:
    """Raise :class:`VawganError` unless ensemble ``member`` fits ``model_dir``.

    Averaging the outputs of models only makes sense when they read and write
    the same frames: the same speakers in the same order, the same features
    and network sizes, and the same normalization statistics (up to float
    rounding: the same corpus analysed on another CPU). The seed and the
    schedule may differ.
    """
    member = Path(member)
    if not (member / CONFIG_FILE).is_file():
        raise VawganError(f"{member}: an ensemble member must be a model directory (no {CONFIG_FILE}); "
                          f"remove it from {Path(model_dir) / MEMBERS_DIR}")
    speakers, member_speakers = read_speakers(Path(model_dir) / SPEAKERS_FILE), read_speakers(member / SPEAKERS_FILE)
    config, member_config = load_model_config(model_dir), load_model_config(member)
    problem = None
    if member_speakers != speakers:
        problem = f"speakers {member_speakers}, not {speakers}"
    elif member_config.model != config.model:
        problem = "other network sizes"
    elif member_config.features != config.features:
        problem = "other feature settings"
    else:
        spk = speaker_with_other_statistics(Statistics.load(Path(model_dir) / STATS_FILE),
                                            Statistics.load(member / STATS_FILE), speakers)
        if spk is not None:
            problem = f"other statistics for speaker {spk!r}"
    if problem:
        raise VawganError(f"{member}: this ensemble member was trained with {problem} than {model_dir}; "
                          "retrain it with the same data and config, or remove it")


def check_finite_weights(path: str | os.PathLike, weights: dict) -> None:
    """Raise :class:`VawganError` naming the first of ``weights`` (name -> array or CPU tensor) with NaN or infinity.

    Such weights convert every input into NaN samples; better said when the
    model is loaded than as a crash when the output is written.
    """
    for name, values in weights.items():
        if not np.isfinite(np.asarray(values)).all():
            raise VawganError(f"{path}: the weights {name} are not finite (NaN or infinity); the model is damaged, "
                              "retrain it or use another model")


@dataclass
class LoadedModel:
    """A trained encoder and decoder with everything needed to use them.

    ``encoder(x)`` maps normalized c1..cD frames (N, D) to ``(mu, logvar)``;
    ``decoder(z, speaker_ids)`` maps latents (N, latent_dim) and speaker ids
    (N,) to normalized frames. Frames are normalized with their own speaker's
    statistics (``stats.normalize(mcep[:, 1:], speaker)``). Both networks are
    in eval mode on :attr:`device`.
    """

    config: Config
    stats: Statistics
    speakers: list[str]
    encoder: Encoder
    decoder: Decoder
    device: torch.device
    which: str
    step: int

    def speaker_index(self, name: str) -> int:
        """The decoder's id of speaker ``name``; :class:`VawganError` listing the known ones otherwise."""
        try:
            return self.speakers.index(name)
        except ValueError:
            raise VawganError(f"unknown speaker {name!r}; this model knows: {', '.join(self.speakers)}") from None


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
    """Load the ``which`` weights (``"vawgan"`` or ``"vae"``) of a model directory onto ``device``.

    ``device`` is a ``torch.device`` or a string (``auto``, ``cpu``, ``cuda[:N]``).
    """
    import torch

    from vawgan.checkpoint import load_checkpoint
    from vawgan.models import build_models
    from vawgan.utils import resolve_device

    model_dir = Path(model_dir)
    if which not in WEIGHT_FILES:
        raise VawganError(f"which={which!r} is not one of {', '.join(WEIGHT_FILES)}")
    if not model_dir.is_dir():
        raise VawganError(f"{model_dir}: model directory not found; train one with `vawgan train`")
    if not (model_dir / CONFIG_FILE).is_file():
        raise VawganError(f"{model_dir}: not a vawgan model directory (no {CONFIG_FILE}); "
                          "give the --model-dir of a `vawgan train` run")
    weights_path = model_dir / WEIGHT_FILES[which]
    if not has_weights(model_dir, which):
        phase = "vae" if which == "vae" else "adversarial"
        raise VawganError(f"{weights_path}: not found; the {phase} phase has not finished in this model directory "
                          f"(run `vawgan train --phase {phase}`{'' if which == 'vae' else ' or use the vae weights'})")
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    config = load_model_config(model_dir)
    stats = Statistics.load(model_dir / STATS_FILE)
    speakers = read_speakers(model_dir / SPEAKERS_FILE)
    if weights_path.is_file():
        state = load_checkpoint(weights_path, map_location="cpu")
    else:
        weights_path = weights_path.with_suffix(".npz")
        state = read_numpy_weights(weights_path)
    if state.get("speakers") != speakers:
        raise VawganError(f"{weights_path}: trained for speakers {state.get('speakers')}, but "
                          f"{model_dir / SPEAKERS_FILE} lists {speakers}; the directory is inconsistent, retrain")
    check_finite_weights(weights_path, {f"{net}/{key}": value for net in ("encoder", "decoder")
                                        for key, value in state.get(net, {}).items()})
    encoder, decoder, _ = build_models(config.model, len(speakers))
    try:
        encoder.load_state_dict(state["encoder"])
        decoder.load_state_dict(state["decoder"])
    except (KeyError, RuntimeError) as exc:
        raise VawganError(f"{weights_path}: weights do not fit the network sizes in {model_dir / CONFIG_FILE} "
                          f"({str(exc).splitlines()[0]}); the directory is inconsistent, retrain") from None
    encoder.to(device).eval()
    decoder.to(device).eval()
    return LoadedModel(config=config, stats=stats, speakers=speakers, encoder=encoder, decoder=decoder,
                       device=device, which=which, step=int(state.get("step", 0)))


def read_numpy_weights(path: str | os.PathLike) -> dict:
    """The weights state (as in ``vawgan.pt``) of a NumPy copy written by :func:`vawgan.convert.export_numpy_weights`.

    For directories that ship the copy alone (ensemble members of a packaged
    model), so that PyTorch, on a GPU for example, can still load them.
    """
    import torch

    from vawgan.checkpoint import check_hash
    from vawgan.utils import read_npz

    if Path(path).is_file():
        check_hash(path)
    with read_npz(path, "NumPy weights file", "export it again with vawgan.convert.export_numpy_weights",
                  "it is damaged; export it again from the .pt weights or retrain") as data:
        state = {net: {key.split("/", 1)[1]: torch.from_numpy(np.array(data[key]))
                       for key in data.files if key.startswith(f"{net}/")} for net in ("encoder", "decoder")}
        state["speakers"] = data["speakers"].tolist()
        state["step"] = int(data["step"]) if "step" in data.files else 0
    return state


def save_weights(path: str | os.PathLike, encoder, decoder, speakers: list[str], step: int, critic=None) -> None:
    """Write the inference weights file (``vae.pt`` / ``vawgan.pt``) atomically."""
    from vawgan.checkpoint import save_checkpoint

    state = {"encoder": encoder.state_dict(), "decoder": decoder.state_dict(), "speakers": list(speakers),
             "step": int(step)}
    if critic is not None:
        state["critic"] = critic.state_dict()
    save_checkpoint(path, state)


def write_model_card(model_dir: str | os.PathLike, trained_on: str, results_csv: str | os.PathLike,
                     evaluated_on: str) -> Path:
    """Write ``card.yaml``: what the model was trained on and its scores from ``vawgan evaluate``.

    ``trained_on`` and ``evaluated_on`` are one-line descriptions of the data
    (corpus, speakers, split); ``results_csv`` is the ``results.csv`` that
    ``vawgan evaluate`` wrote for this model's conversions (wav level). The
    training protocol is the model's own ``corpus.protocol``.
    """
    import csv

    model_dir = Path(model_dir)
    with open(results_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    scores = {row["system"]: {key: round(float(row[key]), 4) for key, _ in CARD_MEASURES if row.get(key, "") != ""}
              for row in rows}
    card = {"trained_on": trained_on, "protocol": load_model_config(model_dir).corpus.protocol,
            "evaluated_on": evaluated_on, "scores": scores}
    with atomic_path(model_dir / CARD_FILE) as tmp:
        Path(tmp).write_text(yaml.safe_dump(card, sort_keys=False, allow_unicode=True))
    return model_dir / CARD_FILE


def card_lines(model_dir: str | os.PathLike) -> list[str]:
    """``vawgan info``'s lines for a model card (none when the directory has no ``card.yaml``)."""
    path = Path(model_dir) / CARD_FILE
    if not path.is_file():
        return []
    try:
        card = yaml.safe_load(path.read_text())
        lines = [f"trained on: {card['trained_on']} ({card['protocol'].replace('_', '-')} protocol)",
                 f"scores on {card['evaluated_on']}:"]
        for system, measures in card["scores"].items():
            shown = [fmt.format(measures[key]) for key, fmt in CARD_MEASURES if key in measures]
            lines.append(f"  {system}: {', '.join(shown)}")
    except (yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError):
        raise VawganError(f"{path}: not a readable model card; delete it or write it again "
                          "(vawgan.model_dir.write_model_card)") from None
    return lines


def describe_model(model_dir: str | os.PathLike) -> str:
    """A readable summary of a model directory: speakers, features, networks, schedule and trained weights.

    What ``vawgan info`` prints. Every weights file present is loaded, so a
    damaged or inconsistent directory raises the same :class:`VawganError`
    that ``vawgan convert`` would; weights a phase has not written yet are
    reported as missing, and an unfinished training run by its checkpoint.
    """
    from vawgan.checkpoint import load_checkpoint
    from vawgan.features.world import alpha_of

    model_dir = Path(model_dir)
    if not (model_dir / CONFIG_FILE).is_file():
        raise VawganError(f"{model_dir}: not a vawgan model directory (no {CONFIG_FILE}); "
                          "give the --model-dir of a `vawgan train` run or a packaged model's name")
    config = load_model_config(model_dir)
    stats = Statistics.load(model_dir / STATS_FILE)
    speakers = read_speakers(model_dir / SPEAKERS_FILE)
    f, m, t = config.features, config.model, config.train

    lines = [f"model directory: {model_dir.resolve()}", *card_lines(model_dir), f"speakers ({len(speakers)}):"]
    for name in speakers:
        floor, ceil = f.f0_ranges.get(name, (f.f0_floor, f.f0_ceil))
        lf0 = (f"F0 mean {np.exp(stats.lf0_mean[name]):.1f} Hz, log-F0 std {stats.lf0_std[name]:.3f}"
               if name in stats.lf0_mean else "no F0 statistics")
        frames = f"{stats.frames[name]:,} speech frames" if name in stats.frames else "frames not counted"
        lines.append(f"  {name}: {frames}, {lf0}, F0 search range {floor:g}-{ceil:g} Hz")
    aperiodicity = "every frame" if f.aperiodicity_step == 1 else f"1 frame in {f.aperiodicity_step}"
    lines.append(f"features: {f.sample_rate} Hz, {f.frame_period:g} ms frames, F0 by {f.f0_method}, "
                 f"D4C on {aperiodicity}, mel-cepstrum c0..c{f.mcep_order} (alpha {alpha_of(f):.3f}), "
                 f"silence below {f.silence_threshold_db:g} dB")
    encoder_input = m.input_dim * (2 * m.context_frames + 1)
    context = f" (frame ± {m.context_frames})" if m.context_frames else ""
    lines.append(f"encoder: {' → '.join(map(str, [encoder_input, *m.encoder_hidden]))} → μ, log σ² of "
                 f"{m.latent_dim}{context}")
    lines.append(f"decoder: {' → '.join(map(str, [m.latent_dim, *m.decoder_hidden, m.input_dim]))}, "
                 f"{m.speaker_dim}-dim speaker code ({m.decoder_conditioning.replace('_', ' ')}), "
                 f"{m.decoder_variance} variance")
    lines.append(f"critic: {' → '.join(map(str, [m.input_dim, *m.critic_hidden, 1]))}"
                 + (", conditioned on the speaker" if m.critic_conditional else ""))
    lines.append(f"schedule: {t.vae_epochs} VAE + {t.critic_epochs} critic + {t.adversarial_epochs} adversarial "
                 f"epochs, batch {t.batch_size}, KL weight {t.kl_weight:g}, parallel weight {t.parallel_weight:g}, "
                 f"seed {t.seed}, {config.corpus.protocol.replace('_', '-')} protocol")
    for which, file_name in WEIGHT_FILES.items():
        if has_weights(model_dir, which):
            loaded = load_model(model_dir, which)  # checks the file against config and speakers
            numpy_only = "" if (model_dir / file_name).is_file() else " (its NumPy copy only)"
            lines.append(f"{file_name}: step {loaded.step:,}{numpy_only}")
        else:
            phase = "vae" if which == "vae" else "adversarial"
            lines.append(f"{file_name}: not written yet (the {phase} phase has not finished)")
    if (model_dir / CHECKPOINT_FILE).is_file():
        state = load_checkpoint(model_dir / CHECKPOINT_FILE)
        completed = list(state.get("completed", []))
        line = f"{CHECKPOINT_FILE}: phases finished: {', '.join(completed) or 'none'}"
        if state.get("phase") and state["phase"] not in completed:
            line += (f"; {state['phase']} phase interrupted in epoch {state.get('epoch', 0) + 1} at step "
                     f"{state.get('step', 0)} (continue with `vawgan train --resume`)")
        lines.append(line)
    members = member_dirs(model_dir)
    if members:
        lines.append(f"ensemble: this model and {len(members)} member(s) in {MEMBERS_DIR}/, averaged by conversion")
        for member in members:
            check_member(model_dir, member)
            seed = load_model_config(member).train.seed
            weights = [which for which in WEIGHT_FILES if has_weights(member, which)]
            lines.append(f"  {member.name}: seed {seed}, weights {', '.join(weights) or 'none yet'}")
    return "\n".join(lines)
