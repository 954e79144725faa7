"""Models: the contract every model meets, the one factory that builds a config's model, and
the built-in VAEs with their components, each a small registered class chosen by name:

* :mod:`~pyrovae.models.program`: :class:`Program`, the contract (what pyrovae asks of a
  model, and the defaults every model gets), and :func:`as_program`, which adapts a module
  of your own to it;
* :mod:`~pyrovae.models.factory`: :func:`build_model`, the only place a config chooses its
  model (your program, the hierarchical VAE or the VAE), with every rule of what can be built;
* :mod:`~pyrovae.models.vae_base`: :class:`VAEBase`, what the built-in VAEs share;
* :mod:`~pyrovae.models.vae`: :class:`VAE`, one latent site ``"z"``;
* :mod:`~pyrovae.models.hierarchical_vae`: :class:`HierarchicalVAE`, stochastic layers
  z1, ..., zL declared by ``model.latents``;
* :mod:`~pyrovae.models.priors`: p(z) (:data:`PRIORS`);
* :mod:`~pyrovae.models.likelihoods`: p(x|z) (:data:`LIKELIHOODS`);
* :mod:`~pyrovae.models.guides`: the guide families q(z|x) (:data:`GUIDES`);
* :mod:`~pyrovae.models.networks`: encoders and decoders (:data:`ENCODERS`, :data:`DECODERS`).
"""

from .factory import build_model
from .guides import GUIDES, GuideFamily
from .hierarchical_vae import HierarchicalVAE
from .likelihoods import LIKELIHOODS, Likelihood
from .networks import DECODERS, ENCODERS, Network
from .priors import PRIORS, Prior
from .program import Program, as_program
from .vae import VAE
from .vae_base import VAEBase

__all__ = [
    "DECODERS",
    "ENCODERS",
    "GUIDES",
    "LIKELIHOODS",
    "PRIORS",
    "VAE",
    "GuideFamily",
    "HierarchicalVAE",
    "Likelihood",
    "Network",
    "Prior",
    "Program",
    "VAEBase",
    "as_program",
    "build_model",
]
