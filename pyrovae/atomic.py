"""Atomic file writes: a file is either its old content or its new content, never a mix.

Every file pyrovae writes (run files, pictures) goes through :func:`atomic_write_bytes`: the
content is written to a temporary file beside the target (``.NAME.XXXX.tmp``), flushed to
disk, given the permissions a plain ``open()`` would give (``0666`` less the umask, so
``0644`` under the usual umask) and renamed onto the target. A crash, a kill or a full disk
part-way leaves the previous file untouched and, except after a kill, no temporary file (a
run directory's stale ones are removed when the run is next opened:
:mod:`pyrovae.training.run_guard`).

An :class:`OSError` (a full disk, a read-only folder, a target that is a folder) becomes a
:class:`~pyrovae.errors.WriteError` naming the file and the reason.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .errors import WriteError

__all__ = ["TEMP_SUFFIX", "atomic_write_bytes", "temp_prefix", "write_error"]

#: suffix of the temporary files of :func:`atomic_write_bytes`
TEMP_SUFFIX = ".tmp"


def temp_prefix(name: str) -> str:
    """The prefix of the temporary files written on the way to a file called ``name``."""
    return f".{name}."


def _file_mode() -> int:
    """``0666`` less the process umask: the mode ``open()`` gives a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_error(path: Path, exc: OSError) -> WriteError:
    """The :class:`WriteError` for ``exc`` raised while writing ``path``, with a fix."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, IsADirectoryError) or path.is_dir():
        return WriteError(
            f"cannot write '{path}': it is a folder; give a file name (e.g. '{path / 'out.png'}')"
        )
    hint = {
        errno.ENOSPC: "free some disk space and try again",
        errno.EDQUOT: "free some disk space and try again",
        errno.EACCES: "choose a folder you may write to",
        errno.EPERM: "choose a folder you may write to",
        errno.EROFS: "the file system is read-only; choose another folder",
        errno.ENOTDIR: "a parent of this path is a file, not a folder",
        errno.ENOENT: "its folder does not exist",
    }.get(exc.errno or 0, "check the path and the disk")
    return WriteError(f"cannot write '{path}': {reason}; {hint}")


def atomic_write_bytes(path: str | Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it onto ``path``.

    A crash or error part-way leaves the previous ``path`` untouched; an ``OSError`` is raised
    as :class:`~pyrovae.errors.WriteError`.

    Example::

        atomic_write_bytes(Path("run/notes.txt"), lambda f: f.write(b"hello\\n"))
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=temp_prefix(path.name), suffix=TEMP_SUFFIX
        )
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), _file_mode())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise write_error(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
