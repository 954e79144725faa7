"""IWAE_ELBO: checked against Pyro's RenyiELBO (alpha = 0), the ELBO at K = 1 and the
log-weights it is built on.

Statistical assertions compare Monte Carlo means with standard errors (SE) estimated from
the same draws; a "4 SE" bound fails by chance with probability < 1e-4 (normal
approximation). Every draw is seeded, so the tests are deterministic.
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro.infer import RenyiELBO
from pyro.infer import Trace_ELBO as PyroTrace_ELBO

from pyrovae import IWAE_ELBO, scale_latents
from pyrovae.infer.log_weights import log_weights

from estimator_checks import grads, mean_and_se, replicated_losses, seeded

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("num_particles", [2, 5])
def test_iwae_equals_renyi_alpha_zero_loss_and_gradients(vae, x, num_particles):
    ours = IWAE_ELBO(num_particles=num_particles, max_plate_nesting=1)
    renyi = RenyiELBO(alpha=0.0, num_particles=num_particles, vectorize_particles=True,
                      max_plate_nesting=1)
    loss = seeded(ours.differentiable_loss, vae.model, vae.guide, x)
    assert loss.item() == pytest.approx(seeded(renyi.loss, vae.model, vae.guide, x), rel=1e-6)
    ours_grads = grads(vae, loss)
    vae.zero_grad()
    seeded(renyi.loss_and_grads, vae.model, vae.guide, x)
    for p, g in zip(vae.parameters(), ours_grads):
        torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-5)


def test_iwae_is_the_log_mean_exp_of_the_log_weights(vae, x):
    """-loss = sum_i log (1/K) sum_k exp(log p(x_i, z_k) - log q(z_k|x_i)) for the same draws
    (pyrovae.infer.log_weights makes them the same way: K particles in one vectorized pass)."""
    K = 7
    loss = seeded(IWAE_ELBO(num_particles=K, max_plate_nesting=1).differentiable_loss,
                  vae.model, vae.guide, x)
    log_w = seeded(lambda: log_weights(vae.model, vae.guide, x, num_particles=K))
    assert log_w.shape == (K, 16)
    expected = (log_w.logsumexp(0) - math.log(K)).sum()
    torch.testing.assert_close(-loss, expected, rtol=1e-6, atol=0)


def test_iwae_weights_the_latent_sites_in_each_log_weight(vae, x):
    """With the latent sites weighted by w (beta), each log-weight is
    log p(x|z) + w (log p(z) - log q(z|x)), as in Pyro's RenyiELBO."""
    w, K = 0.3, 4
    model, guide = scale_latents(vae.model, w), scale_latents(vae.guide, w)
    loss = seeded(IWAE_ELBO(num_particles=K, max_plate_nesting=1).loss, model, guide, x)
    renyi = RenyiELBO(alpha=0.0, num_particles=K, vectorize_particles=True, max_plate_nesting=1)
    assert loss == pytest.approx(seeded(renyi.loss, model, guide, x), rel=1e-6)


def test_iwae_with_one_particle_is_the_elbo_and_bound_grows_with_k(vae, x):
    one = seeded(IWAE_ELBO(num_particles=1, max_plate_nesting=1).loss, vae.model, vae.guide, x)
    assert one == pytest.approx(seeded(PyroTrace_ELBO().loss, vae.model, vae.guide, x), rel=1e-6)
    # E[L_K] grows with K; 10 replicate estimates per K, compared within 4 SE
    pyro.set_rng_seed(5)
    bounds = {K: -replicated_losses(IWAE_ELBO(num_particles=K, max_plate_nesting=1),
                                    vae.model, vae.guide, x, 4, 10) for K in (1, 20)}
    (m1, se1), (m20, se20) = mean_and_se(bounds[1]), mean_and_se(bounds[20])
    assert m20 - m1 > 4 * math.hypot(se1, se20), (m1, m20, se1, se20)
