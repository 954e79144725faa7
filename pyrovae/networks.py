"""Encoder and decoder networks: plain function approximators between vectors.

An encoder maps data ``(*batch, data_dim)`` to ``out_features`` numbers (what the guide needs);
a decoder maps latents ``(*batch, latent_dim)`` to ``out_features`` numbers (what the
likelihood needs). Leading batch dimensions are arbitrary (particle plates add one).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from .errors import ConfigError
from .registry import Registry

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
}

Activation = Literal["relu", "softplus", "tanh", "elu", "gelu", "leaky_relu"]

_CONTEXT = ("in_features", "out_features", "image_shape")
ENCODERS: Registry[nn.Module] = Registry("encoder", context=_CONTEXT)
DECODERS: Registry[nn.Module] = Registry("decoder", context=_CONTEXT)


@ENCODERS.register("mlp")
@DECODERS.register("mlp")
class MLP(nn.Module):
    """Fully connected network ``in_features -> hidden... -> out_features``.

    ``hidden = []`` gives a single linear map (e.g. a linear decoder, as in probabilistic PCA).
    """

    type_name: ClassVar[str]

    def __init__(
        self,
        *,
        in_features: int,
        out_features: int,
        hidden: list[int] = (400,),  # type: ignore[assignment]
        activation: Activation = "relu",
    ) -> None:
        super().__init__()
        if any(h <= 0 for h in hidden):
            raise ConfigError(f"hidden = {list(hidden)} must hold positive layer sizes")
        sizes = [in_features, *hidden, out_features]
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[activation]())
        self.net = nn.Sequential(*layers)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs)
