"""Evaluation of a trained VAE on held-out data: the ELBO per example, in nats."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pyro
import pyro.poutine as poutine
from pyro.poutine.util import site_is_subsample
import torch

from .objectives import MAX_PLATE_NESTING
from .vae import VAE


@contextlib.contextmanager
def fixed_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Run a block with torch's RNG seeded to ``seed``, restoring the outer RNG state after,
    so evaluation is reproducible and does not disturb a training run's random stream."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def trace_log_weights(
    vae: VAE,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    num_particles: int | None = None,
) -> torch.Tensor:
    """log p(x, z) - log q(z|x) per example for draws z ~ q(z|x), in nats.

    Read from Pyro traces of ``vae.guide`` and ``vae.model`` replayed against it, so it holds
    for any model/guide pair whose sites are batched by the ``"data"`` plate. Site scales and
    masks are ignored: these are the weights of the model as written.

    Args:
        x: data ``(N, data_dim)``; ``y``: labels ``(N,)`` or ``None``.
        num_particles: ``None`` for one draw per example, returning shape ``(N,)``; an integer
            ``K`` for ``K`` draws per example in one vectorized pass (a ``"particles"`` plate
            left of the ``"data"`` plate), returning shape ``(K, N)``.
    """
    guide, model = vae.guide, vae.model
    if num_particles is not None:
        particles = pyro.plate("particles", num_particles, dim=-1 - MAX_PLATE_NESTING)
        guide, model = particles(guide), particles(model)
    guide_trace = poutine.trace(guide).get_trace(x, y)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x, y)
    log_w = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
        for site in trace.nodes.values():
            if site["type"] == "sample" and not site_is_subsample(site):
                log_w = log_w + sign * site["fn"].log_prob(site["value"])
    if num_particles is not None:
        log_w = log_w.expand(num_particles, x.shape[0])
    return log_w


@torch.no_grad()
def elbo_per_example(
    vae: VAE,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    batch_size: int = 1000,
    seed: int = 0,
) -> torch.Tensor:
    """Single-sample Monte Carlo ELBO of each example, ``(N,)`` in nats.

    Unbiased for the ELBO; its mean over many examples is the test ELBO. ``seed`` fixes the
    draws so the same model always gets the same number."""
    out = []
    with fixed_rng(seed, x.device), pyro.validation_enabled(False):
        for start in range(0, x.shape[0], batch_size):
            yb = None if y is None else y[start : start + batch_size]
            out.append(trace_log_weights(vae, x[start : start + batch_size], yb))
    return torch.cat(out)
