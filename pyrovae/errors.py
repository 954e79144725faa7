"""Exceptions raised by pyrovae.

Every error the library raises on bad input derives from :class:`PyrovaeError`, so the command
line can turn it into a one-line message and a non-zero exit code instead of a traceback.
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
