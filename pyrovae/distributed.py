"""Data-parallel runs on :mod:`torch.distributed`: the process group, its rank and size, and
the few collectives training and evaluation use.

A command launched by ``torchrun`` (``torchrun --nproc_per_node=N -m pyrovae ...``) finds its
process group in the environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``); :func:`process_group` joins it for the length of the
command (``gloo`` for CPU tensors, ``nccl`` for CUDA ones with one GPU per process, chosen by
``LOCAL_RANK``) and leaves it after. Outside torchrun nothing is initialised and every helper
here is the identity of a one-process world, so single-process numbers are unchanged.

Errors: the first process to fail prints its one-line message (the others stay quiet, so a
mistake every process makes is told once) and exits; a process whose collective then fails
because a peer is gone raises :class:`~pyrovae.errors.DistributedError`, so every process ends
with a non-zero exit instead of waiting. torchrun stops the remaining processes of a run when
one exits with an error.

Example::

    from pyrovae import distributed

    with distributed.process_group():
        print(distributed.rank(), distributed.world_size(), distributed.is_main())
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from .errors import ConfigError, DistributedError

__all__ = [
    "GradientAllReduce",
    "all_reduce_min",
    "all_reduce_sum",
    "block_shard",
    "broadcast_object",
    "broadcast_tensor",
    "check_global_batch",
    "first_to_fail",
    "gather_examples",
    "is_main",
    "launched",
    "process_group",
    "rank",
    "world_size",
]

#: how long a collective waits for a silent peer before failing (a peer that exits closes its
#: connections, which fails the collective at once; this bounds the wait for a hung one)
TIMEOUT = timedelta(minutes=30)
#: key of the store counting the processes that failed (the first one prints its error)
_FAILURES = "pyrovae/failures"
_store: Any = None
_first_failure = True


def launched() -> bool:
    """Whether this process was started by a launcher of several processes (``torchrun``
    sets ``WORLD_SIZE`` and ``RANK``)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def world_size() -> int:
    """The number of processes of the run (1 outside a process group)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    """This process's rank, ``0 <= rank < world_size()`` (0 outside a process group)."""
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """Whether this is the process that writes files and prints (rank 0)."""
    return rank() == 0


def first_to_fail() -> bool:
    """Whether this process was the first of its run to fail (always, outside a run of
    several processes): the one that prints the error."""
    return _first_failure


@contextlib.contextmanager
def process_group() -> Iterator[None]:
    """Join the process group described by torchrun's environment for the block (nothing
    when not :func:`launched`), and leave it after.

    The backend is ``gloo`` for CPU tensors and, when CUDA is available, ``nccl`` for CUDA
    tensors; each process then uses the GPU ``LOCAL_RANK`` (``torch.cuda.set_device``), so
    ``device = "cuda"`` (or ``"auto"``) means one GPU per process. Raises
    :class:`~pyrovae.errors.ConfigError` when there are fewer GPUs than processes on a
    machine that has GPUs."""
    global _store, _first_failure
    if not launched() or dist.is_initialized():
        yield
        return
    backend = "gloo"
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"process {local_rank} of this machine has no GPU of its own "
                f"({torch.cuda.device_count()} visible); start at most that many processes per "
                "machine (torchrun --nproc_per_node)"
            )
        torch.cuda.set_device(local_rank)
        backend = "cpu:gloo,cuda:nccl"
    # torch imports this module lazily (torch._dynamo does, when the first optimizer is
    # built); its functions' defaults hold the default process group of the moment they are
    # defined. Imported inside the group, they would keep it, and its gloo threads, alive
    # after destroy_process_group, into the interpreter's shutdown, where a thread freeing a
    # finished collective aborts the process ("terminate called without an active exception").
    importlib.import_module("torch.distributed.nn.functional")

    store, rank_, size = next(dist.rendezvous("env://", timeout=TIMEOUT))
    _store = store
    dist.init_process_group(
        backend, store=dist.PrefixStore("pg", store), rank=rank_, world_size=size, timeout=TIMEOUT
    )
    try:
        yield
    except BaseException:
        try:
            _first_failure = int(store.add(_FAILURES, 1)) == 1
        except Exception:  # the store's host is gone: say it here
            _first_failure = True
        raise
    finally:
        dist.destroy_process_group()
        _store = None


@contextlib.contextmanager
def _collective(what: str) -> Iterator[None]:
    """Turn a failed collective (a peer exited or hung) into a one-line
    :class:`~pyrovae.errors.DistributedError`."""
    try:
        yield
    except RuntimeError as exc:
        raise DistributedError(
            f"process {rank()} of {world_size()} could not {what} with the others: another "
            f"process of the run stopped (its error is printed above) "
            f"({type(exc).__name__}: {str(exc).strip().splitlines()[0][:160] if str(exc) else ''})"
        ) from None


def check_global_batch(batch_size: int, size: int | None = None) -> None:
    """``train.batch_size`` is the global batch: refuse one that ``size`` processes (default
    :func:`world_size`) cannot share equally."""
    size = world_size() if size is None else size
    if batch_size % size:
        lower, upper = batch_size // size * size, -(-batch_size // size) * size
        fix = f"{lower} or {upper}" if lower else f"{upper}"
        raise ConfigError(
            f"train.batch_size = {batch_size} is the global batch, which {size} processes must "
            f"share equally; use a multiple of {size} (e.g. {fix})"
        )


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over the processes, in place (no-op in a one-process world)."""
    if world_size() > 1:
        with _collective("sum a tensor"):
            dist.all_reduce(tensor)
    return tensor


def all_reduce_min(tensor: torch.Tensor) -> torch.Tensor:
    """The smallest of ``tensor``'s values over the processes, elementwise, in place (no-op
    in a one-process world): how processes agree on a size each measured for itself."""
    if world_size() > 1:
        with _collective("agree on a smallest value"):
            dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return tensor


def broadcast_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """Rank 0's ``tensor`` on every process, in place (same shape and dtype everywhere)."""
    if world_size() > 1:
        with _collective("receive rank 0's tensor"):
            dist.broadcast(tensor, src=0)
    return tensor


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` (any picklable object) on every process; the others pass ``None``."""
    if world_size() == 1:
        return value
    box = [value]
    with _collective("receive rank 0's data"):
        dist.broadcast_object_list(box, src=0)
    return box[0]


def block_shard(num_examples: int, block_size: int, size: int | None = None) -> tuple[int, int]:
    """This process's ``(start, stop)`` of ``num_examples`` examples cut into blocks of
    ``block_size`` (the last may be smaller): whole blocks only, a contiguous run of them per
    rank, in rank order (a rank may get none: ``start == stop``)."""
    size = world_size() if size is None else size
    num_blocks = -(-num_examples // block_size)
    first, last = (num_blocks * rank() // size, num_blocks * (rank() + 1) // size)
    return min(first * block_size, num_examples), min(last * block_size, num_examples)


def gather_examples(tensor: torch.Tensor, num_examples: int) -> torch.Tensor:
    """Concatenate in rank order the ranks' per-example ``tensor`` (examples along the last
    dimension, ``(*shape, n_rank)``) into ``(*shape, num_examples)`` on every process."""
    if world_size() == 1:
        return tensor
    size = world_size()
    counts = torch.zeros(size, dtype=torch.int64, device=tensor.device)
    counts[rank()] = tensor.shape[-1]
    all_reduce_sum(counts)
    sizes = counts.tolist()
    if sum(sizes) != num_examples:
        raise DistributedError(
            f"the processes hold {sum(sizes)} examples' estimates between them, expected "
            f"{num_examples}"
        )
    longest = max(sizes)
    padded = tensor.new_zeros((*tensor.shape[:-1], longest))
    padded[..., : tensor.shape[-1]] = tensor
    parts = [torch.empty_like(padded) for _ in range(size)]
    with _collective("gather the per-example results"):
        dist.all_gather(parts, padded.contiguous())
    return torch.cat([part[..., :n] for part, n in zip(parts, sizes)], dim=-1)


class GradientAllReduce:
    """The gradient of the global batch from each process's gradient of its part.

    Each process leaves in ``.grad`` the gradient of its part's mean loss ``loss_r / n_r``;
    :meth:`__call__` weights it by ``n_r / B`` (``B`` the global batch), sums the weighted
    gradients and the parts' losses over the processes in **one** all-reduce of a flat buffer,
    and writes back the gradient of ``(sum_r loss_r) / B``: that of the global batch's mean
    loss, as one process computing the whole batch would leave it. Everything stays on the
    device (no host sync): ``n_r`` and ``B`` are host integers.

    Args:
        params: the parameters whose gradients are averaged (the optimizer's), in the same
            order on every process.
    """

    def __init__(self, params: Sequence[torch.nn.Parameter]) -> None:
        self.params = list(params)
        self.sizes = [p.numel() for p in self.params]
        #: which parameters the loss gives a gradient (kept from the last non-empty part, for
        #: a process whose part of a small last batch is empty)
        self.has_grad = [True] * len(self.params)

    def __call__(self, loss: torch.Tensor | None, local: int, global_: int) -> torch.Tensor:
        """Average the gradients; ``loss`` is this part's summed loss (``None`` for an empty
        part, whose gradients are then zero). Returns the global batch's summed loss."""
        if loss is not None:
            self.has_grad = [p.grad is not None for p in self.params]
        weight = local / global_
        first = self.params[0]
        flat = torch.cat(
            [
                p.grad.reshape(-1) * weight
                if loss is not None and p.grad is not None
                else first.new_zeros(p.numel())
                for p in self.params
            ]
            + [first.new_zeros(1) if loss is None else loss.reshape(1).to(first.dtype)]
        )
        all_reduce_sum(flat)
        *grads, total = flat.split([*self.sizes, 1])
        for p, g, has in zip(self.params, grads, self.has_grad):
            p.grad = g.view_as(p) if has else None
        return total.reshape(())
