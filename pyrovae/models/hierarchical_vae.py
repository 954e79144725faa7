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
(``z0 = x``). It is declared with ``model.latents`` (:func:`pyrovae.config.resolve_latents`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, cast

import pyro
import torch
from pyro.poutine.util import is_validation_enabled
from torch import nn

from ..data import data_shape
from ..errors import ConfigError
from .guides import GUIDES, DiagNormalGuide, GuideFamily
from .likelihoods import LIKELIHOODS, Likelihood
from .networks import DECODERS, ENCODERS
from .priors import PRIORS, Prior
from .vae import VAE, _describe_network, _type_name, check_data_shape

__all__ = ["HierarchicalVAE"]


class HierarchicalVAE(VAE):
    """A VAE with ``L >= 2`` stochastic layers (see the module docstring), with the interface of
    :class:`~pyrovae.VAE` (``model``, ``guide``, ``check_data``, ``model_labels``, ``sample``,
    ``reconstruct``, ``describe``, ``data_dim``, ``image_shape``).

    Args:
        prior: p(zL), event shape ``(dims[-1],)``.
        likelihood: p(x | z1) given ``decoders[0]``'s output ``(*batch, k * data_dim)``.
        encoders: ``encoders[l]`` maps z{l} ``(*batch, dims[l-1])`` (``x``, ``(*batch,
            data_dim)``, for ``l = 0``) to the ``guides[l].num_params`` parameters of
            q(z{l+1} | z{l}).
        guides: the guide families of q(z1 | x), q(z2 | z1), ...
        decoders: ``decoders[0]`` maps z1 to the likelihood's parameters; ``decoders[l]``
            (``l >= 1``) maps z{l+1} to the ``2 * dims[l-1]`` parameters of p(z{l} | z{l+1}).
        data_dim, image_shape: as for :class:`~pyrovae.VAE`.

    ``latent_dim`` is the total size ``sum(dims)`` of the latents. ``sample`` draws ancestrally
    from the prior down; ``reconstruct`` decodes one draw z1 ~ q(z1 | x).
    """

    def __init__(
        self,
        prior: Prior,
        likelihood: Likelihood,
        encoders: Sequence[nn.Module],
        guides: Sequence[GuideFamily],
        decoders: Sequence[nn.Module],
        data_dim: int,
        image_shape: tuple[int, ...] | None = None,
    ) -> None:
        nn.Module.__init__(self)  # the layers replace VAE's single encoder, decoder and guide
        if not len(encoders) == len(guides) == len(decoders) >= 2:
            raise ValueError("a HierarchicalVAE needs 2+ layers, each an encoder, guide, decoder")
        self.prior = prior
        self.likelihood = likelihood
        self.encoders = nn.ModuleList(encoders)
        self.guides = nn.ModuleList(guides)
        self.decoders = nn.ModuleList(decoders)
        self.dims = [guide.latent_dim for guide in guides]
        #: p(z{l} | z{l+1}) for l = 1 .. L-1: diagonal Gaussians (no parameters of their own)
        self.conditionals = nn.ModuleList(DiagNormalGuide(latent_dim=d) for d in self.dims[:-1])
        self.sites = [f"z{layer}" for layer in range(1, len(self.dims) + 1)]
        self.latent_dim = sum(self.dims)
        self._set_data_shape_and_name(data_dim, image_shape)
        prior.attach(self)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_resolved_config(cls, config: Mapping[str, Any]) -> "HierarchicalVAE":
        """The hierarchical VAE of a resolved config with ``model.latents`` (see
        :func:`pyrovae.config.resolve_latents`). Example::

            vae = VAE.from_config({"model": {"latents": [{"dim": 8}, {"dim": 4}]}})
        """
        from ..resources import check_model_fits

        if "latents" not in config["model"]:
            raise ConfigError(
                "a HierarchicalVAE needs model.latents, e.g. [{dim = 100}, {dim = 50}]"
            )
        check_model_fits(config)
        shape = data_shape(config["data"])  # recorded by a run, or fixed by the data set
        m, data_dim = config["model"], shape.data_dim
        layers = m["latents"]
        check_data_shape({**layers[0], "prior": layers[-1]["prior"]}, shape)
        likelihood = LIKELIHOODS.build(m["likelihood"], "model.likelihood", data_dim=data_dim)
        likelihood.check_data_config(config["data"]["binarize"])
        encoders, guides, decoders = [], [], []
        for i, layer in enumerate(layers):
            path, dim = f"model.latents[{i}]", layer["dim"]
            guide = GUIDES.build(layer["guide"], f"{path}.guide", latent_dim=dim)
            below = data_dim if i == 0 else layers[i - 1]["dim"]
            outputs = likelihood.params_per_element * data_dim if i == 0 else 2 * below
            networks = []
            for registry, kind, n_in, n_out in (
                (ENCODERS, "encoder", below, guide.num_params),
                (DECODERS, "decoder", dim, outputs),
            ):
                key = f"{path}.{kind}"
                if (
                    i > 0
                    and "image_shape"
                    in inspect.signature(registry.get(layer[kind]["type"])).parameters
                ):
                    raise ConfigError(
                        f"{key}.type = {layer[kind]['type']!r} is a network of images, but "
                        f"layer {i + 1} maps between latent vectors; use 'mlp'"
                    )
                networks.append(
                    registry.build(
                        layer[kind],
                        key,
                        in_features=n_in,
                        out_features=n_out,
                        image_shape=shape.image_shape,
                    )
                )
            encoders.append(networks[0])
            decoders.append(networks[1])
            guides.append(guide)
        top = len(layers) - 1
        prior = PRIORS.build(
            layers[top]["prior"],
            f"model.latents[{top}].prior",
            latent_dim=layers[top]["dim"],
            data_dim=data_dim,
            num_classes=shape.num_classes,
        )
        return cls(prior, likelihood, encoders, guides, decoders, data_dim, shape.image_shape)

    # ------------------------------------------------------------------ networks
    def posterior(self, x: torch.Tensor) -> Any:
        """Not defined: q(z1, ..., zL | x) is a chain of distributions, not one over a site
        ``"z"``. Raises :class:`ConfigError` (the figures and metrics of a single latent
        space call this)."""
        raise ConfigError(
            f"this model has {len(self.dims)} latent sites {', '.join(self.sites)} "
            "(model.latents), not one latent space z: latent-space figures and per-dimension "
            "KLs are for one-layer VAEs (model.latent_dim); samples, reconstructions, "
            "curves and log-likelihoods work for every model"
        )

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder output for z1 ``(*batch, dims[0])``: ``(*batch, k, data_dim)``."""
        out = self.decoders[0](z)
        return out.reshape(*out.shape[:-1], self.likelihood.params_per_element, self.data_dim)

    def conditional(self, layer: int, z_above: torch.Tensor) -> Any:
        """p(z{layer} | z{layer+1}) for ``1 <= layer < L``, event shape ``(dims[layer-1],)``."""
        family = cast(DiagNormalGuide, self.conditionals[layer - 1])
        return family.distribution(self.decoders[layer](z_above))

    def layer_posterior(self, layer: int, h: torch.Tensor) -> Any:
        """q(z{layer} | h) for ``1 <= layer <= L``, ``h`` being x (layer 1) or z{layer-1}."""
        family = cast(GuideFamily, self.guides[layer - 1])
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

    # ------------------------------------------------------------------ generation
    def _descend(self, z: torch.Tensor) -> torch.Tensor:
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
                f"      decoder: {_describe_network(self.decoders[i])}",
                f"      [model.latents[{i}].decoder = {_type_name(self.decoders[i])}]",
            ]
        lines += [
            f"  p(x | z1) = {self.likelihood.describe().replace('f(z)', 'f(z1)')}",
            f"      f(z1) = decoder: {_describe_network(self.decoders[0])}",
            f"      [model.likelihood = {self.likelihood.type_name}, "
            f"model.latents[0].decoder = {_type_name(self.decoders[0])}]",
            f"  q({', '.join(z)} | x) = {guide}",
        ]
        guides = cast(list[GuideFamily], list(self.guides))
        for i in range(L):
            below = "x" if i == 0 else z[i - 1]
            family = guides[i].describe().replace("(x)", f"({below})")
            lines += [
                f"  q({z[i]} | {below}) = {family.replace('z |', f'{z[i]} |')}",
                f"      encoder: {_describe_network(self.encoders[i])}",
                f"      [model.latents[{i}].guide = {guides[i].type_name}, "
                f"model.latents[{i}].encoder = {_type_name(self.encoders[i])}]",
            ]
        return "\n".join(lines)
