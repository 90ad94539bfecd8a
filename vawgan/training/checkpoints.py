"""Checkpoints of a :class:`~vawgan.training.trainer.Trainer`: its whole state, written only when finite.

Exact resume. A checkpoint holds the training position (phases finished, the
phase in progress, its epoch and step, the epoch's frame order and its
per-step scalars so far), the random generator's state, the weights and the
optimizer states: a run interrupted and resumed from it ends with the same
weights as an uninterrupted one.

Failure handling. Checkpoints are written atomically every
``train.checkpoint_every`` steps and at the end of each phase, and only after
checking that the losses since the last check and all weights are finite: a
non-finite value stops training with :class:`TrainingDiverged`, which names
the first bad step and the last good checkpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from vawgan.errors import VawganError

if TYPE_CHECKING:
    from vawgan.training.trainer import Trainer


class TrainingDiverged(VawganError):
    """A loss or weight became NaN or infinite; nothing after the last good checkpoint was saved."""


def training_state(trainer: Trainer) -> dict:
    """What a checkpoint holds: the data and batch it was trained with, the position, the RNG, weights, optimizers."""
    return {
        "format": 1, "speakers": trainer.speakers, "num_frames": trainer.num_frames, "batch_size": trainer.batch,
        "num_pairs": trainer.steps.num_pairs, "context_frames": trainer.steps.context,
        "completed": list(trainer.completed), "phase": trainer.phase, "epoch": trainer.epoch, "step": trainer.step,
        "global_step": trainer.global_step, "epochs_logged": trainer.epochs_logged,
        "order": None if trainer.order is None else trainer.order.cpu(),
        "history": None if trainer.history is None else trainer.history.cpu(),
        **trainer.steps.state_dict(),
    }


def restore_training_state(trainer: Trainer, state: dict) -> None:
    """Continue ``trainer`` from a :func:`training_state`, refusing one written for other data or batch size."""
    path = trainer.checkpoint_path
    for key, mine in (("speakers", trainer.speakers), ("num_frames", trainer.num_frames),
                      ("batch_size", trainer.batch), ("num_pairs", trainer.steps.num_pairs),
                      ("context_frames", trainer.steps.context)):
        if state.get(key, 0 if key in ("num_pairs", "context_frames") else None) != mine:
            raise VawganError(f"{path}: was written with {key}={state.get(key)!r} but this run has {mine!r}; "
                              "train on the same data and batch size, or use another --model-dir")
    trainer.steps.load_state_dict(state)
    trainer.completed = list(state["completed"])
    trainer.phase, trainer.epoch, trainer.step = state["phase"], state["epoch"], state["step"]
    trainer.global_step, trainer.epochs_logged = state["global_step"], state["epochs_logged"]
    trainer.order = None if state["order"] is None else state["order"].to(trainer.device)
    trainer.history = None if state["history"] is None else state["history"].to(trainer.device)
    trainer.last_checkpoint_step = trainer.global_step


def check_finite(trainer: Trainer) -> None:
    """Raise :class:`TrainingDiverged` unless the epoch's losses so far and all weights of ``trainer`` are finite.

    One host synchronisation; called only at checkpoints and epoch ends.
    """
    rows = trainer.history[:trainer.step] if trainer.history is not None else torch.zeros(0, 1, device=trainer.device)
    finite_rows = torch.isfinite(rows).all(dim=1)
    weights_ok = torch.stack([torch.isfinite(p).all() for m in trainer.steps.modules() for p in m.parameters()]).all()
    flags = torch.cat([finite_rows.float(), weights_ok.float().reshape(1)])
    if trainer.distributed:
        import torch.distributed as dist

        dist.all_reduce(flags, op=dist.ReduceOp.MIN)
    flags = flags.cpu()
    if bool(flags.all()):
        return
    bad = (flags[:-1] == 0).nonzero()
    first_bad_row = int(bad[0]) if len(bad) else trainer.step - 1
    bad_step = trainer.global_step - trainer.step + first_bad_row + 1
    if trainer.last_checkpoint_step is None:
        last = "none was written yet"
    else:
        last = f"{trainer.checkpoint_path} (step {trainer.last_checkpoint_step})"
    raise TrainingDiverged(f"{trainer.phase} phase diverged: non-finite loss or weights at step {bad_step} "
                           f"(epoch {trainer.epoch + 1}); nothing after that was saved; last good checkpoint: "
                           f"{last}; lower train.learning_rate (or check the features) and run again with "
                           "--resume")
