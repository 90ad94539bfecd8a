"""What every secondary-GAN trainer shares: the run directory, its log, checkpoints and report.

A run directory holds ``config.yaml`` (the full config used), ``checkpoint.pt``
(the latest epoch: networks, optimizers, counters, random states), ``metrics.csv`` (+
``tensorboard/``), ``train.log`` (what was printed), ``report.json`` /
``report.txt`` (final numbers) and the plots.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Iterator

import torch

from vawgan.checkpoint import load_checkpoint, save_checkpoint
from vawgan.config import SectionedConfig, load_config, save_config
from vawgan.errors import VawganError
from vawgan.utils import atomic_path, global_rng_state, set_global_rng_state

log = logging.getLogger("vawgan.gans")
CHECKPOINT = "checkpoint.pt"


@contextlib.contextmanager
def run_logging(run_dir: Path) -> Iterator[logging.Logger]:
    """Send ``vawgan.gans`` log lines to stdout and to ``<run_dir>/train.log`` while training.

    The lines do not propagate to the root logger meanwhile: the command line's
    handler there is meant for warnings of other modules and would print every
    progress line a second time.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    handlers = [logging.FileHandler(run_dir / "train.log"), logging.StreamHandler(sys.stdout)]
    handlers[0].setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    for handler in handlers:
        log.addHandler(handler)
    previous = log.level, log.propagate
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield log
    finally:
        for handler in handlers:
            log.removeHandler(handler)
            handler.close()
        log.level, log.propagate = previous


def start_run(run_dir: Path, config: SectionedConfig, resume: bool) -> dict | None:
    """Prepare ``run_dir`` for training; return the checkpoint to resume from, if any.

    A directory that already holds a checkpoint is only reused with ``resume``
    (so a second ``train`` cannot silently overwrite a finished model). A
    resumed run may change its ``train`` settings (e.g. more epochs) but not
    its ``data`` or ``model`` sections, which the checkpoint depends on.
    """
    checkpoint = run_dir / CHECKPOINT
    if checkpoint.exists() and not resume:
        raise VawganError(f"{run_dir}: already holds a trained model; pass --resume to continue it "
                          "or choose another --out directory")
    if resume and not checkpoint.exists():
        raise VawganError(f"{run_dir}: nothing to resume ({CHECKPOINT} not found)")
    run_dir.mkdir(parents=True, exist_ok=True)
    state = None
    if resume:
        saved = load_config(run_dir / "config.yaml", config_cls=type(config))
        for section in ("data", "model"):
            if getattr(saved, section) != getattr(config, section):
                raise VawganError(f"{run_dir}: the '{section}' settings differ from those the run was started "
                                  f"with ({run_dir / 'config.yaml'}); resume with the same config")
        state = load_checkpoint(checkpoint)
    save_config(config, run_dir / "config.yaml")
    return state


def load_run(run_dir: Path, config_cls: type[SectionedConfig], device) -> tuple[SectionedConfig, dict]:
    """The config and latest checkpoint of a trained run, for sampling and evaluation."""
    if not (run_dir / "config.yaml").is_file():
        raise VawganError(f"{run_dir}: no config.yaml; is this a run directory made by 'train'?")
    return load_config(run_dir / "config.yaml", config_cls=config_cls), load_checkpoint(run_dir / CHECKPOINT, device)


def adam(module: torch.nn.Module, learning_rate: float, betas: list[float]) -> torch.optim.Adam:
    return torch.optim.Adam(module.parameters(), lr=learning_rate, betas=tuple(betas))


def save_run_state(run_dir: Path, epoch: int, step: int, modules: dict[str, object], **extra) -> None:
    """Checkpoint the state dicts of ``modules`` (networks, optimizers, schedulers), counters and random states.

    The training loops draw their data order and noise from the global random
    generators, so their states are saved too (see :func:`restore_run_state`).
    """
    state = {name: m.state_dict() for name, m in modules.items()}
    save_checkpoint(run_dir / CHECKPOINT, {**state, "epoch": epoch, "step": step, "rng": global_rng_state(), **extra})


def restore_run_state(state: dict, modules: dict[str, object]) -> tuple[int, int]:
    """Load a checkpoint written by :func:`save_run_state`; return (epochs done, steps done).

    The global random generators continue where the checkpoint left them, so
    a trainer that calls this after setting up its networks (which draws
    random numbers) and draws nothing else before its first epoch resumes with
    the same random numbers, and ends with the same weights, as an
    uninterrupted run. A checkpoint written before random states were saved
    keeps the freshly seeded ones.
    """
    for name, module in modules.items():
        module.load_state_dict(state[name])
    if "rng" in state:
        set_global_rng_state(state["rng"])
    return int(state["epoch"]), int(state["step"])


def log_step_scalars(logger, first_step: int, prefix: str, steps: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """Log one epoch of per-step scalars (one host transfer) and return their epoch means."""
    if not steps:
        return {}
    names = list(steps[0])
    values = torch.stack([torch.stack([s[name].float() for name in names]) for s in steps]).cpu()
    for i, row in enumerate(values.tolist()):
        logger.log(first_step + i, {f"{prefix}/{name}": v for name, v in zip(names, row)})
    return dict(zip(names, values.mean(0).tolist()))


def write_report(run_dir: Path, report: dict, text: str) -> None:
    """Write ``report.json`` and the human-readable ``report.txt``, atomically."""
    with atomic_path(run_dir / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    with atomic_path(run_dir / "report.txt") as tmp:
        tmp.write_text(text + "\n")
