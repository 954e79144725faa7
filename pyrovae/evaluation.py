"""Evaluation of a trained VAE on held-out data, in nats per example: the ELBO, its two
terms (rate and distortion), and the KL divergence of each latent dimension."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pyro
import pyro.poutine as poutine
from pyro.poutine.util import site_is_subsample
import torch

from .errors import ConfigError
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


@torch.no_grad()
def rate_and_distortion(
    vae: VAE,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    batch_size: int = 1000,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms of the negative ELBO of each example for one draw z ~ q(z|x), each
    ``(N,)`` in nats: the *rate* log q(z|x) - log p(z), an unbiased estimate of
    KL(q(z|x) || p(z)), and the *distortion* -log p(x|z).

    ``rate + distortion`` is minus :func:`elbo_per_example` with the same ``seed``. Read from
    Pyro traces of the VAE's sites ``"z"`` and ``"x"``, so any prior and guide are covered."""
    rates, distortions = [], []
    with fixed_rng(seed, x.device), pyro.validation_enabled(False):
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size]
            yb = None if y is None else y[start : start + batch_size]
            guide_trace = poutine.trace(vae.guide).get_trace(xb, yb)
            model_trace = poutine.trace(
                poutine.replay(vae.model, trace=guide_trace)
            ).get_trace(xb, yb)
            q_z, p_z, p_x = guide_trace.nodes["z"], model_trace.nodes["z"], model_trace.nodes["x"]
            rates.append(q_z["fn"].log_prob(q_z["value"]) - p_z["fn"].log_prob(p_z["value"]))
            distortions.append(-p_x["fn"].log_prob(p_x["value"]))
    return torch.cat(rates), torch.cat(distortions)


def _normal_factors(d: torch.distributions.Distribution) -> torch.distributions.Normal | None:
    """The per-dimension Normals of a diagonal Normal over z (``Normal(...).to_event(1)``)."""
    if isinstance(d, torch.distributions.Independent) and isinstance(
        d.base_dist, torch.distributions.Normal
    ):
        return d.base_dist
    return None


@torch.no_grad()
def kl_per_dimension(
    vae: VAE, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000
) -> torch.Tensor:
    """KL(q(z_d|x) || p(z_d)) of each latent dimension d, averaged over the examples ``x``:
    ``(latent_dim,)`` in nats per example, in closed form. Dimensions whose KL is near 0
    (e.g. below 0.01 nats) are *inactive*: q(z_d|x) is the prior whatever x is, so z_d carries
    no information about x. The values sum to the mean KL(q(z|x) || p(z)).

    ``y`` (labels ``(N,)``) is passed to a class-conditional prior.

    Raises:
        ConfigError: the prior or the guide is not a product of one Normal per dimension
            (priors ``standard_normal``, ``normal``, ``conditional``; guide ``diag_normal``).
    """
    if vae.prior.uses_labels and y is None:
        raise ConfigError(
            f"the KL per latent dimension of a {vae.prior.type_name!r} prior is taken against "
            "p(z|y): pass the labels y"
        )
    total = torch.zeros(vae.latent_dim, device=x.device)
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size]
        yb = None if y is None else y[start : start + batch_size]
        q = _normal_factors(vae.posterior(xb))
        p = _normal_factors(vae.prior.distribution(vae.model_labels(yb)))
        if q is None or p is None:
            raise ConfigError(
                "the KL per latent dimension needs a prior and a guide that are products of "
                "one Normal per dimension (model.prior = 'standard_normal', 'normal' or "
                "'conditional'; model.guide = 'diag_normal'), but this VAE has model.prior = "
                f"{vae.prior.type_name!r} and model.guide = {vae.guide_family.type_name!r}; "
                "for other models use the total KL, the rate of rate_and_distortion"
            )
        total += torch.distributions.kl_divergence(q, p).sum(0)
    return total / x.shape[0]
