"""Data: where examples come from, and how training reads them.

* :mod:`~pyrovae.data.sources`: the sources registered as ``data.dataset`` (the MNIST family,
  CIFAR-10, SVHN, a folder of images, an array file, data given in Python);
* :mod:`~pyrovae.data.examples`: the one interface every source is read through;
* :mod:`~pyrovae.data.files`: image folders and ``.npy``/``.npz`` files;
* :mod:`~pyrovae.data.images`: train and test sets held as tensors on the device (the fast
  default), with explicit binarization;
* :mod:`~pyrovae.data.streaming`: training batches read by a DataLoader, for data larger than
  memory;
* :mod:`~pyrovae.data.idx`: the IDX files of the MNIST family;
* :mod:`~pyrovae.data.run_source`: the examples a trained run is used on (its test set, or new
  data prepared as its training data was).

:func:`load_data` reads the data a ``data`` config section describes (or data given in
Python) onto the training device; :func:`data_shape` is the shape and number of classes the
model is built for, known from the config without the data.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..config import section_defaults
from ..errors import ConfigError, DataError
from ..memory import data_memory_budget
from .examples import Examples, hold_out, of_classes
from .idx import read_idx
from .images import Binarization, ImageData, batches, binarize_once, check_grey_levels
from .sources import (
    DATA_ENV,
    DATASETS,
    OFFLINE_ENV,
    DataSource,
    PublishedSource,
    Splits,
    default_data_root,
    examples_sha256,
    offline,
    python_examples,
    resolve_data_root,
)
from .streaming import StreamingImageData, _Batches, bounded_workers

__all__ = [
    "DATASETS",
    "DATA_ENV",
    "OFFLINE_ENV",
    "Binarization",
    "DataShape",
    "DataSource",
    "ImageData",
    "PublishedSource",
    "StreamingImageData",
    "batches",
    "binarize_once",
    "data_shape",
    "default_data_root",
    "load_data",
    "offline",
    "read_idx",
]

#: training examples read before training to check them, on the streaming path
PREVIEW_SIZE = 1024


@dataclass(frozen=True)
class DataShape:
    """What the model of a run is built for: one example's shape (``(C, H, W)`` or ``(D,)``)
    and the number of classes of the labels (0: unlabelled)."""

    image_shape: tuple[int, ...]
    num_classes: int

    @property
    def data_dim(self) -> int:
        dim = 1
        for n in self.image_shape:
            dim *= n
        return dim


def data_shape(data_config: Mapping[str, Any]) -> DataShape:
    """The data shape of a resolved ``data`` config section, without reading the data: the
    recorded ``data.shape`` / ``data.num_classes`` (a run's config holds them), else the
    source's fixed shape (the torchvision sets), else what a look at the files tells (a
    folder: the first image's header and the class subfolders; an array file: the file,
    opened and checked as loading it does, values and hash included).

    Raises:
        ConfigError: the shape is known only from the data (data given in Python).
        DataError: the folder or array file cannot be read.

    Example::

        data_shape(resolve_config({})["data"])   # image_shape (1, 28, 28), num_classes 10
    """
    if data_config.get("shape"):
        return DataShape(tuple(data_config["shape"]), int(data_config["num_classes"]))
    source = DATASETS.get(data_config["dataset"], key="data.dataset")
    if source.image_shape is None or source.num_classes is None:
        peeked = source.peek(_with_defaults(data_config))
        if peeked is not None:
            return DataShape(*peeked)
        raise ConfigError(
            f"data.dataset = {data_config['dataset']!r}: the shape of the data is known only "
            "once it is read; train with pyrovae.train (which records it in the run's config) "
            "or set data.shape = [C, H, W] (or [D]) and data.num_classes"
        )
    return DataShape(tuple(source.image_shape), source.num_classes)


def _with_defaults(data_config: Mapping[str, Any]) -> dict[str, Any]:
    """``data_config`` with the defaults of the keys it lacks (a section written by hand with
    the keys of the MNIST family only still loads)."""
    return {**section_defaults("data"), **data_config}


def _python_splits(data_config: dict[str, Any], train_data: Any, test_data: Any) -> Splits:
    if train_data is None:
        raise ConfigError("test_data is given without train_data; give both, or train_data alone")
    if data_config["path"] or data_config["test_path"]:
        raise ConfigError(
            "data.path and train_data are both given; the data comes from one of them: remove "
            "data.path (and data.test_path) or train_data"
        )
    train = python_examples(train_data, "train_data")
    if test_data is None:
        from .examples import split_examples

        train, test = split_examples(train, data_config["test_fraction"], data_config["split_seed"])
    else:
        test = python_examples(test_data, "test_data")
        if test.item_shape != train.item_shape:
            raise DataError(
                f"test_data has examples of shape {test.item_shape}, train_data "
                f"{train.item_shape}; they must be alike"
            )
    return Splits(train, test)


def _check_record(data_config: dict[str, Any], train: Examples, splits: Splits, name: str) -> None:
    """The data read must be the data a run recorded: same shape, same hash."""
    where = f"the data ({splits.path or name})"
    if data_config["shape"] and tuple(data_config["shape"]) != train.item_shape:
        raise DataError(
            f"{where} has examples of shape {train.item_shape}, but the run was trained on "
            f"{tuple(data_config['shape'])}; give the run's data (or start a new run)"
        )
    if data_config["sha256"] and splits.sha256 and splits.sha256 != data_config["sha256"]:
        raise DataError(
            f"{where} has changed since the run recorded it (sha256 {splits.sha256[:12]}... "
            f"instead of {data_config['sha256'][:12]}...); restore it, or start a new run"
        )


def load_data(
    data_config: Mapping[str, Any],
    device: torch.device | str = "cpu",
    root: str | os.PathLike | None = None,
    *,
    train_data: Any = None,
    test_data: Any = None,
    validation: float = 0,
    validation_seed: int = 0,
) -> ImageData | StreamingImageData:
    """Load the data described by the resolved ``data`` config section onto ``device``.

    Args:
        data_config: the resolved ``data`` section (see :mod:`pyrovae.config`; limits of 0
            mean the whole split).
        root: data root of the named data sets; default :func:`default_data_root`.
        train_data, test_data: data given in Python instead of the config's source: tensors
            or NumPy arrays ``(N, ...)``, pairs ``(x, labels)`` of them, or
            ``torch.utils.data.Dataset`` s yielding ``x`` or ``(x, label)``. Without
            ``test_data``, ``data.test_fraction`` of ``train_data`` is the test set.
        validation, validation_seed: ``train.validation`` and ``train.validation_seed``:
            that many training examples (a fraction when below 1; 0: none), drawn with the
            seed, are held out of the training set (after ``data.train_limit``) as the
            validation set, held on ``device`` and binarized once like the test set.

    Returns:
        the data held in memory (:class:`ImageData`), or, when ``data.in_memory`` is false or
        ``"auto"`` and the data does not fit :func:`~pyrovae.memory.data_memory_budget`,
        streamed (:class:`StreamingImageData`).

    Example::

        data = load_data(resolve_config({})["data"])
        data.test_images.shape   # (10000, 784)
    """
    data_config = _with_defaults(data_config)
    python = train_data is not None or test_data is not None
    if python:
        splits, name = _python_splits(data_config, train_data, test_data), "tensors"
    else:
        name = data_config["dataset"]
        source = DATASETS.get(name, key="data.dataset")
        splits = source.open(data_config, resolve_data_root(root), download=not offline())
    train, test = splits.train, splits.test
    if data_config["classes"]:
        train, test = (of_classes(split, data_config["classes"]) for split in (train, test))
    if data_config["train_limit"]:
        train = train.head(data_config["train_limit"])
    if data_config["test_limit"]:
        test = test.head(data_config["test_limit"])
    device = torch.device(device)
    in_memory = data_config["in_memory"]
    if in_memory == "auto":
        in_memory = train.nbytes() + test.nbytes() <= data_memory_budget(device)
    if python and in_memory:
        splits.sha256 = examples_sha256(train, test)
    _check_record(data_config, train, splits, name)
    common = _test_split(data_config, name, splits, train, test, device)
    if validation:
        train, held_out = hold_out(train, validation, validation_seed)
        common.update(_validation_split(data_config, held_out, device))
    binarize, seed = data_config["binarize"], data_config["binarization_seed"]
    if in_memory:
        train_x, train_y = train.materialize()
        check_grey_levels(train_x, train.where, binarize)
        if binarize == "static":
            train_x = binarize_once(train_x, seed)
        data: ImageData | StreamingImageData = ImageData(
            train_images=train_x.to(device), train_labels=train_y.to(device), **common
        )
    else:
        data = _streamed(train, test, common, data_config, device)
    data.mutation_rate = data_config["mutation_rate"]
    return data


def _test_split(
    data_config: dict[str, Any],
    name: str,
    splits: Splits,
    train: Examples,
    test: Examples,
    device: torch.device,
) -> dict[str, Any]:
    """What the in-memory and the streamed data share: the test set on ``device``, binarized
    once whenever the training data is binary, and the record of the data."""
    binarize, seed = data_config["binarize"], data_config["binarization_seed"]
    test_x, test_y = test.materialize()
    check_grey_levels(test_x, test.where, binarize)
    if binarize in ("static", "dynamic"):
        # a different stream from the training set's, same for every run
        test_x = binarize_once(test_x, seed + 1)
    return {
        "name": name,
        "binarize": binarize,
        "test_images": test_x.to(device),
        "test_labels": test_y.to(device),
        "image_shape": train.item_shape,
        "num_classes": max(train.num_classes, test.num_classes),
        "source": {
            "dataset": name,
            "path": splits.path,
            "sha256": splits.sha256,
            "class_names": list(splits.class_names),
        },
    }


def _validation_split(
    data_config: dict[str, Any], held_out: Examples, device: torch.device
) -> dict[str, Any]:
    """The validation examples on ``device``, binarized once (with their own stream) whenever
    the training data is binary, as the test set is."""
    x, y = held_out.materialize()
    if data_config["binarize"] in ("static", "dynamic"):
        x = binarize_once(x, data_config["binarization_seed"] + 2)
    return {"validation_images": x.to(device), "validation_labels": y.to(device)}


def _streamed(
    train: Examples,
    test: Examples,
    common: dict[str, Any],
    data_config: dict[str, Any],
    device: torch.device,
) -> StreamingImageData:
    """The training set read by a DataLoader (its first examples checked up front), the test
    set held on ``device``."""
    if test.nbytes() > data_memory_budget(device):
        raise DataError(
            f"the test set ({len(test):,} examples) needs {test.nbytes() / 1e9:.3g} GB, more "
            "than the memory it may take; evaluate on fewer with data.test_limit"
        )
    seed = data_config["binarization_seed"]
    static_seed = seed if data_config["binarize"] == "static" else None
    preview_x, preview_y = _Batches(train, static_seed, data_config["binarize"])._read(
        torch.arange(min(PREVIEW_SIZE, len(train)))
    )
    return StreamingImageData(
        train=train,
        device=device,
        workers=bounded_workers(data_config["workers"]),
        binarization_seed=seed,
        preview=(preview_x.to(device), preview_y.to(device)),
        **common,
    )
