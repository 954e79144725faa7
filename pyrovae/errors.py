"""Exceptions and warnings raised by pyrovae.

Every error the library raises on bad input derives from :class:`PyrovaeError`, so the command
line can turn it into a one-line message and a non-zero exit code instead of a traceback.
Every warning it issues derives from :class:`PyrovaeWarning`, which the command line prints
as one line (``pyrovae COMMAND: warning: ...``) and which can be filtered as one category,
e.g. ``warnings.simplefilter("ignore", pyrovae.PyrovaeWarning)``.
"""

import re

#: the longest message an error or warning of pyrovae carries (a few hundred characters)
MAX_MESSAGE = 600
#: the longest single word (a value, a path) a message quotes in full
MAX_QUOTE = 120
_WORD = re.compile(rf"\S{{{MAX_QUOTE + 1},}}")


def capped(message: str) -> str:
    """``message`` on one line, with every word (a quoted value, a path) longer than
    :data:`MAX_QUOTE` characters shortened to its start and end, and the whole at most
    :data:`MAX_MESSAGE` characters (its middle cut): the one place that bounds what a message
    quotes, whatever the value (a 5000-digit number, megabytes of a file).

    Example::

        capped("x = " + "9" * 5000)   # 'x = 99999...(5000 characters)...99999'
    """

    def shorten(match: re.Match[str]) -> str:
        word = match.group()
        return f"{word[:60]}...({len(word)} characters)...{word[-20:]}"

    line = _WORD.sub(shorten, " ".join(message.splitlines()))
    if len(line) > MAX_MESSAGE:  # the start names the value, the end says how to fix it
        keep = MAX_MESSAGE - 40
        head = keep * 2 // 3
        line = f"{line[:head]} ...({len(line) - keep} characters)... {line[head - keep :]}"
    return line


class PyrovaeError(Exception):
    """Base class of all user-facing pyrovae errors; a message is one line of at most
    :data:`MAX_MESSAGE` characters (:func:`capped`)."""

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (capped(args[0]),)
        super().__init__(*args)


class ConfigError(PyrovaeError, ValueError):
    """A config is malformed: unknown key or name, wrong type, missing value, bad combination."""


class DataError(PyrovaeError):
    """A data set cannot be found, downloaded or used with the chosen likelihood."""


class CheckpointError(PyrovaeError):
    """A run directory or checkpoint is missing, truncated or inconsistent."""


class WriteError(PyrovaeError, OSError):
    """A file cannot be written: a full disk, a read-only folder, a path that is a folder."""


class RunDirectoryError(CheckpointError):
    """A folder cannot be used as a run directory: it holds other files, or another pyrovae
    process is using it."""


class DivergenceError(PyrovaeError):
    """Training diverged: the loss became non-finite or exploded."""


class DistributedError(PyrovaeError):
    """A process of a run of several (``torchrun``) could not reach the others: one of them
    stopped, or the process group cannot be formed."""


class PyrovaeWarning(UserWarning):
    """Base class of all warnings pyrovae issues; a message is capped as an error's is."""

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (capped(args[0]),)
        super().__init__(*args)


class BinarizedColourWarning(PyrovaeWarning):
    """Colour images are binarized (``data.binarize`` is not ``"none"``): each channel's 8-bit
    levels become 0 or 1, and the model learns blobs of a few saturated colours."""


class UnreliableEstimateWarning(PyrovaeWarning):
    """An estimate cannot be trusted, e.g. importance-sampled log p(x) of examples whose
    importance weights have Pareto shape k > 0.7 (see :mod:`pyrovae.evaluation.psis`)."""
