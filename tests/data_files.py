"""Data files the tests write, for pyrovae.data's sources: folders of PNGs, array files, and
fake CIFAR-10 and SVHN sets in torchvision's on-disk layouts (read by torchvision's own
loaders), with the tiny config of such data."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import torch

import pyrovae

from conftest import tiny_config

H, W = 8, 6


def write_png_folder(root: Path, per_class: int = 6, classes: int = 2, mode: str = "L") -> Path:
    """``classes`` subfolders of ``per_class`` random ``H x W`` PNGs each."""
    from PIL import Image

    rng = np.random.default_rng(0)
    shape = (H, W) if mode == "L" else (H, W, 3)
    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(
                folder / f"{i}.png")
    return root


def own_config(**data) -> dict:
    """The tiny config on data of ``H x W`` images (MLP nets, 2-d latent)."""
    return tiny_config(data={"train_limit": 0, "test_limit": 0, **data},
                       model={"latent_dim": 2}, train={"batch_size": 4}, eval={"num_samples": 2})


def resolved_data(**data) -> dict:
    return pyrovae.resolve_config(own_config(**data))["data"]


def write_fake_cifar10(root: Path, monkeypatch, n: int = 4) -> Path:
    """A CIFAR-10 in torchvision's on-disk layout (cifar-10-batches-py pickles of ``n`` images
    each); torchvision checks the files' MD5s, which are set to the fake files' own."""
    import torchvision.datasets

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def dump(name, entry):
        (folder / name).write_bytes(pickle.dumps(entry))
        return [name, hashlib.md5((folder / name).read_bytes()).hexdigest()]

    batch = lambda: {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),  # noqa: E731
                     "labels": rng.integers(0, 10, n).tolist()}
    train = [dump(f"data_batch_{i}", batch()) for i in range(1, 6)]
    test = [dump("test_batch", batch())]
    meta = dump("batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", train)
    monkeypatch.setattr(cls, "test_list", test)
    monkeypatch.setattr(cls, "meta", {"filename": meta[0], "key": "label_names", "md5": meta[1]})
    return root


def write_fake_svhn(root: Path, monkeypatch, n: int = 3) -> Path:
    """An SVHN in torchvision's on-disk layout (``SVHN/{train,test}_32x32.mat`` written with
    scipy: images ``(32, 32, 3, N)``, labels 1..10 with 10 for the digit 0); torchvision checks
    the files' MD5s, which are set to the fake files' own."""
    import scipy.io
    import torchvision.datasets

    folder = root / "SVHN"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    splits = {}
    for split in ("train", "test"):
        name = f"{split}_32x32.mat"
        scipy.io.savemat(folder / name, {
            "X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
            "y": np.array([[10], [1], [9]][:n], dtype=np.uint8),
        })
        splits[split] = ["", name, hashlib.md5((folder / name).read_bytes()).hexdigest()]
    monkeypatch.setattr(torchvision.datasets.SVHN, "split_list", splits)
    return root


def fake_cifar10_test_split(root: Path) -> tuple[torch.Tensor, list[int]]:
    """The test images ``(N, 3072)`` in (C, H, W) order and labels of a fake CIFAR-10."""
    batch = pickle.loads((root / "cifar-10-batches-py" / "test_batch").read_bytes())
    return torch.from_numpy(batch["data"]).float() / 255, batch["labels"]


def fake_svhn_test_split(root: Path) -> tuple[torch.Tensor, list[int]]:
    """The test images ``(N, 3072)`` in (C, H, W) order and labels of a fake SVHN, whose
    MATLAB file holds ``(H, W, C, N)`` images and the label 10 for the digit 0."""
    import scipy.io

    mat = scipy.io.loadmat(root / "SVHN" / "test_32x32.mat")
    images = torch.from_numpy(mat["X"]).permute(3, 2, 0, 1).reshape(mat["X"].shape[-1], -1)
    return images.float() / 255, [int(y) % 10 for y in mat["y"].ravel()]


def write_source(kind: str, tmp_path: Path, seed: int) -> Path:
    """A folder of PNGs or a .npy file of 24 random images, written afresh with ``seed``."""
    if kind == "folder":
        import shutil

        shutil.rmtree(tmp_path / "images", ignore_errors=True)
        write_png_folder(tmp_path / "images", per_class=12)
        if seed:  # changed data: one image redrawn
            from PIL import Image

            noise = np.random.default_rng(seed).integers(0, 256, (H, W), dtype=np.uint8)
            Image.fromarray(noise, "L").save(tmp_path / "images" / "class_1" / "3.png")
        return tmp_path / "images"
    rng = np.random.default_rng(seed)
    np.save(tmp_path / "x.npy", rng.integers(0, 256, (24, H, W), dtype=np.uint8))
    return tmp_path / "x.npy"
