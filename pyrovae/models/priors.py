"""Priors p(z): the distribution of the latent site ``"z"``.

A prior returns a Pyro distribution with event shape ``(latent_dim,)``. Its batch shape is
``()`` unless it depends on per-example inputs (labels); the ``"data"`` plate broadcasts it.
Only ``log_prob`` is needed for training (``z`` comes from the guide); ``sample`` is used to
generate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
from torch import nn

from ..distributions import Mixture, StandardNormal
from ..registry import NonNegativeFloat, PositiveInt, Registry
from .networks import check_autoregressive_flow


class Prior(nn.Module):
    """Base class of priors over ``z`` (event shape ``(latent_dim,)``)."""

    type_name: ClassVar[str]
    #: whether ``distribution`` needs the labels ``y`` (class-conditional priors)
    uses_labels: ClassVar[bool] = False
    #: the number of classes a label-conditional prior knows (``None`` for other priors)
    num_classes: int | None = None

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def attach(self, vae: nn.Module) -> None:
        """Called once by the owning VAE after it is built (e.g. to reach its guide).

        Keep no submodule references to ``vae`` (that would duplicate parameters)."""

    def distribution(self, y: torch.Tensor | None = None) -> dist.TorchDistribution:
        """p(z), or p(z|y) for label-conditional priors; event shape ``(latent_dim,)``."""
        raise NotImplementedError

    def describe(self) -> str:
        """p(z) in words (for :meth:`pyrovae.VAE.describe`)."""
        return self.type_name

    def extra_repr(self) -> str:
        return f"type={self.type_name!r}, latent_dim={self.latent_dim}"


PRIORS: Registry[Prior] = Registry("prior", context=("latent_dim", "data_dim", "num_classes"))


@PRIORS.register("standard_normal")
class StandardNormalPrior(Prior):
    """p(z) = N(0, I)."""

    loc: torch.Tensor
    scale: torch.Tensor

    def __init__(self, *, latent_dim: int) -> None:
        super().__init__(latent_dim)
        self.register_buffer("loc", torch.zeros(latent_dim))
        self.register_buffer("scale", torch.ones(latent_dim))

    def distribution(self, y: torch.Tensor | None = None) -> dist.TorchDistribution:
        return StandardNormal(self.loc, self.scale).to_event(1)

    def describe(self) -> str:
        return "N(z | 0, I)"


@PRIORS.register("normal")
class NormalPrior(Prior):
    """p(z) = N(mu, diag(sigma^2)) with learned mean ``mu`` and scale ``sigma`` (start: N(0, I))."""

    def __init__(self, *, latent_dim: int) -> None:
        super().__init__(latent_dim)
        self.loc = nn.Parameter(torch.zeros(latent_dim))
        self.log_scale = nn.Parameter(torch.zeros(latent_dim))

    def distribution(self, y: torch.Tensor | None = None) -> dist.TorchDistribution:
        return dist.Normal(self.loc, self.log_scale.exp()).to_event(1)

    def describe(self) -> str:
        return "N(z | mu, diag sigma^2), learned mu and sigma"


@PRIORS.register("mog")
class MixtureOfGaussiansPrior(Prior):
    """p(z) = sum_k w_k N(z | mu_k, diag(sigma_k^2)): a learned mixture of ``components``
    diagonal Gaussians. Means start at N(0, init_spread^2 I) draws, scales at 1, weights equal."""

    def __init__(
        self, *, latent_dim: int, components: PositiveInt = 10, init_spread: NonNegativeFloat = 1.0
    ) -> None:
        super().__init__(latent_dim)
        self.components = components
        self.logits = nn.Parameter(torch.zeros(components))
        self.locs = nn.Parameter(torch.randn(components, latent_dim) * init_spread)
        self.log_scales = nn.Parameter(torch.zeros(components, latent_dim))

    def distribution(self, y: torch.Tensor | None = None) -> dist.TorchDistribution:
        gaussians = dist.Normal(self.locs, self.log_scales.exp()).to_event(1)
        return Mixture(self.logits, gaussians)

    def describe(self) -> str:
        return (
            f"sum_k w_k N(z | mu_k, diag sigma_k^2), a learned mixture of {self.components} "
            "diagonal Gaussians"
        )


@PRIORS.register("vamp")
class VampPrior(Prior):
    """VampPrior (Tomczak & Welling, 2018): p(z) = (1/K) sum_k q(z | u_k), the guide's
    posteriors at ``components`` learned pseudo-inputs ``u_k`` (data-shaped, start as uniform
    draws in [0, 1], unconstrained afterwards).

    Scoring a latent costs one encoder pass over the K pseudo-inputs per call and a ``(N, K,
    latent_dim)`` density table; with an ``iaf`` guide also ``latent_dim`` sequential flow
    inversions (docs/components.md)."""

    def __init__(self, *, latent_dim: int, data_dim: int, components: PositiveInt = 500) -> None:
        super().__init__(latent_dim)
        self.components = components
        self.pseudo_inputs = nn.Parameter(torch.rand(components, data_dim))
        self._posterior: Callable[[torch.Tensor], dist.TorchDistribution] | None = None

    def attach(self, vae: nn.Module) -> None:
        # a bound method, not a submodule: the encoder and guide stay registered once, in vae
        self._posterior = vae.posterior  # type: ignore[assignment]

    def distribution(self, y: torch.Tensor | None = None) -> dist.TorchDistribution:
        if self._posterior is None:
            raise RuntimeError("a VampPrior must belong to a VAE (VAE(...) or VAE.from_config)")
        posteriors = self._posterior(self.pseudo_inputs)  # batch (K,)
        return Mixture(self.pseudo_inputs.new_zeros(self.components), posteriors)

    def describe(self) -> str:
        return (
            f"(1/{self.components}) sum_k q(z | u_k), VampPrior over {self.components} learned "
            "pseudo-inputs u_k"
        )


@PRIORS.register("flow")
class FlowPrior(Prior):
    """p(z): N(0, I) pushed through ``num_flows`` affine autoregressive transforms (Pyro's
    ``AffineAutoregressive`` with MADE networks of sizes ``hidden``, used in the
    masked-autoregressive direction): scoring a latent is one parallel pass per flow,
    sampling takes ``latent_dim`` sequential passes (generation only)."""

    loc: torch.Tensor
    scale: torch.Tensor

    def __init__(
        self,
        *,
        latent_dim: int,
        num_flows: PositiveInt = 2,
        hidden: list[PositiveInt] = (64,),  # type: ignore[assignment]
    ) -> None:
        super().__init__(latent_dim)
        check_autoregressive_flow(latent_dim, hidden)
        self.flows = nn.ModuleList(
            T.affine_autoregressive(latent_dim, hidden_dims=list(hidden)) for _ in range(num_flows)
        )
        self.register_buffer("loc", torch.zeros(latent_dim))
        self.register_buffer("scale", torch.ones(latent_dim))

    def distribution(self, y: torch.Tensor | None = None) -> dist.TorchDistribution:
        base = dist.Normal(self.loc, self.scale).to_event(1)
        # the inverse transforms sample (sequential) and score (parallel) as MAF does
        return dist.TransformedDistribution(base, [flow.inv for flow in self.flows])

    def describe(self) -> str:
        return (
            f"N(0, I) pushed through {len(self.flows)} learned affine autoregressive flows "
            "(masked autoregressive direction)"
        )


@PRIORS.register("conditional")
class ConditionalPrior(Prior):
    """Class-conditional prior p(z|y) = N(z | mu_y, I) with a learned mean per label (the
    simple conditional VAE; means start at 0). The model then takes labels ``y``, and
    :meth:`pyrovae.VAE.sample` can ask for a class. Without labels, p(z) is the marginal under
    uniform labels, (1/C) sum_y N(z | mu_y, I)."""

    uses_labels = True

    def __init__(
        self, *, latent_dim: int, num_classes: int, init_spread: NonNegativeFloat = 1.0
    ) -> None:
        super().__init__(latent_dim)
        self.num_classes = num_classes
        self.class_means = nn.Parameter(torch.randn(num_classes, latent_dim) * init_spread)

    def distribution(self, y: torch.Tensor | None = None) -> dist.TorchDistribution:
        if y is None:
            gaussians = dist.Normal(self.class_means, 1.0).to_event(1)
            return Mixture(self.class_means.new_zeros(self.class_means.shape[0]), gaussians)
        return dist.Normal(self.class_means[y], 1.0).to_event(1)

    def describe(self) -> str:
        return (
            f"N(z | mu_y, I), a learned mean per class y (of {self.num_classes}); without y, "
            "the uniform mixture over classes"
        )
