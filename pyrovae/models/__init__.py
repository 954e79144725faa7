"""The model: :class:`VAE`, whose ``model`` p(x, z) and ``guide`` q(z|x) are Pyro programs, and
its components, each a small registered class chosen by name in a config:

* :mod:`~pyrovae.models.priors`: p(z) (:data:`PRIORS`);
* :mod:`~pyrovae.models.likelihoods`: p(x|z) (:data:`LIKELIHOODS`);
* :mod:`~pyrovae.models.guides`: the guide families q(z|x) (:data:`GUIDES`);
* :mod:`~pyrovae.models.networks`: encoders and decoders (:data:`ENCODERS`, :data:`DECODERS`);
* :mod:`~pyrovae.models.program`: what your own model/guide module must provide to be trained
  and scored in the VAE's place, and the fallbacks of what it may leave out.
* :mod:`~pyrovae.models.hierarchical_vae`: :class:`HierarchicalVAE`, the VAE with stochastic
  layers z1, ..., zL that ``model.latents`` declares.
"""

from .guides import GUIDES, GuideFamily
from .hierarchical_vae import HierarchicalVAE
from .likelihoods import LIKELIHOODS, Likelihood
from .networks import DECODERS, ENCODERS
from .priors import PRIORS, Prior
from .vae import VAE

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
    "Prior",
]
