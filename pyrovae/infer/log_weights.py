"""Importance log-weights ``log p(x, z) - log q(z|x)``: the one computation every estimator
shares (the ELBO per example, rate and distortion, the IWAE bound, the importance-sampled
log-likelihood).

:func:`trace_pair` runs the guide, then the model replayed on the guide's draws, under Pyro's
:func:`~pyro.poutine.trace`; :func:`trace_log_weights` reads the log-weight of each
independent example off such a pair; :func:`log_weights` does both. Because they read Pyro
traces, they hold for any model/guide pair whose sites are batched by a plate over the examples
(the VAE's ``"data"`` plate), whatever its priors, likelihoods and latent sites.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import pyro
import pyro.poutine as poutine
import torch
from pyro.infer.util import get_dependent_plate_dims, torch_sum
from pyro.poutine import Trace
from pyro.poutine.util import site_is_subsample

__all__ = ["MAX_PLATE_NESTING", "log_weights", "trace_log_weights", "trace_pair"]

#: the VAE's programs have one plate ("data"); vectorized particles add one more on the left
MAX_PLATE_NESTING = 1


def trace_pair(
    model: Callable,
    guide: Callable,
    *args: Any,
    num_particles: int | None = None,
    **kwargs: Any,
) -> tuple[Trace, Trace]:
    """``(model_trace, guide_trace)``: the guide's trace and the model's, replayed on the
    guide's draws, both called with ``*args, **kwargs``.

    ``num_particles``: ``None`` for one draw per example; an integer ``K`` for ``K`` draws in
    one vectorized pass, a ``"particles"`` plate left of the programs' plates (whose nesting
    is :data:`MAX_PLATE_NESTING`), so every site gains a leading dimension of size ``K``."""
    if num_particles is not None:
        particles = pyro.plate("particles", num_particles, dim=-1 - MAX_PLATE_NESTING)
        model, guide = particles(model), particles(guide)
    guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    return model_trace, guide_trace


def trace_log_weights(
    model_trace: Trace,
    guide_trace: Trace | None,
    *,
    scaled: bool = False,
    observed: bool | None = None,
    sites: Collection[str] | None = None,
) -> torch.Tensor:
    """``sum_model log p - sum_guide log q`` over the sample sites of a trace pair, for each
    independent example (each element of the plates every site shares), in nats.

    ``guide_trace = None`` gives the model's own log density ``sum_model log p``, e.g.
    ``log p(x, z)`` of a model trace conditioned on latent values.

    Args:
        scaled: use the sites' scaled and masked ``log_prob`` (computed by
            ``Trace.compute_log_prob``, as Pyro's ELBOs do), i.e. the weights of the program
            as trained; ``False`` scores each site's value afresh, ignoring scales and masks:
            the weights of the model as written.
        observed: ``None`` sums every site; ``True`` only the observed ones (``log p(x|z)``);
            ``False`` only the latent ones (``log p(z) - log q(z|x)``, minus the rate).
        sites: only the sites of these names (e.g. the latent sites of a model trace
            conditioned on latent values, which Pyro marks as observed); ``None``: all.

    Returns:
        a tensor of the shared plates' shape, e.g. ``(N,)``, or ``(K, N)`` with particles.
    """
    traces = [(model_trace, 1.0)] + ([] if guide_trace is None else [(guide_trace, -1.0)])
    all_sites = [
        site
        for trace, _ in traces
        for site in trace.nodes.values()
        if site["type"] == "sample" and not site_is_subsample(site)
    ]
    # plates not shared by every site are summed inside each log-weight
    sum_dims = get_dependent_plate_dims(all_sites)
    log_w: Any = 0.0
    for trace, sign in traces:
        for site in trace.nodes.values():
            if site["type"] != "sample" or site_is_subsample(site):
                continue
            if observed is not None and site["is_observed"] != observed:
                continue
            if sites is not None and site["name"] not in sites:
                continue
            fn: Any = site["fn"]
            log_p = site["log_prob"] if scaled else fn.log_prob(site["value"])
            log_w = log_w + sign * torch_sum(log_p, sum_dims)
    return torch.as_tensor(log_w)


def log_weights(
    model: Callable,
    guide: Callable,
    *args: Any,
    num_particles: int | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """``log p(x, z) - log q(z|x)`` of each example for draws ``z ~ q(z|x)``, in nats,
    ignoring site scales and masks (:func:`trace_log_weights` of :func:`trace_pair`).

    Example::

        log_w = log_weights(vae.model, vae.guide, x, num_particles=100)   # (100, N)
        elbo = log_w.mean(0)                                              # (N,)
    """
    model_trace, guide_trace = trace_pair(
        model, guide, *args, num_particles=num_particles, **kwargs
    )
    return trace_log_weights(model_trace, guide_trace)
