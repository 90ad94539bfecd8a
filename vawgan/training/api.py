"""``train_model``: what ``vawgan train`` does, from feature files to a trained model directory."""

from __future__ import annotations

import contextlib
import os

from vawgan.config import Config
from vawgan.data import load_frames, load_pairs
from vawgan.lock import folder_lock
from vawgan.stats import Statistics
from vawgan.training.checks import check_protocol
from vawgan.training.distributed import init_distributed
from vawgan.training.ensembles import ensemble_runs
from vawgan.training.realign import realign_pairs
from vawgan.training.trainer import PHASES, Trainer, train_in
from vawgan.utils import resolve_device


def train_model(config: Config, feature_dir: str | os.PathLike, manifest: str | os.PathLike,
                stats_path: str | os.PathLike, model_dir: str | os.PathLike, phases=PHASES, resume: bool = False,
                device: str | None = None, progress: bool = True) -> Trainer:
    """Load the training frames, prepare ``model_dir`` and run ``phases``: what ``vawgan train`` does.

    ``device`` (``auto|cpu|cuda[:N]``, default the config's ``train.device``)
    is overridden by ``torchrun``: one process per GPU, or gloo on the CPU.
    Returns the :class:`Trainer` (its ``final_scalars`` and ``timings``).

    With ``train.members`` = n > 1 the same phases then train the ensemble's
    other models, with seeds ``seed + 1 .. seed + n - 1``, each in its own
    model directory ``members/seed-<k>`` (its own checkpoint, so an
    interrupted member resumes like any model; a finished one is skipped).
    Their trainers are the returned trainer's ``members``.
    """
    import torch.distributed as dist

    check_protocol(config, manifest)
    joins_group_here = not dist.is_initialized()
    rank, _, device_name = init_distributed(device or config.train.device)
    try:
        with folder_lock(model_dir, "vawgan train") if rank == 0 else contextlib.nullcontext():
            return _train_model(config, feature_dir, manifest, stats_path, model_dir, phases, resume, device_name,
                                progress, rank)
    finally:
        # Leave the process group we joined: a gloo group still alive at interpreter
        # exit can abort the process ("terminate called without an active exception").
        if joins_group_here and dist.is_initialized():
            dist.destroy_process_group()


def _train_model(config: Config, feature_dir, manifest, stats_path, model_dir, phases, resume: bool,
                 device_name: str, progress: bool, rank: int) -> Trainer:
    """:func:`train_model` once the process group is joined and (on rank 0) the model directory locked."""

    device = resolve_device(device_name)
    stats = Statistics.load(stats_path)
    context = config.model.context_frames
    frames = load_frames(feature_dir, manifest, stats, exclude_silence=config.train.exclude_silence,
                         context=context)
    direct_pairs = None
    trainers = []
    for k, (run_config, run_dir) in enumerate(ensemble_runs(config, model_dir)):
        if k and rank == 0 and progress:
            print(f"ensemble member {k + 1}/{config.train.members}: seed {run_config.train.seed} in {run_dir}",
                  flush=True)
        pairs = None
        if config.train.parallel_weight > 0:
            if config.train.realign_epochs > 0:
                pairs = realign_pairs(run_config, frames, feature_dir, manifest, stats, run_dir, device,
                                      progress=progress, rank=rank)
            else:
                if direct_pairs is None:  # the same for every member
                    direct_pairs = load_pairs(feature_dir, manifest, stats, frames.speakers, context=context)
                pairs = direct_pairs
            if rank == 0 and progress:
                print(f"parallel data: {pairs.num_pairs} aligned frame pairs from {pairs.sentences} sentence "
                      f"pairs of {manifest}", flush=True)
        trainers.append(train_in(run_dir, run_config, frames, pairs, stats, device, phases, resume, progress,
                                 rank))
    trainer = trainers[0]
    trainer.members = trainers[1:]
    return trainer
