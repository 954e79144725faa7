"""``ELBO``: the base class of every pyrovae ELBO.

A pyrovae ELBO is a :class:`pyro.infer.ELBO` that implements one method,
:meth:`ELBO.differentiable_loss` (the negative bound of a batch, in nats summed over the
batch, as a tensor whose gradient is the estimator's). The base provides the rest, the same way
for every subclass:

* the model and guide traces of each particle, from :func:`pyro.infer.enum.get_importance_trace`
  (as :class:`pyro.infer.Trace_ELBO` makes them), with a clear error when a subclass needs a
  reparameterized guide and a guide site has no ``rsample``;
* ``loss`` and ``loss_and_grads`` (what :class:`pyro.infer.SVI` calls) derived from
  ``differentiable_loss``;
* NaN checks only while Pyro validation is on (:func:`warn_if_nan_when_validating`): the checks
  read values back from the device, so with validation off nothing in a training step waits
  for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pyro.distributions as dist
import pyro.infer
import torch
from pyro.infer.enum import get_importance_trace
from pyro.infer.util import is_validation_enabled
from pyro.poutine import Trace
from pyro.util import check_if_enumerated, warn_if_nan

from ..models.program import latent_sites

__all__ = ["ELBO", "check_reparameterized", "describe_distribution", "warn_if_nan_when_validating"]


def warn_if_nan_when_validating(value: Any, msg: str = "") -> Any:
    """Pyro's :func:`~pyro.util.warn_if_nan` (on ``value`` and its gradient) while Pyro
    validation is enabled; nothing otherwise, since the check is a host synchronisation.

    Training loops that switch validation off after a first validated step (as
    :class:`~pyrovae.Trainer` does) then check the accumulated loss when they read it."""
    if is_validation_enabled():
        warn_if_nan(value, msg)
    return value


def describe_distribution(fn: Any) -> str:
    """A short name of a distribution's type, looking through Pyro's wrappers:
    ``Independent(Normal)``, ``Masked(Independent(StudentT))``..."""
    if isinstance(fn, dist.ExpandedDistribution):
        return describe_distribution(fn.base_dist)
    if isinstance(fn, dist.MaskedDistribution):
        return f"Masked({describe_distribution(fn.base_dist)})"
    if isinstance(fn, torch.distributions.Independent):
        return f"Independent({describe_distribution(fn.base_dist)})"
    if isinstance(fn, torch.distributions.Normal):  # pyrovae.distributions' Normals too
        return "Normal"
    return type(fn).__name__


def check_reparameterized(guide_trace: Trace, estimator: str) -> None:
    """Raise ``NotImplementedError`` naming the first latent guide site without ``rsample``;
    ``estimator`` names the ELBO in the message."""
    for name, site in latent_sites(guide_trace).items():
        fn: Any = site["fn"]
        if not fn.has_rsample:
            raise NotImplementedError(
                f"{estimator} needs a reparameterized guide, but guide site {name!r} samples "
                f"from {describe_distribution(site['fn'])}, which has no rsample; use a "
                "reparameterizable distribution there, or Trace_ELBO "
                "(objective.type = 'trace_elbo'), "
                "which handles sites without rsample"
            )


class ELBO(pyro.infer.ELBO):
    """Base class of pyrovae's ELBOs (see the module docstring); constructed with Pyro's
    :class:`~pyro.infer.ELBO` arguments (``num_particles``, ``max_plate_nesting``,
    ``vectorize_particles``, ``retain_graph``, ...).

    Subclasses implement :meth:`differentiable_loss` and set :attr:`requires_reparameterized`
    when their gradient flows through the guide's samples only.
    """

    #: whether every latent guide site must have ``rsample`` (checked on every trace)
    requires_reparameterized: ClassVar[bool] = False
    #: whether guide sites marked for parallel enumeration are summed out (else refused)
    sums_out_enumerated: ClassVar[bool] = False
    #: whether latent sites take their KL in closed form given the latents sampled before
    #: them (for a program of one's own, the guide must then sample the latent sites in the
    #: model's order: :meth:`pyrovae.infer.Objective.check_program`)
    closed_form_kl: ClassVar[bool] = False

    def _get_trace(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[Trace, Trace]:
        model_trace, guide_trace = get_importance_trace(
            "flat", self.max_plate_nesting, model, guide, args, kwargs
        )
        if is_validation_enabled():
            check_if_enumerated(guide_trace)
        if self.requires_reparameterized:
            check_reparameterized(guide_trace, type(self).__name__)
        return model_trace, guide_trace

    def differentiable_loss(
        self, model: Callable, guide: Callable, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """The negative bound (nats, summed over the batch) as a differentiable tensor."""
        raise NotImplementedError

    def loss(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> float:
        """The loss (nats, summed over the batch) as a float."""
        with torch.no_grad():
            return self.differentiable_loss(model, guide, *args, **kwargs).item()

    def loss_and_grads(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> float:
        """Like :meth:`loss`, and backpropagate it into the parameters' ``.grad``."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        if loss.requires_grad:
            loss.backward(retain_graph=self.retain_graph)
        return loss.item()
