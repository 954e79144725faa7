"""Priors p(z): the distribution of the latent site ``"z"``.

A prior returns a Pyro distribution with event shape ``(latent_dim,)``. Its batch shape is
``()`` unless it depends on per-example inputs (labels); the ``"data"`` plate broadcasts it.
"""

from __future__ import annotations

from typing import ClassVar

import pyro.distributions as dist
import torch
from torch import nn

from .registry import Registry


class Prior(nn.Module):
    """Base class of priors over ``z`` (event shape ``(latent_dim,)``)."""

    type_name: ClassVar[str]
    #: whether ``distribution`` needs the labels ``y`` (class-conditional priors)
    uses_labels: ClassVar[bool] = False

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def attach(self, vae: nn.Module) -> None:
        """Called once by the owning VAE after it is built (e.g. to reach its guide).

        Keep no submodule references to ``vae`` (that would duplicate parameters)."""

    def distribution(self, y: torch.Tensor | None = None) -> dist.TorchDistribution:
        """p(z), or p(z|y) for label-conditional priors; event shape ``(latent_dim,)``."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"type={self.type_name!r}, latent_dim={self.latent_dim}"


PRIORS: Registry[Prior] = Registry("prior", context=("latent_dim", "data_dim", "num_classes"))


@PRIORS.register("standard_normal")
class StandardNormalPrior(Prior):
    """p(z) = N(0, I)."""

    def __init__(self, *, latent_dim: int) -> None:
        super().__init__(latent_dim)
        self.register_buffer("loc", torch.zeros(latent_dim))
        self.register_buffer("scale", torch.ones(latent_dim))

    def distribution(self, y: torch.Tensor | None = None) -> dist.TorchDistribution:
        return dist.Normal(self.loc, self.scale).to_event(1)
