"""Per-example metrics of a trained VAE on held-out data, in nats per example: the ELBO, its
two terms (rate and distortion), and the KL divergence of each latent dimension."""

from __future__ import annotations

import torch
from torch import nn

from ..data import batches
from ..errors import ConfigError
from ..infer.log_weights import log_weights, trace_log_weights, trace_pair
from ..models.program import as_program
from ..registry import PositiveInt, Seed, check_value
from ..rng import fixed_rng

__all__ = ["elbo_per_example", "kl_per_dimension", "normal_factors", "rate_and_distortion"]


@torch.no_grad()
def elbo_per_example(
    vae: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    batch_size: int = 1000,
    seed: int = 0,
) -> torch.Tensor:
    """Single-sample Monte Carlo ELBO of each example, ``(N,)`` in nats.

    Unbiased for the ELBO; its mean over many examples is the test ELBO. ``seed`` fixes the
    draws so the same model always gets the same number. ``vae`` is any program module
    (:mod:`pyrovae.models.program`): the log-weights sum all its latent sites, and guide
    sites marked for enumeration enter by their exact expectation under q."""
    program = as_program(vae)
    program.check_data(x, y)
    check_value(batch_size, PositiveInt, "batch_size")
    check_value(seed, Seed, "seed")
    with fixed_rng(seed, x.device), program.quiet():
        out = [
            log_weights(program.model, program.guide, xb, yb, enumerated="expect")
            for xb, yb in batches(x, y, batch_size)
        ]
    return torch.cat(out)


@torch.no_grad()
def rate_and_distortion(
    vae: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    batch_size: int = 1000,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms of the negative ELBO of each example for one draw z ~ q(z|x), each
    ``(N,)`` in nats: the *rate* log q(z|x) - log p(z), an unbiased estimate of
    KL(q(z|x) || p(z)), and the *distortion* -log p(x|z).

    ``rate + distortion`` is minus :func:`elbo_per_example` with the same ``seed``. Read from
    Pyro traces of the VAE's programs (latent sites for the rate, observed ones for the
    distortion), so any prior and guide are covered."""
    program = as_program(vae)
    program.check_data(x, y)
    check_value(batch_size, PositiveInt, "batch_size")
    check_value(seed, Seed, "seed")
    rates: list[torch.Tensor] = []
    distortions: list[torch.Tensor] = []
    with fixed_rng(seed, x.device), program.quiet():
        for xb, yb in batches(x, y, batch_size):
            model_trace, guide_trace = trace_pair(program.model, program.guide, xb, yb)
            for terms, observed in ((rates, False), (distortions, True)):
                log_w = trace_log_weights(
                    model_trace, guide_trace, observed=observed, enumerated="expect"
                )
                terms.append(-log_w)
    return torch.cat(rates), torch.cat(distortions)


def normal_factors(d: torch.distributions.Distribution) -> torch.distributions.Normal | None:
    """The per-dimension Normals of a diagonal Normal over z (``Normal(...).to_event(1)``)."""
    if isinstance(d, torch.distributions.Independent) and isinstance(
        d.base_dist, torch.distributions.Normal
    ):
        return d.base_dist
    return None


@torch.no_grad()
def kl_per_dimension(
    vae: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000
) -> torch.Tensor:
    """KL(q(z_d|x) || p(z_d)) of each latent dimension d, averaged over the examples ``x``:
    ``(latent_dim,)`` in nats per example, in closed form. Dimensions whose KL is near 0
    (e.g. below 0.01 nats) are *inactive*: q(z_d|x) is the prior whatever x is, so z_d carries
    no information about x. The values sum to the mean KL(q(z|x) || p(z)).

    ``y`` (labels ``(N,)``) is passed to a class-conditional prior.

    Raises:
        ConfigError: the model has no single latent space
            (:meth:`~pyrovae.models.program.Program.latent_space`), or its prior or guide is not
            a product of one Normal per dimension (priors ``standard_normal``, ``normal``,
            ``conditional``; guide ``diag_normal``).
    """
    program = as_program(vae)
    space = program.latent_space("the KL per latent dimension")
    program.check_data(x, y)
    check_value(batch_size, PositiveInt, "batch_size")
    if space.prior.uses_labels and y is None:
        raise ConfigError(
            f"the KL per latent dimension of a {space.prior.type_name!r} prior is taken "
            "against p(z|y): pass the labels y"
        )
    total = torch.zeros(space.latent_dim, device=x.device)
    for xb, yb in batches(x, y, batch_size):
        q = normal_factors(space.posterior(xb))
        p = normal_factors(space.prior.distribution(program.model_labels(yb)))
        if q is None or p is None:
            raise ConfigError(
                "the KL per latent dimension needs a prior and a guide that are products of "
                "one Normal per dimension (model.prior = 'standard_normal', 'normal' or "
                "'conditional'; model.guide = 'diag_normal'), but this VAE has model.prior = "
                f"{space.prior.type_name!r} and model.guide = {space.guide_family.type_name!r}; "
                "for other models use the total KL, the rate of rate_and_distortion"
            )
        total += torch.distributions.kl_divergence(q, p).sum(0)
    return total / x.shape[0]
