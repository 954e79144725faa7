"""Pictures of what a VAE does (matplotlib, headless ``Agg`` backend).

Each function draws one figure to a PNG file and returns the path. Images are flat vectors
``(N, C*H*W)`` with values in [0, 1], shown with ``image_shape = (C, H, W)``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def image_grid(images: torch.Tensor, image_shape: tuple[int, ...], ncols: int) -> torch.Tensor:
    """Tile ``(N, C*H*W)`` images into one ``(rows*H, ncols*W)`` grey image (1 px gaps)."""
    c, h, w = image_shape if len(image_shape) == 3 else (1, *image_shape)
    images = images.detach().float().cpu().reshape(-1, c, h, w).mean(1)
    n = images.shape[0]
    nrows = -(-n // ncols)
    grid = torch.ones(nrows * (h + 1) - 1, ncols * (w + 1) - 1)
    for i in range(n):
        r, col = divmod(i, ncols)
        grid[r * (h + 1) : r * (h + 1) + h, col * (w + 1) : col * (w + 1) + w] = images[i]
    return grid


def _show_grid(ax: plt.Axes, grid: torch.Tensor, title: str) -> None:
    ax.imshow(grid.numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_samples_and_reconstructions(
    samples: torch.Tensor,
    inputs: torch.Tensor,
    reconstructions: torch.Tensor,
    image_shape: tuple[int, ...],
    path: str | Path,
    title: str = "",
) -> Path:
    """Left: a grid of model samples E[x|z], z ~ p(z). Right: inputs (odd columns) beside
    their reconstructions (even columns)."""
    ncols = 8
    pairs = torch.stack([inputs, reconstructions], dim=1).reshape(-1, inputs.shape[-1])
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.6))
    _show_grid(axes[0], image_grid(samples, image_shape, ncols), "samples from p(x|z), z ~ p(z)")
    _show_grid(
        axes[1], image_grid(pairs, image_shape, ncols),
        "inputs (odd columns) and reconstructions",
    )
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_samples(samples: torch.Tensor, image_shape: tuple[int, ...], path: str | Path,
                 title: str = "samples from p(x|z), z ~ p(z)") -> Path:
    """A square-ish grid of samples."""
    n = samples.shape[0]
    ncols = max(1, int(round(n**0.5)))
    fig, ax = plt.subplots(figsize=(6, 6 * (-(-n // ncols)) / ncols + 0.4))
    _show_grid(ax, image_grid(samples, image_shape, ncols), title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
