"""Bidirectional Monte Carlo: on data simulated from a linear-Gaussian VAE, whose log p(x) is
known in closed form, the forward and reverse AIS bounds sandwich it and close as T grows."""

from __future__ import annotations

import math

import pytest
import torch

from pyrovae.evaluation.bdmc import bdmc, simulate

from linear_gaussian import exact_log_marginal, hard_linear_gaussian_vae, sample_data

# thousands of small tensor operations: one thread avoids synchronisation waits
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_simulate_draws_data_and_latents_from_the_model():
    vae = hard_linear_gaussian_vae()
    template = sample_data(vae, 4000)
    x, latents = simulate(vae, template)
    assert x.shape == template.shape and set(latents) == {"z"}
    # x ~ N(b, W W^T + s^2 I): the sample mean is within 4 standard errors of b
    b = vae.decoder.net[0].bias.detach()
    var = torch.diagonal(exact_covariance(vae))
    assert bool(((x.mean(0) - b).abs() < 4 * (var / x.shape[0]).sqrt()).all())
    # and x is the decoder's mean at the returned z plus noise of the likelihood's scale
    resid = x - vae.decode_mean(latents["z"])
    sigma = vae.likelihood.log_scale.exp().item()
    assert abs(resid.std().item() / sigma - 1) < 4 / math.sqrt(2 * resid.numel())


def exact_covariance(vae):
    W = vae.decoder.net[0].weight.detach()
    sigma = vae.likelihood.log_scale.exp().item()
    return W @ W.T + sigma**2 * torch.eye(W.shape[0], dtype=W.dtype)


def test_bounds_sandwich_the_exact_log_likelihood_and_close_as_t_grows():
    vae = hard_linear_gaussian_vae()
    template = sample_data(vae, 48)
    gaps = []
    for num_steps in (10, 100):
        result = bdmc(vae, template, num_steps=num_steps)
        exact = exact_log_marginal(vae, result.x)
        lower, upper = (result.lower - exact).mean(), (result.upper - exact).mean()
        # Both are stochastic bounds: in expectation lower <= log p(x) <= upper (Jensen on
        # unbiased estimates of p(x) and 1/p(x)). Their per-example noise is far below the
        # gaps seen here (std(log w) / sqrt(S) with S = 16 chains), so the means over 48
        # examples hold the order with room to spare; 0.02 nats covers that noise.
        assert lower <= 0.02 and upper >= -0.02, (num_steps, float(lower), float(upper))
        assert float(result.gap.mean()) > 0
        gaps.append(float(result.gap.mean()))
        assert 0.4 < float(result.forward_acceptance.mean()) < 0.9
    # the gap bounds the error of AIS at that schedule and shrinks with it (to about 1/T for
    # a long schedule); tenfold steps more than halve it
    assert gaps[1] < 0.5 * gaps[0], gaps


def test_bdmc_is_reproducible_and_seeded():
    vae = hard_linear_gaussian_vae()
    template = sample_data(vae, 6)
    a = bdmc(vae, template, num_chains=4, num_steps=5)
    b = bdmc(vae, template, num_chains=4, num_steps=5)
    assert torch.equal(a.lower, b.lower) and torch.equal(a.upper, b.upper)
    assert torch.equal(a.x, b.x)
    c = bdmc(vae, template, num_chains=4, num_steps=5, seed=1)
    assert not torch.equal(a.x, c.x)
