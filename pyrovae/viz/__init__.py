"""Pictures, drawn with matplotlib: :mod:`~pyrovae.viz.plots` draws figures from tensors,
:mod:`~pyrovae.viz.figures` computes them from a trained VAE. Both return
:class:`matplotlib.figure.Figure` objects; :func:`save_figure` writes a PNG.

matplotlib is imported when ``plots``, ``figures`` or ``save_figure`` is first used, not by
``import pyrovae`` (nor by this package's figure-kind constants, which the CLI reads).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["FIGURE_KINDS", "NEEDS_DATA", "figures", "plots", "save_figure"]

#: the figure kinds :func:`pyrovae.viz.figures.draw` knows (``pyrovae plot --kind``)
FIGURE_KINDS = (
    "samples",
    "reconstructions",
    "curves",
    "latent",
    "manifold",
    "interpolation",
    "classes",
    "kl_per_dimension",
)
#: the kinds drawn from the test set (``draw(..., data=...)``)
NEEDS_DATA = ("reconstructions", "latent", "interpolation", "kl_per_dimension")


def __getattr__(name: str) -> Any:
    if name in ("figures", "plots"):
        return importlib.import_module(f".{name}", __name__)
    if name == "save_figure":
        return importlib.import_module(".plots", __name__).save_figure
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
