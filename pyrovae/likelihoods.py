"""Likelihoods p(x|z): the distribution of the observed site ``"x"``.

A likelihood turns the decoder's output, a tensor of shape ``(*batch, k, D)`` with ``k =
params_per_element`` numbers per data element, into a Pyro distribution with batch shape
``batch`` and event shape ``(D,)`` (``D`` = pixels, treated as one event with ``to_event(1)``).
Its ``log_prob`` is in nats per example.

Each likelihood declares the data it accepts (:attr:`Likelihood.data_kind`): ``"binary"``
({0, 1}), ``"unit_interval"`` ([0, 1]) or ``"real"``; :meth:`Likelihood.check_data_config`
refuses a data preparation it cannot model before any work starts.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from .errors import ConfigError
from .registry import Registry

DataKind = Literal["binary", "unit_interval", "real"]


class Likelihood(nn.Module):
    """Base class: maps decoder outputs ``(*batch, k, D)`` to a distribution over ``x``."""

    type_name: ClassVar[str]
    #: numbers the decoder emits per data element
    params_per_element: ClassVar[int] = 1
    #: the data this likelihood is a density/mass for
    data_kind: ClassVar[DataKind] = "real"

    def distribution(self, params: torch.Tensor) -> dist.TorchDistribution:
        """The distribution of ``x`` given decoder output ``params`` of shape ``(*batch, k, D)``."""
        raise NotImplementedError

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """The mean of ``x`` given ``params``, shape ``(*batch, D)``; used for pictures."""
        return self.distribution(params).mean

    def check_data_config(self, binarize: str) -> None:
        """Raise :class:`ConfigError` when data prepared with ``binarize`` is outside the support."""
        binary = binarize in ("dynamic", "static")
        if self.data_kind == "binary" and not binary:
            raise ConfigError(
                f"model.likelihood.type = {self.type_name!r} needs binary data but "
                f"data.binarize = {binarize!r}; set data.binarize to 'dynamic' or 'static', "
                "or choose a likelihood for grey levels (e.g. 'continuous_bernoulli')"
            )

    def extra_repr(self) -> str:
        return f"type={self.type_name!r}, data={self.data_kind}"


LIKELIHOODS: Registry[Likelihood] = Registry("likelihood", context=("data_dim",))


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


@LIKELIHOODS.register("bernoulli")
class BernoulliLikelihood(Likelihood):
    """Independent Bernoulli pixels parameterised by logits: ``x_d ~ Bernoulli(sigmoid(l_d))``."""

    data_kind = "binary"

    def __init__(self, *, data_dim: int) -> None:
        super().__init__()

    def distribution(self, params: torch.Tensor) -> dist.TorchDistribution:
        return IndependentBernoulli(dist.Bernoulli(logits=params[..., 0, :]), 1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(params[..., 0, :])


@LIKELIHOODS.register("gaussian")
class GaussianLikelihood(Likelihood):
    """Independent Gaussian pixels ``x_d ~ N(mu_d, sigma^2)`` with decoder means ``mu``.

    ``scale`` is a fixed positive number, ``"learned"`` (one global sigma) or
    ``"learned_per_pixel"`` (one sigma per element); learned scales start at ``init_scale``.
    """

    data_kind = "real"

    def __init__(
        self,
        *,
        data_dim: int,
        scale: float | Literal["learned", "learned_per_pixel"] = 1.0,
        init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if isinstance(scale, float):
            if scale <= 0:
                raise ConfigError(f"model.likelihood.scale = {scale} must be positive")
            self.register_buffer("log_scale", torch.tensor(scale).log())
        else:
            if init_scale <= 0:
                raise ConfigError(f"model.likelihood.init_scale = {init_scale} must be positive")
            shape = (data_dim,) if scale == "learned_per_pixel" else ()
            self.log_scale = nn.Parameter(torch.full(shape, float(init_scale)).log())
        self.scale_mode = scale

    def distribution(self, params: torch.Tensor) -> dist.TorchDistribution:
        loc = params[..., 0, :]
        return dist.Normal(loc, self.log_scale.exp().expand_as(loc)).to_event(1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params[..., 0, :]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale_mode!r}"
