"""Figures of a trained VAE: compute what a picture shows from a model and data, then draw it
with :mod:`pyrovae.viz.plots`.

One function per figure kind, ``<kind>_figure``, each returning a
:class:`matplotlib.figure.Figure` (write it with :func:`~pyrovae.viz.plots.save_figure`);
:func:`draw` picks one by name (it backs ``pyrovae plot RUN_DIR --kind KIND``). Random draws
use a fixed seed (and leave the caller's random stream untouched), so a figure is
reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from matplotlib.figure import Figure

from ..data import ImageData, StreamingImageData
from ..errors import ConfigError
from ..evaluation.metrics import kl_per_dimension
from ..models import program
from ..models.vae import VAE
from ..rng import fixed_rng
from . import FIGURE_KINDS, plots


def _device(vae: VAE) -> torch.device:
    return next(vae.parameters()).device


@torch.no_grad()
def posterior_means(
    vae: VAE, x: torch.Tensor, batch_size: int = 1000, num_samples: int = 64
) -> torch.Tensor:
    """E[z|x] under the guide q(z|x) for each example of ``x`` ``(N, data_dim)``: ``(N,
    latent_dim)``. Guides without a closed-form mean (e.g. flows) are averaged over
    ``num_samples`` draws."""
    out = []
    for start in range(0, x.shape[0], batch_size):
        q = vae.posterior(x[start : start + batch_size])
        try:
            out.append(q.mean)
        except NotImplementedError:
            out.append(q.sample(torch.Size([num_samples])).mean(0))
    return torch.cat(out)


def samples_figure(
    vae: VAE,
    num: int = 64,
    seed: int = 0,
    y: torch.Tensor | None = None,
    image_shape: tuple[int, ...] | None = None,
) -> Figure:
    """A grid of ``num`` samples E[x|z], z ~ p(z) (or p(z|y) for labels ``y``). Without
    labels a class-conditional prior is sampled from its marginal, the mixture over classes
    (:func:`classes_figure` draws one row per class). ``image_shape``: the data's, for a
    program module without one."""
    shape = program.image_shape(vae, image_shape)
    with fixed_rng(seed, _device(vae)):
        images = program.sample(vae, num, y, dim=math.prod(shape))
    return plots.plot_samples(images, shape)


def classes_figure(vae: VAE, per_class: int = 10, seed: int = 0) -> Figure:
    """One row of ``per_class`` samples E[x|z], z ~ p(z|y), for each class y (models with a
    class-conditional prior only).

    Raises:
        ConfigError: the prior does not take labels.
    """
    num_classes = vae.prior.num_classes
    if num_classes is None:
        raise ConfigError(
            "the classes figure draws from p(z|y), a class-conditional prior, but this model "
            f"has model.prior = {vae.prior.type_name!r}; train one with "
            "model.prior.type = 'conditional' (e.g. examples/conditional_vae.py)"
        )
    y = torch.arange(num_classes, device=_device(vae)).repeat_interleave(per_class)
    with fixed_rng(seed, _device(vae)):
        images = vae.sample(len(y), y)
    return plots.plot_class_rows(images.reshape(num_classes, per_class, -1), vae.image_shape)


def reconstructions_figure(
    vae: VAE,
    images: torch.Tensor,
    num: int = 32,
    seed: int = 0,
    image_shape: tuple[int, ...] | None = None,
) -> Figure:
    """The first ``num`` of ``images`` above their reconstructions E[x|z], z ~ q(z|x)
    (``image_shape``: the data's, for a program module without one)."""
    x = images[:num]
    with fixed_rng(seed, _device(vae)):
        recon = program.reconstruct(vae, x)
    return plots.plot_reconstructions(x, recon, program.image_shape(vae, image_shape))


def curves_figure(
    metrics: Sequence[Mapping[str, Any]], title: str = "ELBO during training"
) -> Figure:
    """Training and test ELBO per epoch from a run's metrics rows."""
    return plots.plot_elbo_curves(metrics, title=title)


def latent_figure(
    vae: VAE, images: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str] | None = None
) -> Figure:
    """Scatter of the posterior means of ``images`` coloured by ``labels`` (2-D latents only).

    Raises:
        ConfigError: the model's latent_dim is not 2.
    """
    plots.require_2d_latent(vae.latent_dim, "latent scatter")
    return plots.plot_latent_scatter(posterior_means(vae, images), labels, class_names)


@torch.no_grad()
def manifold_figure(vae: VAE, n: int = 15) -> Figure:
    """Decoder means over an ``n x n`` grid of the latent plane at standard-Normal quantiles
    (2-D latents only).

    Raises:
        ConfigError: the model's latent_dim is not 2.
    """
    z, axis_values = plots.manifold_grid(vae.latent_dim, n)
    decoded = vae.decode_mean(z.to(_device(vae)))
    return plots.plot_manifold(decoded, axis_values, vae.image_shape)


def interpolation_pairs(labels: torch.Tensor, pairs: int, seed: int = 0) -> torch.Tensor:
    """``(pairs, 2)`` indices of examples, each pair of two different classes, chosen at
    random with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(labels.shape[0], generator=gen)
    labels = labels.cpu()
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
        raise ValueError(f"found only {len(chosen)} pairs of differently labelled examples")
    return torch.tensor(chosen)


@torch.no_grad()
def interpolation_figure(
    vae: VAE,
    images: torch.Tensor,
    labels: torch.Tensor,
    pairs: int = 6,
    steps: int = 10,
    seed: int = 0,
) -> Figure:
    """Decoder means along straight lines between the posterior means of ``pairs`` pairs of
    differently labelled ``images``, ``steps`` points each, inputs shown at either side."""
    index = interpolation_pairs(labels, pairs, seed).to(images.device)
    x_a, x_b = images[index[:, 0]], images[index[:, 1]]
    z_a, z_b = posterior_means(vae, x_a), posterior_means(vae, x_b)
    t = torch.linspace(0.0, 1.0, steps, device=z_a.device)[None, :, None]
    z = (1 - t) * z_a[:, None, :] + t * z_b[:, None, :]  # (pairs, steps, latent_dim)
    decoded = vae.decode_mean(z)
    return plots.plot_interpolations(decoded, vae.image_shape, starts=x_a, ends=x_b)


def kl_per_dimension_figure(
    vae: VAE, images: torch.Tensor, labels: torch.Tensor | None = None, threshold: float = 0.01
) -> Figure:
    """Bars of KL(q(z_d|x) || p(z_d)) per latent dimension d, averaged over ``images``
    (``labels`` go to a class-conditional prior); dimensions above ``threshold`` nats are
    the active units.

    Raises:
        ConfigError: the prior or guide is not a product of one Normal per dimension.
    """
    y = vae.model_labels(labels)
    return plots.plot_kl_per_dimension(kl_per_dimension(vae, images, y), threshold)


#: the figures of any program module: drawn from its ``sample``/``reconstruct`` (or their
#: fallbacks) and the run's metrics
PROGRAM_KINDS = ("samples", "reconstructions", "curves")


def check_kind(kind: str, module: Any) -> None:
    """Raise :class:`ConfigError` when ``module``, a program other than pyrovae's VAE, cannot
    have the figure ``kind`` (it has those of :data:`PROGRAM_KINDS`)."""
    if not isinstance(module, VAE) and kind not in PROGRAM_KINDS:
        raise ConfigError(
            f"the {kind!r} figure reads the latent space of pyrovae's VAE (a single site 'z' "
            f"with its prior and guide); a program module of class {type(module).__name__} has "
            f"the figures {', '.join(PROGRAM_KINDS)}"
        )


def draw(
    kind: str,
    vae: VAE,
    data: ImageData | StreamingImageData | None = None,
    metrics: Sequence[Mapping[str, Any]] = (),
    seed: int = 0,
    image_shape: tuple[int, ...] | None = None,
) -> Figure:
    """The figure ``kind`` (one of :data:`~pyrovae.viz.FIGURE_KINDS`) of ``vae``
    (``image_shape``: the data's, for a program module without one).

    ``data`` (its test set) is needed by the kinds in :data:`~pyrovae.viz.NEEDS_DATA`;
    ``metrics`` (a run's rows) by "curves". A program module other than pyrovae's VAE
    (:mod:`pyrovae.models.program`) has the kinds of :data:`PROGRAM_KINDS`."""
    if kind not in FIGURE_KINDS:
        raise ValueError(f"unknown figure kind {kind!r}; expected one of {', '.join(FIGURE_KINDS)}")
    check_kind(kind, vae)
    if kind == "samples":
        return samples_figure(vae, seed=seed, image_shape=image_shape)
    if kind == "curves":
        return curves_figure(metrics)
    if kind == "manifold":
        return manifold_figure(vae)
    if kind == "classes":
        return classes_figure(vae, seed=seed)
    if data is None:
        raise ValueError(f"the {kind!r} figure needs the data set")
    if kind == "reconstructions":
        return reconstructions_figure(
            vae, data.test_images, seed=seed, image_shape=image_shape or data.image_shape
        )
    if kind == "latent":
        return latent_figure(vae, data.test_images, data.test_labels)
    if kind == "kl_per_dimension":
        return kl_per_dimension_figure(vae, data.test_images, data.test_labels)
    return interpolation_figure(vae, data.test_images, data.test_labels, seed=seed)
