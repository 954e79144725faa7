"""Pictures, drawn with matplotlib: :mod:`~pyrovae.viz.plots` draws figures from tensors,
:mod:`~pyrovae.viz.figures` computes them from a trained VAE. Both return
:class:`matplotlib.figure.Figure` objects; :func:`save_figure` writes a PNG.

matplotlib is imported when ``plots``, ``figures`` or ``save_figure`` is first used, not by
``import pyrovae`` (nor by the figure kinds of :mod:`~pyrovae.viz.kinds`, which the CLI reads).
"""

from __future__ import annotations

import importlib
from typing import Any

from .kinds import FIGURE_KINDS, NEEDS_DATA

__all__ = ["FIGURE_KINDS", "NEEDS_DATA", "figures", "plots", "save_figure"]


def __getattr__(name: str) -> Any:
    if name in ("figures", "plots"):
        return importlib.import_module(f".{name}", __name__)
    if name == "save_figure":
        return importlib.import_module(".plots", __name__).save_figure
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
