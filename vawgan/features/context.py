"""The encoder's input windows: each frame with its neighbours, as training and conversion both build them.

With ``model.context_frames`` k > 0 the encoder sees each frame with its k
neighbours on either side, 2k + 1 frames of the same utterance side by side,
the first and last frame repeated beyond the utterance's ends. Training keeps
the windows as indices into a table of frames (:class:`vawgan.data.ContextTable`);
conversion stacks them for the frames it encodes (:func:`stack_context`).
"""

from __future__ import annotations

import numpy as np


def context_windows(num_frames: int, context: int, rows: slice = slice(None)) -> np.ndarray:
    """Frame indices of the encoder windows of frames ``rows`` (default all) in an utterance of ``num_frames``.

    Row t is ``t - context .. t + context`` clipped to ``0 .. num_frames - 1``
    (the edge frames repeat), shape (rows, 2 * context + 1). The
    encoder's input for frame t is ``frames[windows[t]].reshape(-1)``: the
    window's frames one after another, earliest first. ``context = 0`` gives
    each frame alone.
    """
    if context < 0:
        raise ValueError(f"context must not be negative, got {context}")
    offsets = np.arange(-context, context + 1, dtype=np.int64)
    return np.clip(np.arange(num_frames, dtype=np.int64)[rows, None] + offsets, 0, max(num_frames - 1, 0))


def stack_context(frames: np.ndarray, context: int, rows: slice = slice(None)) -> np.ndarray:
    """The encoder inputs of frames ``rows`` (default all) of one utterance: (T, D) → (rows, (2 · context + 1) · D)."""
    if context == 0:
        return frames[rows]
    windows = context_windows(len(frames), context, rows)
    return frames[windows].reshape(len(windows), -1)
