"""The discretized logistic mixture (PixelCNN++, Salimans et al. 2017) is a probability mass
on the 256 levels of each 8-bit element: it sums to 1, equals the CDF differences computed by
hand, stays finite (with finite gradients) for extreme parameters, and its mean and samples
are those of the mass. Its likelihood refuses data that are not 8-bit levels."""

from __future__ import annotations

import pytest
import torch

from pyrovae import LIKELIHOODS, VAE
from pyrovae.distributions import DiscretizedLogisticMixture
from pyrovae.errors import ConfigError, DataError

from conftest import tiny_config

LEVELS = torch.arange(256, dtype=torch.float64) / 255  # every value of an 8-bit element

#: (logits, locations, log scales) of K = 3 components for one element: ordinary mixtures,
#: very sharp (log scale below the clamp at -7) and very wide logistics, locations on a level,
#: between levels, at the edges and far outside [-1, 1]
SETTINGS = {
    "ordinary": ([0.0, 1.0, -1.0], [-0.5, 0.1, 0.7], [-2.0, -3.0, -1.0]),
    "sharp-on-a-level": ([0.0, 0.0, 0.0], [-1.0, 2 * 100 / 255 - 1, 1.0], [-9.0, -7.0, -20.0]),
    "sharp-between-levels": ([5.0, -5.0, 0.0], [2 * 100.5 / 255 - 1, 0.0, -0.3], [-7.0] * 3),
    "wide": ([0.0, 0.0, 0.0], [0.0, 3.0, -3.0], [5.0, 2.0, 10.0]),
    "far-outside": ([-30.0, 30.0, 0.0], [-40.0, 40.0, 8.0], [-1.0, -6.0, -3.0]),
}


def mixture(setting: str, dtype=torch.float64) -> DiscretizedLogisticMixture:
    """The mixture of a setting for one element: batch (), event (1,), K = 3."""
    logits, locs, log_scales = (torch.tensor(v, dtype=dtype).reshape(3, 1)
                                for v in SETTINGS[setting])
    return DiscretizedLogisticMixture(logits, locs, log_scales)


def by_hand(setting: str) -> torch.Tensor:
    """P(x) of the 256 levels from the definition, in float64: the mixture of the logistic
    CDF differences over each level's bin on [-1, 1], the tails given to levels 0 and 255."""
    logits, locs, log_scales = (torch.tensor(v, dtype=torch.float64) for v in SETTINGS[setting])
    scales = log_scales.clamp(min=-7.0).exp()
    x = 2 * LEVELS - 1
    upper = torch.sigmoid((x[:, None] + 1 / 255 - locs) / scales)
    lower = torch.sigmoid((x[:, None] - 1 / 255 - locs) / scales)
    upper[-1], lower[0] = 1.0, 0.0
    return ((upper - lower) * torch.softmax(logits, 0)).sum(-1)


@pytest.mark.parametrize("setting", SETTINGS)
def test_the_mass_sums_to_one_over_the_256_levels(setting):
    # float64 telescoping: each of 256 terms is exact to ~1e-16 relative, so their sum is 1
    # to ~256 * 1e-16; float32 to ~256 * 6e-8
    total = mixture(setting).log_prob(LEVELS[:, None]).exp().sum()
    assert abs(total.item() - 1) < 1e-13
    total32 = mixture(setting, torch.float32).log_prob(LEVELS[:, None].float()).exp().sum()
    assert abs(total32.item() - 1) < 256 * 6e-8


@pytest.mark.parametrize("setting", SETTINGS)
def test_the_mass_equals_the_cdf_differences(setting):
    expected = by_hand(setting)
    mass = mixture(setting).log_prob(LEVELS[:, None]).exp()
    # the log-space formula is exact algebra: agreement to float64 rounding of the
    # sigmoids (~1e-16), relative to the masses and absolutely where the direct
    # differences themselves cancel to rounding
    torch.testing.assert_close(mass, expected, rtol=1e-9, atol=1e-15)


def test_extreme_parameters_give_finite_log_probs_and_gradients():
    """Where the direct CDF difference underflows to 0 (a sharp logistic far from the level)
    the log mass is still finite, and equals the leading term of its expansion."""
    locs = torch.tensor([[-1.0]], requires_grad=True)  # at level 0
    log_scales = torch.tensor([[-7.0]], requires_grad=True)
    d = DiscretizedLogisticMixture(torch.zeros(1, 1), locs, log_scales)
    x = torch.tensor([[1.0], [0.5 + 0.5 / 255], [0.0]])  # levels 255, 128, 0
    log_p = d.log_prob(x)
    assert torch.isfinite(log_p).all()
    # level 255: log(1 - F(1 - 1/255)) = logsigmoid(-(2 - 1/255) / s) ~ -(2 - 1/255) e^7
    torch.testing.assert_close(log_p[0], torch.tensor(-(2 - 1 / 255) * torch.e**7), rtol=1e-6,
                               atol=0)
    log_p.sum().backward()
    assert torch.isfinite(locs.grad).all() and torch.isfinite(log_scales.grad).all()


@pytest.mark.parametrize("setting", SETTINGS)
def test_mean_is_the_mean_of_the_mass(setting):
    d = mixture(setting)
    torch.testing.assert_close(d.mean, (LEVELS * by_hand(setting)).sum().reshape(1),
                               rtol=1e-10, atol=1e-12)


def test_samples_are_levels_drawn_from_the_mass():
    torch.manual_seed(0)
    d = mixture("ordinary", torch.float32)
    n = 40_000
    x = d.sample((n,))
    assert x.shape == (n, 1)
    assert torch.equal(x * 255, (x * 255).round())
    # each level's frequency is Binomial(n, p)/n: within 5 standard deviations
    # sqrt(p (1 - p) / n) of p (over 256 levels, a false alarm has probability < 1e-4)
    p = by_hand("ordinary")
    freq = torch.bincount((x[:, 0] * 255).round().long(), minlength=256).double() / n
    assert ((freq - p).abs() <= 5 * (p * (1 - p) / n).sqrt() + 1e-12).all()


def test_batch_and_event_shapes_broadcast_like_a_pyro_distribution():
    likelihood = LIKELIHOODS.build({"type": "discretized_logistic", "components": 4},
                                   "model.likelihood", data_dim=6)
    assert likelihood.params_per_element == 12
    d = likelihood.distribution(torch.randn(7, 2, 12, 6))  # (particles, batch, 3K, D)
    assert d.batch_shape == (7, 2) and d.event_shape == (6,)
    x = torch.randint(0, 256, (2, 6)) / 255
    assert d.log_prob(x).shape == (7, 2)
    assert d.expand((3, 7, 2)).log_prob(x).shape == (3, 7, 2)
    assert d.mean.shape == (7, 2, 6) and d.sample().shape == (7, 2, 6)


@pytest.mark.parametrize("binarize", ["dynamic", "static"])
def test_binarized_data_is_refused(binarize):
    with pytest.raises(ConfigError, match=r"'discretized_logistic' is a mass on the 256 levels "
                       rf"of 8-bit pixels, but data\.binarize = '{binarize}'"):
        VAE.from_config(tiny_config(data={"binarize": binarize},
                                    model={"likelihood": {"type": "discretized_logistic"}}))


def test_mnist_grey_levels_are_8_bit_levels():
    """MNIST (uint8 / 255 in float32) passes the support check; its off-level neighbours,
    e.g. dequantized values, do not."""
    vae = VAE.from_config(tiny_config(data={"binarize": "none"},
                                      model={"likelihood": {"type": "discretized_logistic"}}))
    levels = (torch.arange(784) % 256).float().reshape(1, 784) / 255
    vae.likelihood.check_data(levels)
    assert "DiscretizedLogistic(x_d | mu_dk, s_dk)" in vae.describe()
    assert "a mass on the 256 levels" in vae.describe()
    with pytest.raises(DataError, match="8-bit levels"):
        vae.likelihood.check_data(levels + 0.25 / 255)
