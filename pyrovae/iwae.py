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
from typing import Any

import torch
from pyro.infer.util import get_dependent_plate_dims, torch_sum
from pyro.poutine import Trace

from .elbo import ReparameterizedELBO
from .trace_elbo import warn_if_nan_when_validating

__all__ = ["IWAE_ELBO"]


class IWAE_ELBO(ReparameterizedELBO):
    """The importance-weighted bound with ``num_particles`` samples per example::

        svi = SVI(vae.model, vae.guide, optim, loss=pyrovae.IWAE_ELBO(num_particles=5))

    ``loss`` is ``-sum_i L_K(x_i)`` (nats per batch); ``differentiable_loss`` the same as a
    differentiable tensor; ``loss_and_grads`` also backpropagates it. With ``num_particles=1``
    it is the ordinary single-sample ELBO.
    """

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
        sites = [s for t in (model_trace, guide_trace) for s in t.nodes.values()
                 if s["type"] == "sample"]
        # plates not shared by every site are summed inside each log-weight
        sum_dims = get_dependent_plate_dims(sites)
        log_w: Any = 0.0
        for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
            for site in trace.nodes.values():
                if site["type"] == "sample":
                    log_w = log_w + sign * torch_sum(site["log_prob"], sum_dims)
        log_w = torch.as_tensor(log_w)
        if self.num_particles == 1:
            return log_w.sum()
        # the particle plate is the leftmost of the max_plate_nesting batch dims
        particle_dim = -int(self.max_plate_nesting)
        bound = log_w.logsumexp(dim=particle_dim) - math.log(self.num_particles)
        return bound.sum()

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """``-sum_i L_K(x_i)`` (nats per batch) as a differentiable tensor."""
        loss: Any = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            loss = loss - self._bound(model_trace, guide_trace)
        warn_if_nan_when_validating(loss, "loss")
        return loss
