"""Settings a training run refuses before it starts."""

from __future__ import annotations

import os

from vawgan.config import Config
from vawgan.corpus import read_manifest, shared_train_sentences
from vawgan.data import FrameSet, PairSet
from vawgan.errors import VawganError
from vawgan.models import encoder_input_dim


def check_protocol(config: Config, manifest: str | os.PathLike) -> None:
    """Refuse a non-parallel run that would see parallel data: a shared sentence or the parallel term.

    With ``corpus.protocol: non_parallel`` the training manifest must give each
    sentence id to one speaker only (``vawgan prepare`` writes it so) and
    ``train.parallel_weight`` must be 0: no alignment anywhere.
    """
    if config.corpus.protocol != "non_parallel":
        return
    if config.train.parallel_weight > 0:
        raise VawganError(f"train.parallel_weight={config.train.parallel_weight} uses parallel pairs, which the "
                          "non_parallel protocol forbids; set it to 0 or use corpus.protocol: parallel")
    shared = shared_train_sentences(read_manifest(manifest))
    if shared:
        raise VawganError(f"{manifest}: {len(shared)} sentence(s) (e.g. {shared[0]}) are read by more than one "
                          "speaker, but corpus.protocol is non_parallel; write the manifests with `vawgan prepare` "
                          "and this config")


def check_settings(config: Config, frames: FrameSet, pairs: PairSet | None, world: int) -> None:
    """Refuse training settings that do not fit each other or the data, before anything is built.

    ``pairs`` are needed when ``train.parallel_weight`` > 0; ``world`` is the
    number of processes sharing each batch.
    """
    cfg = config.train
    parallel = cfg.parallel_weight > 0
    speakers = list(frames.speakers)
    if cfg.parallel_weight < 0:
        raise VawganError("train.parallel_weight must not be negative")
    if cfg.realign_epochs < 0 or (cfg.realign_epochs and not parallel):
        raise VawganError(f"train.realign_epochs={cfg.realign_epochs}: re-aligning needs parallel data "
                          "(train.parallel_weight > 0) and a number of epochs >= 0")
    if parallel and pairs is None:
        raise VawganError(f"train.parallel_weight={cfg.parallel_weight} needs aligned parallel sentences "
                          "(vawgan.data.load_pairs); set it to 0 to train without parallel data")
    if parallel and list(pairs.speakers) != speakers:
        raise VawganError(f"the parallel pairs are for speakers {pairs.speakers}, the training frames for "
                          f"{speakers}; build both from the same manifest")
    if cfg.batch_size % world:
        raise VawganError(f"train.batch_size={cfg.batch_size} is not divisible by the {world} processes")
    if frames.num_frames < cfg.batch_size:
        raise VawganError(f"only {frames.num_frames} training frames, fewer than train.batch_size="
                          f"{cfg.batch_size}; add data or lower the batch size")
    if frames.frames.shape[1] != config.model.input_dim:
        raise VawganError(f"frames have {frames.frames.shape[1]} dimensions but model.input_dim is "
                          f"{config.model.input_dim}")
    encoder_input_dim(config.model)  # a negative context is an error before the data are compared
    context = config.model.context_frames
    for name, data in (("training frames", frames), ("parallel pairs", pairs if parallel else None)):
        loaded = 0 if data is None or data.context is None else data.context.context
        if data is not None and loaded != context:
            raise VawganError(f"the {name} were loaded with {loaded} context frames but model.context_frames "
                              f"is {context}; load them with context={context}")
    if cfg.adversarial_target not in ("conversion", "reconstruction"):
        raise VawganError(f"train.adversarial_target={cfg.adversarial_target!r} is not one of conversion, "
                          "reconstruction")
    if cfg.alpha_mode not in ("scale", "fixed"):
        raise VawganError(f"train.alpha_mode={cfg.alpha_mode!r} is not one of scale, fixed")
    if cfg.n_critic < 1 or cfg.checkpoint_every < 1:
        raise VawganError("train.n_critic and train.checkpoint_every must be at least 1")
    if cfg.kl_weight < 0 or cfg.kl_warmup_epochs < 0:
        raise VawganError("train.kl_weight and train.kl_warmup_epochs must not be negative")
