"""The ELBO per example, its two terms (rate and distortion) and the KL of each latent
dimension, checked against their definitions and closed forms (their figures:
tests/viz/test_figures.py)."""

from __future__ import annotations

import pytest
import torch

import pyrovae
from pyrovae import ConfigError

from conftest import binary_images, tiny_vae


def test_rate_plus_distortion_is_minus_the_elbo_of_the_same_draws():
    vae, x = tiny_vae(), binary_images(50)
    rate, distortion = pyrovae.rate_and_distortion(vae, x, batch_size=16, seed=3)
    elbo = pyrovae.elbo_per_example(vae, x, batch_size=16, seed=3)
    assert rate.shape == distortion.shape == (50,)
    # the same draws, summed in another order: equal to float32 rounding of ~550-nat sums
    torch.testing.assert_close(rate + distortion, -elbo, rtol=0, atol=1e-3)
    assert (distortion > 0).all()  # -log of a probability mass of binary pixels


def test_kl_per_dimension_is_the_closed_form_gaussian_kl():
    vae, x = tiny_vae(), binary_images(40)
    with torch.no_grad():
        mu, sigma = vae.guide_family.loc_scale(vae.encoder(x))
    # KL(N(mu, s^2) || N(0, 1)) = (mu^2 + s^2 - 1) / 2 - log s, per dimension
    expected = ((mu**2 + sigma**2 - 1) / 2 - sigma.log()).mean(0)
    kl = pyrovae.kl_per_dimension(vae, x, batch_size=16)
    assert kl.shape == (8,)
    torch.testing.assert_close(kl, expected, rtol=1e-5, atol=1e-6)


def test_kl_per_dimension_sums_to_the_mean_rate():
    """The rate is a one-draw Monte Carlo estimate of the total KL: over N examples its mean
    is within a few standard errors of the sum of the per-dimension KLs (4 SE: a false
    failure has probability ~6e-5 for a Normal mean)."""
    vae, x = tiny_vae(), binary_images(500)
    # a trained-like spread of posterior means, so the KL is not near 0
    with torch.no_grad():
        vae.encoder.net[-1].weight.mul_(20)
    rate, _ = pyrovae.rate_and_distortion(vae, x, seed=1)
    total = pyrovae.kl_per_dimension(vae, x).sum()
    se = rate.std() / 500**0.5
    assert total > 1.0
    assert abs(rate.mean() - total) < 4 * se


def test_kl_per_dimension_of_a_conditional_prior_is_taken_against_p_z_given_y():
    vae, x = tiny_vae(prior={"type": "conditional"}), binary_images(30)
    y = torch.arange(30) % 10
    with torch.no_grad():
        mu, sigma = vae.guide_family.loc_scale(vae.encoder(x))
        m = vae.prior.class_means[y]
    expected = (((mu - m) ** 2 + sigma**2 - 1) / 2 - sigma.log()).mean(0)
    torch.testing.assert_close(pyrovae.kl_per_dimension(vae, x, y), expected,
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="pass the labels y"):
        pyrovae.kl_per_dimension(vae, x)


@pytest.mark.parametrize("model, named", [
    ({"prior": {"type": "vamp", "components": 5}}, "model.prior = 'vamp'"),
    ({"guide": {"type": "iaf"}}, "model.guide = 'iaf'"),
])
def test_kl_per_dimension_refuses_models_that_do_not_factorise(model, named):
    vae = tiny_vae(**model)
    with pytest.raises(ConfigError, match=f"one Normal per dimension.*{named}"):
        pyrovae.kl_per_dimension(vae, binary_images(4))


def test_elbo_per_example_is_seeded_batched_and_leaves_the_outer_stream_alone():
    vae, x = tiny_vae(), binary_images(20)
    state = torch.get_rng_state()
    a = pyrovae.elbo_per_example(vae, x, batch_size=7, seed=2)
    assert torch.equal(torch.get_rng_state(), state)  # fixed_rng restores the outer state
    assert a.shape == (20,) and (a < 0).all()  # log-masses of binary images
    assert torch.equal(a, pyrovae.elbo_per_example(vae, x, batch_size=7, seed=2))
    assert not torch.equal(a, pyrovae.elbo_per_example(vae, x, batch_size=7, seed=3))
    # the first batch's draws do not depend on the batch size of the ones after it
    torch.testing.assert_close(a[:7], pyrovae.elbo_per_example(vae, x[:7], seed=2))


def test_labels_reach_a_conditional_prior():
    vae, x = tiny_vae(prior={"type": "conditional", "init_spread": 3.0}), binary_images(10)
    y = torch.arange(10)
    with_labels = pyrovae.elbo_per_example(vae, x, y, seed=0)
    other_labels = pyrovae.elbo_per_example(vae, x, (y + 1) % 10, seed=0)
    assert with_labels.shape == (10,) and not torch.equal(with_labels, other_labels)
    rate, distortion = pyrovae.rate_and_distortion(vae, x, y, seed=0)
    torch.testing.assert_close(rate + distortion, -with_labels, rtol=0, atol=1e-3)
