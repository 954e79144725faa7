"""Importance log-weights ``log p(x, z) - log q(z|x)``: the one computation every estimator
shares (the ELBO per example, rate and distortion, the IWAE bound, the importance-sampled
log-likelihood).

:func:`trace_pair` runs the guide, then the model replayed on the guide's draws, under Pyro's
:func:`~pyro.poutine.trace`; :func:`trace_log_weights` reads the log-weight of each
independent example off such a pair; :func:`log_weights` does both. Because they read Pyro
traces, they hold for any model/guide pair whose sites are batched by a plate over the examples
(the VAE's ``"data"`` plate), whatever its priors, likelihoods and latent sites.

Discrete guide sites marked for parallel enumeration (``infer={"enumerate": "parallel"}``,
:func:`pyro.infer.config_enumerate`) are summed out exactly: every value of such a site gets
its own draws of the sites that follow it, in a dimension left of the plates, and
:func:`trace_log_weights` reduces that dimension either to the importance weight of the
continuous draws with the discrete sites marginalized, ``log sum_e p(x, e, z_e) / q(z_e|x, e)``
(``enumerated="sum"``: an unbiased estimate of p(x) whatever q(e|x) is), or to the expectation
under q(e|x) of ``log p(x, e, z_e) - log q(e, z_e|x)`` (``enumerated="expect"``: the ELBO).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Literal

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
    enumerate_sites: bool = True,
    **kwargs: Any,
) -> tuple[Trace, Trace]:
    """``(model_trace, guide_trace)``: the guide's trace and the model's, replayed on the
    guide's draws, both called with ``*args, **kwargs``.

    ``num_particles``: ``None`` for one draw per example; an integer ``K`` for ``K`` draws in
    one vectorized pass, a ``"particles"`` plate left of the programs' plates (whose nesting
    is :data:`MAX_PLATE_NESTING`), so every site gains a leading dimension of size ``K``.
    ``enumerate_sites``: guide sites marked for parallel enumeration take all their values at once,
    in dimensions left of those (see the module docstring)."""
    plates = MAX_PLATE_NESTING
    if num_particles is not None:
        particles = pyro.plate("particles", num_particles, dim=-1 - MAX_PLATE_NESTING)
        model, guide = particles(model), particles(guide)
        plates += 1
    if enumerate_sites:
        guide = poutine.enum(guide, first_available_dim=-1 - plates)
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
    enumerated: Literal["sum", "expect"] = "sum",
) -> torch.Tensor:
    """``sum_model log p - sum_guide log q`` over the sample sites of a trace pair, for each
    independent example (each element of the plates every site shares), in nats.

    ``guide_trace = None`` gives the model's own log density ``sum_model log p``, e.g.
    ``log p(x, z)`` of a model trace conditioned on latent values.

    Args:
        scaled: use the sites' scaled and masked ``log_prob`` (computed by
            ``Trace.compute_log_prob``, as Pyro's ELBOs do), i.e. the weights of the program
            as trained; ``False`` scores each site's value afresh, ignoring scales (a KL
            weight) but not masks (``poutine.mask``, ``obs_mask``: which examples a site
            scores): the weights of the model as written.
        observed: ``None`` sums every site; ``True`` only the observed ones (``log p(x|z)``);
            ``False`` only the latent ones (``log p(z) - log q(z|x)``, minus the rate).
        sites: only the sites of these names (e.g. the latent sites of a model trace
            conditioned on latent values, which Pyro marks as observed); ``None``: all.
        enumerated: how the values of enumerated guide sites are reduced (module
            docstring): ``"sum"``, the log of the sum of the weights without those sites'
            ``q`` (importance sampling); ``"expect"``, the expectation under their ``q``
            (the ELBO and its terms).

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
    # the dims of the plates every site shares: left of them are enumerated values
    frames = [{f.dim for f in site["cond_indep_stack"] if f.dim is not None} for site in all_sites]
    shared: set[int] = set.intersection(*frames) if frames else set()
    num_dims = -min(shared, default=0)
    log_w: Any = 0.0
    log_q_enum: Any = 0.0  # log q of the enumerated values
    for trace, sign in traces:
        for site in trace.nodes.values():
            if site["type"] != "sample" or site_is_subsample(site):
                continue
            fn: Any = site["fn"]
            if sign < 0 and (site["infer"] or {}).get("_enumerate_dim") is not None:
                log_q_enum = log_q_enum + torch_sum(fn.log_prob(site["value"]), sum_dims)
                if enumerated == "sum":
                    continue  # its q cancels: its values are summed over, not drawn
            if observed is not None and site["is_observed"] != observed:
                continue
            if sites is not None and site["name"] not in sites:
                continue
            log_p = site["log_prob"] if scaled else _masked(fn.log_prob(site["value"]), site)
            log_w = log_w + sign * torch_sum(log_p, sum_dims)
    log_w = torch.as_tensor(log_w)
    if torch.is_tensor(log_q_enum):
        log_w = _reduce_enumerated(log_w, log_q_enum, num_dims, enumerated)
    return log_w


def _masked(log_p: torch.Tensor, site: Any) -> torch.Tensor:
    """``log_p`` where the site's mask is true (Pyro's ``poutine.mask``, ``obs_mask``), else 0."""
    mask = site["mask"]
    if mask is None or mask is True:
        return log_p
    if mask is False:
        return torch.zeros_like(log_p)
    return torch.where(mask, log_p, torch.zeros_like(log_p))


def _reduce_enumerated(
    log_w: torch.Tensor, log_q: torch.Tensor, num_dims: int, how: str
) -> torch.Tensor:
    """Reduce the enumeration dims of ``log_w`` (those left of its last ``num_dims``)."""
    shape = torch.broadcast_shapes(log_w.shape, log_q.shape)
    log_w, log_q = log_w.expand(shape), log_q.expand(shape)
    enum_dims = tuple(range(len(shape) - num_dims))
    if not enum_dims:
        return log_w
    if how == "sum":
        return log_w.logsumexp(enum_dims)
    q = log_q.exp()
    # values of probability 0 contribute nothing (and their -inf log-weights no NaN)
    return torch.where(q > 0, q * log_w, torch.zeros_like(log_w)).sum(enum_dims)


def log_weights(
    model: Callable,
    guide: Callable,
    *args: Any,
    num_particles: int | None = None,
    enumerated: Literal["sum", "expect"] = "sum",
    **kwargs: Any,
) -> torch.Tensor:
    """``log p(x, z) - log q(z|x)`` of each example for draws ``z ~ q(z|x)``, in nats,
    ignoring site scales and masks (:func:`trace_log_weights` of :func:`trace_pair`), with
    enumerated guide sites reduced as ``enumerated`` says.

    Example::

        log_w = log_weights(vae.model, vae.guide, x, num_particles=100)   # (100, N)
        elbo = log_w.mean(0)                                              # (N,)
    """
    model_trace, guide_trace = trace_pair(
        model, guide, *args, num_particles=num_particles, **kwargs
    )
    return trace_log_weights(model_trace, guide_trace, enumerated=enumerated)
