"""The posterior of each example: what a trained model's encoder makes of data.

:func:`encode` gives the mean and scale (standard deviation) of q(z|x) per example and latent
dimension, for a model with a single latent space whose guide is a product of one Normal per
dimension (pyrovae's :class:`~pyrovae.VAE` with the ``diag_normal`` guide). They are the
usual latent representation of an example (the mean) and how sure the encoder is of it
(the scale); ``pyrovae encode`` writes them to a file.
"""

from __future__ import annotations

import sys

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.images import batches
from ..errors import ConfigError
from ..models.program import as_program
from ..registry import PositiveInt, check_value
from .metrics import normal_factors

__all__ = ["encode"]


@torch.no_grad()
def encode(
    vae: nn.Module, x: torch.Tensor, batch_size: int = 1000, *, progress: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and scale of q(z|x) for each example of ``x``.

    Args:
        vae: the trained model (a :class:`~pyrovae.models.program.Program`, or a module of
            one's own with a single latent space), in eval mode for the call.
        x: ``(N, data_dim)`` examples on the model's device.
        batch_size: examples per encoder pass.
        progress: show a progress bar over the batches (on stderr).

    Returns:
        ``(mean, scale)``, each ``(N, latent_dim)``: q(z_d | x) = Normal(mean_d, scale_d).

    Raises:
        ConfigError: the model has no single latent space, or its guide is not one Normal per
            dimension (e.g. ``model.guide = 'iaf'``, whose posterior has no closed-form mean).

    Example::

        vae, config, _ = pyrovae.load_run("runs/mnist")
        mean, scale = encode(vae, x)   # (N, latent_dim) each
    """
    program = as_program(vae)
    space = program.latent_space("encode")
    program.check_data(x)
    check_value(batch_size, PositiveInt, "batch_size")
    means, scales = [], []
    with program.evaluating():
        parts = batches(x, None, batch_size)
        total = -(-x.shape[0] // batch_size)
        for xb, _ in tqdm(parts, total=total, desc="encode", disable=not progress, file=sys.stderr):
            q = normal_factors(space.posterior(xb))
            if q is None:
                raise ConfigError(
                    f"encode reads q(z|x) as one Normal per latent dimension, but this guide "
                    f"gives {type(space.posterior(xb[:1])).__name__}; use model.guide = "
                    "'diag_normal', or call vae.posterior(x) in Python"
                )
            means.append(q.loc)
            scales.append(q.scale)
    return torch.cat(means), torch.cat(scales)
