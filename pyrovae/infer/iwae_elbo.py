"""``IWAE_ELBO``: the K-sample importance-weighted bound (Burda et al., 2016) as a Pyro ELBO.

For each independent example ``i`` (each element of the plates shared by all sites, e.g. the
VAE's ``"data"`` plate) and ``K = num_particles`` draws ``z_k ~ q(z|x_i)``::

    L_K(x_i) = log (1/K) sum_k exp(log p(x_i, z_k) - log q(z_k|x_i))  <=  log p(x_i)

``L_1`` is the ELBO and ``L_K`` increases with ``K`` towards ``log p(x_i)``. The particles
are drawn in one vectorized pass (a particle plate on the left); the gradient is that of
``L_K`` itself through the reparameterized draws. Site weights (``poutine.scale``/``mask``)
enter each log-weight as in :class:`pyro.infer.RenyiELBO`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from pyro.poutine import Trace

from .elbo import ELBO, warn_if_nan_when_validating
from .log_weights import trace_log_weights

__all__ = ["IWAE_ELBO"]


class IWAE_ELBO(ELBO):
    """The importance-weighted bound with ``num_particles`` samples per example, built by
    ``objective.type = "iwae"``::

        svi = SVI(vae.model, vae.guide, optim, loss=pyrovae.IWAE_ELBO(num_particles=5))

    ``loss`` is ``-sum_i L_K(x_i)`` (nats per batch); ``differentiable_loss`` the same as a
    differentiable tensor; ``loss_and_grads`` also backpropagates it. With ``num_particles=1``
    it is the ordinary single-sample ELBO.
    """

    requires_reparameterized: ClassVar[bool] = True

    def __init__(
        self,
        num_particles: int = 5,
        max_plate_nesting: float = float("inf"),
        retain_graph: bool | None = None,
    ) -> None:
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=True,
            retain_graph=retain_graph,
        )

    def _bound(self, model_trace: Trace, guide_trace: Trace) -> torch.Tensor:
        """``sum_i L_K(x_i)`` from one vectorized trace pair (a scalar)."""
        log_w = trace_log_weights(model_trace, guide_trace, scaled=True)
        if self.num_particles == 1:
            return log_w.sum()
        # the particle plate is the leftmost of the max_plate_nesting batch dims
        particle_dim = -int(self.max_plate_nesting)
        bound = log_w.logsumexp(dim=particle_dim) - math.log(self.num_particles)
        return bound.sum()

    def differentiable_loss(
        self, model: Callable, guide: Callable, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """``-sum_i L_K(x_i)`` (nats per batch) as a differentiable tensor."""
        loss: Any = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            loss = loss - self._bound(model_trace, guide_trace)
        warn_if_nan_when_validating(loss, "loss")
        return loss
