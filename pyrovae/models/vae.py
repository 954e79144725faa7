"""The VAE: a Pyro model p(x, z) = p(x|z) p(z) and an amortized guide q(z|x).

Both are plain Pyro programs over the sites ``"z"`` (latent, event shape ``(latent_dim,)``)
and ``"x"`` (observed, event shape ``(data_dim,)``) inside ``pyro.plate("data", N)``. The
components (prior, likelihood, encoder, decoder, guide family) are modules chosen by name.
"""

from __future__ import annotations

from typing import ClassVar

import pyro
import pyro.distributions as dist
import torch
from pyro.poutine.util import is_validation_enabled
from torch import nn

from ..viz.kinds import FIGURE_KINDS
from .factory import built_in
from .guides import GuideFamily
from .likelihoods import Likelihood
from .networks import describe_network, network_name
from .priors import Prior
from .program import LatentSpace, LocalParameters
from .vae_base import VAEBase

__all__ = ["VAE"]


@built_in("vae")
class VAE(VAEBase):
    """A variational autoencoder whose ``model`` and ``guide`` are Pyro programs.

    Args:
        prior: p(z), event shape ``(latent_dim,)``.
        likelihood: p(x|z) given decoder output ``(*batch, k, data_dim)``.
        encoder: network ``(*batch, data_dim) -> (*batch, guide.num_params)``.
        decoder: network ``(*batch, latent_dim) -> (*batch, k * data_dim)``.
        guide_family: q(z|x) given encoder output.
        data_dim: number of elements (pixels) per example.
        image_shape: ``(C, H, W)`` of one example, for pictures and conv networks.

    Every Pyro ``param`` site registered by ``model``/``guide`` is a parameter of this module,
    so ``vae.parameters()`` and ``vae.state_dict()`` hold the whole learned state.

    The programs know nothing of training: a KL weight (beta, warm-up) is applied from outside
    with :func:`pyrovae.infer.scale_latents`. What the VAE shares with the hierarchical VAE
    (data checks, labels, sampling, param-store registration) is :class:`VAEBase`'s; what any
    model gets from the contract, :class:`~pyrovae.models.program.Program`'s.
    """

    #: one latent space: every figure kind
    figure_kinds: ClassVar[tuple[str, ...]] = FIGURE_KINDS

    def __init__(
        self,
        prior: Prior,
        likelihood: Likelihood,
        encoder: nn.Module,
        decoder: nn.Module,
        guide_family: GuideFamily,
        data_dim: int,
        image_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(prior, likelihood, data_dim, image_shape)
        self.encoder = encoder
        self.decoder = decoder
        self.guide_family = guide_family
        self.latent_dim = prior.latent_dim
        prior.attach(self)

    # ------------------------------------------------------------------ networks
    def posterior(self, x: torch.Tensor) -> dist.TorchDistribution:
        """q(z|x) for data ``x`` of shape ``(*batch, data_dim)``."""
        return self.guide_family.distribution(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder output for latents ``(*batch, latent_dim)``: ``(*batch, k, data_dim)``."""
        return self._reshape_decoded(self.decoder(z))

    def latent_space(self, purpose: str) -> LatentSpace:
        """The VAE itself: one latent site ``"z"``."""
        return self

    # ------------------------------------------------------------------ Pyro programs
    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """p(x, z): ``z ~ prior``, ``x ~ likelihood(decoder(z))``; ``x`` is ``(N, data_dim)``.

        ``y`` (``(N,)`` labels) is passed to label-conditional priors and ignored otherwise.
        While Pyro validation is on, ``x`` is checked against the likelihood's support
        (:meth:`Likelihood.check_data`)."""
        self._register()
        if is_validation_enabled():
            self.likelihood.check_data(x)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.prior.distribution(y))
            pyro.sample("x", self.likelihood_distribution(z), obs=self.likelihood.prepare(x))
        return z

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """q(z|x), amortized by the encoder; ``x`` is ``(N, data_dim)``; ``y`` is unused (the
        guide takes the model's arguments)."""
        self._register()
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("z", self.posterior(x))

    def local_parameters(self, x: torch.Tensor, y: torch.Tensor | None = None) -> LocalParameters:
        """The encoder's output at ``x``, ``{"z": (N, guide_family.num_params)}``: the
        parameters of q(z|x) per example (for an IAF guide, the base Gaussian's and the
        flows' context; the flows' networks are the family's, shared)."""
        return {"z": self.encoder(x)}

    def local_guide(
        self, params: LocalParameters, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """q(z) of the guide family with per-example parameters ``params["z"]`` ``(N, P)``."""
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("z", self.guide_family.distribution(params["z"]))

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """E[x|z] for one draw z ~ q(z|x) per example: ``(N, data_dim)``."""
        return self.decode_mean(self.posterior(x).sample())

    # ------------------------------------------------------------------ description
    def describe(self) -> str:
        """The model in words and math: p(x, z) = p(x|z) p(z) with each factor's family and
        parameters, and the guide q(z|x); each factor is followed by the config keys that
        choose it. :func:`pyrovae.describe` adds the data and the objective of a whole run."""
        shape = "x".join(map(str, self.image_shape))
        num_params = sum(p.numel() for p in self.parameters())
        given = " | y" if self.prior.uses_labels else ""
        lines = [
            f"VAE: x in {shape} = {self.data_dim} elements; latent z in R^{self.latent_dim}; "
            f"{num_params:,} parameters",
            f"  p(x, z{given}) = p(x | z) p(z{given})",
            f"  p(z{given}) = {self.prior.describe()}",
            f"      [model.prior = {self.prior.type_name}]",
            f"  p(x | z) = {self.likelihood.describe()}",
            f"      f(z) = decoder: {describe_network(self.decoder)}",
            f"      [model.likelihood = {self.likelihood.type_name}, "
            f"model.decoder = {network_name(self.decoder)}]",
            f"  q(z | x) = {self.guide_family.describe()}",
            f"      encoder: {describe_network(self.encoder)}",
            f"      [model.guide = {self.guide_family.type_name}, "
            f"model.encoder = {network_name(self.encoder)}]",
        ]
        return "\n".join(lines)
