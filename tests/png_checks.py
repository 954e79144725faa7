"""Checks that a figure is a real, legible picture: shared by the plot, figure, CLI and
example tests.

:func:`assert_picture` checks a written PNG; :func:`assert_legible` checks a
:class:`matplotlib.figure.Figure` as pyrovae's plot functions return it (no overlapping text)
and returns every text it draws. Only public matplotlib API is used: the figure is drawn on an
Agg canvas, and the tick labels drawn are those of ticks inside the axis' view interval.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib.image
import numpy as np
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text


def assert_picture(path: str | Path, min_side: int = 200) -> np.ndarray:
    """``path`` is a PNG of at least ``min_side`` pixels a side that is not blank: its pixels
    vary (not one colour) and take many distinct values (not a two-colour placeholder)."""
    path = Path(path)
    assert path.is_file(), f"{path} was not written"
    image = matplotlib.image.imread(path)
    if image.ndim == 2:  # an 8-bit grey PNG
        image = np.repeat(image[..., None], 3, axis=2)
    assert image.ndim == 3 and image.shape[2] in (3, 4), f"{path}: shape {image.shape}"
    height, width = image.shape[:2]
    assert min(height, width) >= min_side, f"{path} is only {width}x{height} pixels"
    rgb = image[..., :3]
    assert rgb.std() > 0.05, f"{path} is (nearly) one colour: pixel std {rgb.std():.4f}"
    codes = np.round(rgb * 255).astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], np.uint32)
    distinct = len(np.unique(codes))
    assert distinct >= 16, f"{path} has only {distinct} distinct colours"
    return image


def _ticks_in_view(axis: Axis) -> list:
    """The major and minor ticks of ``axis`` whose location lies inside its view interval
    (matplotlib keeps ticks outside the view but does not draw them)."""
    lo, hi = sorted(axis.get_view_interval())
    slack = 1e-10 * (hi - lo)
    return [tick for tick in axis.get_major_ticks() + axis.get_minor_ticks()
            if lo - slack <= tick.get_loc() <= hi + slack]


def _render(fig: Figure):
    """Draw ``fig`` on an Agg canvas (laying out text and ticks) and return the renderer."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _drawn_texts(fig: Figure) -> list[Text]:
    """Every non-empty text of a drawn ``fig`` that the renderer shows: texts that are not
    tick labels, plus the visible labels of the ticks inside each axis' view."""
    tick_labels, drawn_ticks = set(), []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                tick_labels.update((tick.label1, tick.label2))
            for tick in _ticks_in_view(axis):
                drawn_ticks += [t for t in (tick.label1, tick.label2) if t.get_visible()]
    texts = [t for t in fig.findobj(Text) if t not in tick_labels and t.get_visible()]
    return [t for t in texts + drawn_ticks if t.get_text().strip()]


def text_overlaps(fig: Figure, tolerance_px: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of drawn texts of ``fig`` whose bounding boxes overlap by more than
    ``tolerance_px`` pixels in both directions (touching boxes do not count)."""
    renderer = _render(fig)
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _drawn_texts(fig)]
    overlaps = []
    for (text_a, a), (text_b, b) in itertools.combinations(boxes, 2):
        dx = min(a.x1, b.x1) - max(a.x0, b.x0)
        dy = min(a.y1, b.y1) - max(a.y0, b.y0)
        if dx > tolerance_px and dy > tolerance_px:
            overlaps.append((text_a, text_b))
    return overlaps


def assert_legible(fig: Figure, expected_texts: list[str] = ()) -> list[str]:
    """``fig`` is a Figure with no overlapping text that shows each of ``expected_texts``
    (as a substring of some drawn text); returns every text it draws."""
    assert isinstance(fig, Figure), f"expected a matplotlib Figure, got {type(fig).__name__}"
    overlaps = text_overlaps(fig)
    assert not overlaps, f"overlapping text {overlaps}"
    texts = [t.get_text() for t in _drawn_texts(fig)]
    missing = [t for t in expected_texts if not any(t in shown for shown in texts)]
    assert not missing, f"texts {missing} not among {texts}"
    return texts
