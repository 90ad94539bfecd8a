"""Settings a training run refuses before it starts."""

from __future__ import annotations

import os

from vawgan.config import Config
from vawgan.corpus import read_manifest, shared_train_sentences
from vawgan.errors import VawganError


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

