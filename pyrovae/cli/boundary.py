"""The error boundary of the ``pyrovae`` command line: :func:`main`.

Errors in user input (a bad config, a missing data set, a damaged checkpoint: every
:class:`~pyrovae.errors.PyrovaeError`) end the program with exit code 2 and a one-line reason
on stderr, never a traceback. So do the failures of the machine that the library does not turn
into its own errors where they happen: an :class:`OSError` (a full disk, a read-only folder)
and running out of memory. An interrupt (Ctrl-C) ends it with exit code 130 and SIGTERM (what
schedulers and ``timeout`` send before they kill) with 143, both as one line saying how to go
on (a training run keeps the checkpoint of its last finished epoch). Anything else is
a bug in pyrovae and keeps its traceback. It is also the one place that shows pyrovae's
warnings (every :class:`~pyrovae.errors.PyrovaeWarning`), each as one line
``pyrovae COMMAND: warning: MESSAGE`` on stderr; other warnings are shown as Python shows
them.

Launched by ``torchrun`` (several processes), every command runs in the run's process group
(:mod:`pyrovae.distributed`): ``train`` and ``evaluate`` share their work, rank 0 alone prints
results, progress and warnings, and an error is printed once, by the first process that
meets it, every process then exiting with a non-zero code. ``score`` shares its work as
``evaluate`` does, and rank 0 alone writes its file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

from ..errors import PyrovaeError, PyrovaeWarning
from .describe import describe
from .draw import plot, sample
from .examples import encode, score
from .export import export
from .ood import ood
from .parser import build_parser
from .score import compare, evaluate
from .train import train

#: each command's function, called with the parsed options as keyword arguments
COMMANDS: dict[str, Callable[..., None]] = {
    "train": train,
    "describe": describe,
    "evaluate": evaluate,
    "compare": compare,
    "ood": ood,
    "sample": sample,
    "plot": plot,
    "encode": encode,
    "score": score,
    "export": export,
}


@contextlib.contextmanager
def _one_line_warnings(command: str) -> Iterator[None]:
    """Show each :class:`~pyrovae.errors.PyrovaeWarning` as one line on stderr, ``pyrovae
    COMMAND: warning: MESSAGE``, while the block runs; other warnings as before."""
    with warnings.catch_warnings():
        show = warnings.showwarning

        def showwarning(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            if issubclass(category, PyrovaeWarning):
                print(f"pyrovae {command}: warning: {message}", file=sys.stderr)
            else:
                show(message, category, filename, lineno, file, line)

        warnings.showwarning = showwarning
        yield


@contextlib.contextmanager
def _processes(options: dict[str, Any]) -> Iterator[None]:
    """Under torchrun: the command runs in the run's process group, and the processes other
    than rank 0 print nothing (no results, progress bars or warnings; their ``options`` are
    made ``quiet``)."""
    if "WORLD_SIZE" not in os.environ:  # not launched by torchrun: torch is not imported yet
        yield
        return
    from .. import distributed

    with distributed.process_group():
        if distributed.is_main():
            yield
            return
        if "quiet" in options:
            options["quiet"] = True
        with (
            open(os.devnull, "w") as devnull,
            contextlib.redirect_stdout(devnull),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore", PyrovaeWarning)
            yield


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, as Ctrl-C raises :class:`KeyboardInterrupt`."""


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated`: the program stops as on Ctrl-C
    (atomic writes undone, the run's last checkpoint kept), not silently."""

    def terminate(signum: int, frame: object) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(command: str, exc: KeyboardInterrupt) -> int:
    """Print the one line of an interrupt (with the notes of how to go on) and return its
    exit code: 143 (128 + SIGTERM) or 130 (128 + SIGINT)."""
    terminated = isinstance(exc, Terminated)
    what = "terminated (SIGTERM)" if terminated else "interrupted"
    notes = "; ".join(getattr(exc, "__notes__", []))
    print(f"pyrovae {command}: {what}{'; ' + notes if notes else ''}", file=sys.stderr)
    return 128 + (signal.SIGTERM if terminated else signal.SIGINT)


def _fail(command: str, message: str) -> int:
    """Print the one-line error of ``command`` (under torchrun: only if this process met an
    error first) and return exit code 2."""
    if "WORLD_SIZE" in os.environ:
        from .. import distributed

        if not distributed.first_to_fail():
            return 2
    line = " ".join(message.splitlines())  # one line, whatever the message holds
    print(f"pyrovae {command}: error: {line}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pyrovae COMMAND [OPTIONS]`` (``argv``; default: the program's arguments) and
    return its exit code: 0, 2 for an error (one line on stderr), 130 when interrupted or 143
    when terminated (SIGTERM)."""
    options = vars(build_parser().parse_args(argv))
    command = options.pop("command")
    try:
        with _sigterm_as_interrupt(), _one_line_warnings(command), _processes(options):
            COMMANDS[command](**options)
    except PyrovaeError as exc:
        return _fail(command, str(exc))
    except OSError as exc:  # the machine's: a full disk, a read-only folder, a lost device
        where = f"'{exc.filename}': " if exc.filename else ""
        return _fail(command, f"{where}{exc.strerror or exc}")
    except MemoryError:
        return _fail(
            command, "out of memory; use a smaller model or batch (e.g. --max-batch-elements)"
        )
    except KeyboardInterrupt as exc:
        return _interrupted(command, exc)
    return 0
