"""Paired model comparison: exact bookkeeping where the estimates are exact, paired errors
far below the models' own, and refusals of comparisons that are not example by example."""

from __future__ import annotations

import pytest
import torch

from pyrovae.errors import ConfigError
from pyrovae.evaluation.compare import check_same_test_set, compare

from linear_gaussian import (
    exact_log_marginal,
    hard_linear_gaussian_vae,
    linear_gaussian_vae,
    sample_data,
)


def shifted_exact_vae(shift: float):
    """The probabilistic-PCA VAE with its decoder bias b moved by ``shift`` in every
    coordinate, and its encoder moved with it, so that its guide stays the exact posterior
    ``N(A (x - b), ...)``."""
    vae = linear_gaussian_vae()
    d = vae.latent_dim
    with torch.no_grad():
        delta = torch.full_like(vae.decoder.net[0].bias, shift)
        vae.decoder.net[0].bias += delta
        A = vae.encoder.net[0].weight[:d]
        vae.encoder.net[0].bias[:d] -= A @ delta
    return vae


def test_exact_estimates_give_the_exact_paired_difference():
    # With exact guides every importance weight equals p(x): the estimates are exact and
    # every repeat is identical, so the difference, its SE and the (zero) Monte Carlo error
    # are those of the closed form, to float64 rounding.
    a, b = linear_gaussian_vae(), shifted_exact_vae(0.3)
    x = sample_data(a, 40)
    exact_a, exact_b = exact_log_marginal(a, x), exact_log_marginal(b, x)
    result = compare({"a": a, "b": b}, x, num_samples=50, num_repeats=3)
    diff = exact_b - exact_a
    (score_a, score_b), (d,) = result.scores, result.differences
    assert score_a.log_likelihood == pytest.approx(float(exact_a.mean()), abs=1e-9)
    assert score_b.log_likelihood == pytest.approx(float(exact_b.mean()), abs=1e-9)
    assert d.name == "b" and d.reference == "a"
    assert d.mean == pytest.approx(float(diff.mean()), abs=1e-9)
    assert d.se == pytest.approx(float(diff.std()) / 40**0.5, abs=1e-9)
    assert d.mc_error == pytest.approx(0.0, abs=1e-9)
    assert score_a.mc_error == pytest.approx(0.0, abs=1e-9)
    assert result.num_repeats == 3 and result.method == "is"
    table = result.table().splitlines()
    assert "(reference)" in table[1] and f"{d.mean:+.3f}" in table[2]


def test_the_paired_standard_error_is_far_below_each_models_own():
    # Two noise scales of one linear-Gaussian model rank the examples alike: most of each
    # model's spread across examples cancels in the per-example difference.
    a, b = hard_linear_gaussian_vae(noise_scale=0.3), hard_linear_gaussian_vae(noise_scale=0.35)
    x = sample_data(a, 64)
    result = compare({"a": a, "b": b}, x, method="ais", num_samples=4, num_steps=20)
    (score_a, score_b), (d,) = result.scores, result.differences
    assert d.se < 0.5 * min(score_a.se, score_b.se)
    assert d.mc_error is not None and d.mc_error > 0
    assert result.settings == {"num_samples": 4, "num_steps": 20, "seed": 0}


def test_one_repeat_reports_no_monte_carlo_error():
    a, b = linear_gaussian_vae(), shifted_exact_vae(0.1)
    result = compare({"a": a, "b": b}, sample_data(a, 5), num_samples=10, num_repeats=1)
    assert result.differences[0].mc_error is None and result.scores[0].mc_error is None


def test_fewer_than_two_models_are_refused():
    vae = linear_gaussian_vae()
    with pytest.raises(ConfigError, match="at least two models"):
        compare({"a": vae}, sample_data(vae, 3))


def data_config(**changes):
    return {"dataset": "mnist", "binarize": "dynamic", "binarization_seed": 0,
            "test_limit": 0, **changes}


def test_runs_compare_only_on_the_same_test_examples():
    same = {"a": {"data": data_config()}, "b": {"data": data_config(binarize="static")}}
    check_same_test_set(same)  # dynamic or static training: the same statically binarized test set
    for change, key in (({"dataset": "fashion_mnist"}, "data.dataset"),
                        ({"binarization_seed": 1}, "data.binarization_seed"),
                        ({"binarize": "none"}, "test binarization"),
                        ({"test_limit": 100}, "data.test_limit")):
        runs = {"a": {"data": data_config()}, "b": {"data": data_config(**change)}}
        match = f"runs 'a' and 'b' have different test sets \\({key}"
        with pytest.raises(ConfigError, match=match):
            check_same_test_set(runs)
