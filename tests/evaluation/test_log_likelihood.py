"""pyrovae.log_likelihood is proven right where log p(x) is known exactly: probabilistic PCA.

Statistical assertions compare Monte Carlo means with their standard errors (SE) estimated
from the same samples; "4 SE" bounds fail by chance with probability < 1e-4 each (normal
approximation), and every draw is seeded, so the tests are deterministic.
"""

from __future__ import annotations

import importlib.util
import itertools
import math

import pytest
import torch

import pyrovae
from pyrovae import VAE, ConfigError, DataError
from pyrovae.evaluation.importance import RunningLogMeanExp

from conftest import ROOT
from estimator_checks import mean_and_se
from linear_gaussian import (
    LINEAR_GAUSSIAN_MODELS,
    exact_elbo,
    exact_log_marginal,
    linear_gaussian_vae,
    sample_data,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# float64 rounding of a log-weight (a sum of ~50 terms of size < 100) is < 1e-11 nats; the
# log-mean-exp of K equal values adds ~1e-15 * log K. 1e-9 leaves two orders of margin.
FLOAT64_TOL = 1e-9
#: guide = exact posterior shifted by half a posterior std, with 1.5x its std (ESS ~ K/2)
MISMATCH = {"mean_shift": 0.5, "scale_factor": 1.5}


# ---------------------------------------------------------------------- exact answers
@pytest.mark.parametrize("num_samples", [1, 10, 100, 1000])
def test_exact_posterior_gives_log_marginal_for_every_K(num_samples):
    vae = linear_gaussian_vae()
    x = sample_data(vae, 50)
    ll, diag = pyrovae.log_likelihood(vae, x, num_samples=num_samples, return_diagnostics=True)
    # with q = p(z|x), every weight p(x,z)/q(z|x) equals p(x): no Monte Carlo error at all
    torch.testing.assert_close(ll, exact_log_marginal(vae, x), rtol=0, atol=FLOAT64_TOL)
    torch.testing.assert_close(diag.ess, torch.full_like(diag.ess, num_samples), rtol=1e-9,
                               atol=0)


@pytest.mark.parametrize("model", LINEAR_GAUSSIAN_MODELS)
def test_estimate_matches_closed_form_within_standard_errors(model):
    build, sample, exact_log_p = LINEAR_GAUSSIAN_MODELS[model]  # one or two latent layers
    vae = build(**MISMATCH)
    x = sample(vae, 200)
    K = 1000
    ll, diag = pyrovae.log_likelihood(vae, x, num_samples=K, return_diagnostics=True)
    error = ll - exact_log_p(vae, x)
    # Delta method: with cv^2 = Var(w)/E[w]^2 estimated by K/ESS - 1, log p^ has bias
    # -cv^2/(2K) = -(1/ESS - 1/K)/2 (a few 1e-4 nats here). Removing it, the errors of the
    # independent examples have mean 0; their mean must lie within 4 SE of 0.
    bias = -(1 / diag.ess - 1 / K) / 2
    mean, se = mean_and_se(error - bias)
    assert abs(mean) < 4 * se, (mean, se)
    assert se < 0.01  # the comparison is sharp: K = 1000 pins log p(x) to ~0.05 nats/example


def test_K1_equals_elbo_in_expectation_and_estimate_is_nondecreasing_in_K():
    vae = linear_gaussian_vae(**MISMATCH)
    x = sample_data(vae, 400)
    exact, elbo = exact_log_marginal(vae, x), exact_elbo(vae, x)
    estimates = {K: pyrovae.log_likelihood(vae, x, num_samples=K, seed=K)
                 for K in (1, 10, 100, 1000)}

    # K = 1: a single log-weight, an unbiased estimate of the ELBO
    mean, se = mean_and_se(estimates[1] - elbo)
    assert abs(mean) < 4 * se, (mean, se)

    # E[log p^_K] is non-decreasing in K (Burda et al. 2016, thm 1): each paired difference
    # of means over the same examples is > -4 SE; the first step is clearly positive
    Ks = sorted(estimates)
    for small, large in itertools.pairwise(Ks):
        mean, se = mean_and_se(estimates[large] - estimates[small])
        assert mean > -4 * se, (small, large, mean, se)
    mean, se = mean_and_se(estimates[10] - estimates[1])
    assert mean > 4 * se, (mean, se)

    # ... and a lower bound of log p(x) in expectation, approaching it
    for K, est in estimates.items():
        mean, se = mean_and_se(est - exact)
        assert mean < 4 * se, (K, mean, se)
    gap_elbo = (exact - elbo).mean().item()
    gap_1000 = (exact - estimates[1000]).mean().item()
    assert gap_elbo > 0.5 and gap_1000 < 0.01 * gap_elbo, (gap_elbo, gap_1000)


# ---------------------------------------------------------------------- chunking
@pytest.mark.parametrize("max_batch_elements", [1, 7, 64, 10**6])
def test_chunked_equals_unchunked_for_exact_posterior(max_batch_elements):
    # Different chunkings make different random draws; with the exact posterior the draws do
    # not matter, so this checks the bookkeeping: chunks over K (normalised by the total K)
    # and over examples (each estimate lands on its own example, whose log p(x) differs).
    vae = linear_gaussian_vae()
    x = sample_data(vae, 23)
    ll = pyrovae.log_likelihood(vae, x, num_samples=10, max_batch_elements=max_batch_elements)
    torch.testing.assert_close(ll, exact_log_marginal(vae, x), rtol=0, atol=FLOAT64_TOL)


@pytest.mark.parametrize("chunk", [1, 3, 64, 1000])
def test_running_log_mean_exp_equals_one_pass(chunk):
    gen = torch.Generator().manual_seed(0)
    # log-weights far outside exp's range (|a| ~ 1e4) with a spread of ~10 nats
    log_w = 1e4 * torch.tensor([-1.0, 1.0, 0.0]) + 10 * torch.randn(1000, 3, generator=gen,
                                                                    dtype=torch.float64)
    running = RunningLogMeanExp(3, torch.float64, torch.device("cpu"))
    for start in range(0, 1000, chunk):
        running.update(log_w[start : start + chunk])
    expected = log_w.logsumexp(0) - math.log(1000)
    w = torch.softmax(log_w, dim=0)  # normalized weights
    # each logaddexp on values of size ~2e4 rounds by ~2e4 * 2.2e-16 = 4.4e-12; a chain of
    # at most 1000 of them stays below 1e-9 (absolute in the log domain, relative for ESS)
    torch.testing.assert_close(running.log_mean(), expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(running.ess(), 1 / w.square().sum(0), rtol=1e-9, atol=0)


def test_chunked_and_unchunked_agree_within_monte_carlo_error():
    vae = linear_gaussian_vae(**MISMATCH)
    x = sample_data(vae, 200)
    one_pass = pyrovae.log_likelihood(vae, x, num_samples=100, max_batch_elements=10**6)
    chunked = pyrovae.log_likelihood(vae, x, num_samples=100, max_batch_elements=30)
    mean, se = mean_and_se(chunked - one_pass)  # independent draws per example: paired SE
    assert abs(mean) < 4 * se, (mean, se)


# ---------------------------------------------------------------------- diagnostics, API
def test_repeats_report_spread_without_changing_the_estimate():
    vae = linear_gaussian_vae(**MISMATCH)
    x = sample_data(vae, 20)
    single = pyrovae.log_likelihood(vae, x, num_samples=100, seed=3)
    ll, diag = pyrovae.log_likelihood(vae, x, num_samples=100, seed=3, num_repeats=4,
                                      return_diagnostics=True)
    assert torch.equal(ll, single) and torch.equal(diag.repeats[0], ll)
    assert diag.repeats.shape == (4, 20) and diag.num_samples == 100
    assert ((diag.ess >= 1) & (diag.ess <= 100)).all()
    # delta method: SD of log p^ ~ sqrt(1/ESS - 1/K); the spread of 4 repeats is that up to
    # chi-square noise (a factor within [0.1, 3] with probability > 0.999 per example)
    predicted = torch.sqrt(1 / diag.ess - 1 / 100)
    ratio = (diag.repeat_std / predicted).median().item()
    assert 0.5 < ratio < 1.5, ratio

    exact = linear_gaussian_vae()
    _, diag = pyrovae.log_likelihood(exact, x, num_samples=10, num_repeats=3,
                                     return_diagnostics=True)
    assert diag.repeat_std.abs().max() < FLOAT64_TOL


def test_matches_handwritten_pytorch_iwae_on_the_same_draws(tiny):
    """The Pyro-trace estimator equals a hand-written formula for a Bernoulli MLP VAE (the
    one in bench/), given the same seed and chunking (float64: to rounding)."""
    spec = importlib.util.spec_from_file_location("bench_ll", ROOT / "bench" /
                                                  "log_likelihood_speed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    vae = VAE.from_config(tiny).double()
    x = torch.bernoulli(torch.full((40, 784), 0.3, dtype=torch.float64))
    for K, M in ((50, 1000), (300, 128)):
        ours = pyrovae.log_likelihood(vae, x, num_samples=K, max_batch_elements=M, seed=5)
        theirs = bench.handwritten_log_likelihood(vae, x, K, M, seed=5)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=FLOAT64_TOL)


def test_bad_arguments_raise_config_error_and_mode_is_restored():
    vae = linear_gaussian_vae()
    x = sample_data(vae, 3)
    with pytest.raises(ConfigError, match=r"^num_samples = 0 must be at least 1$"):
        pyrovae.log_likelihood(vae, x, num_samples=0)
    with pytest.raises(ConfigError, match=r"^max_batch_elements = 0 must be at least 1$"):
        pyrovae.log_likelihood(vae, x, num_samples=5, max_batch_elements=0)
    with pytest.raises(ConfigError, match=r"^num_repeats = -2 must be at least 1$"):
        pyrovae.log_likelihood(vae, x, num_samples=5, num_repeats=-2)
    with pytest.raises(ConfigError, match=r"num_samples = 2\.5 has the wrong type"):
        pyrovae.log_likelihood(vae, x, num_samples=2.5)
    with pytest.raises(DataError, match=rf"^x must have shape \(N, {vae.data_dim}\)"):
        pyrovae.log_likelihood(vae, x[0], num_samples=5)  # bad data is a DataError
    with pytest.raises(ConfigError, match=r"one of \['is', 'ais'\]; got 'bdmc'.*bdmc\.bdmc"):
        pyrovae.log_likelihood(vae, x, method="bdmc")  # type: ignore[call-overload]
    with pytest.raises(ConfigError, match=r"num_steps = 10 is the number of AIS annealing steps"):
        pyrovae.log_likelihood(vae, x, num_samples=5, num_steps=10)
    vae.train()
    pyrovae.log_likelihood(vae, x, num_samples=5)
    assert vae.training
    pyrovae.log_likelihood(vae, x, num_samples=2, method="ais", num_steps=2)
    assert vae.training


def test_method_ais_is_the_ais_estimator_with_its_defaults():
    from pyrovae.evaluation.ais import DEFAULT_NUM_CHAINS, ais_log_likelihood

    vae = linear_gaussian_vae(mean_shift=0.5)
    x = sample_data(vae, 4)
    ll, d = pyrovae.log_likelihood(vae, x, method="ais", num_steps=3, seed=2,
                                   return_diagnostics=True)
    assert d.num_chains == DEFAULT_NUM_CHAINS and d.num_steps == 3
    assert torch.equal(ll, ais_log_likelihood(vae, x, num_steps=3, seed=2)[0])


# ---------------------------------------------------------------------- devices
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cpu_and_cuda_agree():
    cuda = torch.device("cuda")
    exact_vae = linear_gaussian_vae()
    x = sample_data(exact_vae, 50)
    # exact posterior: no Monte Carlo error, so the devices must agree to rounding
    cpu = pyrovae.log_likelihood(exact_vae, x, num_samples=100)
    gpu = pyrovae.log_likelihood(exact_vae.to(cuda), x.to(cuda), num_samples=100)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=FLOAT64_TOL)
    # approximate guide: the devices draw differently; means agree within 4 paired SE
    vae = linear_gaussian_vae(**MISMATCH)
    x = sample_data(vae, 200)
    cpu = pyrovae.log_likelihood(vae, x, num_samples=100)
    gpu = pyrovae.log_likelihood(vae.to(cuda), x.to(cuda), num_samples=100).cpu()
    mean, se = mean_and_se(gpu - cpu)
    assert abs(mean) < 4 * se, (mean, se)
