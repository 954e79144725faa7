"""The PSIS diagnostic (pyrovae.evaluation.psis): per-example Pareto shapes k of the largest
importance weights, computed from a streamed tail of them, recover the tail shape where it
is known, agree with Pyro's own psis_diagnostic, and flag the examples whose importance-
sampled log p(x) is far from the exact one.

The estimator's sampling error: the fit is the Zhang-Stephens estimate, as efficient as the
maximum-likelihood one, whose shape has asymptotic standard deviation (1 + k) / sqrt(M) on M
tail weights (M = 213 at K = 5000, so about 0.1 per example); means over N examples have
standard error (1 + k) / sqrt(M N). Every draw is seeded, so the tests are deterministic.
"""

from __future__ import annotations

import importlib
import math
import warnings

import pyro.infer.importance
import pytest
import torch

import pyrovae
from pyrovae.evaluation.psis import RunningTail, pareto_k, pareto_tail_size
from pyrovae.infer.log_weights import log_weights
from pyrovae.rng import derived_seed, fixed_rng

from linear_gaussian import (
    exact_log_marginal,
    hard_linear_gaussian_vae,
    linear_gaussian_vae,
    parameters,
    sample_data,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

K = 5000
M = pareto_tail_size(K)
#: the module of the importance-sampling estimator
IMPORTANCE_MODULE = importlib.import_module("pyrovae.evaluation.importance")


def shrunk(k: float) -> float:
    """What the fit returns on average for shape k: Pyro's fit adds the weakly informative
    prior of Vehtari et al., k M / (M + 10) + 5 / (M + 10)."""
    return (k * M + 5) / (M + 10)


def gpd_log_weights(k: float, num_examples: int, seed: int) -> torch.Tensor:
    """``(K, N)`` logs of generalized-Pareto(k, scale 1) draws, by inverting the CDF."""
    u = torch.rand(K, num_examples, generator=torch.Generator().manual_seed(seed),
                   dtype=torch.float64)
    return torch.log(torch.expm1(-k * torch.log(u)) / k)


# ---------------------------------------------------------------------- the tail rule
def test_tail_size_follows_vehtari_et_al():
    # M = ceil(min(0.2 K, 3 sqrt K)): 0.2 K up to K = 225, then 3 sqrt K
    assert [pareto_tail_size(k) for k in (1, 45, 46, 100, 225, 5000)] == [1, 9, 10, 20, 45, 213]


@pytest.mark.parametrize("chunk", [1, 7, 213, 214, 1000, K])
def test_running_tail_is_bitwise_the_tail_of_all_draws(chunk):
    log_w = gpd_log_weights(0.8, 6, seed=0).float()  # float32, as most VAEs are evaluated
    tail = RunningTail(K, 6, log_w.dtype, log_w.device)
    for start in range(0, K, chunk):
        tail.update(log_w[start : start + chunk])
    # the kept values are copies of the M + 1 largest, sorted: no arithmetic, so bitwise
    assert torch.equal(tail.values, log_w.sort(dim=0, descending=True).values[: M + 1])
    assert torch.equal(tail.pareto_k(), pareto_k(log_w))


def test_log_likelihood_k_is_that_of_all_its_streamed_draws(monkeypatch):
    # record the chunks of draws log_likelihood makes: with K = 400 and 150 pairs per pass,
    # one example at a time in chunks of 150, 150 and 100 draws
    chunks: list[torch.Tensor] = []

    def recording(*args, **kwargs):
        chunks.append(log_weights(*args, **kwargs))
        return chunks[-1]

    monkeypatch.setattr(IMPORTANCE_MODULE, "log_weights", recording)
    vae = linear_gaussian_vae(mean_shift=1.0, scale_factor=0.7)
    x = sample_data(vae, 6)
    _, diag = pyrovae.log_likelihood(vae, x, num_samples=400, max_batch_elements=150,
                                     return_diagnostics=True)
    assert [c.shape for c in chunks[:3]] == [(150, 1), (150, 1), (100, 1)] and len(chunks) == 18
    all_draws = torch.cat([torch.cat(chunks[i : i + 3]) for i in range(0, 18, 3)], dim=1)
    assert torch.equal(diag.pareto_k, pareto_k(all_draws))


def test_diagnostics_keep_the_draws_and_estimates():
    vae = linear_gaussian_vae(mean_shift=1.0, scale_factor=0.7)
    x = sample_data(vae, 10)
    plain = pyrovae.log_likelihood(vae, x, num_samples=300, seed=4, max_batch_elements=10**6)
    ll, diag = pyrovae.log_likelihood(vae, x, num_samples=300, seed=4, num_repeats=2,
                                      max_batch_elements=10**6, return_diagnostics=True)
    assert torch.equal(ll, plain)
    # one pass (one block), its seed: the same draws; k is that of the first repeat's weights
    with fixed_rng(derived_seed(4, "is", 0, 0), x.device):
        draws = log_weights(vae.model, vae.guide, x, None, num_particles=300)
    assert torch.equal(diag.pareto_k, pareto_k(draws))
    assert diag.pareto_k.shape == (10,) and diag.pareto_k.dtype == x.dtype == torch.float64


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_example_matches_pyro_psis_diagnostic(monkeypatch, seed):
    # Pyro's psis_diagnostic on an example's own K log-weights (its importance sampler
    # replaced by one returning them) gives the same k, up to exp's rounding (1e-12)
    log_w = gpd_log_weights(0.2 + 0.4 * seed, 4, seed=seed)
    ours = pareto_k(log_w)
    for i in range(4):
        monkeypatch.setattr(pyro.infer.importance, "vectorized_importance_weights",
                            lambda *args, i=i, **kwargs: (log_w[:, i].clone(), None, None))
        theirs = pyro.infer.importance.psis_diagnostic(None, None, num_particles=K)
        assert ours[i].item() == pytest.approx(theirs, abs=1e-12)


def test_edge_cases_of_k():
    cpu = torch.device("cpu")
    # K < 46: M < 10 tail weights even when all differ: no estimate
    assert pareto_k(torch.randn(45, 3, dtype=torch.float64)).isnan().all()
    assert not pareto_k(torch.randn(46, 3, dtype=torch.float64)).isnan().any()
    log_w = torch.randn(K, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    log_w[:, 0] = -80.0                # equal weights: flat at the top
    log_w[:, 1] = -80.0 + 1e-13 * log_w[:, 1]  # equal up to rounding (~1e-13 nats)
    log_w[:3, 2] = 100.0               # three draws carry all the weight (1e-40 of it elsewhere)
    log_w[:, 3] = -math.inf            # every weight 0
    k = pareto_k(log_w)
    # spreads of 0 and ~1e-13 nats are below sqrt(eps) * 80 = 1.2e-6 nats: -inf
    assert k[0] == k[1] == -math.inf and k[2] == math.inf and k[3].isnan()
    tail = RunningTail(100, 2, torch.float64, cpu)
    with pytest.raises(ValueError, match="feed all K draws"):
        tail.pareto_k()
    with pytest.raises(ValueError, match=r"101 draws .* num_samples = 100"):
        tail.update(torch.zeros(101, 2, dtype=torch.float64))


# ---------------------------------------------------------------------- known tails
@pytest.mark.parametrize("k", [0.3, 0.7, 1.0])
def test_k_of_generalized_pareto_weights(k):
    # Excesses of a generalized Pareto over any threshold (here the (M+1)-th largest draw)
    # are again generalized Pareto with the same shape: the fit is unbiased up to its
    # O(1/M) finite-sample bias (~0.005) and the prior's shrinkage. 4 SE: chance < 1e-4.
    N = 100
    estimates = pareto_k(gpd_log_weights(k, N, seed=int(10 * k)))
    se = (1 + k) / math.sqrt(M * N)
    assert abs(estimates.mean().item() - shrunk(k)) < 4 * se, (estimates.mean(), shrunk(k))
    # the spread across examples is the estimator's: (1 + k) / sqrt(M), up to chi-square
    # noise of N = 100 values (+-14% at 2 SD of a sample SD) and finite-M effects
    assert 0.75 < estimates.std().item() / ((1 + k) / math.sqrt(M)) < 1.25


@pytest.mark.parametrize("ratio", [math.sqrt(2), 2.0, 4.0])
def test_k_of_a_normal_target_from_a_narrower_normal_proposal(ratio):
    # Target N(0, r^2), proposal N(0, 1): w(z) = exp(a z^2 / 2) / r with a = 1 - 1/r^2, and
    # P(w > t) = P(|z| > z_t), z_t^2 = 2 log(r t) / a, which is t^(-1/a) up to the slowly
    # varying factor 1/z_t: the Pareto shape is k = a = 1 - 1/r^2. That factor makes the
    # local shape -d log t / d log P(w > t) equal k z^2 / (1 + z^2) at |z| = z (it tends to
    # k as z grows); the fit over the tail above the threshold z_u (P(|z| > z_u) = M / K)
    # lies between the local shapes at z_u and at infinity.
    N = 100
    z = torch.randn(K, N, generator=torch.Generator().manual_seed(int(ratio * 10)),
                    dtype=torch.float64)
    log_w = -0.5 * (z / ratio) ** 2 - math.log(ratio) + 0.5 * z**2
    estimates = pareto_k(log_w)
    k = 1 - 1 / ratio**2
    z_u = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(1 - M / K / 2)).item()
    lower, upper = shrunk(k * z_u**2 / (1 + z_u**2)), shrunk(k)
    se = (1 + k) / math.sqrt(M * N)
    assert lower - 4 * se < estimates.mean().item() < upper + 4 * se, (lower, upper, estimates)


def test_exact_guide_gives_k_below_zero():
    # q(z|x) = p(z|x): every weight is p(x), equal up to float rounding, so the M + 1 largest
    # are flat at the top and k is -inf by the rounding rule; in float32 the rounding is
    # coarser (~1e-5 nats here) but still far below sqrt(eps) * |log w| (~5e-3 nats)
    for dtype in (torch.float64, torch.float32):
        vae = linear_gaussian_vae(dtype=dtype)
        x = sample_data(vae, 20).to(dtype)
        _, diag = pyrovae.log_likelihood(vae, x, num_samples=1000, return_diagnostics=True)
        assert (diag.pareto_k == -math.inf).all(), (dtype, diag.pareto_k)
    # a wider guide (1.5x the posterior's std, shifted by half of it) has bounded weights:
    # the fitted shape is negative
    vae = linear_gaussian_vae(mean_shift=0.5, scale_factor=1.5)
    _, diag = pyrovae.log_likelihood(vae, sample_data(vae, 20), num_samples=1000,
                                     return_diagnostics=True)
    assert (diag.pareto_k < 0).all(), diag.pareto_k


# ---------------------------------------------------------------------- IS that is far off
#: guide std / the posterior's conditional std, by group of examples (one model)
SCALE_FACTORS = (0.5, 0.7, 1.0, 1.4, 2.0)


def true_pareto_k(vae) -> float:
    """The Pareto shape of the importance weights of the hard linear-Gaussian VAE, the same
    for every x. The guide's mean is the posterior's, so with posterior covariance
    Sigma = sigma^2 M^-1 and guide covariance S (diagonal), log w = log p(x) + (terms in
    u = S^-1/2 (z - mean), u ~ N(0, I)) = const - u^T (B - I) u / 2, B = S^1/2 Sigma^-1 S^1/2.
    Along B's eigenvector of eigenvalue lambda < 1 this is the 1-D case of
    test_k_of_a_normal_target_from_a_narrower_normal_proposal with 1/r^2 = lambda, k = 1 -
    lambda; the smallest eigenvalue gives the heaviest tail: k = 1 - lambda_min."""
    W, _, sigma = parameters(vae)
    precision = (W.T @ W + sigma**2 * torch.eye(W.shape[1], dtype=W.dtype)) / sigma**2
    with torch.no_grad():
        _, std = vae.guide_family.loc_scale(vae.encoder(torch.zeros(1, W.shape[0],
                                                                    dtype=W.dtype)))
    B = std[0, :, None] * precision * std[0, None, :]
    return 1 - torch.linalg.eigvalsh(B)[0].item()


def test_k_above_0_7_flags_the_examples_where_importance_sampling_is_far_off():
    # One model, guides of five qualities on five groups of 40 examples, as an amortized
    # guide is better on some examples than on others. The error of the K-sample estimate
    # depends on the weights' tail: with k < 0.5 their variance is finite and the error is
    # about Var(w) / (2 K E[w]^2), O(1/K); with k > 0.5 the largest undrawn weights matter
    # and the relative error of the mean weight falls only like K^(k - 1) (a generalized
    # central limit theorem for tail index 1/k), so at K = 5000 the estimate is far off
    # exactly where k is large.
    ks, true_ks, errors = [], [], []
    for group, scale_factor in enumerate(SCALE_FACTORS):
        vae = hard_linear_gaussian_vae(scale_factor=scale_factor)
        x = sample_data(vae, 40, seed=1 + group)
        ll, diag = pyrovae.log_likelihood(vae, x, num_samples=K, return_diagnostics=True)
        ks.append(diag.pareto_k)
        true_ks.append(torch.full((40,), true_pareto_k(vae), dtype=torch.float64))
        errors.append(exact_log_marginal(vae, x) - ll)
    k, true_k, error = torch.cat(ks), torch.cat(true_ks), torch.cat(errors)
    # the set-up: true k = 0.92, 0.84, 0.68, 0.37 and < 0 (1 - 4 lambda_min = -0.28: bounded)
    assert true_k.unique().tolist() == pytest.approx(sorted(
        [0.92, 0.84, 0.68, 0.37, -0.28]), abs=0.01)

    flagged = k > 0.7
    # at 0.13-0.27 per-example SDs ((1 + k) / sqrt(M) ~ 0.12) from the threshold for the
    # groups with true k 0.84 and 0.92, at most ~13% of them can be missed (one-sided normal
    # tail at 1.15 SD), and of those with true k < 0.7 (0.68: on the fence) few are flagged
    assert flagged[true_k > 0.7].double().mean() > 0.85
    assert flagged[true_k < 0.7].double().mean() < 0.2
    assert flagged[:40].all()  # hard_linear_gaussian_vae() itself: k = 0.92 everywhere
    # flagged estimates are far off, the others close (errors are >= 0 on average: IS is a
    # stochastic lower bound): the means differ tenfold, and nearly every estimate more
    # than 0.5 nat too low is flagged
    assert error[flagged].mean() > 10 * error[~flagged].mean() > 0
    assert error[flagged].mean() > 0.4
    assert flagged[error > 0.5].double().mean() > 0.9, (error > 0.5).sum()


# ---------------------------------------------------------------------- evaluate
def test_evaluate_reports_pareto_k_and_warns_in_one_line():
    vae = hard_linear_gaussian_vae()
    x = sample_data(vae, 20)
    with pytest.warns(pyrovae.UnreliableEstimateWarning) as caught:
        result = pyrovae.evaluate(vae, x, num_samples=1000, seed=2)
    _, diag = pyrovae.log_likelihood(vae, x, num_samples=1000, seed=2, return_diagnostics=True)
    assert result.pareto_k_max == diag.pareto_k.max().item()
    assert result.num_pareto_k_above_0_7 == int((diag.pareto_k > 0.7).sum()) > 10
    message = str(caught[0].message)
    assert "\n" not in message and f"{result.num_pareto_k_above_0_7} of 20 examples" in message
    for advice in ("more samples than K=1000", "a better guide", "--method ais"):
        assert advice in message, message
    assert issubclass(pyrovae.UnreliableEstimateWarning, pyrovae.PyrovaeWarning)
    assert issubclass(pyrovae.AnalyticKLFallbackWarning, pyrovae.PyrovaeWarning)
    assert {"pareto_k_max", "num_pareto_k_above_0_7"} <= set(result.as_dict())


def test_evaluate_is_silent_when_k_is_small_or_undefined():
    vae = linear_gaussian_vae(mean_shift=0.5, scale_factor=1.5)
    x = sample_data(vae, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", pyrovae.PyrovaeWarning)
        result = pyrovae.evaluate(vae, x, num_samples=100)
        assert result.pareto_k_max < 0.5 and result.num_pareto_k_above_0_7 == 0
        hard = hard_linear_gaussian_vae()
        few = pyrovae.evaluate(hard, sample_data(hard, 10), num_samples=45)
    assert few.pareto_k_max is None and few.num_pareto_k_above_0_7 == 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tail_gives_the_cpu_k():
    # the tail is kept on the device and moved to the CPU (float64) once for the fits
    log_w = gpd_log_weights(0.8, 5, seed=0)
    tail = RunningTail(K, 5, log_w.dtype, torch.device("cuda"))
    for start in range(0, K, 1000):
        tail.update(log_w[start : start + 1000].cuda())
    assert torch.equal(tail.pareto_k(), pareto_k(log_w))
