"""pyrovae.inference_gaps: the approximation and amortization gaps (Cremer et al. 2018)
against closed forms on linear-Gaussian models, for each guide family, and the contract's
refusal."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

import pyrovae
from pyrovae import ConfigError, LocalOptimization, inference_gaps
from pyrovae.evaluation.local_elbo import LocalELBO
from pyrovae.models.program import as_program

from conftest import binary_images, tiny_vae
from linear_gaussian import (
    hard_linear_gaussian_vae,
    hierarchy_data,
    hierarchy_log_marginal,
    linear_gaussian_hierarchy,
    parameters,
    sample_data,
)

#: Monte Carlo estimates are compared with closed forms within this many of their standard
#: errors (a two-sided normal tail of 6e-5 per comparison)
Z = 4.0


def diagonal_elbo(vae, x, loc, var):
    """The ELBO of q(z) = N(loc, diag var) ``(N, d)`` for the linear-Gaussian VAE, ``(N,)``:
    E_q log p(x|z) + E_q log p(z) + H[q], each Gaussian expectation in closed form."""
    W, b, sigma = parameters(vae)
    D, d = W.shape
    resid = x - loc @ W.T - b
    log_lik = -0.5 * D * math.log(2 * math.pi * sigma**2) - (
        resid.square().sum(-1) + var @ W.square().sum(0)
    ) / (2 * sigma**2)
    log_prior = -0.5 * d * math.log(2 * math.pi) - 0.5 * (loc.square() + var).sum(-1)
    entropy = 0.5 * (torch.log(2 * math.pi * var) + 1).sum(-1)
    return log_lik + log_prior + entropy


def best_diagonal_elbo(vae, x):
    """The largest ELBO of a diagonal-Normal q for each example: the mean of q is the
    posterior mean, its variances the reciprocal diagonal of the posterior precision
    M / sigma^2, M = W^T W + sigma^2 I (the KL(q || p(z|x)) minimizer of a product family)."""
    W, b, sigma = parameters(vae)
    M = W.T @ W + sigma**2 * torch.eye(W.shape[1], dtype=W.dtype)
    loc = (x - b) @ torch.linalg.solve(M, W.T).T
    var = (sigma**2 / torch.diagonal(M)).expand_as(loc)
    return diagonal_elbo(vae, x, loc, var)


def test_local_elbo_reaches_the_best_diagonal_normal_elbo_in_closed_form():
    """The hard linear-Gaussian model: a correlated posterior that no diagonal Normal matches,
    and an encoder whose scales are half the best ones; the optimized parameters' ELBO is the
    best diagonal ELBO to 0.01 nats for every example, and the estimates agree with the
    closed forms to their Monte Carlo errors."""
    vae = hard_linear_gaussian_vae()
    x = sample_data(vae, 8)
    gaps = inference_gaps(vae, x, method="is", num_samples=200, num_elbo_samples=4000)
    local = gaps.local
    assert bool(local.converged.all()) and int(local.steps.max()) < local.settings.max_steps
    loc, scale = vae.guide_family.loc_scale(local.parameters["z"])
    best = best_diagonal_elbo(vae, x)
    reached = diagonal_elbo(vae, x, loc, scale.square())
    assert float((best - reached).abs().max()) < 0.01
    # the estimates are means of 4000 log-weights; their stated errors cover the closed forms
    assert bool(((gaps.local_elbo - reached).abs() <= Z * local.local_elbo_mc_se).all())
    with torch.no_grad():
        loc0, scale0 = vae.guide_family.loc_scale(vae.encoder(x))
    amortized = diagonal_elbo(vae, x, loc0, scale0.square())
    assert bool(((gaps.elbo - amortized).abs() <= Z * local.elbo_mc_se).all())
    # the encoder's scales are half the best: a positive amortization gap of ~1 nat
    assert bool((gaps.amortization_gap > 10 * local.local_elbo_mc_se + 0.1).all())
    torch.testing.assert_close(
        gaps.approximation_gap + gaps.amortization_gap, gaps.log_likelihood - gaps.elbo
    )
    summary = gaps.summary()
    assert summary["amortization_gap_se"] > 0 and summary["converged"] == 1.0


def test_the_hierarchy_local_elbo_closes_the_gap_when_its_family_holds_the_posterior():
    """The two-layer linear-Gaussian hierarchy with a guide moved one std off the posterior
    and half as wide: its local family (q(z1) free, q(z2 | z1) moved per example) holds the
    exact posterior, so the local ELBO reaches log p(x) (closed form) within 0.01 nats plus
    the estimate's Monte Carlo error (which vanishes at the exact posterior)."""
    vae = linear_gaussian_hierarchy(mean_shift=1.0, scale_factor=0.5)
    x = hierarchy_data(vae, 6)
    result = LocalELBO(as_program(vae), LocalOptimization(), 2000, 2**14)(x)
    exact = hierarchy_log_marginal(vae, x)
    assert bool(result.converged.all())
    assert bool(((result.local_elbo - exact).abs() <= 0.01 + Z * result.local_elbo_mc_se).all())
    assert bool((exact - result.elbo > 1.0).all())  # the moved guide loses over a nat
    assert set(result.parameters) == {"z1", "z2"}
    assert result.parameters["z2"].shape == (6, 4)  # the offsets of q(z2 | z1): 2 x 2 numbers


def test_the_iaf_guide_takes_part_with_its_context_per_example():
    """An IAF guide: the encoder's output (mu, sigma, context) per example is optimized, the
    flows' networks are the family's; a short optimization cannot lose ELBO beyond the
    estimates' errors."""
    pyro.set_rng_seed(0)
    vae = tiny_vae(guide={"type": "iaf", "num_flows": 1, "hidden": [16], "context_dim": 4})
    x = binary_images(4)
    local = LocalOptimization(max_steps=30, window=10, tolerance=1e-6)
    gaps = inference_gaps(vae, x, method="is", num_samples=20, num_elbo_samples=200, local=local)
    assert gaps.local.parameters["z"].shape == (4, 2 * 8 + 4)
    assert int(gaps.local.steps[0]) == 30 and not bool(gaps.local.converged.any())
    noise = Z * (gaps.local.elbo_mc_se.square() + gaps.local.local_elbo_mc_se.square()).sqrt()
    assert bool((gaps.amortization_gap > -noise).all())
    assert all(p.requires_grad for p in vae.parameters())  # restored after the optimization


class Plain(torch.nn.Module):
    """A program of one's own, with no local parameters declared."""

    def __init__(self) -> None:
        super().__init__()
        self.loc = torch.nn.Linear(4, 2)

    def model(self, x, y=None):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
            pyro.sample("x", dist.Normal(z @ torch.ones(2, 4), 1.0).to_event(1), obs=x)

    def guide(self, x, y=None):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(self.loc(x), 1.0).to_event(1))


class Declared(Plain):
    """The same program declaring its guide's per-example parameters: the mean of q(z|x)."""

    def local_parameters(self, x, y=None):
        return {"loc": self.loc(x)}

    def local_guide(self, params, x, y=None):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(params["loc"], 1.0).to_event(1))


def test_a_program_without_local_parameters_is_refused_with_the_reason():
    with pytest.raises(ConfigError, match=r"does not declare them.*local_parameters\(x, y\)"):
        inference_gaps(Plain(), torch.randn(3, 4))


def test_a_program_of_ones_own_takes_part_by_declaring_its_local_parameters():
    """q(z) = N(loc, I) against the posterior N(x A, (I + 4 * 1 1^T / ... )): the mean is
    optimized (the scale is the family's), so the local ELBO is above the amortized one."""
    torch.manual_seed(0)
    x = torch.randn(5, 4) * 2
    local = LocalOptimization(max_steps=400)
    gaps = inference_gaps(Declared(), x, method="is", num_samples=100, local=local)
    assert gaps.local.parameters["loc"].shape == (5, 2)
    noise = Z * (gaps.local.elbo_mc_se.square() + gaps.local.local_elbo_mc_se.square()).sqrt()
    assert bool((gaps.amortization_gap > noise).all())  # an untrained encoder: far off


def test_settings_out_of_range_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="num_particles"):
        LocalOptimization(num_particles=0)
    with pytest.raises(ConfigError, match="lr_decay"):
        LocalOptimization(lr_decay=1.5)
    with pytest.raises(ConfigError, match="method"):
        inference_gaps(tiny_vae(), binary_images(2), method="bdmc")


def test_inference_gaps_is_exported():
    assert pyrovae.inference_gaps is inference_gaps
