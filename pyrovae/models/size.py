"""The memory a model needs, measured on the model itself: to hold it, and to run its passes.

* To hold it: :func:`model_size` builds the model on PyTorch's ``meta`` device (tensors with a
  shape and no data; the few tensors of at most :data:`SMALL` numbers that constructors read
  are built for real) and counts its parameters, buffers and layers; :func:`check_model_fits`
  refuses, with the numbers, a model that would not fit in the memory available, *before*
  the real build allocates anything. The build stops as soon as the model has more than
  :data:`MAX_LAYERS` layers (:func:`layer_limit`): a config or run directory from someone
  else cannot exhaust the machine, nor keep it busy building.
* To run it: :func:`fit_batch_elements` measures the peak memory of one vectorized
  evaluation pass by running the model's own programs on fake tensors
  (:func:`pyrovae.peak_memory.peak_bytes`) and returns the largest pass, up to the one asked for,
  that fits in the memory available; :func:`check_training_step_fits` refuses a training
  step (its forward and backward) that cannot fit.

The measurements hold for any program, built-in or not, whose Python does not read the
values of its tensors; those that do are not measured (evaluation then takes the pass it is
asked for, and training is not checked).

Example::

    size = model_size(lambda: torch.nn.Linear(10**6, 10**6))   # 4 TB, nothing allocated
    size.parameters, size.layers   # (1000001000000, 1)
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyro
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .. import distributed, memory
from ..compat import tree_leaves, tree_map_only
from ..errors import ConfigError
from ..infer.log_weights import log_weights
from ..peak_memory import peak_bytes
from ..rng import preserved_rng
from .program import Program

__all__ = [
    "LAYERS",
    "MAX_LAYERS",
    "PASS_SHARE",
    "ModelSize",
    "check_model_fits",
    "check_training_step_fits",
    "fit_batch_elements",
    "layer_limit",
    "model_size",
    "pass_bytes",
]

#: the most layers a model may have: each costs Python objects and time to build, and no
#: VAE needs thousands
MAX_LAYERS = 1000
#: what counts as a layer (Pyro's masked layers, in its autoregressive flows, are Linear)
LAYERS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
#: memory of one layer's Python objects (module, parameters, hooks), an over-estimate
LAYER_BYTES = 16 * 1024
#: the share of the available memory one pass may take; the rest is room for what the
#: measurement does not see (the allocator's rounding, Python objects, a kernel's workspace
#: larger than its operands)
PASS_SHARE = 0.8


# ---------------------------------------------------------------------- holding the model
@dataclass(frozen=True)
class ModelSize:
    """The size of a model: its learned numbers (``parameters``), fixed numbers (``buffers``:
    masks, constants), layers (:data:`LAYERS`), and the bytes of each kind of number."""

    parameters: int = 0
    buffers: int = 0
    layers: int = 0
    parameter_bytes: int = 0
    buffer_bytes: int = 0

    @classmethod
    def of(cls, module: nn.Module) -> ModelSize:
        """The size of ``module`` (on any device, ``meta`` included)."""
        params, buffers = list(module.parameters()), list(module.buffers())
        return cls(
            parameters=sum(p.numel() for p in params),
            buffers=sum(b.numel() for b in buffers),
            layers=sum(isinstance(m, LAYERS) for m in module.modules()),
            parameter_bytes=sum(p.numel() * p.element_size() for p in params),
            buffer_bytes=sum(b.numel() * b.element_size() for b in buffers),
        )

    def bytes(self, training: bool = False) -> int:
        """Memory of the model, and with ``training`` of its gradients and Adam's two moments
        (four numbers per parameter), with :data:`LAYER_BYTES` per layer."""
        per_parameter = 4 if training else 1
        return per_parameter * self.parameter_bytes + self.buffer_bytes + LAYER_BYTES * self.layers


@contextlib.contextmanager
def layer_limit(limit: int = MAX_LAYERS) -> Iterator[None]:
    """Within the block, a :class:`ConfigError` stops the construction of the layer that makes
    more than ``limit`` (:data:`LAYERS`) exist, however deep in a constructor it is built. A
    component built through its registry gets its config key named in the message (e.g.
    ``model.encoder.type = 'mlp': ...``). Counts the layers every thread builds meanwhile."""
    layers: weakref.WeakSet[nn.Module] = weakref.WeakSet()

    def count(module: nn.Module, name: str, param: Any) -> None:
        if isinstance(module, LAYERS) and module not in layers:
            layers.add(module)
            if len(layers) > limit:
                raise ConfigError(
                    f"with it the model has more than the {limit:,} layers pyrovae builds "
                    "(Linear and convolution layers, all networks together); use fewer hidden "
                    "layers"
                )

    handle = nn.modules.module.register_module_parameter_registration_hook(count)
    try:
        yield
    finally:
        handle.remove()


#: the most numbers a tensor built for real by :func:`model_size` may have: a larger one is
#: built on the ``meta`` device
SMALL = 256
#: the functions that make a tensor from sizes or data alone, on the device they are given
_FACTORIES = frozenset(
    {
        torch.empty,
        torch.zeros,
        torch.ones,
        torch.full,
        torch.rand,
        torch.randn,
        torch.randint,
        torch.randperm,
        torch.arange,
        torch.linspace,
        torch.logspace,
        torch.eye,
        torch.tensor,
        torch.as_tensor,
    }
)


class _MetaButSmall(TorchFunctionMode):
    """Within the block, a factory function (:data:`_FACTORIES`) not given a device makes its
    tensor on the ``meta`` device when it has more than :data:`SMALL` numbers, for real (on
    the CPU) otherwise, and an operation with a ``meta`` argument runs on ``meta``. Small
    tensors stay real because constructors may read their values: Pyro's MADE networks
    (its autoregressive flows) read their output slices with ``.item()`` and draw their
    masks' ``randperm``. Real tensors then come only from small ones: at most an outer
    comparison of two index vectors, a MADE mask of :data:`SMALL` squared numbers."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in _FACTORIES and kwargs.get("device") is None:
            try:
                meta = func(*args, **{**kwargs, "device": "meta"})
            except (TypeError, RuntimeError) as exc:
                _refuse_unrepresentable(args, exc)
                raise
            return meta if meta.numel() > SMALL else func(*args, **kwargs)
        if any(isinstance(t, torch.Tensor) and t.is_meta for t in tree_leaves((args, kwargs))):
            args, kwargs = tree_map_only(torch.Tensor, lambda t: t.to("meta"), (args, kwargs))
        return func(*args, **kwargs)


def _refuse_unrepresentable(args: Any, exc: Exception) -> None:
    """Raise :class:`ConfigError` with the numbers when the factory call that raised ``exc``
    asked for a tensor of more numbers than a tensor can hold (2**63: no memory holds them)."""
    sizes = args[0] if args and isinstance(args[0], tuple | list) else args
    numbers = math.prod(n for n in tree_leaves(sizes) if isinstance(n, int))
    if numbers >= 2**63:
        raise ConfigError(
            f"a tensor of {numbers:,} numbers would need about "
            f"{memory.format_bytes(4 * numbers)} of memory, but only "
            f"{memory.format_bytes(memory.available_memory())} is available; make the networks "
            "smaller"
        ) from exc


def model_size(build: Callable[[], nn.Module]) -> ModelSize:
    """The size of the module ``build()`` returns, built on the ``meta`` device (all but its
    smallest tensors: :class:`_MetaButSmall`), so that nothing large is allocated, with the
    random state restored after (the real build afterwards draws the numbers it would have
    drawn) and the layers counted as they are built (:func:`layer_limit`).

    Raises:
        ConfigError: the model has more than :data:`MAX_LAYERS` layers (the build stops
            there), or ``build`` raises it.
    """
    with preserved_rng(torch.device("cpu")), _MetaButSmall(), layer_limit():
        module = build()
    return ModelSize.of(module)


def check_model_fits(
    size: ModelSize, training: bool = False, device: torch.device | None = None
) -> None:
    """Raise :class:`ConfigError` with the numbers when a model of ``size`` would not fit in
    the :func:`~pyrovae.memory.available_memory` of ``device`` (default: the host), with
    ``training`` together with its gradients and optimizer state."""
    need, have = size.bytes(training), memory.available_memory(device)
    if need > have:
        what = "to train" if training else "to hold"
        where = "" if device is None or device.type == "cpu" else f" on {device}"
        raise ConfigError(
            f"the model has {size.parameters:,} parameters in {size.layers:,} layers and needs "
            f"about {memory.format_bytes(need)} of memory {what}, but only "
            f"{memory.format_bytes(have)} is available{where}; make the networks smaller "
            "(model.encoder.hidden, model.decoder.hidden...)"
        )


# ---------------------------------------------------------------------- running the model
def pass_bytes(
    program: Program,
    x: torch.Tensor,
    y: torch.Tensor | None,
    num_particles: int,
    gradients: bool = False,
) -> int:
    """The peak memory, in bytes, of one vectorized evaluation pass: ``num_particles`` draws
    for each example of ``x`` (``(n, data_dim)``; ``y``: ``(n,)`` labels or ``None``), the
    guide and the model replayed on its draws
    (:func:`~pyrovae.infer.log_weights.log_weights`), in eval mode with quiet programs, under
    ``torch.no_grad()``; with ``gradients``, also the gradient of the log-weights with respect
    to the parameters (what an AIS pass holds to take its HMC steps, and more). Measured on
    fake tensors (:func:`pyrovae.peak_memory.peak_bytes`): nothing is allocated and no random
    number is drawn. Raises whatever the programs raise on fake tensors."""

    def run(x: torch.Tensor, y: torch.Tensor | None) -> None:
        with torch.set_grad_enabled(gradients):
            log_w = log_weights(program.model, program.guide, x, y, num_particles=num_particles)
            params = [p for p in program.parameters() if p.requires_grad]
            if gradients and params:
                torch.autograd.grad(log_w.sum(), params, allow_unused=True)

    with _isolated(program, x.device), program.evaluating():
        return peak_bytes(run, x, y, module=program)


@contextlib.contextmanager
def _isolated(program: Program, device: torch.device) -> Iterator[None]:
    """A block whose programs run quiet, with Pyro's param store of their own (what a program
    registers there on fake tensors is dropped) and the random state restored after."""
    with pyro.get_param_store().scope(), preserved_rng(device), program.quiet():
        yield


def _pass_layout(pairs: int, num_samples: int, num_examples: int) -> tuple[int, int]:
    """``(particles, examples)`` of the first pass of a run of at most ``pairs`` (sample,
    example) pairs: as the estimators lay their blocks out
    (:func:`pyrovae.evaluation.importance.block_size`)."""
    particles = min(num_samples, pairs)
    return particles, min(num_examples, max(1, pairs // particles))


def fit_batch_elements(
    program: Program,
    x: torch.Tensor,
    y: torch.Tensor | None,
    requested: int,
    num_samples: int,
    *,
    gradients: bool = False,
) -> int:
    """``max_batch_elements`` for evaluating ``program`` on ``x`` (``(N, data_dim)``, labels
    ``y``) with ``num_samples`` draws (or chains) per example: ``requested`` when its passes
    fit in :data:`PASS_SHARE` of the memory available on ``x``'s device, else the largest
    number of (sample, example) pairs per pass that does (at least 1).

    The pass is measured (:func:`pass_bytes`, with ``gradients`` for AIS) at the size
    ``requested`` lays out and, if it does not fit, at half of it, which gives
    ``bytes = fixed + per_pair x pairs``; the size that model predicts to fit is measured in
    turn, and lowered until it does. A program that cannot run on fake tensors gets
    ``requested``. In a run of several processes (``torchrun``) every process gets the
    smallest of their answers, so that they lay their blocks out alike.

    A smaller ``max_batch_elements`` cuts the work into more, smaller blocks: the results then
    depend on the block layout only through which draws are made (each block draws from its
    own seed), so an estimate made in smaller blocks is another draw of the same estimator,
    with the same expectation and spread.
    """
    budget = int(PASS_SHARE * memory.available_memory(x.device))
    try:
        fitted = _fit(program, x, y, requested, num_samples, gradients, budget)
    except Exception:  # the programs read their tensors' values: not measurable
        fitted = requested
    return _smallest_over_processes(fitted, x.device)


def _fit(
    program: Program,
    x: torch.Tensor,
    y: torch.Tensor | None,
    requested: int,
    num_samples: int,
    gradients: bool,
    budget: int,
) -> int:
    def measure(pairs: int) -> tuple[int, int]:
        particles, examples = _pass_layout(pairs, num_samples, x.shape[0])
        ys = None if y is None else y[:examples]
        return particles * examples, pass_bytes(program, x[:examples], ys, particles, gradients)

    pairs, need = measure(requested)
    if need <= budget:
        return requested
    half_pairs, half_need = measure(max(1, pairs // 2))
    if half_pairs >= pairs:
        return 1  # one pair per pass already
    per_pair = max(1.0, (need - half_need) / (pairs - half_pairs))
    fixed = need - per_pair * pairs
    candidate = max(1, min(pairs - 1, int((budget - fixed) / per_pair)))
    for _ in range(8):
        pairs, need = measure(candidate)
        if need <= budget or candidate == 1:
            return candidate
        candidate = max(1, min(candidate - 1, int(candidate * budget / need)))
    return candidate


def _smallest_over_processes(value: int, device: torch.device) -> int:
    """The smallest ``value`` of all the processes of a run (``value`` in a one-process run)."""
    return int(distributed.all_reduce_min(torch.tensor(value, device=device)))


def check_training_step_fits(
    program: Program, elbo: Any, x: torch.Tensor, y: torch.Tensor | None, what: str
) -> None:
    """Raise :class:`ConfigError` when one training step, the forward and backward of
    ``elbo.differentiable_loss(program.model, program.guide, x, y)`` (a Pyro ELBO; ``x`` a
    batch ``(B, data_dim)``), would not fit in :data:`PASS_SHARE` of the memory available on
    ``x``'s device, naming the settings ``what`` (e.g. ``"objective.num_particles x
    train.batch_size = 5 x 128"``). A batch cannot be cut into smaller passes without changing
    the run, so it is refused, not shrunk. Measured on fake tensors; a program that cannot
    run on them is not checked."""

    def step(x: torch.Tensor, y: torch.Tensor | None) -> None:
        with torch.enable_grad():
            loss = elbo.differentiable_loss(program.model, program.guide, x, y)
            params = [p for p in program.parameters() if p.requires_grad]
            if params:
                torch.autograd.grad(loss, params, allow_unused=True)

    have = int(PASS_SHARE * memory.available_memory(x.device))
    try:
        with _isolated(program, x.device):
            need = peak_bytes(step, x, y, module=program)
    except Exception:  # the programs read their tensors' values: not measurable
        return
    if need > have:
        fit = int(elbo.num_particles * x.shape[0] * have / need)
        raise ConfigError(
            f"{what} needs about {memory.format_bytes(need)} of memory per training step, but "
            f"only {memory.format_bytes(have)} is available for it; lower them (about "
            f"{fit:,} (particle, example) pairs fit)"
        )
