"""The peak memory of a computation, measured without running it: :func:`peak_bytes` runs a
function on fake tensors (tensors that carry a shape, a dtype and a device but no data: every
operation computes the shapes of its results and nothing else), so that measuring a pass over
a million examples allocates nothing and takes the time of a pass over one; :class:`LiveBytes`
does the counting, and counts real tensors just as well.

The fake tensors are PyTorch's ``FakeTensorMode`` and the counting a ``TorchDispatchMode``,
both private to torch and imported through :mod:`pyrovae.compat`.

Example::

    peak = peak_bytes(lambda x: torch.relu(x @ x.T), torch.empty(10_000, 100))
    format_bytes(peak)   # '1.2 GB': the product, the relu's result, a workspace as large
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.multiprocessing.reductions import StorageWeakRef

from .compat import FakeTensorMode, TorchDispatchMode, tree_leaves

__all__ = ["LiveBytes", "peak_bytes"]


class LiveBytes(TorchDispatchMode):
    """Within the block, the bytes held by the tensors its operations create: ``now`` (those
    still alive) and ``peak`` (the most at any moment), counted per storage (a view or an
    in-place result adds nothing) from the moment each operation returns until the storage is
    freed.

    An operation is taken to hold, while it runs, one more buffer as large as the largest of
    its arguments and results: the workspace of a kernel that the dispatcher does not see (a
    convolution's unfolded input, the temporaries of a fused loss). On CPU that brings the
    count within 1.5x of the measured high-water mark of the resident set for the MLP,
    convolutional and colour models (``bench/memory_estimate.py``). Memory allocated before the
    block (the parameters, the inputs) is not counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.now = 0
        self.peak = 0
        self._live: dict[StorageWeakRef, int] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        seen = {StorageWeakRef(t.untyped_storage()) for t in inputs}
        out = func(*args, **kwargs)
        for ref in [ref for ref in self._live if ref.expired()]:
            self.now -= self._live.pop(ref)
        outputs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        for tensor in outputs:
            storage = tensor.untyped_storage()
            ref = StorageWeakRef(storage)
            if ref not in seen and ref not in self._live:
                self._live[ref] = storage.nbytes()
                self.now += storage.nbytes()
                seen.add(ref)
        workspace = max((t.numel() * t.element_size() for t in inputs + outputs), default=0)
        self.peak = max(self.peak, self.now + workspace)
        return out


class _Call(nn.Module):
    """``fn(*args)`` as the forward of a module holding ``module``, so that
    :func:`torch.func.functional_call` can swap ``module``'s tensors for the call."""

    def __init__(self, module: nn.Module, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.module = module
        self.fn = fn

    def forward(self, *args: Any) -> Any:
        return self.fn(*args)


def peak_bytes(
    fn: Callable[..., Any], *args: torch.Tensor | None, module: nn.Module | None = None
) -> int:
    """The peak memory, in bytes, of the tensors that ``fn(*args)`` creates (:class:`LiveBytes`),
    measured by running it on fake tensors: each of ``args`` (``None`` passes through) becomes
    a contiguous fake tensor of its shape, dtype and device, and so does each parameter and
    buffer of ``module`` (swapped in for the call with :func:`torch.func.functional_call`;
    gradients taken in ``fn`` are then gradients of the fake ones). Tensors ``fn`` reaches
    otherwise are used as they are; nothing real is allocated or written.

    Raises whatever ``fn`` raises on fake tensors: a program whose Python reads the values of
    its tensors (``if x.sum() > 0``, ``.item()``) cannot be measured this way.
    """
    tracker = LiveBytes()
    # warnings are left to the real run, which shows them once
    with FakeTensorMode(allow_non_fake_inputs=True) as mode, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fakes = tuple(None if a is None else mode.from_tensor(a).contiguous() for a in args)
        if module is None:
            with tracker:
                fn(*fakes)
        else:
            state = {
                f"module.{name}": _fake_like(mode, tensor)
                for name, tensor in (*module.named_parameters(), *module.named_buffers())
            }
            with tracker:
                functional_call(_Call(module, fn), state, fakes)
    return tracker.peak


def _fake_like(mode: FakeTensorMode, tensor: torch.Tensor) -> torch.Tensor:
    """A fake tensor like ``tensor``, a leaf that requires a gradient where ``tensor`` does."""
    fake = mode.from_tensor(tensor.detach())
    return fake.requires_grad_(tensor.requires_grad)
