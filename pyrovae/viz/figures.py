"""Figures of a trained VAE: compute what a picture shows from a model and data, then draw it
with :mod:`pyrovae.viz.plots`.

One function per figure kind, ``<kind>_figure``, each returning a
:class:`matplotlib.figure.Figure` (write it with :func:`~pyrovae.viz.plots.save_figure`);
:func:`draw` picks one by name (it backs ``pyrovae plot RUN_DIR --kind KIND``). Random draws
use a fixed seed (and leave the caller's random stream untouched), so a figure is
reproducible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import nn

from ..data import ImageData, StreamingImageData
from ..errors import ConfigError, DataError
from ..evaluation.metrics import kl_per_dimension
from ..models.program import LatentSpace, Program, as_program
from ..rng import fixed_rng
from . import plots
from .kinds import FIGURE_KINDS, LATENT_SPACE_KINDS


@torch.no_grad()
def posterior_means(
    vae: nn.Module, x: torch.Tensor, batch_size: int = 1000, num_samples: int = 64
) -> torch.Tensor:
    """E[z|x] under the guide q(z|x) for each example of ``x`` ``(N, data_dim)``: ``(N,
    latent_dim)``. Guides without a closed-form mean (e.g. flows) are averaged over
    ``num_samples`` draws."""
    space = as_program(vae).latent_space("posterior means")
    return _posterior_means(space, x, batch_size, num_samples)


def _posterior_means(
    space: LatentSpace, x: torch.Tensor, batch_size: int = 1000, num_samples: int = 64
) -> torch.Tensor:
    out = []
    for start in range(0, x.shape[0], batch_size):
        q = space.posterior(x[start : start + batch_size])
        try:
            out.append(q.mean)
        except NotImplementedError:
            out.append(q.sample(torch.Size([num_samples])).mean(0))
    return torch.cat(out)


def samples_figure(
    vae: nn.Module,
    num: int = 64,
    seed: int = 0,
    y: torch.Tensor | None = None,
    image_shape: tuple[int, ...] | None = None,
) -> Figure:
    """A grid of ``num`` samples E[x|z], z ~ p(z) (or p(z|y) for labels ``y``). Without
    labels a class-conditional prior is sampled from its marginal, the mixture over classes
    (:func:`classes_figure` draws one row per class). ``image_shape``: the data's, for a
    program module without one."""
    program = as_program(vae, image_shape)
    with fixed_rng(seed, program.device):
        images = program.sample(num, y)
    return plots.plot_samples(images, program.example_shape())


def classes_figure(
    vae: nn.Module,
    per_class: int = 10,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """One row of ``per_class`` samples E[x|z], z ~ p(z|y), for each class y (label-conditional
    models only: a class-conditional prior), labelled with ``class_names`` when given (else
    the class numbers).

    Raises:
        ConfigError: the model is not label-conditional.
    """
    program = as_program(vae)
    num_classes = program.classes("the classes figure")
    y = torch.arange(num_classes, device=program.device).repeat_interleave(per_class)
    with fixed_rng(seed, program.device):
        images = program.sample(len(y), y)
    return plots.plot_class_rows(
        images.reshape(num_classes, per_class, -1), program.example_shape(), class_names or None
    )


def reconstructions_figure(
    vae: nn.Module,
    images: torch.Tensor,
    num: int = 32,
    seed: int = 0,
    image_shape: tuple[int, ...] | None = None,
) -> Figure:
    """The first ``num`` of ``images`` above their reconstructions E[x|z], z ~ q(z|x)
    (``image_shape``: the data's, for a program module without one)."""
    program = as_program(vae, image_shape)
    x = images[:num]
    with fixed_rng(seed, program.device):
        recon = program.reconstruct(x)
    return plots.plot_reconstructions(x, recon, program.example_shape())


def curves_figure(
    metrics: Sequence[Mapping[str, Any]], title: str = "ELBO during training"
) -> Figure:
    """Training and test ELBO per epoch from a run's metrics rows."""
    return plots.plot_elbo_curves(metrics, title=title)


def latent_figure(
    vae: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """Scatter of the posterior means of ``images`` coloured by ``labels`` (2-D latents only;
    in one colour when unlabelled: labels -1).

    Raises:
        ConfigError: the model has no single latent space, or its latent_dim is not 2.
    """
    space = as_program(vae).latent_space("the latent scatter")
    plots.require_2d_latent(space.latent_dim, "latent scatter")
    return plots.plot_latent_scatter(_posterior_means(space, images), labels, class_names)


@torch.no_grad()
def manifold_figure(vae: nn.Module, n: int = 15) -> Figure:
    """Decoder means over an ``n x n`` grid of the latent plane at standard-Normal quantiles
    (2-D latents only).

    Raises:
        ConfigError: the model has no single latent space, or its latent_dim is not 2.
    """
    program = as_program(vae)
    space = program.latent_space("the manifold figure")
    z, axis_values = plots.manifold_grid(space.latent_dim, n)
    decoded = space.decode_mean(z.to(program.device))
    return plots.plot_manifold(decoded, axis_values, program.example_shape())


def interpolation_pairs(labels: torch.Tensor, pairs: int, seed: int = 0) -> torch.Tensor:
    """``(pairs, 2)`` indices of examples, each pair of two different classes, chosen at
    random with ``seed``; for unlabelled examples (every label -1), pairs of different
    examples (as many as there are, up to ``pairs``).

    Raises:
        DataError: fewer than two examples, or labelled examples of fewer than two classes
            or too few to make ``pairs`` pairs of different classes.
    """
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(labels.shape[0], generator=gen)
    labels = labels.cpu()
    if labels.shape[0] < 2:
        raise DataError(
            f"the interpolation figure needs two test examples or more, got {labels.shape[0]}"
        )
    if bool((labels < 0).all()):  # unlabelled: any two different examples
        count = min(pairs, labels.shape[0] // 2)
        return order[: 2 * count].reshape(count, 2)
    chosen: list[tuple[int, int]] = []
    i = 0
    while len(chosen) < pairs and i + 1 < len(order):
        a, b = int(order[i]), int(order[i + 1])
        if labels[a] != labels[b]:
            chosen.append((a, b))
            i += 2
        else:
            i += 1
    if len(chosen) < pairs:
        raise DataError(
            f"the interpolation figure needs {pairs} pairs of test examples of different "
            f"classes, found only {len(chosen)}; give a test set with more classes or examples"
        )
    return torch.tensor(chosen)


@torch.no_grad()
def interpolation_figure(
    vae: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    pairs: int = 6,
    steps: int = 10,
    seed: int = 0,
) -> Figure:
    """Decoder means along straight lines between the posterior means of ``pairs`` pairs of
    differently labelled ``images`` (of different images, when unlabelled: labels -1),
    ``steps`` points each, inputs shown at either side."""
    program = as_program(vae)
    space = program.latent_space("the interpolation figure")
    index = interpolation_pairs(labels, pairs, seed).to(images.device)
    x_a, x_b = images[index[:, 0]], images[index[:, 1]]
    z_a, z_b = _posterior_means(space, x_a), _posterior_means(space, x_b)
    t = torch.linspace(0.0, 1.0, steps, device=z_a.device)[None, :, None]
    z = (1 - t) * z_a[:, None, :] + t * z_b[:, None, :]  # (pairs, steps, latent_dim)
    decoded = space.decode_mean(z)
    return plots.plot_interpolations(decoded, program.example_shape(), starts=x_a, ends=x_b)


def kl_per_dimension_figure(
    vae: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    threshold: float = 0.01,
) -> Figure:
    """Bars of KL(q(z_d|x) || p(z_d)) per latent dimension d, averaged over ``images``
    (``labels`` go to a class-conditional prior); dimensions above ``threshold`` nats are
    the active units.

    Raises:
        ConfigError: the model has no single latent space, or its prior or guide is not a
            product of one Normal per dimension.
    """
    program = as_program(vae)
    y = program.model_labels(labels)
    return plots.plot_kl_per_dimension(kl_per_dimension(program, images, y), threshold)


def check_kind(kind: str, model: Program) -> None:
    """Raise :class:`ConfigError` when ``model`` cannot have the figure ``kind``: it is not
    among its :attr:`~pyrovae.models.program.Program.figure_kinds` (the figures of one latent
    space say why, from :meth:`~pyrovae.models.program.Program.latent_space`)."""
    if kind in model.figure_kinds:
        return
    if kind in LATENT_SPACE_KINDS:
        model.latent_space(f"the {kind!r} figure")  # raises, with the model's reason
    raise ConfigError(
        f"the {kind!r} figure is not available for a model of class "
        f"{type(model.module).__name__}; it has the figures {', '.join(model.figure_kinds)}"
    )


def draw(
    kind: str,
    vae: nn.Module,
    data: ImageData | StreamingImageData | None = None,
    metrics: Sequence[Mapping[str, Any]] = (),
    seed: int = 0,
    image_shape: tuple[int, ...] | None = None,
    class_names: Sequence[str] = (),
) -> Figure:
    """The figure ``kind`` (one of :data:`~pyrovae.viz.FIGURE_KINDS`) of ``vae``
    (``image_shape``: the data's, for a program module without one; ``class_names``: the
    names of the classes, label 0 first, for the "classes" and "latent" figures; default:
    the data's, else the class numbers).

    ``data`` (its test set) is needed by the kinds in :data:`~pyrovae.viz.NEEDS_DATA`;
    ``metrics`` (a run's rows) by "curves". A model has the kinds of its
    :attr:`~pyrovae.models.program.Program.figure_kinds`."""
    if kind not in FIGURE_KINDS:
        raise ValueError(f"unknown figure kind {kind!r}; expected one of {', '.join(FIGURE_KINDS)}")
    shape = image_shape or (data.image_shape if data is not None else None)
    names = list(class_names) or (data.class_names if data is not None else [])
    program = as_program(vae, shape)
    check_kind(kind, program)
    if kind == "samples":
        return samples_figure(program, seed=seed)
    if kind == "curves":
        return curves_figure(metrics)
    if kind == "manifold":
        return manifold_figure(program)
    if kind == "classes":
        return classes_figure(program, seed=seed, class_names=names)
    if data is None:
        raise ValueError(f"the {kind!r} figure needs the data set")
    if kind == "reconstructions":
        return reconstructions_figure(program, data.test_images, seed=seed)
    if kind == "latent":
        return latent_figure(program, data.test_images, data.test_labels, names or None)
    if kind == "kl_per_dimension":
        return kl_per_dimension_figure(program, data.test_images, data.test_labels)
    return interpolation_figure(program, data.test_images, data.test_labels, seed=seed)
