"""Guide families q(z|x): amortized distributions over the latent site ``"z"``.

The encoder network emits ``num_params(latent_dim)`` numbers per example; the guide turns them
into a distribution with batch shape ``batch`` and event shape ``(latent_dim,)``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
from torch import nn
from torch.nn import functional as F

from ..distributions import ReparameterizedNormal
from ..registry import NonNegativeFloat, PositiveInt, Registry
from .networks import check_autoregressive_flow


class GuideFamily(nn.Module):
    """Base class: maps encoder outputs ``(*batch, P)`` to q(z|x), event shape ``(latent_dim,)``."""

    type_name: ClassVar[str]

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    @property
    def num_params(self) -> int:
        """How many numbers the encoder must emit per example."""
        raise NotImplementedError

    def distribution(self, params: torch.Tensor) -> dist.TorchDistribution:
        raise NotImplementedError

    def describe(self) -> str:
        """q(z|x) in words, with e(x) the encoder output (for :meth:`pyrovae.VAE.describe`)."""
        return self.type_name

    def extra_repr(self) -> str:
        return f"type={self.type_name!r}, latent_dim={self.latent_dim}"


GUIDES: Registry[GuideFamily] = Registry("guide", context=("latent_dim",))


@GUIDES.register("diag_normal")
class DiagNormalGuide(GuideFamily):
    """q(z|x) = N(mu(x), diag(sigma(x)^2)), sigma = softplus(raw) + min_scale.

    A :class:`~pyrovae.distributions.ReparameterizedNormal`: its own samples are scored from
    the standard draws behind them, as a hand-written VAE scores them."""

    def __init__(self, *, latent_dim: int, min_scale: NonNegativeFloat = 1e-4) -> None:
        super().__init__(latent_dim)
        self.min_scale = min_scale

    @property
    def num_params(self) -> int:
        return 2 * self.latent_dim

    def loc_scale(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of q(z|x), each ``(*batch, latent_dim)``."""
        loc, raw_scale = params.split(self.latent_dim, dim=-1)
        return loc, F.softplus(raw_scale) + self.min_scale

    def distribution(self, params: torch.Tensor) -> dist.TorchDistribution:
        loc, scale = self.loc_scale(params)
        return ReparameterizedNormal(loc, scale).to_event(1)

    def describe(self) -> str:
        return "N(z | mu(x), diag sigma(x)^2), (mu, sigma) from the encoder"


@GUIDES.register("iaf")
class IAFGuide(DiagNormalGuide):
    """Inverse autoregressive flow (Kingma et al., 2016) on top of the diagonal Gaussian:
    ``z_0 ~ N(mu(x), diag sigma(x)^2)``, then ``num_flows`` of Pyro's
    ``ConditionalAffineAutoregressive`` transforms (stable variant, MADE networks of sizes
    ``hidden``) conditioned on a context ``h(x)`` of ``context_dim`` numbers. The encoder emits
    ``(mu, raw sigma, h)``: ``2 * latent_dim + context_dim`` numbers per example.

    Sampling and scoring the guide's own samples are parallel (Pyro caches the flow's
    inverse); scoring another ``z`` (e.g. a VampPrior over this guide) inverts the flow in
    ``latent_dim`` sequential passes."""

    def __init__(
        self,
        *,
        latent_dim: int,
        num_flows: PositiveInt = 2,
        hidden: list[PositiveInt] = (64,),  # type: ignore[assignment]
        context_dim: PositiveInt = 16,
        min_scale: NonNegativeFloat = 1e-4,
    ) -> None:
        super().__init__(latent_dim=latent_dim, min_scale=min_scale)
        check_autoregressive_flow(latent_dim, hidden)
        self.context_dim = context_dim
        self.flows = nn.ModuleList(
            T.conditional_affine_autoregressive(
                latent_dim, context_dim, hidden_dims=list(hidden), stable=True
            )
            for _ in range(num_flows)
        )

    @property
    def num_params(self) -> int:
        return 2 * self.latent_dim + self.context_dim

    def distribution(self, params: torch.Tensor) -> dist.TorchDistribution:
        gaussian_params, context = params.split([2 * self.latent_dim, self.context_dim], dim=-1)
        base = super().distribution(gaussian_params)
        flows: list[Any] = list(self.flows)
        return dist.TransformedDistribution(base, [flow.condition(context) for flow in flows])

    def describe(self) -> str:
        return (
            "N(mu(x), diag sigma(x)^2) pushed through "
            f"{len(self.flows)} inverse autoregressive flows conditioned on a "
            f"{self.context_dim}-d context h(x); (mu, sigma, h) from the encoder"
        )
