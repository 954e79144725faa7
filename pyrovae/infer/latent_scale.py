"""``scale_latents``: weight the log-densities of a program's latent sites, from outside it.

The weight of the KL term of a beta-VAE (Higgins et al., 2017) and of a KL warm-up (Bowman et
al., 2016; Sønderby et al., 2016) is a weight ``w`` on every latent site, in the model *and*
in the guide, so that the Monte Carlo KL ``log q(z|x) - log p(z)`` and an analytic KL are
weighted alike and every Pyro ELBO honours it without knowing about it::

    E_q[log p(x|z)] - w * KL(q(z|x) || p(z))

The model and guide stay the plain programs p(x, z) and q(z|x); the trainer wraps them. The
weight may be a 0-d tensor that changes between steps (refilled in place), which is how the
replayed training step (:mod:`pyrovae.infer.replay`) reads a new warm-up weight each step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from pyro.poutine.scale_messenger import ScaleMessenger

from ..models.program import is_latent

if TYPE_CHECKING:
    from pyro.poutine.runtime import Message

__all__ = ["LatentScaleMessenger", "scale_latents"]

F = TypeVar("F", bound=Callable[..., Any])


class LatentScaleMessenger(ScaleMessenger):
    """:class:`pyro.poutine.scale_messenger.ScaleMessenger` restricted to latent sites: the
    log-density of every latent site (:func:`~pyrovae.models.program.is_latent`) is
    multiplied by ``scale``; observed sites are left as they are.

    Args:
        scale: a positive number or 0-d tensor (checked as ``poutine.scale`` checks it).
    """

    def _process_message(self, msg: Message) -> None:
        if is_latent(msg):
            super()._process_message(msg)


def scale_latents(fn: F, scale: float | torch.Tensor) -> F:
    """``fn`` with the log-density of each of its latent sites multiplied by ``scale``.

    Example (a beta-VAE trained with Pyro's own SVI; wrap model and guide alike)::

        beta = 4.0
        svi = SVI(scale_latents(vae.model, beta), scale_latents(vae.guide, beta),
                  pyro.optim.Adam({"lr": 1e-3}), loss=pyrovae.Trace_ELBO())
    """
    return LatentScaleMessenger(scale)(fn)  # type: ignore[return-value]
