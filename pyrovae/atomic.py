"""Atomic file writes: a file is either its old content or its new content, never a mix.

Every file pyrovae writes (run files, pictures) goes through :func:`atomic_write_bytes`: the
content is written to a temporary file beside the target (``.NAME.XXXX.tmp``), flushed to
disk, given the permissions a plain ``open()`` would give (``0666`` less the umask, so
``0644`` under the usual umask) and renamed onto the target. A crash, a kill or a full disk
part-way leaves the previous file untouched and, except after a kill, no temporary file (a
run directory's stale ones are removed when the run is next opened:
:mod:`pyrovae.training.run_guard`).

An :class:`OSError` (a full disk, a read-only folder, a target that is a folder) becomes a
:class:`~pyrovae.errors.WriteError` naming the file and the reason, also where the writer
(``torch.save``, an image encoder) turns it into an error of its own.

Every output goes through here, so two guards hold for every command that writes a file:

* the files of a run directory (:data:`RUN_FILES`: its config, checkpoints, metrics,
  training picture and program copy) are written by its training alone (``run_file=True``);
  any other writer naming one of them, directly or through a symbolic link, is refused, and
  the file kept;
* only a regular file is replaced: a character device (``/dev/null``) or a FIFO is written
  into (a FIFO that no process reads is refused rather than waited on), and any other kind
  of file (a block device, a socket) is refused.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .errors import WriteError

__all__ = [
    "BEST_FILE",
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "CSV_FILE",
    "METRICS_FILE",
    "PICTURE_FILE",
    "PROGRAM_FILE",
    "RUN_FILES",
    "STEPS_CSV_FILE",
    "TEMP_SUFFIX",
    "atomic_write_bytes",
    "check_output_path",
    "temp_prefix",
    "write_error",
]

#: suffix of the temporary files of :func:`atomic_write_bytes`
TEMP_SUFFIX = ".tmp"

#: the files of a run directory (:mod:`pyrovae.training.run_dir`): the resolved config...
CONFIG_FILE = "config.toml"
#: ... the checkpoint written at each epoch end ...
CHECKPOINT_FILE = "checkpoint.pt"
#: ... the state of the epoch with the best validation ELBO (runs with ``train.validation``) ...
BEST_FILE = "best.pt"
#: ... the per-epoch metrics ...
METRICS_FILE = "metrics.jsonl"
#: ... the picture of samples and reconstructions, rewritten every ``log.images_every`` epochs
PICTURE_FILE = "samples_reconstructions.png"
#: ... the metrics as CSV (``log.csv``: per epoch, and per ``log.every_steps`` steps) ...
CSV_FILE = "metrics.csv"
STEPS_CSV_FILE = "steps.csv"
#: ... and the copy of a ``model.program`` module's source file
PROGRAM_FILE = "program.py"
#: what only a run's training writes
RUN_FILES = (
    CONFIG_FILE,
    CHECKPOINT_FILE,
    BEST_FILE,
    METRICS_FILE,
    PICTURE_FILE,
    CSV_FILE,
    STEPS_CSV_FILE,
    PROGRAM_FILE,
)


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


class _Recording:
    """A file that remembers the first :class:`OSError` its writes raised: ``torch.save``
    turns a full disk into a ``RuntimeError`` of its own, which says nothing of the disk."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.file.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def __getattr__(self, name: str) -> object:
        return getattr(self.file, name)


def _check_run_file(path: Path) -> None:
    """Refuse ``path`` when it names (directly or through links) a file of a run directory:
    only the run's training writes those."""
    target = Path(os.path.realpath(path))
    folder = target.parent
    is_run = (folder / CONFIG_FILE).is_file() and (
        (folder / METRICS_FILE).is_file() or (folder / CHECKPOINT_FILE).is_file()
    )
    if target.name in RUN_FILES and is_run:
        raise WriteError(
            f"'{path}' is the {target.name} of the run directory '{folder}'; only training "
            "that run writes it: choose another output path"
        )


def check_output_path(path: str | Path) -> bool:
    """Refuse, before any work, an output ``path`` that :func:`atomic_write_bytes` would
    refuse: a run directory's own file (:data:`RUN_FILES`) or a folder (a
    :class:`~pyrovae.errors.WriteError` in one line). Whether ``path`` is an existing character
    device or FIFO, written into rather than replaced (no suffix to tell its format by)."""
    path = Path(path)
    _check_run_file(path)
    if path.is_dir():
        raise write_error(path, IsADirectoryError(errno.EISDIR, "Is a directory"))
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def _write_into(path: Path, mode: int, write: Callable[[IO[bytes]], object]) -> None:
    """Write into the existing non-regular file ``path`` (a character device, a FIFO that a
    process reads); refuse any other kind."""
    if not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        raise WriteError(
            f"cannot write '{path}': it is a special file (a block device or a socket), not a "
            "regular file; give a file name"
        )
    try:  # without O_NONBLOCK, opening a FIFO that nobody reads waits for ever
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise WriteError(
                f"cannot write '{path}': it is a FIFO (named pipe) that no process reads; start "
                "its reader first, or give a file name"
            ) from None
        raise write_error(path, exc) from None
    os.set_blocking(fd, True)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
    except OSError as exc:
        raise write_error(path, exc) from None


def atomic_write_bytes(
    path: str | Path, write: Callable[[IO[bytes]], object], *, run_file: bool = False
) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it onto ``path``.

    A crash or error part-way leaves the previous ``path`` untouched; an ``OSError`` is raised
    as :class:`~pyrovae.errors.WriteError`. ``run_file``: the caller is the training of the
    run directory ``path`` belongs to, the one writer of its :data:`RUN_FILES`. An existing
    character device or FIFO is written into, not replaced (see the module's docstring).

    Example::

        atomic_write_bytes(Path("run/notes.txt"), lambda f: f.write(b"hello\\n"))
    """
    path = Path(path)
    if not run_file:
        _check_run_file(path)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None  # no such file yet (or unreachable: the write says why)
    if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        _write_into(path, mode, write)
        return
    _replace(path, write)


def _replace(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write a temporary file beside ``path`` with ``write`` and rename it onto ``path``."""
    try:
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=temp_prefix(path.name), suffix=TEMP_SUFFIX
        )
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            recording = _Recording(f)
            try:
                write(recording)  # type: ignore[arg-type]
            except Exception:
                if recording.error is None:
                    raise
                raise recording.error from None  # the disk's error, not the writer's
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
