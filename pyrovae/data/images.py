"""Train and test sets held as tensors on the training device, with explicit binarization.

Examples are flattened to vectors of ``data_dim = C*H*W`` elements (grey levels in [0, 1] for
images). Binarization:

* ``"dynamic"``: training batches are fresh Bernoulli samples of the grey levels, drawn every
  time a batch is sliced (the usual regulariser for binary MNIST).
* ``"static"``: the training set is binarized once, with ``binarization_seed``.
* ``"none"``: values as they are.

Whenever the training data is binary, the test set is binarized once with
``binarization_seed`` (static), so that test numbers are comparable across runs.

Training batches (:meth:`ImageData.train_batches`) follow one contract on every path, in
memory and streamed (:mod:`pyrovae.data.streaming`), and for any number of processes: the
epoch's order is ``torch.randperm`` with the trainer's generator, the same on every rank; each
global batch (``batch_size`` consecutive indices of that order, the last maybe smaller) is
split with ``torch.tensor_split(idx, world_size)`` and rank ``rank`` gets its part; dynamic
binarization draws the whole global batch with the shared generator and then slices, so that
every rank's draws are those of the one-process run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from ..config import DataRecord
from ..errors import DataError

__all__ = [
    "Binarization",
    "ImageData",
    "TrainTestData",
    "batches",
    "binarize_once",
    "check_grey_levels",
    "global_batches",
    "mutate_part",
]

Binarization = Literal["dynamic", "static", "none"]


def batches(
    x: torch.Tensor, y: torch.Tensor | None, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Consecutive ``(x[i:i + batch_size], y[i:i + batch_size])`` slices (``y`` may be
    ``None``, and its slices are then ``None``); the last batch may be smaller."""
    for start in range(0, x.shape[0], batch_size):
        stop = start + batch_size
        yield x[start:stop], None if y is None else y[start:stop]


def check_grey_levels(x: torch.Tensor, where: str, binarize: Binarization) -> None:
    """Raise :class:`DataError` unless ``x`` holds grey levels in [0, 1] wherever
    ``binarize`` (``"dynamic"``, ``"static"``) draws Bernoulli samples of them; the message
    says how to rescale the data (8-bit levels: / 255; standardized values: to [0, 1], or no
    binarization and a likelihood of real values)."""
    if binarize == "none" or x.numel() == 0:
        return
    low, high = float(x.min()), float(x.max())
    if low >= 0 and high <= 1:
        return
    if low >= 0 and high <= 255:
        fix = "they look like 8-bit levels: divide them by 255"
    else:
        fix = (
            "rescale them to [0, 1], e.g. (x - x.min()) / (x.max() - x.min()), or set "
            "data.binarize = 'none' with a likelihood of real values (model.likelihood = "
            "'gaussian')"
        )
    raise DataError(
        f"{where} holds values in [{low:.4g}, {high:.4g}], but data.binarize = {binarize!r} "
        f"draws binary images from grey levels in [0, 1]: {fix}"
    )


def binarize_once(images: torch.Tensor, seed: int) -> torch.Tensor:
    """One Bernoulli sample of grey levels ``images`` with a fixed ``seed`` (CPU generator, so
    the result is the same on every device)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.bernoulli(images.cpu(), generator=gen).to(images.device)


def global_batches(
    n: int, batch_size: int, generator: torch.Generator, rank: int, world_size: int
) -> Iterator[tuple[torch.Tensor, slice]]:
    """One epoch's global batches of ``n`` shuffled examples: ``(idx, part)``, the global
    batch's indices (on the generator's device) and the rows of it that are ``rank``'s
    (``torch.tensor_split`` into ``world_size`` parts; possibly empty)."""
    perm = torch.randperm(n, generator=generator, device=generator.device)
    for start in range(0, n, batch_size):
        idx = perm[start : start + batch_size]
        size, extra = divmod(idx.shape[0], world_size)  # tensor_split's part sizes
        begin = rank * size + min(rank, extra)
        yield idx, slice(begin, begin + size + (rank < extra))


def binarize_part(
    x: torch.Tensor, part: slice, global_size: int, generator: torch.Generator
) -> torch.Tensor:
    """A Bernoulli sample of the rows ``part`` of a global batch of ``global_size`` rows, of
    which ``x`` holds only those rows: the draws are those of the whole batch (the generator
    advances as for the whole batch), so every rank stays in step with the one-process run."""
    if x.shape[0] == global_size:
        return torch.bernoulli(x, generator=generator)
    full = x.new_zeros(global_size, x.shape[1])
    full[part] = x
    return torch.bernoulli(full, generator=generator)[part]


def mutate_part(
    x: torch.Tensor,
    part: slice,
    global_size: int,
    rate: float,
    binary: bool,
    generator: torch.Generator,
) -> torch.Tensor:
    """The rows ``part`` of a global batch of ``global_size`` rows (``x`` holds only those),
    each element replaced with probability ``rate`` by a random value: a fair bit for
    ``binary`` data, else one of the 256 levels ``k / 255`` (the perturbation that trains a
    background model, Ren et al. 2019, "Likelihood Ratios for Out-of-Distribution
    Detection"). The draws are the whole batch's, as :func:`binarize_part`'s are."""
    shape = (global_size, x.shape[1])
    replace = torch.rand(shape, generator=generator, device=x.device) < rate
    if binary:
        values = torch.randint(0, 2, shape, generator=generator, device=x.device)
    else:
        values = torch.randint(0, 256, shape, generator=generator, device=x.device) / 255
    replace, values = replace[part], values[part].to(x.dtype)
    return torch.where(replace, values, x)


class TrainTestData:
    """What the in-memory and the streamed data share: the test set as tensors on the device,
    the record of where the data came from, and one epoch of training batches (the contract
    in the module's docstring; each kind provides ``num_train`` and ``_batches``)."""

    name: str
    binarize: Binarization
    test_images: torch.Tensor
    test_labels: torch.Tensor
    image_shape: tuple[int, ...]
    num_classes: int
    source: dict[str, Any]
    validation_images: torch.Tensor | None
    validation_labels: torch.Tensor | None
    #: the fraction of training pixels replaced by random values per batch
    #: (``data.mutation_rate``; :func:`mutate_part`)
    mutation_rate: float = 0.0

    @property
    def data_dim(self) -> int:
        return self.test_images.shape[-1]

    @property
    def num_train(self) -> int:
        raise NotImplementedError

    @property
    def class_names(self) -> list[str]:
        """The name of each class, label 0 first (a folder's class subfolders), or ``[]``
        where the source does not name them."""
        return list(self.source.get("class_names", []))

    def record(self) -> DataRecord:
        """The ``data`` config keys that record where the data came from and its shape, so
        that a run directory can rebuild its model without the data and find it again."""
        return {
            "dataset": self.source["dataset"],
            "path": self.source["path"],
            "sha256": self.source["sha256"],
            "shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "class_names": self.class_names,
        }

    def train_batches(
        self,
        batch_size: int,
        generator: torch.Generator,
        *,
        rank: int = 0,
        world_size: int = 1,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of shuffled ``(x, y)`` training batches: rank ``rank``'s part of each
        global batch (see the module's docstring).

        ``generator`` (on the data's device) drives the shuffle and dynamic binarization; the
        last batch may be smaller."""
        epoch = global_batches(self.num_train, batch_size, generator, rank, world_size)
        if not self.mutation_rate:
            return self._batches(epoch, generator)
        return self._mutated(epoch, generator)

    def _mutated(
        self, epoch: Iterator[tuple[torch.Tensor, slice]], generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of :meth:`_batches` with ``mutation_rate`` of their pixels replaced by
        random values (:func:`mutate_part`), drawn for the whole global batch."""
        parts: list[tuple[int, slice]] = []

        def recorded() -> Iterator[tuple[torch.Tensor, slice]]:
            for idx, part in epoch:
                parts.append((idx.shape[0], part))
                yield idx, part

        binary = self.binarize != "none"
        for x, y in self._batches(recorded(), generator):
            size, part = parts.pop(0)
            yield mutate_part(x, part, size, self.mutation_rate, binary, generator), y

    def _batches(
        self, epoch: Iterator[tuple[torch.Tensor, slice]], generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError

    def num_train_batches(self, batch_size: int) -> int:
        return -(-self.num_train // batch_size)


@dataclass
class ImageData(TrainTestData):
    """Train and test sets of one data set, as tensors on ``device``.

    Attributes:
        train_images: ``(N_train, data_dim)``; grey levels for ``"dynamic"``/``"none"``,
            {0, 1} for ``"static"``.
        test_images: ``(N_test, data_dim)``; {0, 1} whenever training data is binary.
        train_labels, test_labels: ``(N,)`` int64 class labels (-1: unlabelled).
        image_shape: ``(C, H, W)`` of an image, or ``(D,)`` of a vector.
        num_classes: number of classes of the labels (0: unlabelled).
        source: where the data came from, as recorded in a run's config (``dataset``,
            ``path``, ``sha256``, ``class_names``; with ``shape`` and ``num_classes``, see
            :meth:`record`).
        validation_images, validation_labels: the examples held out of the training set to
            validate on (``train.validation``), like the test set; ``None`` without.
    """

    name: str
    binarize: Binarization
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    image_shape: tuple[int, ...]
    num_classes: int
    source: dict[str, Any] = field(default_factory=dict)
    validation_images: torch.Tensor | None = None
    validation_labels: torch.Tensor | None = None

    @property
    def num_train(self) -> int:
        """The number of training examples."""
        return self.train_images.shape[0]

    @property
    def train_preview(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Training examples and labels to check before training (here: all of them)."""
        return self.train_images, self.train_labels

    def _batches(
        self, epoch: Iterator[tuple[torch.Tensor, slice]], generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches sliced from the device tensors."""
        for idx, part in epoch:
            x = self.train_images[idx]
            if self.binarize == "dynamic":
                x = torch.bernoulli(x, generator=generator)
            yield x[part], self.train_labels[idx[part]]
