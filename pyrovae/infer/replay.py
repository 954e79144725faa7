"""The gradient of a Pyro ELBO for a training batch, replayed from a recorded graph.

Each training step runs the guide and the model through Pyro's effect handlers, builds
``torch.distributions`` objects and walks the traces: Python work whose cost does not shrink
with the network (on a GPU it can be most of a step; ``docs/performance.md`` has the measured
share). For a fixed program
and fixed input shapes, the torch operations that compute the loss *and its gradient* are the
same at every step; only their values change. :class:`ELBOGradient` records those operations
once per input signature with ``make_fx`` (:mod:`torch.fx`) and then replays the recorded graph
instead of running the programs. This is the idea of Pyro's
:class:`~pyro.infer.JitTrace_ELBO` (trace once, replay), with torch.fx in place of TorchScript
and the backward pass included in the record.

* The record is taken with fake tensors (nothing is computed) and Pyro's validation off. A
  program whose Python reads tensor values (``.item()``, ``if tensor:``, data-dependent
  shapes) cannot be recorded: it runs eagerly instead, with a warning saying why.
* Random draws are recorded as operations on torch's global generator, so a replay draws
  exactly the numbers the eager program would draw. On CPU the loss and the gradients are
  bitwise those of ``elbo.differentiable_loss(...)`` and ``backward()``; the first replay of
  every signature is checked against an eager run from the same random state.
* The replay runs under ``torch.no_grad()``: the backward pass is in the record, so no autograd
  graph is built.
* What the record cannot see is frozen in it: Python values (floats, flags) that the programs
  read and that change between steps. Pass changing values as tensors (as the KL weight is),
  or run eagerly (``train.replay_steps = false``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyro
import torch
from pyro.infer import ELBO, TraceEnum_ELBO
from pyro.infer.util import is_validation_enabled
from torch import nn
from torch.func import functional_call
from torch.fx.experimental.proxy_tensor import make_fx

from ..models.program import Program, as_program
from ..rng import preserved_rng
from .elbo_terms import ELBOTerms
from .latent_scale import scale_latents

#: relative and absolute tolerance of the check of a first replay against an eager run: the
#: operations are the same, so on CPU they agree bitwise; the slack is for devices whose kernels
#: may reorder float sums between runs (float32 rounding, ~1e-7 relative per operation)
CHECK_RTOL, CHECK_ATOL = 1e-4, 1e-6

Signature = tuple[Any, ...]


class _NegativeELBO(nn.Module):
    """``elbo.differentiable_loss(model, guide, x, y)`` as a module, the latent sites of
    ``vae.model`` and ``vae.guide`` weighted by ``kl_scale`` (:func:`scale_latents`) when it is
    given, so that :func:`torch.func.functional_call` can swap in the parameters being
    recorded; ``kl_scale`` is an input of the recorded graph, read afresh at every replay.

    Returns ``(loss, distortion, rate)``, the last two read from the same draws
    (:class:`~pyrovae.infer.elbo_terms.ELBOTerms`), or ``(loss,)`` for an objective that
    enumerates discrete latents (whose sites' values are not one draw per example)."""

    def __init__(self, vae: Program, elbo: ELBO) -> None:
        super().__init__()
        self.vae = vae
        self.elbo: Any = elbo  # Pyro's ELBO interface: any Pyro ELBO works
        self.with_terms = not isinstance(elbo, TraceEnum_ELBO)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None, kl_scale: torch.Tensor | None
    ) -> tuple[torch.Tensor, ...]:
        model, guide = self.vae.model, self.vae.guide
        if kl_scale is not None:
            model, guide = scale_latents(model, kl_scale), scale_latents(guide, kl_scale)
        if not self.with_terms:
            with self.vae.param_store_registration(False):
                return (self.elbo.differentiable_loss(model, guide, x, y),)
        model_terms, guide_terms = ELBOTerms(), ELBOTerms()
        with self.vae.param_store_registration(False):
            loss = self.elbo.differentiable_loss(model_terms(model), guide_terms(guide), x, y)
        zero = loss.new_zeros(())
        particles = self.elbo.num_particles
        distortion = -_or(model_terms.observed, zero) / particles
        rate = (_or(guide_terms.latent, zero) - _or(model_terms.latent, zero)) / particles
        return loss, distortion, rate


def _or(value: torch.Tensor | None, default: torch.Tensor) -> torch.Tensor:
    return default if value is None else value


@dataclass
class _Record:
    """A recorded graph ``(*params, *state, x, y, kl_scale) -> [loss, *terms, *grads]``, how
    many terms (distortion and rate, or none) it returns, and which parameters it returns
    gradients for (those the loss does not use get none)."""

    graph: Callable[..., list[torch.Tensor]]
    has_grad: list[bool]
    num_terms: int
    checked: bool = False


class ELBOGradient:
    """``loss = elbo_gradient(x, y, kl_scale)``: the negative ELBO of a batch and its gradient.

    Returns the loss summed over the batch (nats per batch) as a detached tensor, and leaves
    the gradient of ``loss / x.shape[0]`` in ``.grad`` of every parameter of ``vae`` that
    requires one (parameters the loss does not use get ``None``), exactly as
    ``optimizer.zero_grad(set_to_none=True)`` then ``(loss / N).backward()`` would.

    Args:
        elbo: the Pyro ELBO (e.g. :class:`~pyro.infer.Trace_ELBO`).
        vae: the model whose ``model`` and ``guide`` it scores (a
            :class:`~pyrovae.models.program.Program`, or a module of one's own, adapted). Its
            parameters and buffers are collected here, once, as an optimizer collects them.
        replay: record the computation once per input signature and replay it (see the module
            docstring); ``False`` runs the Pyro programs at every call.

    Calls: ``x`` is ``(N, data_dim)``, ``y`` the ``(N,)`` labels or ``None``, ``kl_scale`` a
    0-d tensor weighting the latent sites of model and guide (the KL term) or ``None``. While
    Pyro validation is enabled the programs always run eagerly, so that their checks see the
    values.
    """

    def __init__(self, elbo: ELBO, vae: nn.Module, replay: bool = True) -> None:
        self.loss = _NegativeELBO(as_program(vae), elbo)
        self.replay = replay
        named = list(self.loss.named_parameters())
        #: the parameters that get gradients, and the other tensors the programs read
        self.params = {n: p for n, p in named if p.requires_grad}
        self.state = {
            **dict(self.loss.named_buffers()),
            **{n: p for n, p in named if not p.requires_grad},
        }
        self._records: dict[Signature, _Record | None] = {}
        #: ``(distortion, rate)`` of the last call's batch (nats per batch, detached device
        #: tensors: see :mod:`~pyrovae.infer.elbo_terms`), or ``None`` for an objective that
        #: enumerates discrete latents
        self.terms: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def records(self) -> dict[Signature, str]:
        """What happens to each input signature seen so far (``(vae.training, *per input:
        (shape, stride, dtype, device, requires_grad) or None)``): ``"recorded"`` (recorded,
        its first replay not yet checked), ``"replayed"`` (checked: replayed from now on) or
        ``"eager"`` (the programs run at every call)."""
        return {
            signature: "eager" if record is None else "replayed" if record.checked else "recorded"
            for signature, record in self._records.items()
        }

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor | None = None, kl_scale: torch.Tensor | None = None
    ) -> torch.Tensor:
        if not self.replay or is_validation_enabled():
            losses, grads = self._eager(x, y, kl_scale)
        else:
            inputs = [*self.params.values(), *self.state.values(), x, y, kl_scale]
            signature = (self.loss.vae.training, *map(_describe, inputs))
            if signature not in self._records:
                self._records[signature] = self._record(inputs)
            record = self._records[signature]
            if record is None:
                losses, grads = self._eager(x, y, kl_scale)
            elif not record.checked:
                losses, grads = self._check(record, signature, inputs)
            else:
                losses, grads = _replay(record, inputs)
        for param, grad in zip(self.params.values(), grads):
            param.grad = grad
        loss, *terms = losses
        self.terms = (terms[0], terms[1]) if terms else None
        return loss

    # ------------------------------------------------------------------ eager
    def _eager(
        self, x: torch.Tensor, y: torch.Tensor | None, kl_scale: torch.Tensor | None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
        """``[loss, *terms]`` (detached) and the gradients, from a run of the programs."""
        loss, *terms = self.loss(x, y, kl_scale)
        grads = torch.autograd.grad(
            loss / x.shape[0], list(self.params.values()), allow_unused=True
        )
        return [loss.detach(), *(t.detach() for t in terms)], list(grads)

    # ------------------------------------------------------------------ record and replay
    def _record(self, inputs: list[Any]) -> _Record | None:
        """Record the loss-and-gradient graph for the signature of ``inputs`` (``[*params,
        *state, x, y, kl_scale]``), or ``None`` (with a warning) when the programs cannot be
        recorded."""
        names = [*self.params, *self.state]
        num_params = len(self.params)
        has_grad: list[bool] = []
        num_terms = 2 if self.loss.with_terms else 0

        def loss_and_grads(*inputs: Any) -> list[torch.Tensor]:
            *tensors, x, y, kl_scale = inputs
            loss, *terms = functional_call(self.loss, dict(zip(names, tensors)), (x, y, kl_scale))
            grads = torch.autograd.grad(loss / x.shape[0], tensors[:num_params], allow_unused=True)
            has_grad[:] = [g is not None for g in grads]
            detached = [loss.detach(), *(t.detach() for t in terms)]
            return [*detached, *(g for g in grads if g is not None)]

        try:
            with pyro.validation_enabled(False), torch.enable_grad():
                graph = make_fx(loss_and_grads, tracing_mode="fake")(*inputs)
        except Exception as exc:  # any failure to record means: run eagerly
            message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            _warn_eager(
                inputs[-3],
                f"recording the programs as a graph failed ({type(exc).__name__}: {message})",
            )
            return None
        graph.graph.eliminate_dead_code()
        graph.recompile()
        return _Record(graph, has_grad, num_terms)

    def _check(
        self, record: _Record, signature: Signature, inputs: list[Any]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
        """Replay, then run eagerly from the same random state; keep the record only if both
        give the same loss, terms and gradients. Returns the eager results (and random
        state)."""
        x, y, kl_scale = inputs[-3:]
        with preserved_rng(x.device):
            replayed_losses, replayed_grads = _replay(record, inputs)
        losses, grads = self._eager(x, y, kl_scale)
        pairs: list[tuple[Any, Any]] = [
            *zip(replayed_losses, losses),
            *zip(replayed_grads, grads),
        ]
        agree = all(
            (a is None and b is None)
            or (
                a is not None
                and b is not None
                and a.shape == b.shape
                and torch.allclose(a, b, rtol=CHECK_RTOL, atol=CHECK_ATOL)
            )
            for a, b in pairs
        )
        if agree:
            record.checked = True
        else:
            self._records[signature] = None
            _warn_eager(
                x,
                "the replayed graph disagreed with the eager programs (do they read "
                "Python state that changes between calls?)",
            )
        return losses, grads


def _replay(
    record: _Record, inputs: list[Any]
) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    """``[loss, *terms]`` and the gradients, from the recorded graph."""
    with torch.no_grad():
        outputs = record.graph(*inputs)
    losses, grads = list(outputs[: 1 + record.num_terms]), outputs[1 + record.num_terms :]
    if len(grads) == len(record.has_grad):
        return losses, list(grads)
    found = iter(grads)
    return losses, [next(found) if has else None for has in record.has_grad]


def _describe(t: torch.Tensor | None) -> Any:
    """What a record is specialised to, per input: shape, strides (a recorded ``view`` of a
    contiguous batch would fail on a strided one), dtype, device, requires_grad."""
    return None if t is None else (t.shape, t.stride(), t.dtype, t.device, t.requires_grad)


def _warn_eager(x: torch.Tensor, why: str) -> None:
    warnings.warn(
        f"training steps on batches of shape {tuple(x.shape)} run the Pyro programs at every "
        f"step (slower, same results): {why}. Set train.replay_steps = false to always run "
        "them and silence this warning.",
        RuntimeWarning,
        stacklevel=3,
    )
