"""Image data sets held as tensors on the training device, with explicit binarization.

Images are flattened to vectors of ``data_dim = C*H*W`` grey levels in [0, 1]. Binarization:

* ``"dynamic"``: training batches are fresh Bernoulli samples of the grey levels, drawn every
  time a batch is sliced (the usual regulariser for binary MNIST).
* ``"static"``: the training set is binarized once, with ``binarization_seed``.
* ``"none"``: grey levels as they are.

Whenever the training data is binary, the test set is binarized once with
``binarization_seed`` (static), so that test numbers are comparable across runs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import torch

from .errors import DataError
from .registry import Registry

__all__ = ["DATASETS", "ImageData", "ImageDataset", "batches", "default_data_root", "load_data"]

Binarization = Literal["dynamic", "static", "none"]

#: environment variable naming the folder that holds the data sets
DATA_ENV = "PYROVAE_DATA"
#: environment variable that, set to 1 (or true, yes, on), forbids downloads (missing data is
#: then an error)
OFFLINE_ENV = "PYROVAE_OFFLINE"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")

#: IDX type codes (the third byte of the magic number) of unsigned bytes
_IDX_UBYTE = 0x08


def offline() -> bool:
    """Whether ``$PYROVAE_OFFLINE`` forbids downloads: 1, true, yes or on (any case) do; unset,
    empty, 0, false, no or off do not; anything else is a :class:`DataError`."""
    value = os.environ.get(OFFLINE_ENV, "")
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise DataError(
        f"{OFFLINE_ENV}={value!r} is not a yes or no; set it to 1 (or true, yes, on) to forbid "
        "downloads, or to 0 (or false, no, off, or unset it) to allow them"
    )


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


def default_data_root() -> Path:
    """``$PYROVAE_DATA`` if set, else ``$XDG_CACHE_HOME/pyrovae/data`` (``~/.cache/...``)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "pyrovae" / "data"


def resolve_data_root(root: str | os.PathLike | None) -> Path:
    """The data root to use: ``root`` if given, else :func:`default_data_root`."""
    return Path(root).expanduser() if root else default_data_root()


class ImageDataset:
    """A torchvision image data set known to pyrovae (registered by name)."""

    type_name: ClassVar[str]
    torchvision_name: ClassVar[str]
    image_shape: ClassVar[tuple[int, int, int]] = (1, 28, 28)
    num_classes: ClassVar[int] = 10

    @classmethod
    def raw_files(cls, root: Path, train: bool) -> tuple[Path, Path]:
        """The IDX files of the images and labels of a split, in torchvision's layout."""
        split = "train" if train else "t10k"
        raw = Path(root) / cls.torchvision_name / "raw"
        return raw / f"{split}-images-idx3-ubyte", raw / f"{split}-labels-idx1-ubyte"

    @classmethod
    def load(cls, root: Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Grey levels ``(N, data_dim)`` in [0, 1] (float32, CPU) and labels ``(N,)`` (int64).

        Missing files are downloaded with torchvision when ``download`` is true, else a
        :class:`DataError` says where to put them; files that are there but damaged are a
        :class:`DataError` that says so."""
        images_file, labels_file = cls.raw_files(root, train)
        if not (images_file.is_file() and labels_file.is_file()):
            cls._download(root, train, download)
        _, h, w = cls.image_shape
        images = read_idx(images_file, (h, w))
        labels = read_idx(labels_file, ())
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{cls.torchvision_name} under '{root}' is damaged: '{images_file.name}' holds "
                f"{images.shape[0]} images but '{labels_file.name}' {labels.shape[0]} labels; "
                "replace the files with a fresh copy"
            )
        if labels.numel() and int(labels.max()) >= cls.num_classes:
            raise DataError(
                f"'{labels_file}' is damaged: it holds label {int(labels.max())}, but "
                f"{cls.torchvision_name} has classes 0 to {cls.num_classes - 1}; replace it"
            )
        flat = images.reshape(images.shape[0], -1).to(torch.float32) / 255.0
        return flat, labels.to(torch.int64)

    @classmethod
    def _download(cls, root: Path, train: bool, download: bool) -> None:
        """Fetch the data set into ``root`` with torchvision, or say why it is not there."""
        import torchvision.datasets

        tv_cls = getattr(torchvision.datasets, cls.torchvision_name)
        if not download:
            raise DataError(
                f"{cls.torchvision_name} not found under data root '{root}' and downloads are "
                f"off ({OFFLINE_ENV}={os.environ.get(OFFLINE_ENV, '')}). Point pyrovae at a "
                f"folder holding {cls.torchvision_name}/raw/ in torchvision's layout with "
                f"--data-root PATH or {DATA_ENV}=PATH."
            )
        try:
            tv_cls(root=str(root), train=train, download=True)
        except Exception as exc:  # network, permissions, corrupt archive
            raise DataError(
                f"{cls.torchvision_name} not found under data root '{root}' and the download "
                f"failed ({type(exc).__name__}: {exc}). If you are offline, point pyrovae at a "
                f"local copy (a folder holding {cls.torchvision_name}/raw/) with --data-root "
                f"PATH or {DATA_ENV}=PATH."
            ) from None

    @classmethod
    def data_dim(cls) -> int:
        c, h, w = cls.image_shape
        return c * h * w


DATASETS: Registry[ImageDataset] = Registry("dataset")


@DATASETS.register("mnist")
class MNIST(ImageDataset):
    torchvision_name = "MNIST"


@DATASETS.register("fashion_mnist")
class FashionMNIST(ImageDataset):
    torchvision_name = "FashionMNIST"


@DATASETS.register("kmnist")
class KMNIST(ImageDataset):
    torchvision_name = "KMNIST"


def batches(
    x: torch.Tensor, y: torch.Tensor | None, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Consecutive ``(x[i:i + batch_size], y[i:i + batch_size])`` slices (``y`` may be
    ``None``, and its slices are then ``None``); the last batch may be smaller."""
    for start in range(0, x.shape[0], batch_size):
        stop = start + batch_size
        yield x[start:stop], None if y is None else y[start:stop]


def binarize_once(images: torch.Tensor, seed: int) -> torch.Tensor:
    """One Bernoulli sample of grey levels ``images`` with a fixed ``seed`` (CPU generator, so
    the result is the same on every device)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.bernoulli(images.cpu(), generator=gen).to(images.device)


@dataclass
class ImageData:
    """Train and test sets of one data set, as tensors on ``device``.

    Attributes:
        train_images: ``(N_train, data_dim)``; grey levels for ``"dynamic"``/``"none"``,
            {0, 1} for ``"static"``.
        test_images: ``(N_test, data_dim)``; {0, 1} whenever training data is binary.
        train_labels, test_labels: ``(N,)`` int64 class labels.
    """

    name: str
    binarize: Binarization
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    image_shape: tuple[int, int, int]
    num_classes: int

    @property
    def data_dim(self) -> int:
        return self.train_images.shape[-1]

    def train_batches(
        self, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of shuffled ``(x, y)`` training batches sliced from the device tensors.

        ``generator`` (on the data's device) drives the shuffle and dynamic binarization; the
        last batch may be smaller."""
        n = self.train_images.shape[0]
        perm = torch.randperm(n, generator=generator, device=self.train_images.device)
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            x = self.train_images[idx]
            if self.binarize == "dynamic":
                x = torch.bernoulli(x, generator=generator)
            yield x, self.train_labels[idx]

    def num_train_batches(self, batch_size: int) -> int:
        return -(-self.train_images.shape[0] // batch_size)


def load_data(
    data_config: dict,
    device: torch.device | str = "cpu",
    root: str | os.PathLike | None = None,
) -> ImageData:
    """Load the data set described by the resolved ``data`` config section onto ``device``.

    Args:
        data_config: ``{"dataset", "binarize", "binarization_seed", "train_limit",
            "test_limit"}`` (limits of 0 mean the whole split).
        root: data root; default :func:`default_data_root`.
    """
    dataset = DATASETS.get(data_config["dataset"], key="data.dataset")
    root = resolve_data_root(root)
    download = not offline()
    train_x, train_y = dataset.load(root, train=True, download=download)
    test_x, test_y = dataset.load(root, train=False, download=download)
    if data_config["train_limit"]:
        train_x, train_y = (
            train_x[: data_config["train_limit"]],
            train_y[: data_config["train_limit"]],
        )
    if data_config["test_limit"]:
        test_x, test_y = test_x[: data_config["test_limit"]], test_y[: data_config["test_limit"]]
    binarize = data_config["binarize"]
    seed = data_config["binarization_seed"]
    if binarize == "static":
        train_x = binarize_once(train_x, seed)
    if binarize in ("static", "dynamic"):
        # a different stream from the training set's, same for every run
        test_x = binarize_once(test_x, seed + 1)
    device = torch.device(device)
    return ImageData(
        name=dataset.type_name,
        binarize=binarize,
        train_images=train_x.to(device),
        train_labels=train_y.to(device),
        test_images=test_x.to(device),
        test_labels=test_y.to(device),
        image_shape=dataset.image_shape,
        num_classes=dataset.num_classes,
    )
