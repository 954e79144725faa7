"""Exceptions and warnings raised by pyrovae.

Every error the library raises on bad input derives from :class:`PyrovaeError`, so the command
line can turn it into a one-line message and a non-zero exit code instead of a traceback.
Every warning it issues derives from :class:`PyrovaeWarning`, which the command line prints
as one line (``pyrovae COMMAND: warning: ...``) and which can be filtered as one category,
e.g. ``warnings.simplefilter("ignore", pyrovae.PyrovaeWarning)``.
"""


class PyrovaeError(Exception):
    """Base class of all user-facing pyrovae errors."""


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
    """Base class of all warnings pyrovae issues."""


class BinarizedColourWarning(PyrovaeWarning):
    """Colour images are binarized (``data.binarize`` is not ``"none"``): each channel's 8-bit
    levels become 0 or 1, and the model learns blobs of a few saturated colours."""


class UnreliableEstimateWarning(PyrovaeWarning):
    """An estimate cannot be trusted, e.g. importance-sampled log p(x) of examples whose
    importance weights have Pareto shape k > 0.7 (see :mod:`pyrovae.evaluation.psis`)."""
