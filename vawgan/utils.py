"""Small helpers shared by every stage: atomic file writes, device choice, seeds and random states."""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from vawgan.errors import DISK_FULL_ERRNOS, VawganError, disk_full


# The names atomic_path gives its temporary files: ".<stem>.<mkstemp's random part><suffix>".
STALE_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]+\.[A-Za-z0-9]+")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    Whatever the body writes to the temporary path only appears under the final
    name once the body has finished without an exception, so a killed or failed
    run never leaves a half-written file under the final name. The temporary
    file keeps the final suffix (``x.npz`` -> ``.x.<random>.npz``) because some
    writers (``np.savez``, ``soundfile``) choose the format from it. While the
    body runs, this process holds an ``flock`` on the temporary file, which the
    kernel releases however the process ends: temporaries of ``path`` whose
    lock nobody holds were left by a killed writer and are removed first
    (:func:`remove_stale_temporaries`), so a re-run cleans up after a killed
    one without touching the temporary of a run still writing.
    """
    path = Path(path)
    if path.is_dir():
        raise VawganError(f"{path}: is a folder; give the name of the file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent, output=path)
        fd, tmp = _locked_temporary(path)
    except (FileExistsError, NotADirectoryError):
        raise VawganError(f"{path}: a part of this path is a file, not a folder; choose another path") from None
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            raise disk_full(path) from None
        raise VawganError(f"{path}: cannot write here ({(exc.strerror or str(exc)).lower()}); "
                          "choose another path") from None
    try:
        yield tmp
        # mkstemp creates the file as 0600; give it the mode a plain open() would.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        full = isinstance(exc, Exception) and _disk_full(exc, path.parent)
        tmp.unlink(missing_ok=True)
        if full:
            raise disk_full(path) from None
        raise
    finally:
        os.close(fd)  # after the rename or the removal: until then the temporary is in use


def _locked_temporary(path: Path) -> tuple[int, Path]:
    """A new temporary file for ``path`` and a descriptor holding its ``flock`` (see :func:`atomic_path`).

    Between its creation and the lock, a cleaner may take the file for stale
    and remove it; then a new one is made.
    """
    while True:
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix or ".tmp", dir=path.parent)
        fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(fd), os.stat(name)):
                return fd, Path(name)
        os.close(fd)


def _disk_full(exc: Exception, folder: Path) -> bool:
    """Whether writing into ``folder`` failed because its file system is full.

    Some writers say so (``OSError`` ENOSPC or EDQUOT); libsndfile only says
    "System error.", so a file system with less than 1 MiB left while its
    half-written file is still there counts as full too.
    """
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return True
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def remove_stale_temporaries(folder: str | os.PathLike, output: str | os.PathLike | None = None) -> None:
    """Delete the temporary files (``.<name>.<random>.<suffix>``) killed :func:`atomic_path` writers left in ``folder``.

    With ``output``, only the temporaries of that output file. A temporary is
    stale when no process holds its ``flock`` any more; the temporary of a
    writer that is still running, in this process or another, is kept.
    """
    if output is None:
        pattern = STALE_TEMPORARY
    else:
        output = Path(output)
        pattern = re.compile(re.escape(f".{output.stem}.") + "[a-z0-9_]+" + re.escape(output.suffix or ".tmp"))
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            _remove_if_abandoned(entry.path)


def _remove_if_abandoned(path: str) -> None:
    """Remove the temporary file ``path`` unless a live :func:`atomic_path` writer holds its lock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return  # gone already, or not ours to open
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False)):
            os.unlink(path)
    except OSError:
        pass  # held by a live writer, or renamed into place meanwhile
    finally:
        os.close(fd)


def check_not_an_input(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike]) -> None:
    """Raise :class:`VawganError` when an output path is one of the input files.

    The same file is found however it is reached: the same path, a symbolic
    link to it or a hard link of it (the same device and inode), so that no
    spelling of ``-o`` replaces a recording. Paths that do not exist yet are
    no input.
    """
    identities = {}
    for path in inputs:
        with contextlib.suppress(OSError):
            info = os.stat(path)
            identities[info.st_dev, info.st_ino] = path
    for out in outputs:
        try:
            info = os.stat(out)
        except OSError:
            continue
        source = identities.get((info.st_dev, info.st_ino))
        if source is not None:
            raise VawganError(f"{out}: this output is the input {source} (the same file, or a link to it); "
                              "writing it would destroy the recording; choose another output path")


def check_output_folder(out_dir: str | os.PathLike, input_dirs: Iterable[str | os.PathLike]) -> None:
    """Raise :class:`VawganError` when the output folder is an input folder, holds one or lies inside one.

    Outputs written there would replace recordings, or be taken as inputs by
    the next run; ``--overwrite`` does not change that.
    """
    out = Path(out_dir).resolve()
    for folder in input_dirs:
        resolved = Path(folder).resolve()
        if out == resolved or out in resolved.parents or resolved in out.parents:
            raise VawganError(f"{out_dir}: the output folder overlaps the input folder {folder}; outputs would "
                              "replace or mix with the recordings; choose an output folder outside it")


def _current_umask() -> int:
    """The process's umask (reading it requires setting it, so set it back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_npz_atomic(path: str | os.PathLike, **arrays) -> None:
    """``np.savez`` to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


@contextlib.contextmanager
def read_npz(path: str | os.PathLike, what: str, if_missing: str, if_damaged: str) -> Iterator:
    """Open an ``.npz`` file the project wrote, turning every way it can be unusable into one line.

    ``what`` names the file in messages ("statistics file"); ``if_missing`` and
    ``if_damaged`` say what to do. A missing file, a file that is not an npz
    archive (truncated, overwritten) and a missing key or bad value read inside
    the ``with`` body all become a :class:`VawganError`.
    """
    path = Path(path)
    if not path.is_file():
        raise VawganError(f"{path}: {what} not found; {if_missing}")
    try:
        with np.load(path) as data:
            yield data
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, np.linalg.LinAlgError) as exc:
        raise VawganError(f"{path}: {what} is damaged ({exc}); {if_damaged}") from None


def resolve_device(name: str = "auto"):
    """Turn ``auto|cpu|cuda|cuda:N`` into a ``torch.device``.

    ``auto`` picks CUDA when a GPU is visible and the CPU otherwise. Asking for
    CUDA on a machine without one is a user error, not a silent fallback.
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise VawganError(f"--device {name}: no CUDA GPU is visible to PyTorch; use --device cpu or auto")
        return torch.device(name)
    raise VawganError(f"--device {name!r} is not one of auto, cpu, cuda, cuda:N")


def bar_disabled(progress: bool) -> bool | None:
    """tqdm's ``disable`` for a progress bar the caller asked for (``progress``) or not.

    None lets tqdm draw the bar only when its stream is a terminal: output
    redirected to a log file gets the per-epoch and summary lines without a
    carriage-return update for every step or file.
    """
    return None if progress else True


class StageBars:
    """Progress bars for one long recording: one bar per stage of its analysis and synthesis.

    A :data:`vawgan.features.world.Progress` callback, ``bars(stage,
    seconds_done, seconds_total)``. A recording shorter than ``min_seconds``
    gets no bar (a sentence takes a fraction of a second); a longer one gets a
    tqdm bar per stage, in seconds of audio, left on screen when the stage is
    done, so a user converting an hour of speech sees where the minutes go.
    ``disable`` is tqdm's (None: only on a terminal, :func:`bar_disabled`).
    Use it as a context manager, which closes the last bar.
    """

    def __init__(self, name: str, min_seconds: float = 60.0, disable: bool | None = None, file=None):
        self.name = name
        self.min_seconds = min_seconds
        self.disable = disable
        self.file = file
        self.stage: str | None = None
        self.bar = None

    def __call__(self, stage: str, seconds_done: float, seconds_total: float) -> None:
        if seconds_total < self.min_seconds:
            return
        if stage != self.stage:
            from tqdm import tqdm

            self.close()
            self.stage = stage
            self.bar = tqdm(total=seconds_total, desc=f"{self.name}: {stage}", file=self.file or sys.stderr,
                            disable=self.disable,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of audio "
                                       "[{elapsed}<{remaining}]")
        self.bar.n = min(seconds_done, seconds_total)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "StageBars":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, which containers and ``taskset`` narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def configure_cpu(num_threads: int | None = None) -> None:
    """Set the number of intra-op CPU threads and flush denormal floats to zero.

    Small MLPs spend a surprising share of CPU time on denormal numbers near the
    end of training; flushing them made the VAE about 25 % faster here.
    ``num_threads=None`` keeps PyTorch's default (one per core).
    """
    import torch

    if num_threads:
        torch.set_num_threads(int(num_threads))
    torch.set_flush_denormal(True)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) for a repeatable run."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def global_rng_state() -> dict:
    """The state of every global random generator :func:`seed_everything` seeds, for a checkpoint.

    Python's ``random``, NumPy's legacy generator, PyTorch's CPU generator and
    the default generator of each visible CUDA device (an empty list without
    CUDA), as tensors, lists and numbers only, so that the checkpoint loads as
    data (:func:`vawgan.checkpoint.load_checkpoint`).
    :func:`set_global_rng_state` puts it back.
    """
    import torch

    version, internal, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    return {"python": [version, list(internal), gauss_next],
            "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_global_rng_state(state: dict) -> None:
    """Restore a state from :func:`global_rng_state`, so the next random numbers continue its sequence.

    CUDA states are restored for the devices that exist here; a state saved
    without CUDA leaves the CUDA generators as they are.
    """
    import torch

    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if torch.cuda.is_available():
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), index)


@contextlib.contextmanager
def frozen(module) -> Iterator[None]:
    """Forward passes through ``module`` inside the block leave its weights out of the autograd graph.

    For a generator step through a discriminator or critic: the graph is built
    at the forward pass, so a later ``backward()`` (inside or outside the
    block) computes only the gradient with respect to the module's input, not
    the weight gradients the module's optimizer would discard anyway. On
    leaving, each parameter gets back the ``requires_grad`` it had.
    """
    before = [(parameter, parameter.requires_grad) for parameter in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, requires_grad in before:
            parameter.requires_grad_(requires_grad)
