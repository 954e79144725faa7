"""Training data read batch by batch from its source, for data larger than memory.

:class:`StreamingImageData` has the interface of :class:`~pyrovae.data.images.ImageData`, but
holds only the test set in memory: each training batch is read from its
:class:`~pyrovae.data.examples.Examples` (image files, a memory-mapped ``.npy``, a Dataset) by a
``torch.utils.data.DataLoader`` with ``workers`` processes, in pinned memory when training on
a GPU, copied to the device one batch ahead of the step that needs it, and binarized there.

The epoch's order is drawn in the main process with the trainer's generator and given to the
DataLoader as its sampler, and dynamic binarization uses the same generator on the device, in
the same order as in memory: for the same seed, a set that fits in memory gets the same
batches, hence the same numbers, on either path (static binarization aside: streamed, each
example is binarized with its own seed, so those draws differ from the in-memory ones).

An error met in a worker (a damaged image) is raised in the main process as it was raised in
the worker, its one-line message naming the file and the reason, not the worker's traceback;
``data.workers`` beyond the CPUs this process may use is lowered to them, said aloud.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.utils.data

from ..errors import PyrovaeError, PyrovaeWarning
from .examples import Examples
from .images import Binarization, TrainTestData, binarize_part, check_grey_levels

__all__ = ["StreamingImageData", "bounded_workers"]


def bounded_workers(workers: int) -> int:
    """``workers`` (``data.workers``), at most the CPUs this process may run on: more
    processes read no faster, and a huge number would fork process after process."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus = cpus or 1
    if workers > cpus:
        warnings.warn(
            PyrovaeWarning(
                f"data.workers = {workers:,} is more than the {cpus} CPUs this process may use; "
                f"reading with {cpus} workers (set data.workers = {cpus} or fewer)"
            ),
            stacklevel=2,
        )
        return cpus
    return workers


class _Failed:
    """An error a DataLoader worker met, handed to the main process as a value: the
    DataLoader would raise it with the worker's whole traceback in its message."""

    def __init__(self, error: PyrovaeError) -> None:
        self.error = error


class _Order(torch.utils.data.Sampler):
    """The current epoch's batches of indices (set before each epoch; read in the main
    process, so persistent workers see each epoch's new order)."""

    def __init__(self) -> None:
        self.parts: list[torch.Tensor] = []

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self.parts)

    def __len__(self) -> int:
        return len(self.parts)


class _Batches(torch.utils.data.Dataset):
    """``examples`` read a batch at a time: item ``indices`` is ``examples.batch(indices)``,
    binarized once per example with ``seed + index`` when ``static_seed`` is not None; its
    values checked to be grey levels where ``binarize`` binarizes them."""

    def __init__(
        self, examples: Examples, static_seed: int | None, binarize: Binarization = "none"
    ) -> None:
        self.examples, self.static_seed, self.binarize = examples, static_seed, binarize

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | _Failed:
        try:
            return self._read(indices)
        except PyrovaeError as exc:
            if torch.utils.data.get_worker_info() is None:  # the main process
                raise
            return _Failed(exc)

    def _read(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.examples.batch(indices)
        check_grey_levels(x, self.examples.where, self.binarize)
        if self.static_seed is not None:
            gen = torch.Generator()
            for row, i in enumerate(indices.tolist()):
                gen.manual_seed(self.static_seed + i)
                x[row] = torch.bernoulli(x[row], generator=gen)
        return x, y


@dataclass
class StreamingImageData(TrainTestData):
    """Training examples read per batch from ``train``; test set as tensors on ``device``.

    Attributes:
        train: the training examples (read in DataLoader workers).
        workers: DataLoader worker processes (0: read in the main process).
        device: where batches go.
        preview: the first training examples and labels, read once to check them.
        other attributes: as :class:`~pyrovae.data.images.ImageData`.
    """

    name: str
    binarize: Binarization
    train: Examples
    test_images: torch.Tensor
    test_labels: torch.Tensor
    image_shape: tuple[int, ...]
    num_classes: int
    device: torch.device
    workers: int
    binarization_seed: int
    preview: tuple[torch.Tensor, torch.Tensor]
    source: dict[str, Any] = field(default_factory=dict)
    validation_images: torch.Tensor | None = None
    validation_labels: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self._order = _Order()
        self._loader: torch.utils.data.DataLoader | None = None

    @property
    def num_train(self) -> int:
        return len(self.train)

    @property
    def train_preview(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The first training examples and labels (on the device), to check before
        training."""
        return self.preview

    def loader(self) -> torch.utils.data.DataLoader:
        """The DataLoader (made once: its workers persist across epochs)."""
        if self._loader is None:
            static = self.binarization_seed if self.binarize == "static" else None
            workers = self.workers
            self._loader = torch.utils.data.DataLoader(
                _Batches(self.train, static, self.binarize),
                sampler=self._order,
                batch_size=None,  # each sampled item is a whole batch of indices
                num_workers=workers,
                pin_memory=self.device.type == "cuda",
                prefetch_factor=4 if workers else None,
                persistent_workers=workers > 0,
                # its own generator (for the workers' seeds): the global RNG, which draws
                # the training's Monte Carlo samples, is left as the in-memory path leaves it
                generator=torch.Generator().manual_seed(0),
            )
        return self._loader

    def _batches(
        self, epoch: Iterator[tuple[torch.Tensor, slice]], generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches read by the DataLoader: the same order, parts and dynamic binarization
        as :class:`~pyrovae.data.images.ImageData` for the same generator."""
        batches = list(epoch)  # draws the epoch's order
        order = torch.cat([idx for idx, _ in batches]).cpu() if batches else torch.empty(0)
        parts, start = [], 0
        for idx, part in batches:
            parts.append(order[start : start + idx.shape[0]][part])
            start += idx.shape[0]
        self._order.parts = parts
        non_blocking = self.device.type == "cuda"
        pending: tuple[torch.Tensor, torch.Tensor] | None = None
        sizes = iter([(idx.shape[0], part) for idx, part in batches])
        for batch in self.loader():
            if isinstance(batch, _Failed):
                raise batch.error
            x, y = batch
            # issue this batch's copy before handing out the previous one: the copy overlaps
            # the previous step on a GPU
            ready = pending
            pending = (
                x.to(self.device, non_blocking=non_blocking),
                y.to(self.device, non_blocking=non_blocking),
            )
            if ready is not None:
                yield self._binarized(ready, *next(sizes), generator)
        if pending is not None:
            yield self._binarized(pending, *next(sizes), generator)

    def _binarized(
        self,
        batch: tuple[torch.Tensor, torch.Tensor],
        global_size: int,
        part: slice,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        if self.binarize == "dynamic":
            x = binarize_part(x, part, global_size, generator)
        return x, y
