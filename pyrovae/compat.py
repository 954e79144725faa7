"""The private Pyro and torch internals pyrovae relies on, in one place.

Each is a name that Pyro or torch uses internally without promising it: a release may move
or change it. pyrovae imports them only here, and ``tests/test_compat.py`` checks what each
must do, on the versions named in :data:`CHECKED_VERSIONS` (a new release is added there
once those tests pass on it). This module imports nothing of pyrovae.

* :func:`compute_log_r`: Pyro's ``pyro.infer.trace_elbo._compute_log_r``, the
  ``log p - log q`` terms of a trace pair whose sum weights the score-function terms of
  :class:`pyro.infer.Trace_ELBO` (:class:`pyrovae.Trace_ELBO` gives Pyro's gradient);
* :func:`is_alias_of`: torch's ``torch._C._is_alias_of``, whether two tensors share storage,
  which works on the fake tensors a recorded step is traced with (``data_ptr`` does not);
* :func:`standard_normal`: torch's ``torch.distributions.utils._standard_normal``, the draws
  ``Normal.rsample`` makes (so :class:`pyrovae.distributions.ReparameterizedNormal` draws
  exactly what ``Normal`` draws);
* :class:`FakeTensorMode` (``torch._subclasses.fake_tensor``): tensors with a shape and no
  data, on which :mod:`pyrovae.peak_memory` runs a program to measure its memory;
* :class:`TorchDispatchMode` (``torch.utils._python_dispatch``): a hook on every operation
  dispatched, with which :class:`pyrovae.peak_memory.LiveBytes` counts the bytes created;
* :func:`tree_leaves`, :func:`tree_map_only` (``torch.utils._pytree``): the tensors in nested
  arguments.
"""

from __future__ import annotations

from typing import Any

import torch
from pyro.infer.trace_elbo import _compute_log_r
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.distributions.utils import _standard_normal
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves, tree_map_only

__all__ = [
    "CHECKED_VERSIONS",
    "FakeTensorMode",
    "TorchDispatchMode",
    "compute_log_r",
    "is_alias_of",
    "standard_normal",
    "tree_leaves",
    "tree_map_only",
]

#: the releases on which the tests of these internals passed (``tests/test_compat.py``)
CHECKED_VERSIONS: dict[str, tuple[str, ...]] = {
    "pyro-ppl": ("1.9.2",),
    "torch": ("2.14.1",),
}


def compute_log_r(model_trace: Any, guide_trace: Any) -> Any:
    """Pyro's ``_compute_log_r``: the ``MultiFrameTensor`` of ``log p - log q`` per site of a
    model trace and a guide trace whose log-probabilities are computed."""
    return _compute_log_r(model_trace, guide_trace)


def is_alias_of(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` and ``b`` share storage (works on fake tensors, which have no data)."""
    return bool(torch._C._is_alias_of(a, b))  # type: ignore[attr-defined]


def standard_normal(
    shape: torch.Size, dtype: torch.dtype | None, device: torch.device | None
) -> torch.Tensor:
    """Standard normal draws of ``shape``, drawn as ``torch.distributions.Normal`` draws
    them."""
    return _standard_normal(shape, dtype=dtype, device=device)
