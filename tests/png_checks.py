"""Checks that a figure is a real, legible picture: shared by the plot and example tests."""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from pyrovae import plots  # noqa: E402


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


def _drawn_texts(fig: plt.Figure) -> list[Text]:
    """Every non-empty text the renderer actually draws (tick labels outside an axis' view
    are kept by matplotlib but not drawn, so they are left out)."""
    tick_labels, drawn_ticks = set(), []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                tick_labels.update((tick.label1, tick.label2))
            for tick in axis._update_ticks():  # the ticks inside the view
                drawn_ticks += [t for t in (tick.label1, tick.label2) if t.get_visible()]
    texts = [t for t in fig.findobj(Text) if t not in tick_labels and t.get_visible()]
    return [t for t in texts + drawn_ticks if t.get_text().strip()]


def text_overlaps(fig: plt.Figure, tolerance_px: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of drawn texts of ``fig`` whose bounding boxes overlap by more than
    ``tolerance_px`` pixels in both directions (touching boxes do not count)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _drawn_texts(fig)]
    overlaps = []
    for (text_a, a), (text_b, b) in itertools.combinations(boxes, 2):
        dx = min(a.x1, b.x1) - max(a.x0, b.x0)
        dy = min(a.y1, b.y1) - max(a.y0, b.y0)
        if dx > tolerance_px and dy > tolerance_px:
            overlaps.append((text_a, text_b))
    return overlaps


@pytest.fixture
def checked_figures(monkeypatch) -> list[dict]:
    """While active, every figure pyrovae.plots saves is first checked for overlapping text;
    the returned list collects ``{"path": Path, "texts": [every drawn text]}`` per figure."""
    save, records = plots._save, []

    def checked_save(fig, path):
        overlaps = text_overlaps(fig)
        assert not overlaps, f"{path}: overlapping text {overlaps}"
        records.append({"path": Path(path), "texts": [t.get_text() for t in _drawn_texts(fig)]})
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", checked_save)
    return records
