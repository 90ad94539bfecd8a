"""Ensembles: the runs ``train.members`` asks for, one model directory per seed."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from vawgan.config import Config
from vawgan.errors import VawganError
from vawgan.model_dir import member_dir


def ensemble_runs(config: Config, model_dir: str | os.PathLike) -> list[tuple[Config, Path]]:
    """The (config, model directory) of each model ``train.members`` asks for, the directory's own first.

    Member k (1 .. members - 1) is the same config with seed ``seed + k`` and
    ``members: 1`` (it is one model), in :func:`vawgan.model_dir.member_dir`.
    """
    members = config.train.members
    if members < 1:
        raise VawganError(f"train.members={members}: must be at least 1 (1: one model, no ensemble)")
    runs = [(config, Path(model_dir))]
    for k in range(1, members):
        seed = config.train.seed + k
        train = dataclasses.replace(config.train, seed=seed, members=1)
        runs.append((dataclasses.replace(config, train=train), member_dir(model_dir, seed)))
    return runs

