"""Writing and reading PyTorch checkpoints safely.

A checkpoint is data: tensors, plain containers (dict, list, tuple), numbers,
strings and None. It is loaded with ``torch.load(weights_only=True)``, which
refuses anything else, so a crafted ``.pt`` cannot run code on loading.

Checkpoints are written atomically (temporary file, then rename), so a run
killed while saving keeps the previous checkpoint intact. The folder's
``weights.sha256`` (the format of ``sha256sum``) records the hash of each
weights file written there and loading checks it, so a damaged or swapped
file is reported before it is used. Loading a missing, damaged or refused file
raises a :class:`~vawgan.errors.VawganError` that says what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
from pathlib import Path
from typing import Iterator

from vawgan.errors import VawganError
from vawgan.utils import atomic_path

HASHES_FILE = "weights.sha256"


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_hashes(folder: str | os.PathLike) -> dict[str, set[str]] | None:
    """The hashes ``weights.sha256`` of ``folder`` records: file name -> accepted hex digests; None without the file.

    A name may have two digests only while its file is being replaced (see
    :func:`hashed_write`).
    """
    path = Path(folder) / HASHES_FILE
    if not path.is_file():
        return None
    hashes: dict[str, set[str]] = {}
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name.strip():
            raise VawganError(f"{path}: line {number} is not '<sha256>  <file name>'; the model directory "
                              "is damaged, restore it or retrain")
        hashes.setdefault(name.strip(), set()).add(digest.lower())
    return hashes


def _write_hashes(folder: Path, hashes: dict[str, set[str]]) -> None:
    with atomic_path(folder / HASHES_FILE) as tmp:
        Path(tmp).write_text("".join(f"{digest}  {name}\n" for name in sorted(hashes)
                                     for digest in sorted(hashes[name])))


def forget_hash(path: str | os.PathLike) -> None:
    """Drop the entry of ``path`` (a weights file that is being deleted) from its folder's ``weights.sha256``."""
    path = Path(path)
    hashes = read_hashes(path.parent)
    if hashes is not None and path.name in hashes:
        del hashes[path.name]
        _write_hashes(path.parent, hashes)


@contextlib.contextmanager
def hashed_write(path: str | os.PathLike) -> Iterator[Path]:
    """:func:`~vawgan.utils.atomic_path` that also records the written file's hash in ``weights.sha256``.

    The new hash is added next to the old one before the rename and the old
    one dropped after it, so a run killed at any moment leaves a file whose
    hash is recorded.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        yield tmp
        digest = sha256_of(tmp)
        hashes = read_hashes(path.parent) or {}
        hashes.setdefault(path.name, set()).add(digest)
        _write_hashes(path.parent, hashes)
    hashes[path.name] = {digest}
    _write_hashes(path.parent, hashes)


def check_hash(path: str | os.PathLike) -> None:
    """Raise :class:`VawganError` unless ``path``'s hash is the one its folder's ``weights.sha256`` records.

    A file the folder's ``weights.sha256`` does not list (or a folder without
    one) is not checked: weights written before vawgan recorded hashes, whose
    folder gains a ``weights.sha256`` when a NumPy copy is first exported next
    to them. Loading is safe without a hash (it reads data only); the hash
    catches damaged or swapped files.
    """
    path = Path(path)
    hashes = read_hashes(path.parent)
    if hashes is None or path.name not in hashes:
        return
    if sha256_of(path) not in hashes[path.name]:
        raise VawganError(f"{path}: its SHA-256 differs from the one {path.parent / HASHES_FILE} records "
                          "(damaged or replaced); restore the file or retrain")


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Save ``state`` (a dict of tensors, state dicts and plain values) atomically, recording its hash.

    The same state always gives the same bytes: serialized in memory first,
    because ``torch.save`` to a file names the archive inside after that
    file, here a randomly named temporary one. So a retrained model can be
    checked against a shipped one with ``sha256sum``.
    """
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    with hashed_write(path) as tmp:
        Path(tmp).write_bytes(buffer.getbuffer())


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`, as data only.

    Raises :class:`VawganError` when the file is missing, does not match its
    recorded hash, holds Python objects other than tensors and plain values
    (loading those could run code, so they are refused unread) or cannot be
    read (truncated, not a checkpoint), instead of PyTorch's long traceback.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise VawganError(f"{path}: checkpoint not found; train a model first or check the path")
    check_hash(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise VawganError(f"{path}: refused: it holds Python objects, not only tensors and plain values, and "
                          "loading it could run code; use weights written by vawgan") from None
    except Exception as exc:  # torch raises several unrelated types for damaged files
        raise VawganError(f"{path}: checkpoint is corrupt or not a vawgan checkpoint ({type(exc).__name__}); "
                          "delete it and train again") from None
    if not isinstance(state, dict):
        raise VawganError(f"{path}: not a vawgan checkpoint (expected a dict, found {type(state).__name__})")
    return state
