"""Annealed importance sampling: exact where the theory says so, converging to the closed-form
log p(x) of linear-Gaussian VAEs that are hard for importance sampling, reproducible per
block, and general over the latent sites of a Pyro program."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

import pyrovae
from pyrovae.errors import ConfigError
from pyrovae.evaluation.ais import TARGET_ACCEPT, ais_log_likelihood, sigmoid_schedule

from linear_gaussian import (
    exact_log_marginal,
    hard_linear_gaussian_vae,
    linear_gaussian_vae,
    sample_data,
)

# thousands of small tensor operations: one thread avoids synchronisation waits
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_sigmoid_schedule_runs_from_0_to_1_increasing_and_dense_at_the_ends():
    beta = sigmoid_schedule(100)
    assert beta.shape == (101,)
    assert beta[0] == 0 and beta[-1] == 1
    steps = beta.diff()
    assert bool((steps > 0).all())
    assert steps[0] < steps[50] and steps[-1] < steps[50]


def test_from_the_exact_posterior_every_chain_weighs_exactly_log_p_x():
    # q0 = p(z|x) makes every intermediate f_t proportional to the posterior, so each
    # increment (beta_t - beta_{t-1}) (log p(x, z) - log q(z|x)) is exactly that fraction of
    # log p(x), whatever the transitions do: float64 rounding only.
    vae = linear_gaussian_vae()
    x = sample_data(vae, 6)
    ll, diagnostics = ais_log_likelihood(vae, x, num_chains=4, num_steps=20)
    torch.testing.assert_close(ll, exact_log_marginal(vae, x), rtol=0, atol=1e-9)
    assert float(diagnostics.log_weight_std.max()) < 1e-9


def test_default_budget_is_within_0_05_nats_of_exact_where_importance_sampling_is_not():
    # The hard case: 64-d data, correlated posterior, guide half as wide as the posterior's
    # conditionals. IS from the guide with K = 1000 is about 1 nat low here.
    vae = hard_linear_gaussian_vae()
    x = sample_data(vae, 64)
    exact = exact_log_marginal(vae, x)
    is_error = (exact - pyrovae.log_likelihood(vae, x, num_samples=1000)).mean()
    assert is_error > 0.5

    ll, d = pyrovae.log_likelihood(vae, x, method="ais", return_diagnostics=True)
    error = exact - ll
    # AIS is a stochastic lower bound: its mean error is >= 0 up to Monte Carlo noise. The
    # noise of one example's log-mean-exp of S chains is about std(log w) / sqrt(S) (delta
    # method); the mean over N examples has standard error sqrt(mean of those^2 / N).
    se = math.sqrt(float((d.log_weight_std**2 / d.num_chains).mean()) / x.shape[0])
    assert -4 * se <= float(error.mean()) <= 0.05, (float(error.mean()), se)
    # the step size settled where the acceptance probability is the target
    assert abs(float(d.acceptance_rate.mean()) - TARGET_ACCEPT) < 0.05


def test_starting_from_the_prior_also_converges():
    # f_t = p(z) p(x|z)^beta_t (Wu et al. 2017) on the 12-d linear-Gaussian VAE
    vae = linear_gaussian_vae(mean_shift=1.0, scale_factor=0.5)
    x = sample_data(vae, 32)
    ll, d = ais_log_likelihood(vae, x, num_steps=500, init="prior")
    error = exact_log_marginal(vae, x) - ll
    se = math.sqrt(float((d.log_weight_std**2 / d.num_chains).mean()) / x.shape[0])
    assert -4 * se <= float(error.mean()) <= 0.05, (float(error.mean()), se)
    assert d.init == "prior"


def test_each_chain_weight_is_unbiased_for_p_x():
    # E[w] = p(x) for every schedule (Neal 2001), even a short one. A guide wider than the
    # posterior keeps the weights' variance finite, so the sample mean of exp(log w - log p)
    # over 4000 chains is within 4 standard errors of 1.
    vae = linear_gaussian_vae(mean_shift=0.5, scale_factor=1.3)
    x = sample_data(vae, 3)
    _, d = ais_log_likelihood(vae, x, num_chains=4000, num_steps=5, max_batch_elements=2**15)
    ratio = (d.log_weights - exact_log_marginal(vae, x)).exp()
    se = ratio.std(dim=0) / math.sqrt(ratio.shape[0])
    assert bool(((ratio.mean(dim=0) - 1).abs() < 4 * se).all()), (ratio.mean(0), se)


def test_seeded_per_block_reproducible_and_independent_of_the_other_blocks():
    vae = hard_linear_gaussian_vae()
    x = sample_data(vae, 12)
    kwargs = {"num_chains": 4, "num_steps": 10, "max_batch_elements": 16}  # blocks of 4
    a = ais_log_likelihood(vae, x, **kwargs)[0]
    assert torch.equal(a, ais_log_likelihood(vae, x, **kwargs)[0])
    assert torch.equal(a[:4], ais_log_likelihood(vae, x[:4], **kwargs)[0])
    assert not torch.equal(a, ais_log_likelihood(vae, x, seed=1, **kwargs)[0])
    state = torch.get_rng_state()
    ais_log_likelihood(vae, x, **kwargs)
    assert torch.equal(state, torch.get_rng_state())  # the caller's stream is untouched


def test_repeats_are_independent_estimates():
    vae = hard_linear_gaussian_vae()
    x = sample_data(vae, 5)
    ll, d = ais_log_likelihood(vae, x, num_chains=4, num_steps=10, num_repeats=3)
    assert d.repeats is not None and d.repeats.shape == (3, 5)
    assert torch.equal(d.repeats[0], ll)
    assert bool((d.repeat_std > 0).all())


class TwoSiteLinearGaussian(nn.Module):
    """A user's Pyro program with two latent sites: z1 ~ N(0, I_2), z2 ~ N(0, I_3),
    x ~ N(W1 z1 + W2 z2, s^2 I_8), so x ~ N(0, W1 W1^T + W2 W2^T + s^2 I); the guide is a
    deliberately poor mean-field Normal at 0 with scale 0.5."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(3)
        self.w1 = nn.Parameter(torch.randn(8, 2, generator=gen, dtype=torch.float64))
        self.w2 = nn.Parameter(torch.randn(8, 3, generator=gen, dtype=torch.float64))
        self.noise = 0.5

    def model(self, x, y=None):
        with pyro.plate("data", x.shape[0]):
            z1 = pyro.sample("z1", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
            z2 = pyro.sample("z2", dist.Normal(x.new_zeros(3), 1.0).to_event(1))
            loc = z1 @ self.w1.T + z2 @ self.w2.T
            pyro.sample("x", dist.Normal(loc, self.noise).to_event(1), obs=x)

    def guide(self, x, y=None):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z1", dist.Normal(x.new_zeros(x.shape[0], 2), 0.5).to_event(1))
            pyro.sample("z2", dist.Normal(x.new_zeros(x.shape[0], 3), 0.5).to_event(1))

    def exact_log_marginal(self, x):
        cov = self.w1 @ self.w1.T + self.w2 @ self.w2.T + self.noise**2 * torch.eye(8)
        return dist.MultivariateNormal(x.new_zeros(8), covariance_matrix=cov).log_prob(x)


def test_every_latent_site_of_a_user_program_is_annealed():
    module = TwoSiteLinearGaussian()
    with torch.no_grad():
        x = dist.MultivariateNormal(
            torch.zeros(8, dtype=torch.float64),
            covariance_matrix=module.w1 @ module.w1.T + module.w2 @ module.w2.T
            + 0.25 * torch.eye(8, dtype=torch.float64),
        ).sample((16,))
        exact = module.exact_log_marginal(x)
    ll, d = ais_log_likelihood(module, x, num_steps=300)
    error = exact - ll
    se = math.sqrt(float((d.log_weight_std**2 / d.num_chains).mean()) / x.shape[0])
    assert -4 * se <= float(error.mean()) <= 0.05, (float(error.mean()), se)


class ConstrainedLatent(nn.Module):
    def model(self, x, y=None):
        with pyro.plate("data", x.shape[0]):
            rate = pyro.sample("rate", dist.Gamma(x.new_ones(()), 1.0))
            pyro.sample("x", dist.Normal(rate.unsqueeze(-1), 1.0).to_event(1), obs=x)

    def guide(self, x, y=None):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("rate", dist.Gamma(x.new_ones(()), 1.0))


def test_latents_that_hmc_cannot_move_are_refused_with_the_reason():
    with pytest.raises(ConfigError, match=r"site 'rate' has support .*method='is'"):
        ais_log_likelihood(ConstrainedLatent(), torch.ones(3, 2), num_steps=2)


def test_bad_arguments_are_refused():
    vae = linear_gaussian_vae()
    x = sample_data(vae, 2)
    with pytest.raises(ConfigError, match="num_steps"):
        ais_log_likelihood(vae, x, num_steps=0)
    with pytest.raises(ConfigError, match="init"):
        ais_log_likelihood(vae, x, init="posterior")  # type: ignore[arg-type]
