"""IDX files, the format of MNIST's raw files: a magic number, dimensions, then the bytes."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from ..errors import DataError

__all__ = ["read_idx"]

#: IDX type codes (the third byte of the magic number) of unsigned bytes
_IDX_UBYTE = 0x08


def read_idx(path: Path, item_shape: tuple[int, ...]) -> torch.Tensor:
    """The uint8 array of an IDX file (the format of MNIST's raw files), ``(N, *item_shape)``.

    Raises :class:`DataError` calling the file damaged when its magic number, its dimensions
    or its length are not those of ``N`` unsigned-byte items of ``item_shape``."""
    path = Path(path)
    ndim = 1 + len(item_shape)
    fix = "replace it with a fresh copy (or delete it to download it again)"
    header_size = 4 + 4 * ndim
    try:
        with path.open("rb") as f:
            header = f.read(header_size)
            if len(header) < header_size:
                raise DataError(
                    f"data file '{path}' is damaged: {len(header)} bytes is shorter than its "
                    f"IDX header; {fix}"
                )
            zero, kind, dims = int.from_bytes(header[:2], "big"), header[2], header[3]
            if zero != 0 or kind != _IDX_UBYTE or dims != ndim:
                raise DataError(
                    f"data file '{path}' is damaged: its magic number {header[:4].hex()} is "
                    f"not that of an IDX file of {ndim}-d unsigned bytes (0000080{ndim}); {fix}"
                )
            shape = tuple(int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
            if shape[1:] != item_shape:
                raise DataError(
                    f"data file '{path}' is damaged: it holds items of shape {shape[1:]}, "
                    f"expected {item_shape}; {fix}"
                )
            size = math.prod(shape)
            if size == 0:
                raise DataError(f"data file '{path}' holds no examples; {fix}")
            held = os.fstat(f.fileno()).st_size - header_size
            if held != size:  # checked before reading: a header can announce any size
                raise DataError(
                    f"data file '{path}' is damaged: its header announces {size} bytes of "
                    f"data, but it holds {held}; {fix}"
                )
            data = bytearray(f.read())
    except OSError as exc:
        raise DataError(f"data file '{path}' cannot be read: {exc.strerror}") from None
    if len(data) != size:
        raise DataError(f"data file '{path}' changed while it was read; read it again")
    return torch.frombuffer(data, dtype=torch.uint8).reshape(shape)
