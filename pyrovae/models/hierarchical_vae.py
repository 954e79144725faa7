"""A VAE with a hierarchy of stochastic layers ``z1, ..., zL`` (Burda et al., 2016, section 5:
two layers of 100 and 50 units).

The model and the guide are Pyro programs over the sites ``"z1"``, ..., ``"zL"`` and ``"x"``
inside ``pyro.plate("data", N)``::

    p(x, z1, ..., zL) = p(x | z1) p(z1 | z2) ... p(z{L-1} | zL) p(zL)
    q(z1, ..., zL | x) = q(z1 | x) q(z2 | z1) ... q(zL | z{L-1})

p(zL) is a prior from :data:`~pyrovae.models.priors.PRIORS`, p(x | z1) a likelihood from
:data:`~pyrovae.models.likelihoods.LIKELIHOODS`, each p(z{l-1} | zl) a diagonal Gaussian whose
mean and scale a decoder network computes from zl, and each q(zl | z{l-1}) a guide family from
:data:`~pyrovae.models.guides.GUIDES` whose parameters an encoder network computes from z{l-1}
(``z0 = x``). It is declared with ``model.latents`` (:func:`pyrovae.config.resolve_latents`) and
built by :mod:`pyrovae.models.factory`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, cast

import pyro
import torch
from pyro.poutine.util import is_validation_enabled
from torch import nn

from ..errors import ConfigError
from ..viz.kinds import PROGRAM_KINDS
from .factory import built_in
from .guides import DiagNormalGuide, GuideFamily
from .likelihoods import Likelihood
from .networks import describe_network, network_name
from .priors import Prior
from .program import LatentSpace, LocalParameters
from .vae_base import VAEBase

__all__ = ["HierarchicalVAE"]


@built_in("hierarchical_vae")
class HierarchicalVAE(VAEBase):
    """A VAE with ``L >= 2`` stochastic layers (see the module docstring), a sibling of
    :class:`~pyrovae.VAE` under :class:`~pyrovae.models.vae_base.VAEBase`.

    Args:
        prior: p(zL), event shape ``(dims[-1],)``.
        likelihood: p(x | z1) given ``decoders[0]``'s output ``(*batch, k * data_dim)``.
        encoders: ``encoders[l]`` maps z{l} ``(*batch, dims[l-1])`` (``x``, ``(*batch,
            data_dim)``, for ``l = 0``) to the ``guide_families[l].num_params`` parameters of
            q(z{l+1} | z{l}).
        guide_families: the guide families of q(z1 | x), q(z2 | z1), ...
        decoders: ``decoders[0]`` maps z1 to the likelihood's parameters; ``decoders[l]``
            (``l >= 1``) maps z{l+1} to the ``2 * dims[l-1]`` parameters of p(z{l} | z{l+1}).
        data_dim, image_shape: as for :class:`~pyrovae.VAE`.

    ``latent_dim`` is the total size ``sum(dims)`` of the latents. ``sample`` draws ancestrally
    from the prior down; ``reconstruct`` decodes one draw z1 ~ q(z1 | x). There is no single
    latent space z: the figures and metrics of one (:meth:`latent_space`) are refused.
    """

    #: the figures of a model without a single latent space, and a row per class
    figure_kinds: ClassVar[tuple[str, ...]] = (*PROGRAM_KINDS, "classes")

    def __init__(
        self,
        prior: Prior,
        likelihood: Likelihood,
        encoders: Sequence[nn.Module],
        guide_families: Sequence[GuideFamily],
        decoders: Sequence[nn.Module],
        data_dim: int,
        image_shape: tuple[int, ...] | None = None,
    ) -> None:
        if not len(encoders) == len(guide_families) == len(decoders) >= 2:
            raise ValueError("a HierarchicalVAE needs 2+ layers, each an encoder, guide, decoder")
        super().__init__(prior, likelihood, data_dim, image_shape)
        self.encoders = nn.ModuleList(encoders)
        self.guide_families = nn.ModuleList(guide_families)
        self.decoders = nn.ModuleList(decoders)
        self.dims = [family.latent_dim for family in guide_families]
        #: p(z{l} | z{l+1}) for l = 1 .. L-1: diagonal Gaussians (no parameters of their own)
        self.conditionals = nn.ModuleList(DiagNormalGuide(latent_dim=d) for d in self.dims[:-1])
        self.sites = [f"z{layer}" for layer in range(1, len(self.dims) + 1)]
        self.latent_dim = sum(self.dims)
        # checkpoints written before the guide families were named so: "guides.*" keys
        self.register_load_state_dict_pre_hook(_renamed_guide_keys)
        prior.attach(self)

    # ------------------------------------------------------------------ networks
    def latent_space(self, purpose: str) -> LatentSpace:
        """Refused: q(z1, ..., zL | x) is a chain of distributions, not one over a site
        ``"z"``. Raises :class:`ConfigError` naming the sites."""
        raise ConfigError(
            f"this model has {len(self.dims)} latent sites {', '.join(self.sites)} "
            f"(model.latents), not one latent space z: {purpose} is for one-layer VAEs "
            "(model.latent_dim); samples, reconstructions, curves and log-likelihoods work "
            "for every model"
        )

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder output for z1 ``(*batch, dims[0])``: ``(*batch, k, data_dim)``."""
        return self._reshape_decoded(self.decoders[0](z))

    def conditional(self, layer: int, z_above: torch.Tensor) -> Any:
        """p(z{layer} | z{layer+1}) for ``1 <= layer < L``, event shape ``(dims[layer-1],)``."""
        family = cast(DiagNormalGuide, self.conditionals[layer - 1])
        return family.distribution(self.decoders[layer](z_above))

    def layer_posterior(self, layer: int, h: torch.Tensor) -> Any:
        """q(z{layer} | h) for ``1 <= layer <= L``, ``h`` being x (layer 1) or z{layer-1}."""
        family = cast(GuideFamily, self.guide_families[layer - 1])
        return family.distribution(self.encoders[layer - 1](h))

    # ------------------------------------------------------------------ Pyro programs
    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """p(x, z1, ..., zL): ``zL ~ prior``, ``z{l} ~ p(z{l} | z{l+1})`` down to z1,
        ``x ~ likelihood(decoder(z1))``; ``x`` is ``(N, data_dim)``, ``y`` as for
        :meth:`VAE.model`. Returns z1."""
        self._register()
        if is_validation_enabled():
            self.likelihood.check_data(x)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample(self.sites[-1], self.prior.distribution(y))
            for layer in range(len(self.dims) - 1, 0, -1):
                z = pyro.sample(self.sites[layer - 1], self.conditional(layer, z))
            pyro.sample("x", self.likelihood_distribution(z), obs=self.likelihood.prepare(x))
        return z

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """q(z1 | x) q(z2 | z1) ... q(zL | z{L-1}); ``y`` is unused. Returns zL."""
        self._register()
        h = x
        with pyro.plate("data", x.shape[0]):
            for layer, site in enumerate(self.sites, 1):
                h = pyro.sample(site, self.layer_posterior(layer, h))
        return h

    def local_parameters(self, x: torch.Tensor, y: torch.Tensor | None = None) -> LocalParameters:
        """Per example: the parameters of q(z1 | x), the first encoder's output
        ``{"z1": (N, P1)}``, and for each layer above an offset ``{"z{l}": (N, Pl)}`` (zero
        here) added to its encoder's output, which is a function of the draw below: the family
        of q(z{l} | z{l-1}) is its encoder's conditional, moved per example."""
        params = {self.sites[0]: self.encoders[0](x)}
        for site, family in zip(self.sites[1:], list(self.guide_families)[1:]):
            params[site] = x.new_zeros(x.shape[0], cast(GuideFamily, family).num_params)
        return params

    def local_guide(
        self, params: LocalParameters, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """q(z1; params["z1"]) q(z2 | z1; params["z2"]) ...: :meth:`guide` with per-example
        parameters (:meth:`local_parameters`). Returns zL."""
        families = cast(list[GuideFamily], list(self.guide_families))
        with pyro.plate("data", x.shape[0]):
            h = pyro.sample(self.sites[0], families[0].distribution(params[self.sites[0]]))
            for layer in range(2, len(self.sites) + 1):
                site = self.sites[layer - 1]
                local = self.encoders[layer - 1](h) + params[site]
                h = pyro.sample(site, families[layer - 1].distribution(local))
        return h

    # ------------------------------------------------------------------ generation
    def descend(self, z: torch.Tensor) -> torch.Tensor:
        """z1 from a top-layer draw zL, drawing each p(z{l} | z{l+1}) in turn."""
        for layer in range(len(self.dims) - 1, 0, -1):
            z = self.conditional(layer, z).sample()
        return z

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """E[x | z1] for one draw z1 ~ q(z1 | x): ``(N, data_dim)``."""
        return self.decode_mean(self.layer_posterior(1, x).sample())

    # ------------------------------------------------------------------ description
    def describe(self) -> str:
        """The factorisation p(x, z1, ..., zL) and q(z1, ..., zL | x), each factor with its
        family, network and the config keys that choose it."""
        shape = "x".join(map(str, self.image_shape))
        num_params = sum(p.numel() for p in self.parameters())
        L, z = len(self.dims), self.sites
        given = " | y" if self.prior.uses_labels else ""
        spaces = ", ".join(f"{s} in R^{d}" for s, d in zip(z, self.dims))
        joint = " ".join(
            ["p(x | z1)", *(f"p({z[i]} | {z[i + 1]})" for i in range(L - 1)), f"p({z[-1]}{given})"]
        )
        guide = " ".join(["q(z1 | x)", *(f"q({z[i]} | {z[i - 1]})" for i in range(1, L))])
        top = f"model.latents[{L - 1}]"
        lines = [
            f"hierarchical VAE: x in {shape} = {self.data_dim} elements; {L} latent layers "
            f"{spaces}; {num_params:,} parameters",
            f"  p(x, {', '.join(z)}{given}) = {joint}",
            f"  p({z[-1]}{given}) = {self.prior.describe().replace('z |', f'{z[-1]} |')}",
            f"      [{top}.prior = {self.prior.type_name}]",
        ]
        for i in range(L - 1, 0, -1):
            lines += [
                f"  p({z[i - 1]} | {z[i]}) = N({z[i - 1]} | mu({z[i]}), diag sigma({z[i]})^2), "
                f"(mu, sigma) from the decoder",
                f"      decoder: {describe_network(self.decoders[i])}",
                f"      [model.latents[{i}].decoder = {network_name(self.decoders[i])}]",
            ]
        lines += [
            f"  p(x | z1) = {self.likelihood.describe().replace('f(z)', 'f(z1)')}",
            f"      f(z1) = decoder: {describe_network(self.decoders[0])}",
            f"      [model.likelihood = {self.likelihood.type_name}, "
            f"model.latents[0].decoder = {network_name(self.decoders[0])}]",
            f"  q({', '.join(z)} | x) = {guide}",
        ]
        families = cast(list[GuideFamily], list(self.guide_families))
        for i in range(L):
            below = "x" if i == 0 else z[i - 1]
            family = families[i].describe().replace("(x)", f"({below})")
            lines += [
                f"  q({z[i]} | {below}) = {family.replace('z |', f'{z[i]} |')}",
                f"      encoder: {describe_network(self.encoders[i])}",
                f"      [model.latents[{i}].guide = {families[i].type_name}, "
                f"model.latents[{i}].encoder = {network_name(self.encoders[i])}]",
            ]
        return "\n".join(lines)


def _renamed_guide_keys(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any
) -> None:
    """Load a checkpoint written when ``guide_families`` was named ``guides``."""
    old = f"{prefix}guides."
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[f"{prefix}guide_families.{key[len(old) :]}"] = state_dict.pop(key)
