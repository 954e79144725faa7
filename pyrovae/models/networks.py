"""Encoder and decoder networks: plain function approximators between vectors.

An encoder maps data ``(*batch, data_dim)`` to ``out_features`` numbers (what the guide needs);
a decoder maps latents ``(*batch, latent_dim)`` to ``out_features`` numbers (what the
likelihood needs). Leading batch dimensions are arbitrary (particle plates add one).
"""

from __future__ import annotations

import itertools
from typing import ClassVar, Literal

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import PositiveInt, Registry

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
}

Activation = Literal["relu", "softplus", "tanh", "elu", "gelu", "leaky_relu"]


class Network(nn.Module):
    """Base class of encoders and decoders: a module mapping ``(*batch, in_features)`` to
    ``(*batch, out_features)``, with a description for :meth:`pyrovae.VAE.describe`."""

    type_name: ClassVar[str]

    def describe(self) -> str:
        """The network in words (default: its registered name)."""
        return self.type_name


def describe_network(net: nn.Module) -> str:
    """``net.describe()`` for a :class:`Network`; the class name of any other module (a VAE
    may be built from plain ``nn.Module`` networks)."""
    return net.describe() if isinstance(net, Network) else type(net).__name__


def network_name(net: nn.Module) -> str:
    """The registered name of a :class:`Network` (its config ``type``); the class name of any
    other module."""
    return net.type_name if isinstance(net, Network) else type(net).__name__


_CONTEXT = ("in_features", "out_features", "image_shape")
ENCODERS: Registry[Network] = Registry("encoder", context=_CONTEXT)
DECODERS: Registry[Network] = Registry("decoder", context=_CONTEXT)


@ENCODERS.register("mlp")
@DECODERS.register("mlp")
class MLP(Network):
    """Fully connected network ``in_features -> hidden... -> out_features``.

    ``hidden = []`` gives a single linear map (e.g. a linear decoder, as in probabilistic PCA).
    """

    def __init__(
        self,
        *,
        in_features: int,
        out_features: int,
        hidden: list[PositiveInt] = (400,),  # type: ignore[assignment]
        activation: Activation = "relu",
    ) -> None:
        super().__init__()
        sizes = [in_features, *hidden, out_features]
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[activation]())
        self.net = nn.Sequential(*layers)
        self.sizes = sizes
        self.activation = activation

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs)

    def describe(self) -> str:
        """The network in words, e.g. ``MLP 784 -> 400 -> 100 (relu)``."""
        if len(self.sizes) == 2:
            return f"linear map {self.sizes[0]} -> {self.sizes[1]}"
        return f"MLP {' -> '.join(map(str, self.sizes))} ({self.activation})"


def _conv_shapes(image_shape: tuple[int, ...], channels: list[int]) -> list[tuple[int, int, int]]:
    """Feature-map shapes ``(C, H, W)`` after each stride-2 layer, from the image on.

    A 4x4 convolution with stride 2 and padding 1 maps a side of ``n >= 2`` pixels to
    ``floor(n / 2)`` (every input pixel is still covered: the last window of an odd side
    reaches its last pixel); the mirrored decoder gets the odd pixel back with an
    ``output_padding`` of 1 (:func:`_output_padding`)."""
    if len(image_shape) != 3:
        raise ConfigError(f"needs images (C, H, W), got shape {image_shape}")
    if not channels:
        raise ConfigError("channels = [] must hold at least one channel count")
    shapes = [tuple(image_shape)]
    for i, ch in enumerate(channels):
        _, h, w = shapes[-1]
        if h < 2 or w < 2:
            _, h0, w0 = image_shape
            raise ConfigError(
                f"channels = {list(channels)} halves the {h0}x{w0} image {len(channels)} "
                f"times, but after {i} halvings its {h}x{w} feature maps are too small for "
                f"another stride-2 convolution; use at most {i} layers"
            )
        shapes.append((ch, h // 2, w // 2))
    return shapes  # type: ignore[return-value]


def _output_padding(small: tuple[int, int, int], large: tuple[int, int, int]) -> tuple[int, int]:
    """The ``output_padding`` of the transposed convolution ``small -> large`` that undoes a
    stride-2 layer of :func:`_conv_shapes`: 1 on a side whose size was odd, else 0."""
    return large[1] - 2 * small[1], large[2] - 2 * small[2]


def _fold_batch(inputs: torch.Tensor, trailing: int) -> tuple[torch.Tensor, torch.Size]:
    """Flatten all leading dimensions into one (convolutions take exactly one batch dim)."""
    batch = inputs.shape[:-trailing]
    return inputs.reshape(-1, *inputs.shape[-trailing:]), batch


@ENCODERS.register("conv")
class ConvEncoder(Network):
    """Convolutional encoder for images of any shape ``(C, H, W)``: ``len(channels)``
    stride-2 4x4 convolutions (each halves height and width, rounding down), then a linear
    map to ``out_features``.

    For 1x28x28 with ``channels = [32, 64]``: 1x28x28 -> 32x14x14 -> 64x7x7 -> out_features;
    for 3x32x32: 3x32x32 -> 32x16x16 -> 64x8x8; for 3x15x20: 3x15x20 -> 32x7x10 -> 64x3x5.
    Input ``(*batch, C*H*W)`` (an image flattened in ``(C, H, W)`` order), output
    ``(*batch, out_features)``.
    """

    def __init__(
        self,
        *,
        in_features: int,
        out_features: int,
        image_shape: tuple[int, int, int],
        channels: list[PositiveInt] = (32, 64),  # type: ignore[assignment]
        activation: Activation = "relu",
    ) -> None:
        super().__init__()
        self.shapes = _conv_shapes(tuple(image_shape), list(channels))
        layers: list[nn.Module] = []
        for (c_in, _, _), (c_out, _, _) in zip(self.shapes[:-1], self.shapes[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), ACTIVATIONS[activation]()]
        c, h, w = self.shapes[-1]
        self.conv = nn.Sequential(*layers)
        self.linear = nn.Linear(c * h * w, out_features)
        self.activation = activation

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x, batch = _fold_batch(inputs, 1)
        features = self.conv(x.reshape(-1, *self.shapes[0])).flatten(1)
        out = self.linear(features)
        return out.reshape(*batch, out.shape[-1])

    def describe(self) -> str:
        maps = " -> ".join("x".join(map(str, s)) for s in self.shapes)
        return f"conv net {maps} -> linear {self.linear.out_features} ({self.activation})"


@DECODERS.register("conv")
class ConvDecoder(Network):
    """Transposed-convolution decoder for images, the mirror of :class:`ConvEncoder`: a linear
    map to the smallest feature map, then ``len(channels)`` stride-2 4x4 transposed
    convolutions (each doubles height and width, plus one where the encoder's side was odd,
    so the output is exactly the image's size); ``channels`` are listed as in the encoder
    (image side first).

    For 1x28x28 with ``channels = [32, 64]`` and k numbers per pixel: in_features -> 64x7x7
    -> 32x14x14 -> (k*1)x28x28; for 3x15x20: in_features -> 64x3x5 -> 32x7x10 -> (k*3)x15x20.
    Output ``(*batch, k*C*H*W)`` ordered as ``(k, C, H, W)``, as the likelihoods expect.
    """

    def __init__(
        self,
        *,
        in_features: int,
        out_features: int,
        image_shape: tuple[int, int, int],
        channels: list[PositiveInt] = (32, 64),  # type: ignore[assignment]
        activation: Activation = "relu",
    ) -> None:
        super().__init__()
        shapes = _conv_shapes(tuple(image_shape), list(channels))
        c, h, w = shapes[0]
        if out_features % (c * h * w):
            raise ConfigError(
                f"{out_features} outputs are not a whole number per pixel of a {c}x{h}x{w} image"
            )
        per_pixel = out_features // (c * h * w)
        shapes[0] = (per_pixel * c, h, w)
        self.shapes = shapes[::-1]  # smallest feature map first
        c0, h0, w0 = self.shapes[0]
        self.linear = nn.Linear(in_features, c0 * h0 * w0)
        layers: list[nn.Module] = [ACTIVATIONS[activation]()]
        for i, ((c_in, _, _), (c_out, _, _)) in enumerate(zip(self.shapes[:-1], self.shapes[1:])):
            padding = _output_padding(self.shapes[i], self.shapes[i + 1])
            layers.append(
                nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, output_padding=padding)
            )
            if i < len(self.shapes) - 2:
                layers.append(ACTIVATIONS[activation]())
        self.deconv = nn.Sequential(*layers)
        self.activation = activation

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        z, batch = _fold_batch(inputs, 1)
        out = self.deconv(self.linear(z).reshape(-1, *self.shapes[0])).flatten(1)
        return out.reshape(*batch, out.shape[-1])

    def describe(self) -> str:
        maps = " -> ".join("x".join(map(str, s)) for s in self.shapes)
        return f"linear {self.linear.in_features} -> transposed conv net {maps} ({self.activation})"


def check_autoregressive_flow(latent_dim: int, hidden: list[int]) -> None:
    """The checks the autoregressive flows of a prior or guide need beyond their declared
    ranges: a latent space of 2+ dimensions (in one dimension an autoregressive flow is a
    plain affine map) and at least one hidden layer (MADE needs one). Raises
    :class:`ConfigError`, which the registry prefixes with the component's key."""
    if latent_dim < 2:
        raise ConfigError(
            f"needs model.latent_dim >= 2 (got {latent_dim}): an autoregressive flow in one "
            "dimension is a plain affine map"
        )
    if not hidden:
        raise ConfigError("hidden = [] must hold at least one layer size")
