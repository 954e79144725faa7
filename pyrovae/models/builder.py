"""The one place a config chooses its model: the one-layer :class:`~pyrovae.VAE`
(``model.latent_dim``), or the :class:`~pyrovae.models.hierarchical_vae.HierarchicalVAE` when
``model.latents`` declares stochastic layers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .hierarchical_vae import HierarchicalVAE
from .vae import VAE

__all__ = ["build_model"]


def build_model(config: Mapping[str, Any]) -> VAE:
    """The model a config :func:`pyrovae.resolve_config` has resolved defines, freshly
    initialised. Example::

        vae = build_model(resolve_config({"model": {"latents": [{"dim": 8}, {"dim": 4}]}}))
    """
    if "latents" in config["model"]:
        return HierarchicalVAE.from_resolved_config(config)
    return VAE.from_resolved_config(config)
