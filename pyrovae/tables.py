"""Per-example outputs written as data files: NumPy, PyTorch or CSV, chosen by the suffix.

What the commands that use a trained run write (``pyrovae encode``, ``pyrovae score``,
``pyrovae sample --out FILE.npy``) is a set of named columns, one row per example, each a
tensor ``(N,)`` or ``(N, K)``. :func:`write_columns` writes them atomically
(:func:`~pyrovae.atomic.atomic_write_bytes`) as

* ``.npy``: one NumPy structured array ``(N,)`` with a field per column (``(K,)`` sub-arrays
  for ``(N, K)`` columns): ``np.load(path)["mean"]`` is ``(N, K)``; no pickle is needed;
* ``.pt``: a ``dict`` of CPU tensors, ``torch.load(path)["mean"]``;
* ``.csv``: a header and one line per example; an ``(N, K)`` column is written as the columns
  ``mean_0 ... mean_{K-1}``.

A single array (the samples of ``pyrovae sample``) is written by :func:`write_array` as a plain
``.npy`` array or ``.pt`` tensor.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write_bytes, check_output_path
from .errors import PyrovaeError

__all__ = ["COLUMN_SUFFIXES", "check_suffix", "write_array", "write_columns"]

#: the suffixes :func:`write_columns` writes
COLUMN_SUFFIXES = (".npy", ".pt", ".csv")


def check_suffix(path: str | Path, suffixes: Sequence[str], flag: str = "--out") -> str:
    """The suffix of the output ``path`` (lower case; the first of ``suffixes`` for a device
    or FIFO without one, such as ``/dev/null``), or a :class:`PyrovaeError` in one line naming
    the ones that are written; an output that cannot be written (a run's own file, a folder:
    :func:`~pyrovae.atomic.check_output_path`) is refused first, before any work."""
    special = check_output_path(path)
    suffix = Path(path).suffix.lower()
    if special and suffix not in suffixes:
        return suffixes[0]
    if suffix not in suffixes:
        raise PyrovaeError(
            f"{flag} '{path}' has an unknown suffix {suffix or '(none)'!r}; give a file ending "
            f"in {', '.join(suffixes)}"
        )
    return suffix


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def write_columns(path: str | Path, columns: Mapping[str, torch.Tensor]) -> Path:
    """Write ``columns`` (each ``(N,)`` or ``(N, K)``, the same ``N``) to ``path`` as its
    suffix says (see the module docstring), atomically; returns the path."""
    path = Path(path)
    suffix = check_suffix(path, COLUMN_SUFFIXES)
    if suffix == ".pt":
        tensors = {k: v.detach().cpu() for k, v in columns.items()}
        atomic_write_bytes(path, lambda f: torch.save(tensors, f))
    elif suffix == ".npy":
        arrays = {k: _numpy(v) for k, v in columns.items()}
        n = len(next(iter(arrays.values())))
        dtype = [(k, a.dtype, a.shape[1:]) for k, a in arrays.items()]
        table = np.empty(n, dtype=dtype)
        for k, a in arrays.items():
            table[k] = a
        atomic_write_bytes(path, lambda f: np.save(f, table, allow_pickle=False))
    else:
        atomic_write_bytes(path, lambda f: f.write(_csv(columns).encode()))
    return path


def _csv(columns: Mapping[str, torch.Tensor]) -> str:
    """The CSV text of ``columns``: floats written as Python writes them (``repr``, so the
    values read back exactly), ``(N, K)`` columns split into ``name_0 ... name_{K-1}``."""
    header: list[str] = []
    parts: list[np.ndarray] = []
    for name, value in columns.items():
        array = _numpy(value)
        if array.ndim == 1:
            header.append(name)
            parts.append(array[:, None].astype(object))
        else:
            header += [f"{name}_{i}" for i in range(array.shape[1])]
            parts.append(array.astype(object))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(np.concatenate(parts, axis=1).tolist())
    return text.getvalue()


def write_array(path: str | Path, array: torch.Tensor) -> Path:
    """Write one tensor to ``path``: ``.npy`` (a NumPy array) or ``.pt`` (a CPU tensor),
    atomically; returns the path."""
    path = Path(path)
    suffix = check_suffix(path, (".npy", ".pt"))
    value = array.detach().cpu()
    if suffix == ".pt":
        atomic_write_bytes(path, lambda f: torch.save(value, f))
    else:
        atomic_write_bytes(path, lambda f: np.save(f, value.numpy(), allow_pickle=False))
    return path
