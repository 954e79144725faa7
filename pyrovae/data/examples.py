"""Examples: a sized collection of data points read in batches, in memory or from disk.

Every source of data (the MNIST family's IDX files, torchvision's CIFAR-10 and SVHN, a folder
of images, a NumPy array, tensors or a ``torch.utils.data.Dataset`` given in Python) is read
through one interface, :class:`Examples`: ``len`` and ``batch(indices)``, which returns

* ``x``: ``(B, D)`` float32, each row one example flattened from its ``item_shape`` (images
  ``(C, H, W)`` in [0, 1]; vectors ``(D,)`` as they are);
* ``y``: ``(B,)`` int64 class labels, ``-1`` for an unlabelled example.

The in-memory path reads every example once (:meth:`Examples.materialize`); the streaming path
(:mod:`pyrovae.data.streaming`) reads each batch when it is needed, in DataLoader workers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.utils.data

from ..errors import DataError

__all__ = [
    "ArrayExamples",
    "DatasetExamples",
    "Examples",
    "IndexedExamples",
    "TensorExamples",
    "of_classes",
    "split_examples",
]

#: label of an example that has none
NO_LABEL = -1
#: examples read at a time when a whole set is materialized or checked
CHUNK = 4096


class Examples:
    """``len(self)`` examples of shape ``item_shape``, read with :meth:`batch`.

    Attributes:
        item_shape: ``(C, H, W)`` of an image or ``(D,)`` of a vector.
        num_classes: the number of classes of the labels (0: unlabelled).
        class_names: the name of each class, label 0 first, where the source names them (a
            folder of class subfolders), else empty.
        where: what the examples are, for error messages (``"'data/train.npy'"``).
    """

    item_shape: tuple[int, ...]
    num_classes: int
    where: str
    class_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        raise NotImplementedError

    def batch(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Examples ``indices``: ``x`` ``(B, D)`` float32 and labels ``y`` ``(B,)`` int64."""
        raise NotImplementedError

    @property
    def dim(self) -> int:
        """``D``, the number of elements of one example."""
        return math.prod(self.item_shape)

    def nbytes(self) -> int:
        """Memory of the examples as float32 rows and int64 labels, in bytes."""
        return len(self) * (4 * self.dim + 8)

    def materialize(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every example, in order: ``x`` ``(N, D)`` float32 and ``y`` ``(N,)`` (CPU)."""
        parts = [
            self.batch(range(s, min(s + CHUNK, len(self)))) for s in range(0, len(self), CHUNK)
        ]
        return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])

    def head(self, n: int) -> Examples:
        """The first ``n`` examples (all of them if there are fewer)."""
        if n >= len(self):
            return self
        return IndexedExamples(self, torch.arange(n))


class TensorExamples(Examples):
    """Examples held as tensors: ``x`` ``(N, D)`` float32 and ``y`` ``(N,)`` int64 (CPU)."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        item_shape: tuple[int, ...],
        num_classes: int,
        where: str,
    ) -> None:
        self.x, self.y = x, y
        self.item_shape, self.num_classes, self.where = tuple(item_shape), num_classes, where

    def __len__(self) -> int:
        return self.x.shape[0]

    def batch(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return self.x[idx], self.y[idx]

    def materialize(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x, self.y


class IndexedExamples(Examples):
    """The examples ``indices`` of ``base``, in that order (a split or a limit)."""

    def __init__(self, base: Examples, indices: torch.Tensor) -> None:
        self.base, self.indices = base, indices
        self.item_shape, self.num_classes, self.where = (
            base.item_shape,
            base.num_classes,
            base.where,
        )

    def __len__(self) -> int:
        return self.indices.shape[0]

    def batch(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.base.batch(self.indices[torch.as_tensor(indices, dtype=torch.int64)])


def of_classes(examples: Examples, classes: Sequence[int], key: str = "data.classes") -> Examples:
    """The examples of ``examples`` whose label is one of ``classes``, in their order (a
    novelty split); they keep the data's :attr:`~Examples.num_classes`.

    Raises:
        DataError: the examples are unlabelled, a class is not among theirs, or none is left.
    """
    if examples.num_classes == 0:
        raise DataError(
            f"{key} = {list(classes)} keeps examples by label, but {examples.where} is "
            "unlabelled; drop the key or give labelled data"
        )
    outside = [c for c in classes if c >= examples.num_classes]
    if outside:
        raise DataError(
            f"{key} = {list(classes)} names class {outside[0]}, but {examples.where} has "
            f"classes 0 to {examples.num_classes - 1}"
        )
    _, labels = examples.materialize()
    keep = torch.isin(labels, torch.as_tensor(list(classes), dtype=labels.dtype))
    if not bool(keep.any()):
        raise DataError(f"{key} = {list(classes)} keeps none of {examples.where}")
    return IndexedExamples(examples, torch.nonzero(keep).flatten())


def split_examples(examples: Examples, fraction: float, seed: int) -> tuple[Examples, Examples]:
    """``(train, test)``: a random ``fraction`` of ``examples`` (at least one, drawn with
    ``seed``) is the test set, the rest the training set; each keeps the original order."""
    n = len(examples)
    num_test = max(1, round(n * fraction))
    if num_test >= n:
        raise DataError(
            f"{examples.where} holds {n} example(s): too few to keep data.test_fraction = "
            f"{fraction:g} of them for testing and train on the rest; add examples or give "
            "data.test_path"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    test, train = perm[:num_test].sort().values, perm[num_test:].sort().values
    return IndexedExamples(examples, train), IndexedExamples(examples, test)


def hold_out(examples: Examples, validation: float, seed: int) -> tuple[Examples, Examples]:
    """``(train, validation)``: ``validation`` of ``examples`` (a count, or a fraction when
    below 1; at least one) drawn with ``seed`` are held out to validate on, the rest are
    trained on; each keeps the original order."""
    n = len(examples)
    count = round(n * validation) if validation < 1 else int(validation)
    if not 1 <= count < n:
        raise DataError(
            f"train.validation = {validation:g} holds out {count} of the {n} training "
            "examples; it must leave at least one to validate on and one to train on"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    held, kept = perm[:count].sort().values, perm[count:].sort().values
    return IndexedExamples(examples, kept), IndexedExamples(examples, held)


def native(array: np.ndarray) -> np.ndarray:
    """``array`` in the machine's byte order (a big-endian array converted; torch reads only
    the native order)."""
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def check_labels(labels: Any, n: int, where: str) -> tuple[torch.Tensor, int]:
    """Labels ``(n,)`` as int64 and their number of classes (``max + 1``); a
    :class:`DataError` naming ``where`` unless they are ``n`` integers >= 0."""
    y = (
        torch.as_tensor(native(np.asarray(labels)))
        if not isinstance(labels, torch.Tensor)
        else labels
    )
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise DataError(
            f"the labels of {where} must be integers (class 0, 1, ...), got dtype {y.dtype}"
        )
    y = y.reshape(-1) if y.dim() == 2 and y.shape[1] == 1 else y
    if y.shape != (n,):
        raise DataError(
            f"the labels of {where} must have shape ({n},), one per example, got shape "
            f"{tuple(y.shape)}"
        )
    y = y.to(torch.int64)
    if n and int(y.min()) < 0:
        raise DataError(f"the labels of {where} must be classes >= 0, but hold {int(y.min())}")
    return y, int(y.max()) + 1 if n else 0


def _image_layout(shape: tuple[int, ...], where: str) -> tuple[tuple[int, ...], str]:
    """``(item_shape, layout)`` of an array of ``shape``: ``(N, D)`` vectors, ``(N, H, W)``
    grey images, ``(N, C, H, W)`` or ``(N, H, W, C)`` images with C of 1 or 3."""
    if len(shape) == 2:
        return (shape[1],), "vectors"
    if len(shape) == 3:
        return (1, shape[1], shape[2]), "nhw"
    if len(shape) == 4:
        if shape[3] in (1, 3):
            return (shape[3], shape[1], shape[2]), "nhwc"
        if shape[1] in (1, 3):
            return (shape[1], shape[2], shape[3]), "nchw"
    raise DataError(
        f"{where} has shape {shape}; expected (N, D) vectors, (N, H, W) grey images, or "
        "(N, C, H, W) or (N, H, W, C) images with C = 1 or 3 channels"
    )


class ArrayExamples(Examples):
    """Examples in a NumPy array (possibly memory-mapped from a ``.npy`` file).

    uint8 values are 8-bit levels, scaled to [0, 1]; floats (and booleans) are taken as they
    are, as float32, in either byte order. Other dtypes, non-finite values, a single number
    (a 0-d array) and examples of no values (a zero in the shape) are a :class:`DataError`.
    """

    def __init__(self, array: np.ndarray, labels: Any, where: str) -> None:
        if array.dtype != np.uint8 and array.dtype.kind not in "fb":
            raise DataError(
                f"{where} has dtype {array.dtype}; expected uint8 (8-bit levels, scaled to "
                "[0, 1]) or floats (taken as they are): convert it, e.g. "
                "x.astype(np.float32) / x.max()"
            )
        if array.ndim == 0:
            raise DataError(
                f"{where} is a single number (a 0-d array), not examples; expected (N, D) "
                "vectors or (N, H, W) images"
            )
        if array.shape[0] == 0:
            raise DataError(f"{where} holds no examples (shape {array.shape})")
        self.array, self.where = array, where
        self.item_shape, self.layout = _image_layout(tuple(array.shape), where)
        if math.prod(self.item_shape) == 0:
            raise DataError(
                f"{where} has shape {array.shape}: its examples hold no values (a zero-size "
                "axis); give examples of at least one feature"
            )
        if labels is None:
            self.labels, self.num_classes = torch.full((array.shape[0],), NO_LABEL), 0
        else:
            self.labels, self.num_classes = check_labels(labels, array.shape[0], where)
        if array.dtype.kind == "f":
            for start in range(0, array.shape[0], CHUNK):  # chunked: it may be memory-mapped
                finite = np.isfinite(array[start : start + CHUNK])
                if not finite.all():
                    bad = start + int(np.argwhere(~finite)[0][0])
                    raise DataError(
                        f"{where} holds NaN or infinite values (first in example {bad}); "
                        "remove or replace them"
                    )

    def __len__(self) -> int:
        return self.array.shape[0]

    def batch(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        raw = native(np.asarray(self.array[idx]))
        if self.layout == "nhwc":
            raw = raw.transpose(0, 3, 1, 2)
        x = torch.from_numpy(np.ascontiguousarray(raw).reshape(len(idx), -1))
        x = x.to(torch.float32) / 255.0 if raw.dtype == np.uint8 else x.to(torch.float32)
        return x, self.labels[torch.from_numpy(idx)]


class DatasetExamples(Examples):
    """The items of a ``torch.utils.data.Dataset`` yielding ``x`` or ``(x, label)``; ``x`` a
    tensor or array of one shape for every item (uint8 scaled to [0, 1], floats as they are)."""

    def __init__(self, dataset: torch.utils.data.Dataset, where: str) -> None:
        self.dataset, self.where = dataset, where
        try:
            n = len(dataset)  # type: ignore[arg-type]
        except TypeError:
            raise DataError(
                f"{where} has no len(): give a map-style torch.utils.data.Dataset"
            ) from None
        if n == 0:
            raise DataError(f"{where} holds no examples")
        x, y = self._item(0)
        self.item_shape = _image_layout((1, *x.shape), where)[0] if x.dim() > 1 else tuple(x.shape)
        self.labelled = y is not None
        self.num_classes = 0
        if self.labelled:
            # torchvision's datasets list their labels; others are read item by item, once
            labels = getattr(dataset, "targets", None)
            if labels is None:
                labels = [int(self._item(i)[1]) for i in range(n)]
            _, self.num_classes = check_labels(labels, n, where)

    def _item(self, i: int) -> tuple[torch.Tensor, Any]:
        item = self.dataset[i]
        x, y = item if isinstance(item, (tuple, list)) and len(item) == 2 else (item, None)
        x = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
        if x.dtype == torch.uint8:
            x = x.to(torch.float32) / 255.0
        elif x.dtype.is_floating_point or x.dtype == torch.bool:
            x = x.to(torch.float32)
        else:
            raise DataError(
                f"item {i} of {self.where} has dtype {x.dtype}; expected uint8 or floats"
            )
        if x.dim() == 3 and x.shape[-1] in (1, 3) and x.shape[0] not in (1, 3):
            x = x.permute(2, 0, 1)  # (H, W, C) -> (C, H, W)
        return x, y

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def batch(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for i in torch.as_tensor(indices, dtype=torch.int64).tolist():
            x, y = self._item(i)
            if x.numel() != self.dim:
                raise DataError(
                    f"item {i} of {self.where} has shape {tuple(x.shape)}, but item 0 has "
                    f"{self.item_shape}; every item must have the same shape"
                )
            xs.append(x.reshape(-1))
            ys.append(NO_LABEL if y is None else int(y))
        if not xs:
            return torch.empty(0, self.dim), torch.empty(0, dtype=torch.int64)
        x = torch.stack(xs)
        if not bool(x.isfinite().all()):
            raise DataError(f"{self.where} holds NaN or infinite values; remove or replace them")
        return x, torch.tensor(ys, dtype=torch.int64)
