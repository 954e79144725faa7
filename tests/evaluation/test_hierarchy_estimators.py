"""The estimators over every latent site, proven on a two-layer linear-Gaussian hierarchy
z2 -> z1 -> x whose log p(x) is known in closed form (tests/linear_gaussian.py).

With the exact posterior as the guide every importance weight p(x, z1, z2) / q(z1, z2 | x)
equals p(x): importance sampling, the ELBO and AIS are then exact up to float64 rounding. With
a poor guide AIS and the BDMC bounds are compared with the closed form within their standard
errors ("4 SE" bounds
fail by chance with probability < 1e-4, normal approximation; every draw is seeded, so the
tests are deterministic). Importance sampling from a poor guide is checked for one and two
layers alike in tests/evaluation/test_log_likelihood.py.
"""

from __future__ import annotations

import math

import pytest
import torch

import pyrovae
from pyrovae.evaluation.ais import ais_log_likelihood
from pyrovae.evaluation.bdmc import bdmc, simulate

from estimator_checks import mean_and_se
from linear_gaussian import hierarchy_data, hierarchy_log_marginal, linear_gaussian_hierarchy

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# float64 rounding of a log-weight (a sum of ~30 terms of size < 100) is < 1e-11 nats; 1e-9
# leaves two orders of margin (as for the one-layer tests)
FLOAT64_TOL = 1e-9


def test_exact_posterior_makes_importance_sampling_and_the_elbo_exact():
    # q = p(z1, z2 | x): every weight is p(x), so IS at any K and the single-sample ELBO of
    # each example (KL(q || posterior) = 0) are log p(x), with ESS = K
    vae = linear_gaussian_hierarchy()
    x = hierarchy_data(vae, 40)
    exact = hierarchy_log_marginal(vae, x)
    ll, diag = pyrovae.log_likelihood(vae, x, num_samples=100, return_diagnostics=True)
    for estimate in (ll, pyrovae.elbo_per_example(vae, x)):
        torch.testing.assert_close(estimate, exact, rtol=0, atol=FLOAT64_TOL)
    torch.testing.assert_close(diag.ess, torch.full_like(diag.ess, 100), rtol=1e-9, atol=0)


def test_ais_from_the_exact_posterior_weighs_exactly_log_p_x():
    # q0 = p(z1, z2 | x): every annealing increment is that fraction of log p(x), whatever
    # the HMC transitions over both sites do
    vae = linear_gaussian_hierarchy()
    x = hierarchy_data(vae, 6)
    ll, d = ais_log_likelihood(vae, x, num_chains=4, num_steps=20)
    torch.testing.assert_close(ll, hierarchy_log_marginal(vae, x), rtol=0, atol=FLOAT64_TOL)
    assert float(d.log_weight_std.max()) < 1e-9


def test_ais_from_a_poor_guide_converges_to_the_closed_form():
    # guide means one std off and half as wide: IS with K = 100 is > 1 nat low here
    vae = linear_gaussian_hierarchy(mean_shift=1.0, scale_factor=0.5)
    x = hierarchy_data(vae, 16)
    exact = hierarchy_log_marginal(vae, x)
    assert (exact - pyrovae.log_likelihood(vae, x, num_samples=100)).mean() > 1
    ll, d = ais_log_likelihood(vae, x, num_steps=200)
    error = exact - ll
    # a stochastic lower bound: mean error >= 0 up to Monte Carlo noise, whose standard error
    # is sqrt(mean over examples of std(log w)^2 / S, divided by N) (delta method)
    se = math.sqrt(float((d.log_weight_std**2 / d.num_chains).mean()) / x.shape[0])
    assert -4 * se <= float(error.mean()) <= 0.05, (float(error.mean()), se)


def test_bdmc_simulates_both_sites_and_its_bounds_sandwich_the_closed_form():
    vae = linear_gaussian_hierarchy(mean_shift=1.0, scale_factor=0.5)
    _, latents = simulate(vae, hierarchy_data(vae, 4))
    assert set(latents) == {"z1", "z2"}
    result = bdmc(vae, hierarchy_data(vae, 8), num_steps=50)
    exact = hierarchy_log_marginal(vae, result.x)
    # stochastic bounds: E[lower] <= log p(x) <= E[upper] (Jensen on unbiased estimates of
    # p(x) and 1/p(x)); the means over the 8 examples hold that within 4 of their SE
    (lower, se_lower), (upper, se_upper) = (mean_and_se(b - exact) for b in (result.lower,
                                                                         result.upper))
    assert lower < 4 * se_lower and upper > -4 * se_upper, (lower, se_lower, upper, se_upper)
    assert float(result.gap.mean()) > 0
