"""Pictures of what a VAE does, drawn with matplotlib.

Each ``plot_*`` function draws one kind of figure from tensors (or arrays) onto a new
:class:`matplotlib.figure.Figure` and returns it (a notebook shows it as it is);
:func:`save_figure` writes one to a PNG. None of them touches a model
(:mod:`pyrovae.viz.figures` computes the tensors from a trained VAE), and none uses pyplot, so
drawing never changes the user's matplotlib backend or keeps figures alive. Conventions:

* images are flat vectors ``(N, C*H*W)`` with values in [0, 1], shown with
  ``image_shape = (C, H, W)``: one channel in grey, three in colour (RGB), any other number
  averaged to grey;
* log-likelihoods, ELBOs and KL divergences are in nats per example;
* text never overlaps and every axis says what it measures and in which unit.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image  # matplotlib's own image library

from ..atomic import atomic_write_bytes, write_error
from ..errors import ConfigError

#: resolution of every PNG (pixels per inch)
DPI = 100
NATS = "nats per example"

ArrayLike = torch.Tensor | np.ndarray | Sequence[float]


# ---------------------------------------------------------------------------- helpers
def _tensor(values: Any) -> torch.Tensor:
    """``values`` as a float32 CPU tensor (detached)."""
    if isinstance(values, torch.Tensor):
        return values.detach().float().cpu()
    return torch.as_tensor(np.asarray(values, dtype=np.float32))


def _figure(*args: Any, figsize: tuple[float, float], **kwargs: Any) -> tuple[Figure, Any]:
    """A new figure of ``figsize`` inches (constrained layout) and its axes, as
    ``Figure.subplots(*args, **kwargs)`` returns them."""
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(*args, **kwargs)


def save_figure(fig: Figure, path: str | Path, *, run_file: bool = False) -> Path:
    """Write ``fig`` to ``path`` as a PNG (creating its folder) and return the path. The
    write is atomic (:func:`pyrovae.atomic.atomic_write_bytes`): a failure leaves no partial
    picture, and raises :class:`~pyrovae.errors.WriteError`; ``run_file``: the picture is a
    run's own, written by its training (see :func:`~pyrovae.atomic.atomic_write_bytes`).

    Figures drawn only in greys are stored as 8-bit grey images, others as RGB (no alpha):
    losslessly, at a half to a quarter of matplotlib's RGBA size.

    Example::

        save_figure(plot_samples(images, (1, 28, 28)), "samples.png")
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path.parent, exc) from None
    buffer = io.BytesIO()
    # "tight" grows the saved area to every text, so no label is ever cut at the border
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.08)
    rgba = np.asarray(Image.open(buffer).convert("RGBA"))
    opaque = bool((rgba[..., 3] == 255).all())
    rgb = rgba[..., :3]
    grey = opaque and bool((rgb == rgb[..., :1]).all())
    mode = "L" if grey else "RGB" if opaque else "RGBA"
    image = Image.fromarray(rgba).convert(mode)
    atomic_write_bytes(
        path, lambda f: image.save(f, format="PNG", optimize=True), run_file=run_file
    )
    return path


def require_2d_latent(latent_dim: int, what: str) -> None:
    """Raise :class:`ConfigError` unless ``latent_dim == 2`` (pictures drawn in the z-plane)."""
    if latent_dim != 2:
        raise ConfigError(
            f"the {what} is drawn in a 2-D latent space, but this model has "
            f"latent_dim = {latent_dim}; train a model with model.latent_dim = 2 "
            "(e.g. `pyrovae train ... --set model.latent_dim=2`, or examples/latent_2d.py)"
        )


def image_grid(images: torch.Tensor, image_shape: tuple[int, ...], ncols: int) -> torch.Tensor:
    """Tile ``(N, C*H*W)`` images, ``ncols`` a row, with 1 px white gaps (torchvision's
    :func:`~torchvision.utils.make_grid`, its outer border cut): ``(rows*(H+1)-1,
    ncols*(W+1)-1)`` grey levels for one channel (or any number but three, averaged), or the
    same ``(..., 3)`` in colour for three (RGB). Missing cells of the last row are white."""
    from torchvision.utils import make_grid

    c, h, w = image_shape if len(image_shape) == 3 else (1, *image_shape)
    images = _tensor(images).reshape(-1, c, h, w).clamp(0.0, 1.0)
    if c != 3:
        images = images.mean(1, keepdim=True)
    n = images.shape[0]
    cells = -(-n // ncols) * ncols
    images = torch.cat([images, images.new_ones(cells - n, *images.shape[1:])])
    grid = make_grid(images, nrow=ncols, padding=1, pad_value=1.0)[:, 1:-1, 1:-1]
    return grid[0] if c != 3 else grid.permute(1, 2, 0).contiguous()


def _image_height(image_shape: tuple[int, ...]) -> int:
    return image_shape[-2] if len(image_shape) >= 2 else 1


def _show_grid(ax: Axes, grid: torch.Tensor, title: str = "") -> None:
    """Show an :func:`image_grid` (grey ``(H, W)`` or colour ``(H, W, 3)``) without ticks."""
    ax.imshow(grid.numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    if title:
        ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])


def _label_rows(ax: Axes, labels: Sequence[str], cell_height: int) -> None:
    """Put one tick label at the vertical centre of each row of a grid of cells."""
    ax.set_yticks([r * (cell_height + 1) + (cell_height - 1) / 2 for r in range(len(labels))])
    ax.set_yticklabels(labels)
    ax.tick_params(axis="y", length=0)


# ---------------------------------------------------------------------------- image grids
def plot_samples(
    samples: torch.Tensor,
    image_shape: tuple[int, ...],
    title: str = "samples E[x|z], z ~ p(z)",
) -> Figure:
    """A square-ish grid of ``(N, C*H*W)`` samples."""
    n = samples.shape[0]
    ncols = max(1, round(n**0.5))
    nrows = -(-n // ncols)
    fig, ax = _figure(figsize=(5, 5 * nrows / ncols + 0.5))
    _show_grid(ax, image_grid(samples, image_shape, ncols), title)
    return fig


def pair_rows(inputs: torch.Tensor, reconstructions: torch.Tensor, ncols: int) -> torch.Tensor:
    """Interleave rows of ``ncols`` inputs with the rows of their reconstructions (both
    ``(N, D)``): ``(2 * blocks * ncols, D)``, a last partial row pair filled with white."""
    inputs, reconstructions = _tensor(inputs), _tensor(reconstructions)
    if reconstructions.shape != inputs.shape:
        raise ValueError(
            f"inputs {tuple(inputs.shape)} and reconstructions {tuple(reconstructions.shape)} "
            "must have the same shape"
        )
    n, dim = inputs.shape
    blocks = -(-n // ncols)
    filler = torch.ones(blocks * ncols - n, dim)
    inputs, reconstructions = torch.cat([inputs, filler]), torch.cat([reconstructions, filler])
    return torch.stack(
        [inputs.reshape(blocks, ncols, dim), reconstructions.reshape(blocks, ncols, dim)], dim=1
    ).reshape(-1, dim)


def _show_pairs(
    ax: Axes,
    inputs: torch.Tensor,
    reconstructions: torch.Tensor,
    image_shape: tuple[int, ...],
    ncols: int,
    recon_label: str,
    title: str,
) -> None:
    """Rows of inputs above rows of reconstructions, a wider white gap between row pairs."""
    h, gap = _image_height(image_shape), 4
    grid = image_grid(pair_rows(inputs, reconstructions, ncols), image_shape, ncols)
    pair_height = 2 * (h + 1)  # two rows and their 1 px gaps
    blocks = -(-grid.shape[0] // pair_height)
    strip = torch.ones(gap, *grid.shape[1:])
    parts = []
    for b in range(blocks):
        parts += [grid[b * pair_height : b * pair_height + 2 * h + 1]] + [strip] * (b < blocks - 1)
    _show_grid(ax, torch.cat(parts), title)
    step = 2 * h + 1 + gap
    centres = [b * step + (h - 1) / 2 + r * (h + 1) for b in range(blocks) for r in (0, 1)]
    ax.set_yticks(centres)
    ax.set_yticklabels(["input", recon_label] * blocks)
    ax.tick_params(axis="y", length=0)


def plot_reconstructions(
    inputs: torch.Tensor,
    reconstructions: torch.Tensor,
    image_shape: tuple[int, ...],
    ncols: int = 8,
    title: str = "test inputs and their reconstructions E[x|z], z ~ q(z|x)",
) -> Figure:
    """Inputs ``(N, C*H*W)`` in one row, their reconstructions in the row below, and so on."""
    blocks = -(-inputs.shape[0] // ncols)
    fig, ax = _figure(figsize=(0.75 * ncols + 1.4, 0.8 * 2 * blocks + 0.6))
    _show_pairs(ax, inputs, reconstructions, image_shape, ncols, "reconstruction", title)
    return fig


def plot_samples_and_reconstructions(
    samples: torch.Tensor,
    inputs: torch.Tensor,
    reconstructions: torch.Tensor,
    image_shape: tuple[int, ...],
    title: str = "",
) -> Figure:
    """Left: a grid of model samples E[x|z], z ~ p(z). Right: rows of inputs, each above the
    row of their reconstructions."""
    ncols = 8
    fig, axes = _figure(1, 2, figsize=(10.5, 5.6))
    _show_grid(axes[0], image_grid(samples, image_shape, ncols), "samples E[x|z], z ~ p(z)")
    _show_pairs(
        axes[1],
        inputs,
        reconstructions,
        image_shape,
        ncols,
        "recon.",
        "test inputs / reconstructions",
    )
    if title:
        fig.suptitle(title)
    return fig


def plot_grids(
    panels: Mapping[str, torch.Tensor],
    image_shape: tuple[int, ...],
    ncols: int = 8,
    title: str = "",
) -> Figure:
    """Several image grids side by side, one per entry ``name -> (N, C*H*W)`` (e.g. samples
    of models trained with different priors), each titled by its name."""
    if not panels:
        raise ValueError("plot_grids needs at least one panel")
    fig, axes = _figure(1, len(panels), figsize=(3.3 * len(panels), 3.9), squeeze=False)
    for ax, (name, images) in zip(axes[0], panels.items()):
        _show_grid(ax, image_grid(images, image_shape, ncols), name)
    if title:
        fig.suptitle(title)
    return fig


def plot_class_rows(
    images: torch.Tensor,
    image_shape: tuple[int, ...],
    class_names: Sequence[str] | None = None,
    title: str = "samples E[x|z], z ~ p(z|y), one row per class y",
) -> Figure:
    """Generated images ``(num_classes, per_class, C*H*W)``: one row per class, labelled."""
    images = _tensor(images)
    num_classes, per_class = images.shape[:2]
    names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names given for {num_classes} rows of images")
    fig, ax = _figure(figsize=(0.55 * per_class + 1.2, 0.55 * num_classes + 0.7))
    _show_grid(ax, image_grid(images.reshape(-1, images.shape[-1]), image_shape, per_class), title)
    _label_rows(ax, names, _image_height(image_shape))
    ax.set_ylabel("class y")
    return fig


def plot_interpolations(
    decoded: torch.Tensor,
    image_shape: tuple[int, ...],
    starts: torch.Tensor | None = None,
    ends: torch.Tensor | None = None,
    title: str = "decoded means E[x|z] along straight lines between posterior means",
) -> Figure:
    """One interpolation per row: ``decoded`` is ``(pairs, steps, C*H*W)``, the decoder means at
    ``z = (1-t) z_start + t z_end`` for ``t = 0..1``. ``starts``/``ends`` ``(pairs, C*H*W)``,
    when given, are the input images, drawn in their own columns at either side."""
    decoded = _tensor(decoded)
    pairs, steps = decoded.shape[:2]
    widths = [1] * (starts is not None) + [steps] + [1] * (ends is not None)
    fig, axes = _figure(
        1,
        len(widths),
        figsize=(0.6 * sum(widths) + 1.0, 0.6 * pairs + 1.2),
        gridspec_kw={"width_ratios": widths},
        squeeze=False,
    )
    axes = list(axes[0])
    middle = axes[1] if starts is not None else axes[0]
    _show_grid(middle, image_grid(decoded.reshape(-1, decoded.shape[-1]), image_shape, steps))
    middle.set_xlabel(f"t = 0 \u2192 1 in {steps} equal steps")
    if starts is not None:
        _show_grid(axes[0], image_grid(starts, image_shape, 1), "input A")
    if ends is not None:
        _show_grid(axes[-1], image_grid(ends, image_shape, 1), "input B")
    fig.suptitle(title)
    return fig


def manifold_grid(
    latent_dim: int, n: int = 15, low: float = 0.05, high: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent points of the ``n x n`` manifold picture of a 2-D latent space.

    The axis values are the standard Normal's quantiles ``Phi^-1(p)`` of ``n`` evenly spaced
    probabilities ``p = low..high``, so equal prior mass lies between neighbouring points.

    Returns:
        ``z`` of shape ``(n*n, 2)`` in reading order (row 0 = the largest ``z_2``, column 0 =
        the smallest ``z_1``) and the axis values ``(n,)``, ascending.

    Raises:
        ConfigError: ``latent_dim`` is not 2.
    """
    require_2d_latent(latent_dim, "manifold")
    if not 0.0 < low < high < 1.0:
        raise ValueError(f"need 0 < low < high < 1 for quantiles, got low={low}, high={high}")
    values = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(low, high, n))
    z2, z1 = torch.meshgrid(values.flip(0), values, indexing="ij")
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=-1), values


def plot_manifold(
    decoded: torch.Tensor,
    axis_values: torch.Tensor,
    image_shape: tuple[int, ...],
    title: str = "decoder means E[x|z] over the latent plane",
) -> Figure:
    """The learned manifold: ``decoded`` ``(n*n, C*H*W)`` are the decoder means at the points
    of :func:`manifold_grid` (whose ``axis_values`` ``(n,)`` label the axes)."""
    decoded, axis_values = _tensor(decoded), _tensor(axis_values)
    n = axis_values.shape[0]
    if decoded.shape[0] != n * n:
        raise ValueError(f"{decoded.shape[0]} images given for a {n}x{n} manifold")
    _, h, w = image_shape if len(image_shape) == 3 else (1, *image_shape)
    fig, ax = _figure(figsize=(7, 7.4))
    _show_grid(ax, image_grid(decoded, image_shape, n), title)
    shown = range(0, n, 2) if n > 8 else range(n)
    ax.set_xticks([i * (w + 1) + (w - 1) / 2 for i in shown])
    ax.set_xticklabels([f"{axis_values[i]:.2f}" for i in shown])
    ax.set_yticks([i * (h + 1) + (h - 1) / 2 for i in shown])
    ax.set_yticklabels([f"{axis_values[n - 1 - i]:.2f}" for i in shown])
    ax.set_xlabel("$z_1$ (standard Normal quantiles of p = 0.05 \u2026 0.95)")
    ax.set_ylabel("$z_2$")
    return fig


# ---------------------------------------------------------------------------- latent space
def plot_latent_scatter(
    means: torch.Tensor,
    labels: torch.Tensor,
    class_names: Sequence[str] | None = None,
    title: str = "posterior means E[z|x] of test images",
) -> Figure:
    """Scatter of 2-D posterior means ``(N, 2)`` coloured by class ``labels`` ``(N,)``, with a
    colour bar naming the classes; unlabelled means (every label -1) in one colour.

    Raises:
        ConfigError: the means are not 2-D (the model's latent_dim is not 2).
    """
    means, labels = _tensor(means), torch.as_tensor(labels).cpu().long()
    if means.ndim != 2:
        raise ValueError(f"means must have shape (N, latent_dim), got {tuple(means.shape)}")
    require_2d_latent(means.shape[1], "latent scatter")
    if not bool((labels >= 0).any()):
        return _plot_unlabelled_scatter(means, f"{title} (unlabelled)")
    num_classes = int(labels.max().item()) + 1 if class_names is None else len(class_names)
    names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
    base = matplotlib.colormaps["tab10" if num_classes <= 10 else "tab20"]
    cmap = ListedColormap([base(i % base.N) for i in range(num_classes)])
    norm = BoundaryNorm(np.arange(num_classes + 1) - 0.5, num_classes)
    fig, ax = _figure(figsize=(7, 6))
    size = float(np.clip(20000 / max(len(labels), 1), 2, 16))  # smaller points when many
    points = ax.scatter(
        means[:, 0],
        means[:, 1],
        c=labels.numpy(),
        cmap=cmap,
        norm=norm,
        s=size,
        alpha=0.7,
        linewidths=0,
        rasterized=True,
    )
    bar = fig.colorbar(points, ax=ax, ticks=np.arange(num_classes))
    if bar.solids is not None:
        bar.solids.set_alpha(1.0)  # the key shows the full colours, not the points' transparency
    bar.ax.set_yticklabels(names)
    bar.set_label("class")
    ax.set_xlabel("posterior mean of $z_1$")
    ax.set_ylabel("posterior mean of $z_2$")
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="datalim")
    return fig


def _plot_unlabelled_scatter(means: torch.Tensor, title: str) -> Figure:
    """The scatter of :func:`plot_latent_scatter` for unlabelled means, in one colour."""
    fig, ax = _figure(figsize=(6, 6))
    size = float(np.clip(20000 / max(len(means), 1), 2, 16))
    ax.scatter(means[:, 0], means[:, 1], s=size, alpha=0.7, linewidths=0, rasterized=True)
    ax.set_xlabel("posterior mean of $z_1$")
    ax.set_ylabel("posterior mean of $z_2$")
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="datalim")
    return fig


def _kl_bars(ax: Axes, kl: torch.Tensor, threshold: float, sort: bool, floor: float) -> int:
    """Bars of ``kl`` ``(latent_dim,)`` on ``ax`` (log scale, rising from ``floor``), active
    units in colour; returns how many are active."""
    order = torch.argsort(kl, descending=True) if sort else torch.arange(kl.shape[0])
    values = kl[order].numpy()
    active = values > threshold
    ax.bar(
        np.arange(len(values)),
        np.maximum(values - floor, 0.0),
        bottom=floor,
        color=np.where(active, "tab:blue", "darkgrey"),
        width=0.8,
    )
    ax.axhline(
        threshold,
        color="tab:red",
        linestyle="--",
        linewidth=1,
        label=f"active-unit threshold ({threshold:g} nats)",
    )
    ax.set_yscale("log")
    ax.set_ylabel(f"KL ({NATS})")
    if len(values) <= 20:
        ax.set_xticks(np.arange(len(values)))
        ax.set_xticklabels([str(int(i)) for i in order])
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return int(active.sum())


def plot_kl_per_dimension(
    kl: ArrayLike | Mapping[str, ArrayLike],
    threshold: float = 0.01,
    sort: bool = True,
    title: str = "",
) -> Figure:
    """Bar chart of the KL divergence of each latent dimension ``(latent_dim,)`` in nats per
    example (e.g. E_x KL(q(z_d|x) || p(z_d))) on a log axis; dimensions above ``threshold``
    are *active* and drawn in colour, collapsed ones in grey (values at or below the axis'
    floor, e.g. 0, show as no bar).

    A mapping ``{name: kl}`` (e.g. one entry per beta) draws one panel per model, stacked on
    one shared axis, each titled with its name and its number of active units. With ``sort``
    each panel's dimensions are sorted by KL, and labelled by their index when there are at
    most 20."""
    given = dict(kl) if isinstance(kl, Mapping) else {"": kl}
    if not given:
        raise ValueError("plot_kl_per_dimension needs at least one KL vector")
    panels = {name: _tensor(values).reshape(-1) for name, values in given.items()}
    every = torch.cat(list(panels.values()))
    positive = every[every > 0]
    # the floor: a decade below the threshold, or below the smallest KL drawn
    floor = min(threshold / 10, positive.min().item() / 2 if len(positive) else threshold)
    width = max(6.0, 0.16 * max(len(v) for v in panels.values()) + 2)
    fig, axes = _figure(
        len(panels), 1, figsize=(width, 0.4 + 2.9 * len(panels)), sharey=True, squeeze=False
    )
    for ax, (name, values) in zip(axes[:, 0], panels.items()):
        active = _kl_bars(ax, values, threshold, sort, floor)
        counted = f"{active} of {len(values)} latent dimensions active"
        ax.set_title(
            f"{name}: {counted}"
            if name
            else title or f"KL per latent dimension: {active} of {len(values)} active"
        )
    axes[0, 0].set_ylim(bottom=floor, top=max(every.max().item(), threshold) * 2)
    ranked = sort and max(len(v) for v in panels.values()) > 20  # ticks are ranks, not indices
    axes[-1, 0].set_xlabel(
        "latent dimensions, ranked by KL"
        if ranked
        else "latent dimension" + (" (sorted by KL)" if sort else "")
    )
    axes[0, 0].legend(loc="upper right")
    if "" not in panels:
        fig.suptitle(
            title or "KL(q(z_d|x) || p(z_d)) per latent dimension d, mean over test images"
        )
    return fig


# ---------------------------------------------------------------------------- numbers
def plot_elbo_curves(
    metrics: Sequence[Mapping[str, float]],
    title: str = "ELBO during training",
) -> Figure:
    """Training, validation and test ELBO per epoch from a run's metrics rows
    (``{"epoch", "train_elbo", "test_elbo"}`` and, where the run has them,
    ``"validation_elbo"`` and the epoch's learning rate ``"lr"``; nats per example). A
    learning rate that changes is drawn on a second, logarithmic axis."""
    if not metrics:
        raise ValueError("no metrics rows to plot: the run has not finished an epoch yet")
    epochs = [row["epoch"] for row in metrics]
    fig, ax = _figure(figsize=(6.5, 4.2))
    ax.plot(
        epochs,
        [row["train_elbo"] for row in metrics],
        "o-",
        markersize=3,
        label="train (mean over the epoch's batches)",
    )
    ax.plot(
        epochs,
        [row["test_elbo"] for row in metrics],
        "s-",
        markersize=3,
        label="test (after the epoch)",
    )
    if all("validation_elbo" in row for row in metrics):
        ax.plot(
            epochs,
            [row["validation_elbo"] for row in metrics],
            "^-",
            markersize=3,
            label="validation (after the epoch)",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"ELBO ({NATS})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    rates = [row.get("lr") for row in metrics]
    if all(r is not None for r in rates) and len(set(rates)) > 1:
        lr_axis = ax.twinx()
        lr_axis.plot(epochs, rates, color="grey", linestyle=":", linewidth=1.2)
        lr_axis.set_yscale("log")
        lr_axis.set_ylabel("learning rate (dotted)")
    ax.set_title(title)
    return fig


def plot_log_likelihood_vs_k(
    ks: ArrayLike,
    estimates: ArrayLike,
    standard_errors: ArrayLike,
    elbo: float | None = None,
    elbo_se: float | None = None,
    title: str = "importance-sampled log-likelihood vs number of samples K",
) -> Figure:
    """``log p̂(x)`` (mean over examples, nats per example) against the number of importance
    samples ``K`` on a log axis, with ±1 standard-error bars; the ELBO, when given, is drawn
    as the K = 1 reference line (with its ±1 SE band)."""
    ks, estimates, se = (_tensor(v).numpy() for v in (ks, estimates, standard_errors))
    fig, ax = _figure(figsize=(6.5, 4.4))
    if elbo is not None:
        ax.axhline(elbo, color="grey", linestyle="--", linewidth=1, label="ELBO (the K = 1 bound)")
        if elbo_se is not None:
            ax.axhspan(elbo - elbo_se, elbo + elbo_se, color="grey", alpha=0.15, linewidth=0)
    ax.errorbar(
        ks,
        estimates,
        yerr=se,
        fmt="o-",
        markersize=4,
        capsize=3,
        label="log p\u0302(x) \u00b1 1 standard error",
    )
    ax.set_xscale("log")
    ax.set_xlabel("number of importance samples K (log scale)")
    ax.set_ylabel(f"log p\u0302(x) ({NATS})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right")
    ax.set_title(title)
    return fig


def plot_ess_vs_k(
    ks: ArrayLike,
    ess: ArrayLike,
    standard_errors: ArrayLike | None = None,
    title: str = "effective sample size of the importance weights",
) -> Figure:
    """Effective sample size (mean over examples) against ``K`` on log-log axes, beside the
    ideal ``ESS = K`` of a proposal equal to the true posterior."""
    ks, ess = _tensor(ks).numpy(), _tensor(ess).numpy()
    fig, ax = _figure(figsize=(6.5, 4.4))
    ax.plot(ks, ks, color="grey", linestyle=":", label="ESS = K (q(z|x) = p(z|x))")
    yerr = None if standard_errors is None else _tensor(standard_errors).numpy()
    ax.errorbar(
        ks,
        ess,
        yerr=yerr,
        fmt="o-",
        markersize=4,
        capsize=3,
        label="measured ESS" + (" \u00b1 1 standard error" if yerr is not None else ""),
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of importance samples K (log scale)")
    ax.set_ylabel("effective sample size (log scale)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left")
    ax.set_title(title)
    return fig


#: where :func:`_annotate_points` writes a label: (offset in points, ha, va)
_LABEL_PLACES = {
    "below right": ((4, -7), "left", "top"),
    "above left": ((-4, 7), "right", "bottom"),
    "above right": ((6, 4), "left", "bottom"),
}


def _annotate_points(
    ax: Axes, xs: np.ndarray, ys: np.ndarray, labels: Sequence[str] | None, where: str
) -> None:
    """Write ``labels[i]`` beside point ``(xs[i], ys[i])``, on the side ``where`` (a key of
    ``_LABEL_PLACES``)."""
    offset, ha, va = _LABEL_PLACES[where]
    for x, y, text in zip(xs, ys, labels or []):
        ax.annotate(
            text,
            (x, y),
            xytext=offset,
            textcoords="offset points",
            ha=ha,
            va=va,
            fontsize="small",
        )


def plot_log_likelihood_vs_compute(
    is_compute: ArrayLike,
    is_estimates: ArrayLike,
    ais_compute: ArrayLike,
    ais_estimates: ArrayLike,
    *,
    is_labels: Sequence[str] | None = None,
    ais_labels: Sequence[str] | None = None,
    bdmc_gap: ArrayLike | None = None,
    bdmc_gap_se: ArrayLike | None = None,
    elbo: float | None = None,
    compute_label: str = "evaluations of log p(x, z) per example (log scale)",
    note: str = "",
    title: str = "log-likelihood estimates against their cost",
) -> Figure:
    """Mean ``log p̂(x)`` (nats per example) of importance sampling (IS) and annealed
    importance sampling (AIS) against their cost per example on a log axis (e.g. K forward
    passes for IS, S T (L + 1) gradient evaluations for AIS), each point annotated with its
    label (e.g. ``"K = 100"``, ``"T = 50"``); the ELBO, when given, as a reference line.

    With ``bdmc_gap`` (one value per AIS point, nats per example, e.g. the mean BDMC gap at
    the same number of steps) a band from each AIS estimate up to the estimate plus its gap
    (where log p(x) may lie) and a second panel of the gap itself against the same cost, with
    ±1 standard-error bars when ``bdmc_gap_se`` is given. ``note`` is written under the
    estimates' legend (e.g. which examples all points score)."""
    is_x, is_y, ais_x, ais_y = _paired_arrays(is_compute, is_estimates, ais_compute, ais_estimates)
    gap = None if bdmc_gap is None else _tensor(bdmc_gap).numpy()
    if gap is not None and len(gap) != len(ais_x):
        raise ValueError(f"{len(gap)} BDMC gaps given for {len(ais_x)} AIS estimates")
    if gap is None:
        fig, ax = _figure(figsize=(7.5, 4.8))
    else:
        fig, (ax, gap_ax) = _figure(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1.4, 1]})
        gap_se = None if bdmc_gap_se is None else _tensor(bdmc_gap_se).numpy()
        _draw_bdmc_gap(gap_ax, ais_x, gap, gap_se, ais_labels, compute_label)
    if elbo is not None:
        ax.axhline(elbo, color="grey", linestyle="--", linewidth=1, label="ELBO (IS with K = 1)")
    _draw_estimates(ax, is_x, is_y, ais_x, ais_y, gap)
    _annotate_points(ax, is_x, is_y, is_labels, "below right")
    _annotate_points(ax, ais_x, ais_y, ais_labels, "above left")
    ax.set_xscale("log")
    ax.set_xlabel(compute_label)
    ax.set_ylabel(f"mean log p\u0302(x) ({NATS})")
    ax.grid(alpha=0.3, which="both")
    ax.margins(x=0.08, y=0.12)
    legend = ax.legend(loc="lower right", title=note or None, fontsize="small")
    legend.get_title().set_fontsize("small")
    ax.set_title(title)
    return fig


def _paired_arrays(*values: ArrayLike) -> list[np.ndarray]:
    """``(is_compute, is_estimates, ais_compute, ais_estimates)`` as arrays, each estimate
    with its cost."""
    arrays = [_tensor(v).numpy() for v in values]
    if any(len(a) != len(b) for a, b in zip(arrays[::2], arrays[1::2])):
        raise ValueError("each estimate needs its cost: lengths differ")
    return arrays


def _draw_estimates(
    ax: Axes,
    is_compute: np.ndarray,
    is_estimates: np.ndarray,
    ais_compute: np.ndarray,
    ais_estimates: np.ndarray,
    gap: np.ndarray | None,
) -> None:
    """The IS and AIS curves of :func:`plot_log_likelihood_vs_compute`, and the band of the
    BDMC gap above the AIS one."""
    ax.plot(is_compute, is_estimates, "o-", markersize=4, label="IS: K forward passes")
    ax.plot(
        ais_compute,
        ais_estimates,
        "s-",
        markersize=4,
        color="tab:orange",
        label="AIS: S T (L + 1) gradient evaluations",
    )
    if gap is not None:
        ax.fill_between(
            ais_compute,
            ais_estimates,
            ais_estimates + np.maximum(gap, 0.0),
            color="tab:orange",
            alpha=0.2,
            linewidth=0,
            label="AIS + BDMC gap at that T (on simulated data)",
        )


def _draw_bdmc_gap(
    ax: Axes,
    compute: np.ndarray,
    gap: np.ndarray,
    gap_se: np.ndarray | None,
    labels: Sequence[str] | None,
    compute_label: str,
) -> None:
    """The panel of :func:`plot_log_likelihood_vs_compute` with the BDMC gap against cost."""
    ax.errorbar(
        compute,
        gap,
        yerr=gap_se,
        fmt="s-",
        markersize=4,
        capsize=3,
        color="tab:red",
        label="upper \u2212 lower bound"
        + (" \u00b1 1 standard error" if gap_se is not None else ""),
    )
    ax.axhline(0.0, color="grey", linewidth=1)
    _annotate_points(ax, compute, gap, labels, "above right")
    ax.set_xscale("log")
    ax.set_xlabel(compute_label)
    ax.set_ylabel(f"BDMC gap ({NATS})")
    ax.grid(alpha=0.3, which="both")
    ax.margins(x=0.2, y=0.12)
    ax.legend(loc="upper right", fontsize="small")
    ax.set_title("BDMC: how far AIS can be below log p(x)")


def plot_model_comparison(
    names: Sequence[str],
    elbo: ArrayLike,
    elbo_se: ArrayLike,
    log_likelihood: ArrayLike | None = None,
    log_likelihood_se: ArrayLike | None = None,
    title: str = "test-set bounds per model",
) -> Figure:
    """A table-like comparison of models: one row per model, its test ELBO and (when given)
    importance-sampled log-likelihood drawn as points with ±1 standard-error bars, and the
    numbers written out in a column beside them (all in nats per example)."""
    names = list(names)
    elbo, elbo_se = _tensor(elbo).numpy(), _tensor(elbo_se).numpy()
    has_ll = log_likelihood is not None
    if has_ll:
        ll = _tensor(log_likelihood).numpy()
        ll_se = (
            _tensor(log_likelihood_se).numpy()
            if log_likelihood_se is not None
            else np.zeros_like(ll)
        )
    rows = np.arange(len(names))[::-1]  # first model on top
    fig, (ax, table) = _figure(
        1,
        2,
        figsize=(10, 0.5 * len(names) + 1.6),
        sharey=True,
        gridspec_kw={"width_ratios": [3, 1.7] if has_ll else [3, 1]},
    )
    ax.errorbar(
        elbo, rows + (0.12 if has_ll else 0), xerr=elbo_se, fmt="o", capsize=3, label="test ELBO"
    )
    if has_ll:
        ax.errorbar(
            ll,
            rows - 0.12,
            xerr=ll_se,
            fmt="s",
            capsize=3,
            label="log p\u0302(x) (importance sampled)",
        )
    ax.set_yticks(rows)
    ax.set_yticklabels(names)
    ax.set_ylim(-0.7, len(names) - 0.3)
    ax.set_xlabel(f"{NATS} (higher is better; bars: \u00b1 1 standard error)")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -0.32 if len(names) < 4 else -0.18),
        ncols=2,
        frameon=False,
    )
    columns = [("test ELBO", elbo, elbo_se)] + ([("log p\u0302(x)", ll, ll_se)] if has_ll else [])
    _draw_number_columns(table, rows, columns)
    fig.suptitle(title)
    return fig


def _draw_number_columns(
    table: Axes, rows: np.ndarray, columns: list[tuple[str, np.ndarray, np.ndarray]]
) -> None:
    """Columns of ``value ± error`` beside the rows of :func:`plot_model_comparison`."""
    table.axis("off")
    for j, (header, values, errors) in enumerate(columns):
        x = (j + 0.5) / len(columns)
        table.text(x, len(rows) - 0.45, header, ha="center", va="bottom", weight="bold")
        for row, v, e in zip(rows, values, errors):
            table.text(
                x, row, f"{v:.2f} \u00b1 {e:.2f}", ha="center", va="center", family="monospace"
            )
    table.set_xlim(0, 1)


def plot_rate_distortion(
    rate: ArrayLike,
    distortion: ArrayLike,
    labels: Sequence[str] | None = None,
    title: str = "rate and distortion",
) -> Figure:
    """Distortion ``-E_q log p(x|z)`` against rate ``E_x KL(q(z|x) || p(z))`` (both nats per
    example), one point per model, each annotated with its label (e.g. ``"beta = 4"``);
    lines of constant ELBO = -(rate + distortion) run at 45 degrees."""
    rate, distortion = _tensor(rate).numpy(), _tensor(distortion).numpy()
    fig, ax = _figure(figsize=(6.5, 4.6))
    ax.plot(rate, distortion, "o-", markersize=5)
    ax.margins(0.15)  # room for the annotations inside the axes
    # distortion falls as rate grows: the free space is above-right and below-left of each
    # point; labels on the right half go below-left so they stay inside the axes
    middle = (rate.min() + rate.max()) / 2
    for i, text in enumerate(labels or []):
        right = bool(rate[i] > middle)
        ax.annotate(
            text,
            (rate[i], distortion[i]),
            xytext=(-6, -6) if right else (6, 6),
            textcoords="offset points",
            ha="right" if right else "left",
            va="top" if right else "bottom",
        )
    ax.set_xlabel(f"rate: KL(q(z|x) || p(z)) ({NATS})")
    ax.set_ylabel(f"distortion: \u2212E log p(x|z) ({NATS})")
    ax.grid(alpha=0.3)
    ax.set_title(title)
    return fig
