"""The sources of data, registered by name as ``data.dataset``.

* ``mnist``, ``fashion_mnist``, ``kmnist``: torchvision's MNIST family, read from their IDX
  files under the data root (downloaded by torchvision when missing and downloads are on);
* ``cifar10``, ``svhn``: read by torchvision's own dataset classes under the data root;
* ``folder``: a folder of images (``data.path``; PNG, JPEG, BMP, TIFF, WebP, GIF...), flat or
  one subfolder per class;
* ``array``: a ``.npy`` or ``.npz`` file (``data.path``);
* ``tensors``: tensors, arrays or a Dataset given in Python (``pyrovae.train(config,
  train_data=...)``); a run trained on them records their hash, not the data.

Each source's :meth:`DataSource.open` returns the train and test
:class:`~pyrovae.data.examples.Examples` with the record of where they came from;
:meth:`DataSource.check_config` checks the ``data`` keys that relate to each other.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..registry import Registry
from .examples import ArrayExamples, DatasetExamples, Examples, TensorExamples, split_examples
from .files import (
    GREY_MODES,
    file_sha256,
    folder_files,
    open_image,
    read_array_file,
    read_folder,
)
from .idx import read_idx

__all__ = [
    "DATASETS",
    "DataSource",
    "PublishedSource",
    "Splits",
    "default_data_root",
    "offline",
    "python_examples",
]

#: environment variable naming the folder that holds the data sets
DATA_ENV = "PYROVAE_DATA"
#: environment variable that, set to 1 (or true, yes, on), forbids downloads (missing data is
#: then an error)
OFFLINE_ENV = "PYROVAE_OFFLINE"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


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


def default_data_root() -> Path:
    """``$PYROVAE_DATA`` if set, else ``$XDG_CACHE_HOME/pyrovae/data`` (``~/.cache/...``)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "pyrovae" / "data"


def resolve_data_root(root: str | os.PathLike | None) -> Path:
    """The data root to use: ``root`` if given, else :func:`default_data_root`."""
    return Path(root).expanduser() if root else default_data_root()


@dataclass
class Splits:
    """The train and test examples of a source, and where they came from.

    Attributes:
        path: the file or folder read (absolute), ``""`` for a named data set or data given
            in Python.
        sha256: hash of the files read (a named data set's files under the data root, by
            their names relative to it), or of the arrays given in Python (``""``: none).
        class_names: the name of each class, label 0 first (a folder's class subfolders),
            or empty where the source does not name them.
    """

    train: Examples
    test: Examples
    path: str = ""
    sha256: str = ""
    class_names: tuple[str, ...] = ()


class DataSource:
    """A source of data known to pyrovae (registered by name as ``data.dataset``).

    ``image_shape`` and ``num_classes`` are class attributes where the source fixes them
    (the torchvision sets), ``None`` where only the data knows them."""

    type_name: ClassVar[str]
    image_shape: ClassVar[tuple[int, ...] | None] = None
    num_classes: ClassVar[int | None] = None
    #: the config keys that only sources on disk use
    _FILE_KEYS: ClassVar[tuple[str, ...]] = ("path", "test_path")

    @classmethod
    def check_config(cls, data: dict[str, Any]) -> None:
        """Raise :class:`ConfigError` when keys of the resolved ``data`` section do not fit
        this source (here: a named data set takes no path, image size or channels)."""
        for key in (*cls._FILE_KEYS, "image_size", "channels"):
            if data[key]:
                raise ConfigError(
                    f"data.{key} = {data[key]!r} is for data.dataset = 'folder' or 'array'; "
                    f"{cls.type_name!r} is read from the data root (--data-root or "
                    f"{DATA_ENV}): remove data.{key}"
                )

    @classmethod
    def open(cls, data: dict[str, Any], root: Path, download: bool) -> Splits:
        """The train and test examples the ``data`` config section describes."""
        raise NotImplementedError

    @classmethod
    def peek(cls, data: dict[str, Any]) -> tuple[tuple[int, ...], int] | None:
        """``(item_shape, num_classes)`` of the data without loading it into a Trainer (a
        folder: its listing and first image's header; an array file: opened and checked, which
        reads it), or ``None`` when only loading the data tells."""
        return None


DATASETS: Registry[DataSource] = Registry("dataset")


class PublishedSource(DataSource):
    """A published data set of fixed shape, under the data root in torchvision's layout and
    downloaded by torchvision: here the MNIST family, read from its IDX files (a data source,
    not a ``torch.utils.data.Dataset``)."""

    torchvision_name: ClassVar[str]
    image_shape: ClassVar[tuple[int, ...]] = (1, 28, 28)
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
    def open(cls, data: dict[str, Any], root: Path, download: bool) -> Splits:
        def split(train: bool) -> Examples:
            x, y = cls.load(root, train=train, download=download)
            return TensorExamples(x, y, cls.image_shape, cls.num_classes, cls.torchvision_name)

        splits = Splits(split(True), split(False))
        files = [*cls.raw_files(root, train=True), *cls.raw_files(root, train=False)]
        splits.sha256 = file_sha256(files, root)  # a run notices when they change
        return splits

    @classmethod
    def _missing(cls, root: Path, holding: str, why: str | None) -> DataError:
        """The error of a named data set that is not under ``root``: downloads are off
        (``why`` None) or failed (``why``)."""
        name = cls.torchvision_name
        if why is None:
            return DataError(
                f"{name} not found under data root '{root}' and downloads are off "
                f"({OFFLINE_ENV}={os.environ.get(OFFLINE_ENV, '')}). Point pyrovae at a "
                f"folder holding {holding} in torchvision's layout with --data-root PATH or "
                f"{DATA_ENV}=PATH."
            )
        return DataError(
            f"{name} not found under data root '{root}' and the download failed ({why}). If "
            f"you are offline, point pyrovae at a local copy (a folder holding {holding}) with "
            f"--data-root PATH or {DATA_ENV}=PATH."
        )

    @classmethod
    def _download(cls, root: Path, train: bool, download: bool) -> None:
        """Fetch the data set into ``root`` with torchvision, or say why it is not there."""
        import torchvision.datasets

        tv_cls = getattr(torchvision.datasets, cls.torchvision_name)
        holding = f"{cls.torchvision_name}/raw/"
        if not download:
            raise cls._missing(root, holding, None)
        try:
            tv_cls(root=str(root), train=train, download=True)
        except Exception as exc:  # network, permissions, corrupt archive
            raise cls._missing(root, holding, f"{type(exc).__name__}: {exc}") from None

    @classmethod
    def data_dim(cls) -> int:
        c, h, w = cls.image_shape
        return c * h * w


@DATASETS.register("mnist")
class MNIST(PublishedSource):
    torchvision_name = "MNIST"


@DATASETS.register("fashion_mnist")
class FashionMNIST(PublishedSource):
    torchvision_name = "FashionMNIST"


@DATASETS.register("kmnist")
class KMNIST(PublishedSource):
    torchvision_name = "KMNIST"


class TorchvisionImages(PublishedSource):
    """A colour data set read by its torchvision dataset class (``tv_dataset(split)``), whose
    ``data`` array holds uint8 images and ``targets``/``labels`` their classes."""

    image_shape = (3, 32, 32)
    #: the folder under the data root that holds the data set's files
    folder: ClassVar[str]

    #: whether the torchvision class takes ``split="train"/"test"`` in ``root/folder`` (SVHN)
    #: rather than ``train=True/False`` in the data root (CIFAR-10)
    split_by_name: ClassVar[bool] = False

    @classmethod
    def tv_dataset(cls, root: Path, train: bool, download: bool) -> Any:
        """The torchvision dataset of one split."""
        import torchvision.datasets

        tv_cls = getattr(torchvision.datasets, cls.torchvision_name)
        if cls.split_by_name:
            split = "train" if train else "test"
            return tv_cls(str(root / cls.folder), split=split, download=download)
        return tv_cls(str(root), train=train, download=download)

    @classmethod
    def open(cls, data: dict[str, Any], root: Path, download: bool) -> Splits:
        holding = f"{cls.folder}/"
        if not (root / cls.folder).is_dir() and not download:
            raise cls._missing(root, holding, None)

        def split(train: bool) -> Examples:
            try:
                tv = cls.tv_dataset(root, train, download)
            except ImportError as exc:
                raise DataError(
                    f"torchvision reads {cls.torchvision_name} with {exc.name}, which is not "
                    f"installed: pip install {exc.name} (for SVHN: pip install 'pyrovae[svhn]')"
                ) from None
            except RuntimeError as exc:  # torchvision's "not found or corrupted"
                raise DataError(
                    f"{cls.torchvision_name} under data root '{root}' is missing or damaged "
                    f"({exc}); replace {holding} with a fresh copy"
                ) from None
            except Exception as exc:  # a failed download: network, permissions
                raise cls._missing(root, holding, f"{type(exc).__name__}: {exc}") from None
            labels = getattr(tv, "targets", None)
            labels = getattr(tv, "labels", None) if labels is None else labels
            return ArrayExamples(np.asarray(tv.data), labels, cls.torchvision_name)

        splits = Splits(split(True), split(False))
        files = sorted(p for p in (root / cls.folder).rglob("*") if p.is_file())
        splits.sha256 = file_sha256(files, root)  # a run notices when they change
        return splits


@DATASETS.register("cifar10")
class CIFAR10(TorchvisionImages):
    """CIFAR-10 (Krizhevsky 2009): 50,000 + 10,000 colour images of 32x32 in 10 classes."""

    torchvision_name = "CIFAR10"
    folder = "cifar-10-batches-py"


@DATASETS.register("svhn")
class SVHN(TorchvisionImages):
    """SVHN (Netzer et al. 2011): 73,257 + 26,032 colour 32x32 digits (read with scipy)."""

    torchvision_name = "SVHN"
    folder = "SVHN"
    split_by_name = True


def _combined_sha256(*hashes: str) -> str:
    return hashlib.sha256(" ".join(hashes).encode()).hexdigest() if len(hashes) > 1 else hashes[0]


def _check_utf8(path: Path, key: str) -> None:
    """Refuse a ``path`` whose name is not valid UTF-8: a run records it in its config (UTF-8
    TOML). (Names of the files inside a folder may be anything: only their bytes are hashed.)"""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(
            f"{key} = {str(path)!r} is a name that is not valid UTF-8, which a run's config "
            "cannot record; rename it (e.g. with convmv)"
        ) from None


class _OwnFiles(DataSource):
    """A source read from ``data.path`` (and ``data.test_path``)."""

    what: ClassVar[str]

    @classmethod
    def check_config(cls, data: dict[str, Any]) -> None:
        if not data["path"]:
            raise ConfigError(f"data.dataset = {cls.type_name!r} needs data.path = {cls.what}")

    @classmethod
    def read(
        cls, path: Path, key: str, data: dict[str, Any]
    ) -> tuple[Examples, Examples | None, str]:
        raise NotImplementedError

    @classmethod
    def open(cls, data: dict[str, Any], root: Path, download: bool) -> Splits:
        path = Path(data["path"]).expanduser().resolve()
        _check_utf8(path, "data.path")
        train, test, sha = cls.read(path, "data.path", data)
        hashes, class_names = [sha], train.class_names
        if data["test_path"]:
            if test is not None:
                raise DataError(
                    f"data.path = '{path}' holds a test set already; remove data.test_path"
                )
            test_path = Path(data["test_path"]).expanduser().resolve()
            _check_utf8(test_path, "data.test_path")
            test, _, test_sha = cls.read(test_path, "data.test_path", data)
            hashes.append(test_sha)
            if test.item_shape != train.item_shape:
                raise DataError(
                    f"the test examples {test.where} have shape {test.item_shape}, the training "
                    f"examples {train.item_shape}; they must be alike"
                )
            if test.class_names != class_names:
                raise DataError(
                    f"the test examples {test.where} have the classes {list(test.class_names)}, "
                    f"the training examples {list(class_names)}; give both the same class "
                    "subfolders"
                )
        if test is None:
            train, test = split_examples(train, data["test_fraction"], data["split_seed"])
        return Splits(train, test, str(path), _combined_sha256(*hashes), class_names)


@DATASETS.register("folder")
class Folder(_OwnFiles):
    """A folder of images (any format Pillow reads), flat or one subfolder per class (see
    :mod:`pyrovae.data.files`)."""

    what = "'DIR' (a folder of images)"
    _FILE_KEYS = ()

    @classmethod
    def check_config(cls, data: dict[str, Any]) -> None:
        super().check_config(data)
        if data["image_size"] and len(data["image_size"]) != 2:
            raise ConfigError(
                f"data.image_size = {list(data['image_size'])} must be [H, W], two numbers"
            )

    @classmethod
    def read(
        cls, path: Path, key: str, data: dict[str, Any]
    ) -> tuple[Examples, Examples | None, str]:
        examples, sha = read_folder(path, key, data["image_size"], data["channels"])
        return examples, None, sha

    @classmethod
    def peek(cls, data: dict[str, Any]) -> tuple[tuple[int, ...], int] | None:
        paths, _, class_names = folder_files(Path(data["path"]).expanduser(), "data.path")
        try:
            with open_image(paths[0]) as image:
                (w, h), mode = image.size, image.mode
        except DataError:
            return None  # loading the data says what is wrong with it
        if data["image_size"]:
            h, w = data["image_size"]
        return (data["channels"] or (1 if mode in GREY_MODES else 3), h, w), len(class_names)


@DATASETS.register("array")
class Array(_OwnFiles):
    """A ``.npy`` or ``.npz`` file (see :mod:`pyrovae.data.files`)."""

    what = "'FILE' (a .npy or .npz file)"

    @classmethod
    def check_config(cls, data: dict[str, Any]) -> None:
        super().check_config(data)
        for key in ("image_size", "channels"):
            if data[key]:
                raise ConfigError(
                    f"data.{key} is for data.dataset = 'folder'; an array has its own shape: "
                    f"remove data.{key}"
                )

    @classmethod
    def read(
        cls, path: Path, key: str, data: dict[str, Any]
    ) -> tuple[Examples, Examples | None, str]:
        return read_array_file(path, key)

    @classmethod
    def peek(cls, data: dict[str, Any]) -> tuple[tuple[int, ...], int] | None:
        train, test, _ = read_array_file(Path(data["path"]).expanduser(), "data.path")
        return train.item_shape, max(train.num_classes, test.num_classes if test else 0)


@DATASETS.register("tensors")
class Tensors(DataSource):
    """Tensors, NumPy arrays or a ``torch.utils.data.Dataset`` given in Python."""

    @classmethod
    def open(cls, data: dict[str, Any], root: Path, download: bool) -> Splits:
        recorded = f" (sha256 {data['sha256'][:12]}...)" if data["sha256"] else ""
        raise DataError(
            f"this run was trained on data given in Python{recorded}, which is not stored with "
            "it: pass it in again, e.g. pyrovae.resume(run, train_data=x, test_data=x_test) or "
            "pyrovae.load_data(config['data'], train_data=x, test_data=x_test)"
        )


def python_examples(value: Any, where: str) -> Examples:
    """Examples of data given in Python: a tensor or NumPy array (``(N, ...)``, see
    :class:`~pyrovae.data.examples.ArrayExamples`), a pair ``(x, labels)`` of them, or a
    ``torch.utils.data.Dataset`` yielding ``x`` or ``(x, label)``."""
    labels = None
    if isinstance(value, tuple) and len(value) == 2:
        value, labels = value
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return ArrayExamples(value, labels, where)
    if isinstance(value, torch.utils.data.Dataset):
        return DatasetExamples(value, where)
    raise DataError(
        f"{where} must be a tensor, a NumPy array, a pair (x, labels) of them or a "
        f"torch.utils.data.Dataset, got {type(value).__name__}"
    )


def examples_sha256(*examples: Examples) -> str:
    """SHA-256 of the examples' values and labels (all read once)."""
    digest = hashlib.sha256()
    for ex in examples:
        x, y = ex.materialize()
        digest.update(x.contiguous().numpy().tobytes())
        digest.update(y.contiguous().numpy().tobytes())
    return digest.hexdigest()
