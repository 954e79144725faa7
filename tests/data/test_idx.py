"""IDX files (pyrovae.data.idx), the format of MNIST's raw files: read as written, and a
damaged file is a one-line DataError naming it."""

from __future__ import annotations

import pytest
import torch

from pyrovae.data import read_idx
from pyrovae.errors import DataError


def write_idx(path, array: torch.Tensor) -> None:
    header = bytes([0, 0, 0x08, array.dim()])
    header += b"".join(n.to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.to(torch.uint8).numpy().tobytes())


def test_an_idx_file_reads_as_written(tmp_path):
    images = torch.arange(2 * 3 * 4, dtype=torch.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "images.idx", images)
    assert torch.equal(read_idx(tmp_path / "images.idx", (3, 4)), images)


@pytest.mark.parametrize("damage, fragment", [
    (lambda raw: raw[:6], "shorter than its IDX header"),
    (lambda raw: raw[:-1], "announces 24 bytes of data, but it holds 23"),
    (lambda raw: bytes([0, 0, 0x0D]) + raw[3:], "magic number"),
])
def test_a_damaged_idx_file_is_named(tmp_path, damage, fragment):
    write_idx(tmp_path / "images.idx", torch.zeros(2, 3, 4, dtype=torch.uint8))
    path = tmp_path / "images.idx"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError, match=fragment) as error:
        read_idx(path, (3, 4))
    assert str(path) in str(error.value)


def test_items_of_another_shape_are_refused(tmp_path):
    write_idx(tmp_path / "images.idx", torch.zeros(2, 3, 5, dtype=torch.uint8))
    with pytest.raises(DataError, match=r"items of shape \(3, 5\), expected \(3, 4\)"):
        read_idx(tmp_path / "images.idx", (3, 4))
