"""pyrovae's Trace_ELBO computes exactly what Pyro's Trace_ELBO computes.

On the same draws it must give Pyro's loss (up to the float rounding of adding the site terms
in float32 rather than in Python floats) and bitwise Pyro's gradients: for VAE programs, with
vectorized particles, with weighted latent sites, and with score-function (non-reparameterized)
and masked sites. That its loss needs no host reads is checked on the Trainer's step
(tests/training/test_trainer.py).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO as PyroTrace_ELBO

from pyrovae import VAE, Trace_ELBO, scale_latents
from pyrovae.infer.log_weights import trace_pair

#: float32 unit roundoff
EPS32 = torch.finfo(torch.float32).eps


def loss_and_grads(elbo, model, guide, params, x, seed=0):
    """The ELBO's differentiable loss and its gradients w.r.t. ``params``, with seeded draws."""
    pyro.set_rng_seed(seed)
    loss = elbo.differentiable_loss(model, guide, x)
    return loss.detach(), torch.autograd.grad(loss, params)


def sum_of_abs_site_terms(model, guide, x, num_particles=1, vectorize_particles=False,
                          seed=0, **_) -> float:
    """Sum over sample sites of |log_prob_sum| per particle, on the draws both ELBOs make (the
    same seed, and vectorized particles as a plate left of the programs' plate): the scale of
    the float rounding in adding the site terms up."""
    assert num_particles == 1 or vectorize_particles  # the cases below
    pyro.set_rng_seed(seed)
    with torch.no_grad():
        traces = trace_pair(model, guide, x,
                            num_particles=num_particles if vectorize_particles else None)
    total = 0.0
    for trace in traces:
        trace.compute_log_prob()  # scaled and masked, as the ELBOs sum them
        total += sum(abs(site["log_prob_sum"].item()) for site in trace.nodes.values()
                     if site["type"] == "sample")
    return total / num_particles


def assert_same_loss_and_grads(model, guide, params, x, **elbo_kwargs):
    ref_loss, ref_grads = loss_and_grads(PyroTrace_ELBO(**elbo_kwargs), model, guide, params, x)
    loss, grads = loss_and_grads(Trace_ELBO(**elbo_kwargs), model, guide, params, x)
    # Both compute every site's log_prob_sum identically; only adding the n <= 6 site terms
    # differs: Pyro adds Python floats (float64) and rounds the result to float32 once,
    # pyrovae adds in float32, each addition rounding by at most EPS32/2 of a partial sum
    # <= S = sum of |terms|; with the final roundings, |difference| <= 4 EPS32 S.
    bound = 4 * EPS32 * sum_of_abs_site_terms(model, guide, x, **elbo_kwargs)
    assert abs(loss - ref_loss).item() <= bound
    # The gradients flow through the same autograd graph seeded with the same exact weights
    # (+-1 or 1/num_particles), so they are equal bit for bit.
    for g, ref in zip(grads, ref_grads):
        assert torch.equal(g, ref)
    return loss


@pytest.fixture
def vae_and_batch(tiny):
    vae = VAE.from_config(tiny)
    x = torch.bernoulli(torch.full((16, 784), 0.3), generator=torch.Generator().manual_seed(1))
    return vae, x, list(vae.parameters())


def test_same_loss_and_grads_single_particle(vae_and_batch):
    vae, x, params = vae_and_batch
    loss = assert_same_loss_and_grads(vae.model, vae.guide, params, x, max_plate_nesting=1)
    assert loss > 0  # a negative ELBO of Bernoulli pixels is positive


def test_same_loss_and_grads_vectorized_particles(vae_and_batch):
    vae, x, params = vae_and_batch
    assert_same_loss_and_grads(vae.model, vae.guide, params, x, max_plate_nesting=1,
                               num_particles=3, vectorize_particles=True)


def test_same_loss_and_grads_with_a_weight_on_the_latents(vae_and_batch):
    """What a beta / KL warm-up weight does: every latent site of model and guide scaled."""
    vae, x, params = vae_and_batch
    assert_same_loss_and_grads(scale_latents(vae.model, 0.3), scale_latents(vae.guide, 0.3),
                               params, x, max_plate_nesting=1)


def test_same_loss_and_grads_with_score_function_sites():
    """A guide with a non-reparameterized site (score-function gradient) next to a
    reparameterized one, and a masked model site."""
    loc = torch.tensor([0.3, -0.2, 0.5], requires_grad=True)
    logit = torch.tensor([0.1, -0.4, 0.2], requires_grad=True)
    x = torch.tensor([0.5, 1.5, -0.7])

    def model(x):
        with pyro.plate("data", 3):
            b = pyro.sample("b", dist.Bernoulli(0.5))
            z = pyro.sample("z", dist.Normal(b, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0).mask(torch.tensor([True, True, False])), obs=x)

    def guide(x):
        with pyro.plate("data", 3):
            pyro.sample("b", dist.Bernoulli(logits=logit))
            pyro.sample("z", dist.Normal(loc, 1.0).has_rsample_(False))

    assert_same_loss_and_grads(model, guide, [loc, logit], x, max_plate_nesting=1)
    assert_same_loss_and_grads(model, guide, [loc, logit], x, max_plate_nesting=1,
                               num_particles=4, vectorize_particles=True)
