"""AnalyticKL_ELBO: checked against Pyro's own estimators and closed forms.

Statistical assertions compare Monte Carlo means with standard errors (SE) estimated from
the same draws; a "4 SE" bound fails by chance with probability < 1e-4 (normal
approximation). Every draw is seeded, so the tests are deterministic.
"""

from __future__ import annotations

import math
import warnings

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import SVI, TraceMeanField_ELBO
from pyro.infer import Trace_ELBO as PyroTrace_ELBO
from torch import nn

from pyrovae import VAE, AnalyticKL_ELBO, AnalyticKLFallbackWarning, scale_latents

from estimator_checks import grads, mean_and_se, replicated_losses, seeded
from linear_gaussian import exact_elbo, exact_expectations, linear_gaussian_vae, sample_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------- against Pyro
@pytest.mark.parametrize("num_particles,vectorize", [(1, False), (3, False), (4, True)])
def test_same_loss_and_gradients_as_trace_mean_field_elbo(vae, x, num_particles, vectorize):
    ours = AnalyticKL_ELBO(num_particles=num_particles, vectorize_particles=vectorize)
    pyros = TraceMeanField_ELBO(num_particles=num_particles, vectorize_particles=vectorize)
    loss = seeded(ours.differentiable_loss, vae.model, vae.guide, x)
    expected = seeded(pyros.differentiable_loss, vae.model, vae.guide, x)
    # the same draws and the same terms, summed in another order: float32 rounding only
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=0)
    assert seeded(ours.loss, vae.model, vae.guide, x) == pytest.approx(
        seeded(pyros.loss, vae.model, vae.guide, x), rel=1e-6)
    for g, h in zip(grads(vae, loss), grads(vae, expected)):
        torch.testing.assert_close(g, h, rtol=1e-5, atol=1e-6)


def test_usable_with_svi_loss_and_grads_and_as_a_module(vae, x):
    elbo = AnalyticKL_ELBO()
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-2}), loss=elbo)
    before = vae.encoder.net[0].weight.detach().clone()
    losses = [svi.step(x) for _ in range(10)]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert not torch.equal(before, vae.encoder.net[0].weight)
    # loss_and_grads fills .grad with the gradient of differentiable_loss
    vae.zero_grad()
    value = seeded(elbo.loss_and_grads, vae.model, vae.guide, x)
    expected = seeded(elbo.differentiable_loss, vae.model, vae.guide, x)
    assert value == pytest.approx(expected.item(), rel=1e-6)
    torch.testing.assert_close(vae.decoder.net[0].weight.grad,
                               grads(vae, expected)[list(dict(vae.named_parameters())).index(
                                   "decoder.net.0.weight")])
    # the ELBO.__call__ module form
    module = elbo(vae.model, vae.guide)
    assert isinstance(module, nn.Module)
    torch.testing.assert_close(seeded(module, x), expected)


# ---------------------------------------------------------------------- expectations

def test_mean_equals_trace_elbo_mean_within_monte_carlo_error(vae, x):
    pyro.set_rng_seed(1)
    with pyro.validation_enabled(False):
        ours = replicated_losses(AnalyticKL_ELBO(), vae.model, vae.guide, x, 25, 40)
        theirs = replicated_losses(PyroTrace_ELBO(), vae.model, vae.guide, x, 25, 40)
    (m1, se1), (m2, se2) = mean_and_se(ours), mean_and_se(theirs)
    assert abs(m1 - m2) < 4 * math.hypot(se1, se2), (m1, m2, se1, se2)


def test_mean_equals_closed_form_elbo_for_probabilistic_pca():
    vae = linear_gaussian_vae(mean_shift=0.5, scale_factor=1.5)
    x = sample_data(vae, 20)
    pyro.set_rng_seed(2)
    losses = replicated_losses(AnalyticKL_ELBO(), vae.model, vae.guide, x, 50, 40)
    mean, se = mean_and_se(-losses)
    assert abs(mean - exact_elbo(vae, x).mean().item()) < 4 * se, (mean, se)


def test_gradient_variance_lower_than_trace_elbo_on_standard_normal_prior(vae, x):
    """Measured: at initialisation the analytic KL halves the encoder-gradient variance."""
    params = list(vae.encoder.parameters())

    def gradient_draws(elbo, draws: int) -> torch.Tensor:
        out = []
        for _ in range(draws):
            loss = elbo.differentiable_loss(vae.model, vae.guide, x)
            out.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)]))
        return torch.stack(out).double()

    def total_variance(g: torch.Tensor) -> tuple[float, float]:
        # sum of per-coordinate variances = mean of u_r = |g_r - mean|^2 * R/(R-1); its SE is
        # that of a mean of R (nearly) independent u_r, which allows for heavy tails
        u = (g - g.mean(0)).square().sum(1) * g.shape[0] / (g.shape[0] - 1)
        return mean_and_se(u)

    pyro.set_rng_seed(3)
    with pyro.validation_enabled(False):
        v_trace, se_trace = total_variance(gradient_draws(PyroTrace_ELBO(), 100))
        v_ours, se_ours = total_variance(gradient_draws(AnalyticKL_ELBO(), 100))
    print(f"total encoder-gradient variance: Trace_ELBO {v_trace:.0f} ± {se_trace:.0f}, "
          f"AnalyticKL_ELBO {v_ours:.0f} ± {se_ours:.0f}, ratio {v_ours / v_trace:.3f}")
    assert v_trace - v_ours > 4 * math.hypot(se_trace, se_ours), (v_trace, v_ours)
    assert v_ours / v_trace < 0.75, v_ours / v_trace


# ---------------------------------------------------------------------- fallback
class StudentTPrior(nn.Module):
    """A prior with no closed-form KL against a Normal guide."""

    latent_dim = 8
    uses_labels = False

    def distribution(self, y=None):
        return dist.StudentT(4.0, torch.zeros(8), torch.ones(8)).to_event(1)


def test_fallback_warns_once_naming_site_and_types_and_equals_trace_elbo(vae, x):
    vae.prior = StudentTPrior()
    elbo = AnalyticKL_ELBO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses = [seeded(elbo.loss, vae.model, vae.guide, x, seed=s) for s in range(3)]
    fallback = [w for w in caught if issubclass(w.category, AnalyticKLFallbackWarning)]
    assert len(fallback) == 1
    message = str(fallback[0].message)
    assert "'z'" in message and "Independent(Normal)" in message
    assert "Independent(StudentT)" in message
    # the Monte Carlo term for the site is Trace_ELBO's: same draws, same loss
    expected = [seeded(PyroTrace_ELBO().loss, vae.model, vae.guide, x, seed=s) for s in range(3)]
    assert losses == pytest.approx(expected, rel=1e-6)


def test_each_site_chooses_closed_form_or_monte_carlo():
    """Two latent sites: z1 has a closed-form KL, z2 (Laplace guide vs Cauchy prior) has not."""
    data = torch.randn(5, 2)
    loc = torch.tensor([0.3, -0.2], requires_grad=True)

    def model(x):
        with pyro.plate("data", 5):
            z1 = pyro.sample("z1", dist.Normal(0.0, 1.0).expand([5, 2]).to_event(1))
            z2 = pyro.sample("z2", dist.Cauchy(0.0, 1.0).expand([5, 2]).to_event(1))
            pyro.sample("x", dist.Normal(z1 + z2, 1.0).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", 5):
            pyro.sample("z1", dist.Normal(loc, 0.5).expand([5, 2]).to_event(1))
            pyro.sample("z2", dist.Laplace(-loc, 0.7).expand([5, 2]).to_event(1))

    elbo = AnalyticKL_ELBO()
    with pytest.warns(AnalyticKLFallbackWarning, match="'z2'.*Laplace.*Cauchy"):
        loss = seeded(elbo.differentiable_loss, model, guide, data)
    pyro.set_rng_seed(0)
    guide_trace = poutine.trace(guide).get_trace(data)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(data)
    g, m = guide_trace.nodes, model_trace.nodes
    expected = -(
        m["x"]["fn"].log_prob(data).sum()
        - torch.distributions.kl_divergence(g["z1"]["fn"], m["z1"]["fn"]).sum()
        + m["z2"]["fn"].log_prob(g["z2"]["value"]).sum()
        - g["z2"]["fn"].log_prob(g["z2"]["value"]).sum()
    )
    torch.testing.assert_close(loss, expected)


# ---------------------------------------------------------------------- scale and mask
def scaled_programs(vae: VAE, model_scale: float, guide_scale: float, mask=True):
    """vae's model and guide with the latent site scaled by :func:`pyrovae.scale_latents`
    (beta-VAE / KL warm-up) and every site optionally masked (``poutine.mask``)."""
    return (scale_latents(poutine.mask(vae.model, mask=mask), model_scale),
            scale_latents(poutine.mask(vae.guide, mask=mask), guide_scale))


def test_honours_scale_and_mask_like_trace_mean_field(vae, x):
    mask = torch.arange(16) % 3 != 0
    model, guide = scaled_programs(vae, 0.25, 0.25, mask)
    loss = seeded(AnalyticKL_ELBO().differentiable_loss, model, guide, x)
    expected = seeded(TraceMeanField_ELBO().differentiable_loss, model, guide, x)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=0)
    # by hand: -(sum over unmasked examples of log p(x|z) - 0.25 KL)
    pyro.set_rng_seed(0)
    q = vae.posterior(x)
    z = q.rsample()
    terms = vae.likelihood_distribution(z).log_prob(x) - 0.25 * torch.distributions.kl_divergence(
        q, vae.prior.distribution().expand([16]))
    torch.testing.assert_close(loss, -terms[mask].sum(), rtol=1e-6, atol=0)
    # scaling a whole program pair scales the loss
    scaled = seeded(AnalyticKL_ELBO().loss, poutine.scale(vae.model, scale=3.0),
                    poutine.scale(vae.guide, scale=3.0), x)
    assert scaled == pytest.approx(3 * seeded(AnalyticKL_ELBO().loss, vae.model, vae.guide, x),
                                   rel=1e-6)


def test_model_only_scale_keeps_trace_elbo_expectation():
    """With the latent site scaled by 0.3 in the model only, E[estimate] must be
    E_q[log p(x|z)] + 0.3 E_q[log p(z)] - E_q[log q(z)], as for Trace_ELBO (closed form)."""
    vae = linear_gaussian_vae(mean_shift=0.5, scale_factor=1.5)
    x = sample_data(vae, 20)
    model, guide = scaled_programs(vae, 0.3, 1.0)
    e = exact_expectations(vae, x)
    expected = (e["log_lik"] + 0.3 * e["log_prior"] - e["log_q"]).mean().item()
    pyro.set_rng_seed(4)
    losses = replicated_losses(AnalyticKL_ELBO(), model, guide, x, 50, 40)
    mean, se = mean_and_se(-losses)
    assert abs(mean - expected) < 4 * se, (mean, expected, se)
