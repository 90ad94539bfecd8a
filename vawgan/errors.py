"""The exception types that the command line turns into a one-line message."""

import errno

# The error numbers of a write that found its file system full (or its disk quota used up).
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class VawganError(Exception):
    """A problem caused by the user's input or environment, not by a bug.

    The message is one line that names the file or setting at fault, what is
    wrong with it and what to do about it. ``vawgan`` prints it without a
    traceback and exits with status 2.
    """


class DiskFullError(VawganError):
    """The file system being written to is full.

    Unlike a bad input, this is no reason to skip one file and go on: every
    later write would fail the same way, so commands that skip bad inputs
    (extraction, batch conversion) stop at the first one instead.
    """


def disk_full(path: object) -> DiskFullError:
    """The error for a write to ``path`` that found its file system full."""
    return DiskFullError(f"{path}: no space left on the device; nothing was written; free some space and run again")
