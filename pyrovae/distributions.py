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

:class:`DiscretizedLogisticMixture` is the mixture of discretized logistics of PixelCNN++
(Salimans et al., 2017), a probability mass on the 256 levels of 8-bit pixels.
"""

from __future__ import annotations

import math
from typing import ClassVar

import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch.nn import functional as F

from .compat import standard_normal

__all__ = [
    "DiscretizedLogisticMixture",
    "IndependentBernoulli",
    "Mixture",
    "ReparameterizedNormal",
    "StandardNormal",
]

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
        eps = standard_normal(shape, dtype=self.loc.dtype, device=self.loc.device)
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


#: levels of an 8-bit pixel, and the width of one level on PixelCNN++'s [-1, 1] scale
LEVELS = 256
_BIN = 2.0 / (LEVELS - 1)


class DiscretizedLogisticMixture(dist.TorchDistribution):
    """A mixture of ``K`` discretized logistics per element (PixelCNN++, Salimans et al. 2017,
    eq. 2): a probability mass on the 256 levels ``x = l / 255`` (``l = 0..255``) of each
    element, the elements independent given the parameters.

    On PixelCNN++'s scale ``x' = 2x - 1 in [-1, 1]`` the levels are ``2/255`` apart; a
    continuous ``nu ~ sum_k pi_k Logistic(mu_k, s_k)`` is rounded to the nearest level, so

    * ``P(x) = sum_k pi_k [F_k(x' + 1/255) - F_k(x' - 1/255)]`` inside,
    * ``P(0) = sum_k pi_k F_k(-1 + 1/255)`` and ``P(1) = sum_k pi_k [1 - F_k(1 - 1/255)]`` at
      the edges (the tails beyond them are given to levels 0 and 255),

    with ``F_k(u) = sigmoid((u - mu_k) / s_k)``. The 256 masses sum to 1 exactly (the CDF
    differences telescope). The CDF difference is computed in log space without cancellation
    from ``sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - exp(b - a))`` (``a > b``):
    ``log P_k = logsigmoid(a) + logsigmoid(-b) + log(-expm1(-(2/255) / s_k))``, exact where
    PixelCNN++ switches to a density-times-width approximation for tiny differences; the
    mixture is combined with a log-sum-exp over ``k``.

    Args:
        logits: ``(*batch, K, D)`` unnormalised log mixture weights ``pi``.
        locs: ``(*batch, K, D)`` logistic locations ``mu`` on the [-1, 1] scale.
        log_scales: ``(*batch, K, D)`` log scales ``log s`` on the [-1, 1] scale, clamped
            below at ``min_log_scale`` (PixelCNN++'s -7): at -7 a component puts at most
            ``sigmoid(4.3) - sigmoid(-4.3) = 0.973`` of its mass on an interior level, so no
            infinitely sharp logistic piles up on one level (levels 0 and 255 can still
            take nearly all of it, from a location beyond the edge).
        min_log_scale: that lower bound on ``log s``.

    Batch shape ``batch``, event shape ``(D,)``; ``log_prob`` sums over the ``D`` elements
    (nats per example). ``mean`` is the exact mean of the mass (a sum over the 255 level
    boundaries); ``sample`` draws a component, a logistic and rounds it to its level.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "logits": constraints.real,
        "locs": constraints.real,
        "log_scales": constraints.real,
    }
    support = constraints.independent(constraints.unit_interval, 1)
    has_rsample = False

    def __init__(
        self,
        logits: torch.Tensor,
        locs: torch.Tensor,
        log_scales: torch.Tensor,
        min_log_scale: float = -7.0,
        validate_args: bool | None = None,
    ) -> None:
        self.logits, self.locs = logits, locs
        self.log_scales = log_scales.clamp(min=min_log_scale)
        self.min_log_scale = min_log_scale
        shape = torch.broadcast_shapes(logits.shape, locs.shape, log_scales.shape)
        super().__init__(shape[:-2], shape[-1:], validate_args=validate_args)

    def expand(
        self,
        batch_shape: torch.Size | list[int] | tuple[int, ...],
        _instance: DiscretizedLogisticMixture | None = None,
    ) -> DiscretizedLogisticMixture:
        new = self._get_checked_instance(DiscretizedLogisticMixture, _instance)
        batch_shape = torch.Size(batch_shape)
        shape = batch_shape + self.logits.shape[-2:]
        new.logits, new.locs = self.logits.expand(shape), self.locs.expand(shape)
        new.log_scales = self.log_scales.expand(shape)
        new.min_log_scale = self.min_log_scale
        super(DiscretizedLogisticMixture, new).__init__(
            batch_shape, self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    def component_log_probs(self, value: torch.Tensor) -> torch.Tensor:
        """``log P_k(x)`` of each component, ``(*, K, D)``, for levels ``value`` ``(*, D)``."""
        x = (2 * value - 1).unsqueeze(-2)  # (*, 1, D), on the [-1, 1] scale
        centered = x - self.locs
        inv_scale = torch.exp(-self.log_scales)
        log_cdf_upper = F.logsigmoid(inv_scale * (centered + _BIN / 2))  # log F(x' + 1/255)
        log_sf_lower = F.logsigmoid(-inv_scale * (centered - _BIN / 2))  # log 1 - F(x' - 1/255)
        log_width = torch.log(-torch.expm1(-_BIN * inv_scale))  # log(1 - exp(b - a))
        inside = log_cdf_upper + log_sf_lower + log_width
        bottom, top = x < -1 + _BIN / 2, x > 1 - _BIN / 2  # levels 0 and 255
        return torch.where(bottom, log_cdf_upper, torch.where(top, log_sf_lower, inside))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        log_weights = torch.log_softmax(self.logits, dim=-2)
        return torch.logsumexp(self.component_log_probs(value) + log_weights, dim=-2).sum(-1)

    @property
    def mean(self) -> torch.Tensor:
        """``E[x] = (1/255) sum_{l=0}^{254} P(x > l/255)`` (tail sum), ``(*batch, D)``."""
        weights = torch.softmax(self.logits, dim=-2)
        inv_scale = torch.exp(-self.log_scales).unsqueeze(-1)
        locs = self.locs.unsqueeze(-1)
        # the boundaries between levels l and l + 1, in chunks of ~2^24 numbers at a time
        boundaries = -1 + (torch.arange(LEVELS - 1, dtype=locs.dtype) + 0.5) * _BIN
        chunk = max(1, (1 << 24) // max(1, locs.numel()))
        tail = torch.zeros_like(self.locs)
        for b in boundaries.to(locs.device).split(chunk):
            tail = tail + torch.sigmoid(inv_scale * (locs - b)).sum(-1)
        return (weights * tail).sum(-2) / (LEVELS - 1)

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)  # (*sample, *batch, D)
        logits = self.logits.expand(shape[:-1] + self.logits.shape[-2:])
        component = dist.Categorical(logits=logits.transpose(-1, -2)).sample().unsqueeze(-2)
        loc = self.locs.expand_as(logits).gather(-2, component).squeeze(-2)
        log_scale = self.log_scales.expand_as(logits).gather(-2, component).squeeze(-2)
        u = torch.rand(shape, dtype=loc.dtype, device=loc.device).clamp(1e-6, 1 - 1e-6)
        nu = loc + log_scale.exp() * (torch.log(u) - torch.log1p(-u))
        level = torch.round((nu + 1) / _BIN).clamp(0, LEVELS - 1)
        return level / (LEVELS - 1)
