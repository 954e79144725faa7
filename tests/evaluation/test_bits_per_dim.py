"""Bits per dimension: -log p(x) / (D ln 2) for masses on discrete levels, nothing (with the
reason) for densities, in `evaluate`'s summary as in the conversion itself."""

from __future__ import annotations

import math

import pytest
import torch

from pyrovae import VAE, evaluate
from pyrovae.errors import ConfigError
from pyrovae.evaluation import bits_per_dim, bits_per_dim_note

from conftest import tiny_config

SMALL = {"latent_dim": 2, "encoder": {"hidden": [8]}, "decoder": {"hidden": [8]}}


def vae_with(likelihood: dict, binarize: str) -> VAE:
    return VAE.from_config(tiny_config(data={"binarize": binarize},
                                       model={**SMALL, "likelihood": likelihood}))


def test_a_mass_on_8_bit_levels_has_bits_per_dim():
    vae = vae_with({"type": "discretized_logistic"}, "none")
    ll = torch.tensor([-1000.0, -2000.0])
    expected = torch.tensor([1000.0, 2000.0]) / (784 * math.log(2))
    torch.testing.assert_close(bits_per_dim(vae, ll), expected)
    x = torch.randint(0, 256, (6, 784)) / 255
    result = evaluate(vae, x, num_samples=3)
    assert result.bits_per_dim == pytest.approx(-result.log_likelihood / (784 * math.log(2)),
                                                rel=1e-6)
    assert result.bits_per_dim_se == pytest.approx(result.log_likelihood_se
                                                   / (784 * math.log(2)), rel=1e-6)
    assert "256 levels" in result.bits_per_dim_note


def test_bernoulli_on_binary_pixels_reports_bits_per_binary_pixel():
    vae = vae_with({"type": "bernoulli"}, "dynamic")
    result = evaluate(vae, torch.bernoulli(torch.full((4, 784), 0.3)), num_samples=3)
    assert result.bits_per_dim == pytest.approx(-result.log_likelihood / (784 * math.log(2)),
                                                rel=1e-6)
    assert "bits per binary pixel" in result.bits_per_dim_note
    assert "not comparable with bits per dimension of 8-bit data" in result.bits_per_dim_note


@pytest.mark.parametrize("likelihood,binarize,reason", [
    ({"type": "gaussian"}, "none", "'gaussian' is a density, not a mass on discrete levels"),
    ({"type": "continuous_bernoulli"}, "none", "'continuous_bernoulli' is a density"),
    ({"type": "bernoulli", "allow_grey_levels": True}, "none",
     "scores the binary cross-entropy, not a normalised likelihood"),
])
def test_densities_have_none_and_say_why(likelihood, binarize, reason):
    vae = vae_with(likelihood, binarize)
    result = evaluate(vae, torch.rand(4, 784), num_samples=3)
    assert result.bits_per_dim is None and result.bits_per_dim_se is None
    assert result.bits_per_dim_note.startswith("not defined: ") and reason in (
        result.bits_per_dim_note)
    assert reason in bits_per_dim_note(vae)
    with pytest.raises(ConfigError, match="bits per dimension are not defined: .*" + reason[:12]):
        bits_per_dim(vae, torch.zeros(4))
