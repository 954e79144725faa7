"""Guide families q(z|x): amortized distributions over the latent site ``"z"``.

The encoder network emits ``num_params(latent_dim)`` numbers per example; the guide turns them
into a distribution with batch shape ``batch`` and event shape ``(latent_dim,)``.
"""

from __future__ import annotations

from typing import ClassVar

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from .registry import Registry


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

    def extra_repr(self) -> str:
        return f"type={self.type_name!r}, latent_dim={self.latent_dim}"


GUIDES: Registry[GuideFamily] = Registry("guide", context=("latent_dim",))


@GUIDES.register("diag_normal")
class DiagNormalGuide(GuideFamily):
    """q(z|x) = N(mu(x), diag(sigma(x)^2)), sigma = softplus(raw) + min_scale."""

    def __init__(self, *, latent_dim: int, min_scale: float = 1e-4) -> None:
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
        return dist.Normal(loc, scale).to_event(1)
