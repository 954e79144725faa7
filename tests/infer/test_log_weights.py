"""Importance log-weights log p(x, z) - log q(z|x), read off Pyro traces: equal to the formula
written with the VAE's own prior, likelihood and posterior on the same draws, one row per
particle, split into observed and latent parts, scaled or not."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyrovae import VAE, scale_latents
from pyrovae.infer.log_weights import log_weights, trace_log_weights, trace_pair

from conftest import tiny_config
from linear_gaussian import exact_log_marginal, linear_gaussian_vae, sample_data

N = 6


def vae_and_data(prior: str):
    vae = VAE.from_config(tiny_config(model={"prior": {"type": prior}}))
    gen = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((N, 784), 0.3), generator=gen)
    y = torch.arange(N) % 10 if vae.prior.uses_labels else None
    return vae, x, y


def by_hand(vae: VAE, x: torch.Tensor, y: torch.Tensor | None, seed: int):
    """log p(x|z), log p(z), log q(z|x) of each example for one draw z ~ q(z|x) made from
    the seeded global RNG, as the guide makes it (reparameterized)."""
    pyro.set_rng_seed(seed)
    q = vae.posterior(x)
    z = q.rsample()
    return (vae.likelihood_distribution(z).log_prob(x), vae.prior.distribution(y).log_prob(z),
            q.log_prob(z))


@pytest.mark.parametrize("prior", ["standard_normal", "mog", "conditional"])
def test_log_weights_equal_the_formula_on_the_same_draws(prior):
    vae, x, y = vae_and_data(prior)
    log_lik, log_prior, log_q = by_hand(vae, x, y, seed=3)
    pyro.set_rng_seed(3)
    log_w = log_weights(vae.model, vae.guide, x, y)
    assert log_w.shape == (N,)
    # the same terms, summed in another order: float32 rounding of ~550-nat sums
    torch.testing.assert_close(log_w, log_lik + log_prior - log_q, rtol=0, atol=1e-3)


def test_trace_log_weights_split_into_observed_and_latent_parts():
    vae, x, y = vae_and_data("standard_normal")
    log_lik, log_prior, log_q = by_hand(vae, x, y, seed=4)
    pyro.set_rng_seed(4)
    model_trace, guide_trace = trace_pair(vae.model, vae.guide, x)
    total = trace_log_weights(model_trace, guide_trace)
    observed = trace_log_weights(model_trace, guide_trace, observed=True)
    latent = trace_log_weights(model_trace, guide_trace, observed=False)
    torch.testing.assert_close(observed, log_lik, rtol=0, atol=1e-3)  # log p(x|z)
    torch.testing.assert_close(latent, log_prior - log_q, rtol=0, atol=1e-4)  # minus the rate
    torch.testing.assert_close(observed + latent, total, rtol=0, atol=1e-3)


def test_particles_are_a_leading_dimension_of_independent_draws():
    vae, x, _ = vae_and_data("standard_normal")
    log_w = log_weights(vae.model, vae.guide, x, num_particles=5)
    assert log_w.shape == (5, N)
    assert all(not torch.equal(log_w[0], log_w[k]) for k in range(1, 5))  # fresh draws
    # each row is a one-particle log-weight: with the exact posterior every weight is p(x)
    exact = linear_gaussian_vae()
    data = sample_data(exact, N)
    log_w = log_weights(exact.model, exact.guide, data, num_particles=4)
    assert log_w.shape == (4, N) and log_w.dtype == torch.float64
    # float64 rounding of a sum of ~20 terms of size < 100: far below 1e-9 nats
    torch.testing.assert_close(log_w, exact_log_marginal(exact, data).expand(4, N),
                               rtol=0, atol=1e-9)


def test_scaled_weights_are_those_of_the_program_as_trained():
    """``scaled=True`` reads the scaled log-densities (beta on the latent sites); the default
    scores each site's value afresh, the model as written."""
    vae, x, y = vae_and_data("standard_normal")
    log_lik, log_prior, log_q = by_hand(vae, x, y, seed=5)
    pyro.set_rng_seed(5)
    model_trace, guide_trace = trace_pair(scale_latents(vae.model, 0.5),
                                          scale_latents(vae.guide, 0.5), x)
    model_trace.compute_log_prob()
    guide_trace.compute_log_prob()
    scaled = trace_log_weights(model_trace, guide_trace, scaled=True)
    unscaled = trace_log_weights(model_trace, guide_trace)
    torch.testing.assert_close(scaled, log_lik + 0.5 * (log_prior - log_q), rtol=0, atol=1e-3)
    torch.testing.assert_close(unscaled, log_lik + log_prior - log_q, rtol=0, atol=1e-3)


def test_plates_not_shared_by_every_site_are_summed_inside_each_weight():
    """A model whose pixels sit in their own plate (no ``to_event``) has one log-weight per
    example of the shared "data" plate, summed over the pixel plate."""
    loc = torch.tensor([0.2, -0.1, 0.4])
    x = torch.randn(3, 4)

    def model(x):
        with pyro.plate("data", 3, dim=-2):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([3, 1]))
            with pyro.plate("pixels", 4, dim=-1):
                pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(x):
        with pyro.plate("data", 3, dim=-2):
            pyro.sample("z", dist.Normal(loc[:, None], 0.5))

    pyro.set_rng_seed(6)
    model_trace, guide_trace = trace_pair(model, guide, x)
    z = guide_trace.nodes["z"]["value"]  # (3, 1)
    expected = (dist.Normal(z, 1.0).log_prob(x).sum(-1) + dist.Normal(0.0, 1.0).log_prob(z)[:, 0]
                - dist.Normal(loc[:, None], 0.5).log_prob(z)[:, 0])
    log_w = trace_log_weights(model_trace, guide_trace)
    assert log_w.shape == (3,)  # one per example of the shared plate
    torch.testing.assert_close(log_w, expected)
