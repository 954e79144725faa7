"""The ``pyrovae`` command line: train, describe, evaluate, sample and plot VAEs.

One idea per module:

* :mod:`~pyrovae.cli.boundary`: :func:`main`, the error boundary (one-line errors with exit
  code 2, one-line warnings, the processes of ``torchrun``);
* :mod:`~pyrovae.cli.parser`: :func:`build_parser`, every command's options and help;
* the commands, each a function of plain values: :mod:`~pyrovae.cli.train` (``train``),
  :mod:`~pyrovae.cli.describe` (``describe``), :mod:`~pyrovae.cli.score` (``evaluate``,
  ``compare``), :mod:`~pyrovae.cli.draw` (``sample``, ``plot``);
* :mod:`~pyrovae.cli.options`: the checks of their options and the estimator they choose;
* :mod:`~pyrovae.cli.report`: what they print, as text or as JSON (``--json``).

The commands import the library lazily, so ``pyrovae --help`` and ``describe`` start quickly.
"""

from __future__ import annotations

from .boundary import main
from .parser import build_parser

__all__ = ["build_parser", "main"]
