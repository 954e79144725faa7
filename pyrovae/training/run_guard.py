"""The run-directory guard: one pyrovae process writes a run at a time, and a folder that is
not a run is never written into.

A folder is a *pyrovae run directory* when it holds both ``config.toml`` and
``metrics.jsonl``: :func:`~pyrovae.training.train` writes the two when a run starts, before
its first epoch, and every later writer of the run (the epochs, ``--resume``) keeps them.

* :func:`check_new_run_dir` says whether a folder can take a new run: it does not exist, is
  empty, or is a run that never finished an epoch (it holds pyrovae's files and no
  checkpoint, or only the empty metrics file a run writes first; such a run is started
  afresh). A file, a run with a checkpoint, and a folder holding anything else (say a
  hand-written ``config.toml``) are refused, and nothing in them changes. The folder is
  looked at under its lock, so a run another process is starting is reported as in use.
* :func:`hold_run_dir` holds an exclusive lock on the run (the ``filelock`` package's
  :class:`~filelock.FileLock` on the hidden file ``.pyrovae.lock`` in the folder: ``flock``
  on POSIX, ``msvcrt.locking`` on Windows; taken without waiting) for as long as the run is
  trained: a second ``train`` into the same folder or a ``--resume`` of a run in training
  fails at once. The operating system drops the lock when the process ends, however it ends,
  so a killed run never stays locked. The lock file is only ever made in a folder that is
  empty or a run (a folder of other files is refused before it is locked). Holding the
  lock, the guard removes the temporary files that a kill during an atomic write leaves
  behind (``.checkpoint.pt.XXXX.tmp``...).

Reading a run (``evaluate``, ``sample``, ``plot``) takes no lock: every file of a run is
replaced atomically, so a reader sees either the previous or the next epoch's file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from filelock import FileLock, Timeout

from ..atomic import RUN_FILES, TEMP_SUFFIX, temp_prefix, write_error
from ..errors import RunDirectoryError
from .run_dir import CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE

__all__ = ["LOCK_FILE", "check_new_run_dir", "hold_run_dir", "is_run_dir"]

#: the file whose lock is the run's (hidden; kept, empty, after the run)
LOCK_FILE = ".pyrovae.lock"

#: the files that mark a folder as a run directory
MARKER_FILES = (CONFIG_FILE, METRICS_FILE)
#: the files a training run writes (atomically, through temporary files): the run's own
WRITTEN_FILES = RUN_FILES


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a pyrovae run directory (it holds ``config.toml`` and
    ``metrics.jsonl``)."""
    return all((Path(path) / name).is_file() for name in MARKER_FILES)


def _is_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary file of a write of one of :data:`WRITTEN_FILES`."""
    return name.endswith(TEMP_SUFFIX) and any(
        name.startswith(temp_prefix(w)) for w in WRITTEN_FILES
    )


def check_new_run_dir(path: Path) -> None:
    """Raise :class:`RunDirectoryError` unless ``path`` can take a new run (see the module
    docstring); changes nothing.

    An existing folder is looked at under its lock (taken for the look, then dropped), so a
    run that another process is starting, and has half written, is reported as in use
    rather than as a folder of other files."""
    path = Path(path)
    if _check_path(path):
        if not (path / LOCK_FILE).exists():
            _check_contents(path)  # no pyrovae process has been here: nothing to wait for
            return
        lock = _lock(path)
        try:
            _check_contents(path)
        finally:
            lock.release()


def _check_path(path: Path) -> bool:
    """Refuse a ``path`` that is not a folder; whether it exists (as a folder)."""
    if not path.exists():
        if path.is_symlink():
            raise RunDirectoryError(f"--out '{path}' is a broken symbolic link; choose a folder")
        return False
    if not path.is_dir():
        raise RunDirectoryError(
            f"--out '{path}' is a file, not a folder; choose a new folder for the run"
        )
    return True


def _check_contents(path: Path) -> None:
    """Refuse the folder ``path`` unless it can take a new run; called holding its lock, so
    that no pyrovae process writes in it meanwhile."""
    if (path / CHECKPOINT_FILE).exists():
        raise RunDirectoryError(
            f"'{path}' already holds a run; continue it with `pyrovae train --resume "
            f"{path}` or choose another --out"
        )
    try:
        entries = sorted(e for e in os.listdir(path) if not _is_temporary(e) and e != LOCK_FILE)
    except OSError as exc:
        raise RunDirectoryError(f"--out '{path}' cannot be read: {exc.strerror}") from None
    if entries and not is_run_dir(path) and not _is_run_cut_at_start(path, entries):
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise RunDirectoryError(
            f"--out '{path}' is a folder that is not a pyrovae run and is not empty (it holds "
            f"{shown}); pyrovae never writes over other files: choose a new or empty folder"
        )


def _is_run_cut_at_start(path: Path, entries: list[str]) -> bool:
    """Whether the folder holds only the empty metrics file that :func:`~pyrovae.train` writes
    first: a run killed before it wrote its config (overwriting it loses nothing)."""
    return entries == [METRICS_FILE] and (path / METRICS_FILE).stat().st_size == 0


def _lock(path: Path) -> FileLock:
    """Take the lock of the run directory ``path`` (without waiting) and return it."""
    lock = FileLock(path / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunDirectoryError(
            f"'{path}' is in use by another pyrovae process (training or resuming it); wait "
            "for it to finish or choose another folder"
        ) from None
    except OSError as exc:
        raise RunDirectoryError(f"'{path}' cannot be locked: {exc.strerror}") from None
    return lock


def _remove_stale_temporaries(path: Path) -> None:
    for name in os.listdir(path):
        if _is_temporary(name):
            (path / name).unlink(missing_ok=True)


def _refuse_not_a_run(path: Path) -> NoReturn:
    raise RunDirectoryError(
        f"'{path}' is not a pyrovae run directory (it lacks {' or '.join(MARKER_FILES)}); "
        "give a folder made by `pyrovae train --out`"
    )


@contextlib.contextmanager
def hold_run_dir(path: Path, new: bool) -> Iterator[Path]:
    """Hold the exclusive lock of the run directory ``path`` for the block.

    With ``new=True``, ``path`` (and its parents) is created if needed and checked as
    :func:`check_new_run_dir` does; if that fails, a folder this call created is removed.
    Otherwise ``path`` must already be a run directory. Either way the folder is looked at
    under the lock, and the stale temporary files of earlier writes are removed before the
    block runs.

    Raises:
        RunDirectoryError: ``path`` cannot be used, or another process holds it.
        WriteError: ``path`` cannot be created (a read-only folder, a full disk...).
    """
    path = Path(path)
    created = False
    if new:
        _check_path(path)
        try:
            path.mkdir(parents=True)
            created = True  # by this process: of two racing ones, only one creates it
        except FileExistsError:
            pass
        except OSError as exc:
            raise write_error(path, exc) from None
    elif not is_run_dir(path):
        _refuse_not_a_run(path)
    if new and not (path / LOCK_FILE).exists():
        _check_contents(path)  # a folder of other files is refused before a lock file is made
    # if the lock is taken, the folder is another process's run now (even if this one made
    # it): leave it as it is
    lock = _lock(path)
    try:
        # the contents are looked at now that no other pyrovae process can write in them
        if new:
            try:
                _check_contents(path)
            except BaseException:
                if created:
                    shutil.rmtree(path, ignore_errors=True)
                raise
        elif not is_run_dir(path):
            _refuse_not_a_run(path)
        _remove_stale_temporaries(path)
        yield path
    finally:
        lock.release()
