"""``Trace_ELBO``: Pyro's Monte Carlo ELBO estimator, without host synchronisation.

The estimate of one particle ``z ~ q(z|x)`` is ``log p(x, z) - log q(z|x)`` (Wingate & Weber,
2013; Ranganath et al., 2014), with the gradient of Pyro's surrogate loss, including the
score-function terms of guide sites that cannot be reparameterized.

Pyro's :class:`pyro.infer.Trace_ELBO` reads every site's ``log_prob_sum`` back to the host
(``.item()``) to build the loss value, and checks the loss and its gradient for NaN with
``torch.isnan(x).any()`` used as a Python bool: six device-to-host copies per step, each of
which stalls a GPU until all queued work has finished. This :class:`Trace_ELBO` builds the
same loss value from detached tensors instead, and runs the NaN checks only while Pyro
validation is enabled, so a training loop can queue step after step without waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from pyro.infer.util import is_identically_zero
from pyro.poutine import Trace

from ..compat import compute_log_r, is_alias_of
from .elbo import ELBO, warn_if_nan_when_validating

__all__ = ["Trace_ELBO"]


class Trace_ELBO(ELBO):
    """The estimator of :class:`pyro.infer.Trace_ELBO`, whose ``differentiable_loss`` never
    waits for the device; built by ``objective.type = "trace_elbo"``::

        svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), loss=pyrovae.Trace_ELBO())

    The loss has the same value as Pyro's (up to float rounding: it is summed in the tensors'
    dtype rather than in Python floats) and the same gradient as Pyro's surrogate loss,
    including the score-function terms of non-reparameterized guide sites. When every guide
    site is reparameterized and unscaled (the usual VAE) the surrogate *is* the loss, and it is
    returned as it is, without the ``loss + (surrogate - surrogate.detach())`` detour.
    """

    def _particle_loss(self, model_trace: Trace, guide_trace: Trace) -> torch.Tensor:
        """The negative ELBO of one particle, with the gradient of Trace_ELBO's surrogate."""
        # pyro's Trace_ELBO._differentiable_loss_particle, with torch_item(t) -> t.detach()
        # and the surrogate's reparameterized terms taken from log_prob_sum (the same sum)
        terms = [
            site["log_prob_sum"] for site in model_trace.nodes.values() if site["type"] == "sample"
        ]
        extra_surrogate: list[torch.Tensor] = []  # score-function terms, scaled entropies
        detached_guide: list[torch.Tensor] = []  # -log q(z) where the surrogate differs
        log_r = None
        for site in guide_trace.nodes.values():
            if site["type"] != "sample":
                continue
            log_prob, score_function_term, entropy_term = site["score_parts"]
            if is_identically_zero(score_function_term) and _same_view(entropy_term, log_prob):
                terms.append(-site["log_prob_sum"])  # reparameterized: value and surrogate
                continue
            detached_guide.append(-site["log_prob_sum"].detach())
            if not is_identically_zero(entropy_term):
                extra_surrogate.append(-entropy_term.sum())
            if not is_identically_zero(score_function_term):
                if log_r is None:
                    log_r = compute_log_r(model_trace, guide_trace)
                weight = log_r.sum_to(site["cond_indep_stack"])
                extra_surrogate.append((weight * score_function_term).sum())
        elbo = _sum(terms)
        if detached_guide or extra_surrogate:
            # value: the ELBO; gradient: the surrogate's
            value = _sum([elbo.detach(), *detached_guide])
            surrogate = _sum([elbo, *extra_surrogate])
            elbo = value + (surrogate - surrogate.detach())
        return -elbo

    def differentiable_loss(
        self, model: Callable, guide: Callable, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """The negative ELBO estimate (nats, summed over plates) as a tensor whose gradient is
        that of Pyro's Trace_ELBO surrogate loss; no host synchronisation unless validation is
        on."""
        losses = [
            self._particle_loss(model_trace, guide_trace)
            for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs)
        ]
        loss = _sum(losses)
        if self.num_particles != 1:
            loss = loss / self.num_particles
        return warn_if_nan_when_validating(loss, "loss")


def _same_view(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are the same tensor or views with the same memory, shape and
    strides (so the same values: e.g. one log-density expanded twice by a particle plate)."""
    if a is b:
        return True
    # aliasing is compared through storages, not data_ptr(): the fake tensors that
    # pyrovae.infer.replay records with have no data pointers
    return bool(
        isinstance(a, torch.Tensor)
        and isinstance(b, torch.Tensor)
        and is_alias_of(a, b)
        and a.storage_offset() == b.storage_offset()
        and a.dtype == b.dtype
        and a.shape == b.shape
        and a.stride() == b.stride()
    )


def _sum(terms: list[Any]) -> torch.Tensor:
    """``terms[0] + terms[1] + ...`` left to right, without a leading ``0 +`` op."""
    if not terms:
        return torch.zeros(())
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return torch.as_tensor(total)
