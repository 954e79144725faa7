"""The input complexity of an example: the length in bits of its lossless compression (Serrà et
al. 2020, "Input Complexity and Out-of-distribution Detection with Likelihood-based Generative
Models").

A generic lossless compressor is a universal model ``p_0(x) = 2^-L(x)`` of images: subtracting
its code length ``L(x)`` from a model's ``-log2 p(x)`` removes what both owe to how simple the
image is (a black image is cheap for both), and leaves what the model knows of the data::

    S(x) = -log2 p(x) - L(x)        (bits; larger: more out-of-distribution)

Compressors (:data:`COMPRESSORS`): ``"png"``, Pillow's PNG encoder (compression level 9, no
``optimize`` pass) of the 8-bit image; ``"zlib"``, :func:`zlib.compress` (level 9) of the
8-bit pixel bytes. Both see each example rounded to 256 levels of its values in [0, 1].
"""

from __future__ import annotations

import io
import math
import zlib

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError, DataError

__all__ = ["COMPRESSORS", "code_length_bits", "complexity_score", "describe_compressor"]

#: the compressors of :func:`code_length_bits`, and how a report names each
COMPRESSORS = {
    "png": "PNG (Pillow, compression level 9)",
    "zlib": "zlib (level 9) of the 8-bit pixels",
}


def describe_compressor(name: str) -> str:
    """The compressor ``name`` in words; :class:`ConfigError` for an unknown one."""
    if name not in COMPRESSORS:
        raise ConfigError(f"compressor must be one of {sorted(COMPRESSORS)}; got {name!r}")
    return COMPRESSORS[name]


def _png_bytes(image: np.ndarray) -> int:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=9)
    return len(buffer.getvalue())


def code_length_bits(
    x: torch.Tensor, image_shape: tuple[int, ...], compressor: str = "png"
) -> torch.Tensor:
    """``L(x)``, the compressed size of each example in bits, ``(N,)`` float64.

    Args:
        x: ``(N, D)`` examples with values in [0, 1] (rounded to 8 bits first).
        image_shape: ``(C, H, W)`` of one example (C = 1 or 3), or ``(D,)`` (compressed as
            a one-row image).
        compressor: ``"png"`` or ``"zlib"`` (:data:`COMPRESSORS`).
    """
    describe_compressor(compressor)
    if x.dim() != 2 or x.shape[1] != math.prod(image_shape):
        raise DataError(
            f"x must have shape (N, {math.prod(image_shape)}) for images of shape "
            f"{tuple(image_shape)}, got {tuple(x.shape)}"
        )
    levels = (x.detach().double().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    images: np.ndarray
    if len(image_shape) == 3:
        c, h, w = image_shape
        images = levels.reshape(-1, c, h, w).transpose(0, 2, 3, 1)
        if c == 1:
            images = images[..., 0]
    else:
        images = levels.reshape(-1, 1, levels.shape[1])
    images = np.ascontiguousarray(images)
    if compressor == "png":
        sizes = [_png_bytes(image) for image in images]
    else:
        sizes = [len(zlib.compress(image.tobytes(), 9)) for image in images]
    return torch.tensor(sizes, dtype=torch.float64) * 8


def complexity_score(log_likelihood: torch.Tensor, code_length: torch.Tensor) -> torch.Tensor:
    """``S(x) = -log2 p(x) - L(x)`` in bits, ``(N,)``, from log p(x) in nats and ``L(x)`` in
    bits."""
    return -log_likelihood.double() / math.log(2) - code_length.double().to(log_likelihood.device)
