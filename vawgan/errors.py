"""The one exception type that the command line turns into a one-line message."""


class VawganError(Exception):
    """A problem caused by the user's input or environment, not by a bug.

    The message is one line that names the file or setting at fault, what is
    wrong with it and what to do about it. ``vawgan`` prints it without a
    traceback and exits with status 2.
    """
