"""Examples for a trained run: its own test set, or new data prepared as its training data was.

:func:`load_run_source` turns a ``SOURCE`` of the commands that use a trained run (``pyrovae
encode``, ``pyrovae score``, ...) into the tensors its model takes:

* ``"test"``: the run's own test set, read again from the recorded source exactly as
  :func:`~pyrovae.data.load_data` reads it for ``pyrovae evaluate`` (``data.test_limit``
  included);
* a folder of PNG/JPEG images, flat or one subfolder per class (read by
  :func:`~pyrovae.data.files.read_folder`): each image converted to the run's channels, and
  resized to ``data.image_size`` where the run resized its images (otherwise it must have the
  run's size);
* a ``.npy`` file (every example) or a ``.npz`` file in the layouts of ``docs/data.md`` (its
  test arrays, or its training arrays where it holds no test set), read by
  :func:`~pyrovae.data.files.read_array_file`: uint8 levels scaled to [0, 1], floats as they
  are.

New data is binarized by the rule of the run's test set: once, with
``data.binarization_seed + 1``, whenever the run's training data is binary (``data.binarize``
``"static"`` or ``"dynamic"``), so that its numbers are comparable with the run's test
numbers. Examples whose shape is not the run's are refused with one line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..config import section_defaults
from ..errors import DataError
from . import data_shape, load_data
from .examples import Examples
from .files import read_array_file, read_folder
from .images import binarize_once

__all__ = ["TEST_SOURCE", "load_run_source"]

#: the ``SOURCE`` that names a run's own test set
TEST_SOURCE = "test"


def load_run_source(
    config: Mapping[str, Any],
    source: str | os.PathLike,
    *,
    device: torch.device | str = "cpu",
    root: str | os.PathLike | None = None,
    flag: str = "--data",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The examples ``source`` names, prepared for the run whose resolved config is ``config``.

    Args:
        config: the run's resolved config (``load_run(run).config``); its ``data`` section
            records the shape the model was built for and how the data was prepared.
        source: ``"test"`` (the run's test set), or the path of a folder of images or of a
            ``.npy``/``.npz`` file (see the module's docstring).
        device: where the tensors are put.
        root: the data root of the named data sets (``"test"`` of an MNIST run, ...); default
            :func:`~pyrovae.data.default_data_root`.
        flag: what the errors call ``source`` (the command's option).

    Returns:
        ``x`` ``(N, D)`` float32 on ``device`` (``D = C*H*W``, one flattened example a row,
        prepared as the run's test set is) and ``labels`` ``(N,)`` int64, or ``None`` when
        the source has none.

    Raises:
        DataError: the source cannot be read, or its examples do not have the run's shape (or
            hold classes the run does not know).

    Example::

        run = pyrovae.load_run("runs/mnist")
        x, labels = load_run_source(run.config, "test")        # (10000, 784), (10000,)
        x, _ = load_run_source(run.config, "new_digits.npy")   # (N, 784), None
    """
    data_config = {**section_defaults("data"), **config["data"]}
    if str(source) == TEST_SOURCE:
        data = load_data(data_config, device=device, root=root)
        return data.test_images, _labels(data.test_labels)
    shape = data_shape(data_config)
    examples = _read(Path(source).expanduser().resolve(), data_config, shape.image_shape, flag)
    if examples.item_shape != shape.image_shape:
        raise DataError(
            f"{examples.where} holds examples of shape {examples.item_shape}, but the run was "
            f"trained on {shape.image_shape}; give data of the run's shape"
        )
    x, y = examples.materialize()
    if shape.num_classes and examples.num_classes > shape.num_classes:
        raise DataError(
            f"{examples.where} holds class {examples.num_classes - 1}, but the run knows "
            f"classes 0 to {shape.num_classes - 1}; give labels among them (or none)"
        )
    if data_config["binarize"] in ("static", "dynamic"):
        x = binarize_once(x, data_config["binarization_seed"] + 1)  # the test set's rule
    return x.to(device), _labels(y.to(device))


def _read(
    path: Path, data_config: dict[str, Any], run_shape: tuple[int, ...], flag: str
) -> Examples:
    """The examples of the folder or array file ``path`` (the option ``flag``), read as the
    run's data was."""
    if not path.exists():
        raise DataError(
            f"{flag} '{path}' does not exist; give 'test' (the run's test set), a folder of "
            "images, or a .npy or .npz file"
        )
    if path.is_dir():
        channels = data_config["channels"] or (run_shape[0] if len(run_shape) == 3 else 0)
        examples, _ = read_folder(path, flag, data_config["image_size"], channels)
        return examples
    if path.suffix.lower() not in (".npy", ".npz"):
        raise DataError(
            f"{flag} '{path}' is neither a folder nor a .npy/.npz file; give 'test' (the run's "
            "test set), a folder of images, or a .npy or .npz file"
        )
    train, test, _ = read_array_file(path, flag)
    return test if test is not None else train


def _labels(y: torch.Tensor) -> torch.Tensor | None:
    """``y``, or ``None`` when no example has a label (every one -1)."""
    return y if bool((y >= 0).any()) else None
