"""Writing and reading PyTorch checkpoints safely.

Checkpoints are written atomically (temporary file, then rename), so a run
killed while saving keeps the previous checkpoint intact, and loading a missing
or damaged file raises a :class:`~vawgan.errors.VawganError` that says what to do.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from vawgan.errors import VawganError
from vawgan.utils import atomic_path


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Save ``state`` (a dict of tensors, state dicts and plain values) atomically.

    The same state always gives the same bytes: serialized in memory first,
    because ``torch.save`` to a file names the archive inside after that
    file, here a randomly named temporary one. So a retrained model can be
    checked against a shipped one with ``sha256sum``.
    """
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(buffer.getbuffer())


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Raises :class:`VawganError` when the file is missing or cannot be read
    (truncated, not a checkpoint), instead of PyTorch's long traceback.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise VawganError(f"{path}: checkpoint not found; train a model first or check the path")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises several unrelated types for damaged files
        raise VawganError(f"{path}: checkpoint is corrupt or not a vawgan checkpoint ({type(exc).__name__}); "
                          "delete it and retrain, or resume from an earlier one") from None
    if not isinstance(state, dict):
        raise VawganError(f"{path}: not a vawgan checkpoint (expected a dict, found {type(state).__name__})")
    return state
