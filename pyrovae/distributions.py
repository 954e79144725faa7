"""The distributions pyrovae adds to Pyro's: cheaper log-densities for the scores a VAE
computes every step, and a mixture that broadcasts its value against its components.

:class:`StandardNormal` and :class:`ReparameterizedNormal` are
:class:`pyro.distributions.Normal` (so Pyro's handlers, ``expand`` and the registered
closed-form KL divergences treat them as Normals) and differ only in how ``log_prob`` is
computed:

* :class:`StandardNormal` is N(0, 1): ``log_prob(z) = -z^2/2 - log(2 pi)/2``, bitwise what
  ``Normal(0, 1).log_prob`` computes, without the operations on ``loc`` and ``scale``.
* :class:`ReparameterizedNormal` remembers the standard draws ``eps`` behind its latest
  ``rsample`` ``z = loc + scale * eps``; scoring that very sample, it computes
  ``log q(z) = -eps^2/2 - log(scale) - log(2 pi)/2`` instead of recovering
  ``eps = (z - loc) / scale``: the same value up to float rounding and the same gradient with
  respect to every parameter (the terms through ``z`` and through ``loc``, ``scale`` cancel
  exactly: d/d theta of ``(z(theta) - loc(theta)) / scale(theta)`` is 0). This is how a
  hand-written VAE scores its guide.

:class:`IndependentBernoulli` is ``Bernoulli(logits=l).to_event(1)`` with one pass fewer over
the elements in ``log_prob``; :class:`Mixture` is torch's ``MixtureSameFamily`` for
components that do not broadcast implicitly (the mixture priors).
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch.distributions.utils import _standard_normal
from torch.nn import functional as F

__all__ = ["IndependentBernoulli", "Mixture", "ReparameterizedNormal", "StandardNormal"]

#: log(2 pi) / 2, the log-normaliser of a standard normal density (nats), computed as
#: torch's Normal.log_prob computes it
HALF_LOG_2PI = math.log(math.sqrt(2 * math.pi))


class StandardNormal(dist.Normal):
    """N(0, 1), elementwise: construct it with ``loc`` zeros and ``scale`` ones of the batch
    shape (e.g. a prior's buffers, which also place it on a device and dtype)."""

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
            if not (bool((self.loc == 0).all()) and bool((self.scale == 1).all())):
                raise ValueError("StandardNormal needs loc = 0 and scale = 1; use Normal")
        return -(value**2) / 2 - HALF_LOG_2PI


class ReparameterizedNormal(dist.Normal):
    """N(loc, scale) whose ``log_prob`` of its own latest ``rsample`` uses the standard draws
    (see the module docstring); any other value is scored as by ``Normal``. The sample must not
    be modified in place before it is scored."""

    _draw: tuple[torch.Tensor, torch.Tensor] | None = None

    def rsample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        eps = _standard_normal(shape, dtype=self.loc.dtype, device=self.loc.device)
        value = self.loc + eps * self.scale
        self._draw = (value, eps)
        return value

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        draw = self._draw
        if draw is None or value is not draw[0]:
            return super().log_prob(value)
        if self._validate_args:
            self._validate_sample(value)
        return -(draw[1] ** 2) / 2 - self.scale.log() - HALF_LOG_2PI


class IndependentBernoulli(dist.Independent):
    """``Bernoulli(logits=l).to_event(1)`` whose ``log_prob`` negates after summing over the
    event (one pass over the ``(*batch, D)`` elements fewer than ``Independent``'s
    ``-BCE(...).sum(-1)``; the same numbers). Hot in training and in log-likelihood
    evaluation, where the batch holds K samples per example."""

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self.base_dist._validate_sample(value)
        logits = self.base_dist.logits
        if logits.shape != value.shape:
            logits, value = torch.broadcast_tensors(logits, value)
        return -F.binary_cross_entropy_with_logits(logits, value, reduction="none").sum(-1)


class Mixture(dist.MixtureSameFamily):
    """``p(z) = sum_k w_k p_k(z)``: torch's ``MixtureSameFamily`` with the value broadcast
    against the components before scoring, so components whose parameters cannot broadcast
    implicitly (conditional flows, e.g. a VampPrior over an IAF guide) work too.

    ``component_distribution`` has batch shape ``(*batch, K)``; ``logits`` are ``(*batch, K)``.
    """

    def __init__(self, logits: torch.Tensor, components: dist.TorchDistribution) -> None:
        super().__init__(dist.Categorical(logits=logits), components)

    def expand(self, batch_shape: torch.Size, _instance: Mixture | None = None) -> Mixture:
        new = self._get_checked_instance(Mixture, _instance)
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(x)
        x = self._pad(x)  # (*sample, *batch, 1, *event)
        components = self.component_distribution
        event = len(self.event_shape)
        shape = torch.broadcast_shapes(x.shape[: x.dim() - event], components.batch_shape)
        log_prob_x = components.log_prob(x.expand(shape + self.event_shape))
        log_weights = torch.log_softmax(self.mixture_distribution.logits, dim=-1)
        return torch.logsumexp(log_prob_x + log_weights, dim=-1)
