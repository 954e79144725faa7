"""evaluate summarizes exactly the per-example ELBO and log-likelihood with standard errors;
evaluate_test_set does so on a data set's test split, as ``pyrovae evaluate`` reports it."""

from __future__ import annotations

import math

import pytest
import torch

import pyrovae
from pyrovae import VAE, load_data, resolve_config
from pyrovae.evaluation.evaluate import evaluate_test_set, mean_and_se

from conftest import DATA_ROOT, tiny_config
from linear_gaussian import linear_gaussian_vae, sample_data

#: guide = exact posterior shifted by half a posterior std, with 1.5x its std (ESS ~ K/2)
MISMATCH = {"mean_shift": 0.5, "scale_factor": 1.5}


def test_mean_and_se():
    values = torch.tensor([1.0, 2.0, 4.0, 9.0], dtype=torch.float64)
    mean, se = mean_and_se(values)
    # sample std with Bessel's correction: sqrt(((-3)^2 + (-2)^2 + 0 + 5^2) / 3) = sqrt(38/3)
    assert mean == 4.0 and se == pytest.approx(math.sqrt(38 / 3) / 2, rel=1e-12)
    assert mean_and_se(values[:1]) == (1.0, None)


def test_evaluate_summarizes_elbo_and_log_likelihood():
    vae = linear_gaussian_vae(**MISMATCH)
    x = sample_data(vae, 300)
    result = pyrovae.evaluate(vae, x, num_samples=200, seed=1, elbo_batch_size=64)
    # the summary is of exactly these per-example numbers (same seed, same draws)
    elbo = pyrovae.elbo_per_example(vae, x, batch_size=64, seed=1)
    ll, diag = pyrovae.log_likelihood(vae, x, num_samples=200, seed=1, return_diagnostics=True)
    assert (result.elbo, result.elbo_se) == pytest.approx(mean_and_se(elbo), rel=1e-12)
    assert (result.log_likelihood, result.log_likelihood_se) == pytest.approx(
        mean_and_se(ll), rel=1e-12)
    assert (result.ess_min, result.ess_median, result.ess_mean) == pytest.approx(
        (diag.ess.min().item(), diag.ess.median().item(), diag.ess.mean().item()), rel=1e-12)
    assert result.num_examples == 300 and result.num_samples == 200 and result.seed == 1
    assert set(result.as_dict()) >= {"elbo", "log_likelihood", "log_likelihood_se",
                                     "num_samples", "num_examples"}
    one = pyrovae.evaluate(vae, x[:1], num_samples=10)
    assert one.elbo_se is None and one.log_likelihood_se is None


def test_evaluate_with_ais_summarizes_the_chains():
    vae = linear_gaussian_vae(**MISMATCH)
    x = sample_data(vae, 20)
    result = pyrovae.evaluate(vae, x, method="ais", num_samples=4, num_steps=10, seed=1)
    ll, d = pyrovae.log_likelihood(vae, x, num_samples=4, method="ais", num_steps=10, seed=1,
                                   return_diagnostics=True)
    assert (result.log_likelihood, result.log_likelihood_se) == pytest.approx(
        mean_and_se(ll), rel=1e-12)
    assert result.method == "ais" and result.num_steps == 10 and result.num_samples == 4
    assert result.acceptance_rate == pytest.approx(d.acceptance_rate.mean().item(), rel=1e-12)
    assert result.chain_log_weight_std == pytest.approx(d.log_weight_std.mean().item(),
                                                        rel=1e-12)
    assert result.ess_mean is None and result.pareto_k_max is None
    assert result.num_pareto_k_above_0_7 is None


def test_evaluate_restores_the_training_mode():
    vae = linear_gaussian_vae()
    vae.train()
    pyrovae.evaluate(vae, sample_data(vae, 4), num_samples=3)
    assert vae.training


@pytest.mark.parametrize("prior", ["standard_normal", "conditional"])
def test_evaluate_test_set_reports_the_first_examples_of_the_test_split(prior):
    config = resolve_config(tiny_config(model={"prior": {"type": prior}},
                                        data={"train_limit": 64, "test_limit": 40}))
    vae = VAE.from_resolved_config(config)
    data = load_data(config["data"], root=DATA_ROOT)
    result = evaluate_test_set(vae, data, config, num_samples=4, seed=7, limit=30,
                               progress=False)
    x = data.test_images[:30]
    y = data.test_labels[:30] if vae.prior.uses_labels else None
    expected = pyrovae.evaluate(vae, x, y, num_samples=4, seed=7,
                                elbo_batch_size=config["train"]["eval_batch_size"]).as_dict()
    assert {k: result[k] for k in expected} == expected
    assert (result["dataset"], result["binarize"], result["binarization_seed"]) == (
        "mnist", "static", 0)  # the dynamically binarized run's test set is binarized once
    everything = evaluate_test_set(vae, data, config, num_samples=2, seed=7, progress=False)
    assert everything["num_examples"] == 40  # limit 0: the whole (limited) test split
