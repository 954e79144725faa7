"""Likelihoods: log-densities normalise, the continuous Bernoulli's normaliser is right, data
outside a likelihood's support and incompatible binarization are refused clearly."""

from __future__ import annotations

import math

import pyro.poutine as poutine
import pytest
import torch

from pyrovae import LIKELIHOODS, VAE
from pyrovae.errors import ConfigError, DataError

from conftest import tiny_config


def build(spec: dict | str, data_dim: int = 1):
    return LIKELIHOODS.build(spec, "model.likelihood", data_dim=data_dim).double()


def simpson(values: torch.Tensor, h: float) -> torch.Tensor:
    """Composite Simpson rule over the last dimension (an odd number of equally spaced points).
    Its error is at most (b - a) h^4 max|f''''| / 180."""
    weights = torch.ones(values.shape[-1], dtype=values.dtype)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return (values * weights).sum(-1) * h / 3


def test_bernoulli_mass_sums_to_one_over_all_binary_images():
    likelihood = build("bernoulli", data_dim=3)
    logits = torch.tensor([[[-2.0, 0.3, 4.0]]], dtype=torch.float64)  # (batch 1, k 1, D 3)
    images = torch.tensor([[(i >> d) & 1 for d in range(3)] for i in range(8)], dtype=torch.float64)
    total = likelihood.distribution(logits).log_prob(images).exp().sum()
    torch.testing.assert_close(total, torch.tensor(1.0, dtype=torch.float64))


# near 1/2 torch switches to a Taylor expansion of the normaliser: cover both sides of it
CB_LOGITS = [-10.0, -3.0, -0.5, -4e-3, -1e-5, 0.0, 1e-5, 4e-3, 0.5, 3.0, 10.0]


def test_continuous_bernoulli_normalises_on_a_grid():
    likelihood = build("continuous_bernoulli")
    logits = torch.tensor(CB_LOGITS, dtype=torch.float64)
    n = 20_001
    x = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    params = logits.reshape(-1, 1, 1, 1)  # (L, 1 grid-broadcast, k = 1, D = 1)
    density = likelihood.distribution(params).log_prob(x.reshape(1, n, 1)).exp()  # (L, n)
    integral = simpson(density, 1.0 / (n - 1))
    # The density is C * (1 - lam) * exp(logit * x), so f'''' = logit^4 f exactly; Simpson's
    # error is then at most h^4 logit^4 max f / 180 (plus float64 rounding, ~1e-12).
    bound = (1.0 / (n - 1)) ** 4 * logits.abs() ** 4 * density.max(-1).values / 180 + 1e-10
    assert ((integral - 1).abs() <= bound).all(), (integral - 1, bound)


def test_continuous_bernoulli_normaliser_matches_closed_form():
    """log C(lam) = log(2 artanh(1 - 2 lam) / (1 - 2 lam)), C(1/2) = 2 (Loaiza-Ganem &
    Cunningham 2019, eq. 7), read off as log p(x=0) - log(1 - lam)."""
    logits = torch.tensor([l for l in CB_LOGITS if abs(l) > 1e-3], dtype=torch.float64)
    lam = torch.sigmoid(logits)
    closed = torch.log(2 * torch.atanh(1 - 2 * lam) / (1 - 2 * lam))
    d = build("continuous_bernoulli").distribution(logits.reshape(-1, 1, 1))
    torch.testing.assert_close(d.log_prob(torch.zeros(len(logits), 1, dtype=torch.float64))
                               - torch.log1p(-lam), closed)
    d_half = build("continuous_bernoulli").distribution(torch.zeros(1, 1, 1, dtype=torch.float64))
    torch.testing.assert_close(d_half.log_prob(torch.zeros(1, 1, dtype=torch.float64))
                               - math.log(0.5), torch.tensor([math.log(2.0)], dtype=torch.float64))


@pytest.mark.parametrize("scale", [0.05, 0.3, 2.0])
def test_gaussian_normalises_on_a_grid(scale):
    likelihood = build({"type": "gaussian", "scale": scale})
    mu = 0.4
    n = 40_001
    x = torch.linspace(mu - 20 * scale, mu + 20 * scale, n, dtype=torch.float64)
    params = torch.full((1, 1, 1), mu, dtype=torch.float64)
    density = likelihood.distribution(params).log_prob(x.reshape(n, 1)).exp()
    h = 40 * scale / (n - 1)
    # |f''''| <= 3 / (sigma^5 sqrt(2 pi)); the mass beyond 20 sigma is ~1e-88
    bound = 40 * scale * h**4 * 3 / (scale**5 * math.sqrt(2 * math.pi)) / 180 + 1e-10
    assert abs(simpson(density, h).item() - 1) <= bound


@pytest.mark.parametrize("scale", [0.05, 0.3, 2.0])
def test_laplace_normalises_on_a_grid(scale):
    likelihood = build({"type": "laplace", "scale": scale})
    mu = 0.4
    n = 40_001  # odd: the kink at mu is a grid point, so each half is smooth
    x = torch.linspace(mu - 40 * scale, mu + 40 * scale, n, dtype=torch.float64)
    params = torch.full((1, 1, 1), mu, dtype=torch.float64)
    density = likelihood.distribution(params).log_prob(x.reshape(n, 1)).exp()
    h = 80 * scale / (n - 1)
    # trapezoid on each half: error <= (length) h^2 max|f''| / 12 with f'' = f / b^2 <= 1/(2 b^3);
    # the mass beyond 40 b is e^-40 ~ 4e-18
    trapezoid = (density.sum() - (density[0] + density[-1]) / 2).item() * h
    bound = 80 * scale * h**2 / (2 * scale**3) / 12 + 1e-10
    assert abs(trapezoid - 1) <= bound


@pytest.mark.parametrize("a,b", [(1.0, 1.0), (2.0, 3.0), (3.0, 4.0)])
def test_beta_normalises_on_a_grid(a, b):
    likelihood = build({"type": "beta", "min_concentration": 1e-3})
    # decoder outputs whose softplus + min_concentration are exactly (a, b)
    raw = torch.tensor([a, b], dtype=torch.float64) - 1e-3
    params = torch.log(torch.expm1(raw)).reshape(1, 2, 1)
    n = 20_001
    x = torch.linspace(0.0, 1.0, n, dtype=torch.float64)[1:-1]  # the open support
    density = likelihood.distribution(params).log_prob(x.reshape(-1, 1)).exp()
    density = torch.cat([density.new_zeros(1) if a > 1 else density[:1],
                         density,
                         density.new_zeros(1) if b > 1 else density[-1:]])
    # polynomial densities: Simpson is exact for degree <= 3; for Beta(3, 4) = 60 x^2 (1-x)^3,
    # f'''' = 60 (72 - 120 x), so the error is <= h^4 * 4320 / 180 ~ 4e-16
    assert abs(simpson(density, 1.0 / (n - 1)).item() - 1) < 1e-9


def test_beta_evaluates_clamped_grey_levels():
    likelihood = build({"type": "beta"}, data_dim=4)
    eps = 1 / 510
    x = torch.tensor([0.0, 0.5, 1.0, 1e-4])
    torch.testing.assert_close(likelihood.prepare(x), torch.tensor([eps, 0.5, 1 - eps, eps]))
    vae = VAE.from_config(tiny_config(data={"binarize": "none"},
                                      model={"likelihood": {"type": "beta"}}))
    images = torch.zeros(3, 784)
    images[:, 300:400] = 1.0  # exact 0s and 1s, as in MNIST
    z = torch.randn(3, 8)
    trace = poutine.trace(poutine.condition(vae.model, data={"z": z})).get_trace(images)
    trace.compute_log_prob()
    assert torch.isfinite(trace.nodes["x"]["log_prob"]).all()


OUT_OF_SUPPORT = [
    ("bernoulli", "static", 0.5, "needs binary data"),
    ("continuous_bernoulli", "none", 1.5, r"needs grey levels in \[0, 1\]"),
    ("beta", "none", -0.1, r"needs grey levels in \[0, 1\]"),
    ("gaussian", "none", float("nan"), "needs finite real numbers"),
    ("laplace", "none", float("inf"), "needs finite real numbers"),
    ("discretized_logistic", "none", 0.3, r"needs 8-bit levels k/255 in \[0, 1\]"),
]


def test_every_likelihood_has_an_out_of_support_case():
    assert {case[0] for case in OUT_OF_SUPPORT} == set(LIKELIHOODS.names())


@pytest.mark.parametrize("likelihood,binarize,bad,message", OUT_OF_SUPPORT,
                         ids=[c[0] for c in OUT_OF_SUPPORT])
def test_out_of_support_data_is_refused(likelihood, binarize, bad, message):
    vae = VAE.from_config(tiny_config(data={"binarize": binarize},
                                      model={"likelihood": {"type": likelihood}}))
    x = torch.zeros(4, 784)
    x[2, 17] = bad
    with pytest.raises(DataError, match=f"model.likelihood.type = '{likelihood}' {message}"):
        vae.model(x)


def test_bernoulli_on_grey_levels_only_when_asked():
    with pytest.raises(ConfigError, match=r"needs binary data but data\.binarize = 'none'.*"
                       r"allow_grey_levels = true"):
        VAE.from_config(tiny_config(data={"binarize": "none"}))
    vae = VAE.from_config(tiny_config(
        data={"binarize": "none"},
        model={"likelihood": {"type": "bernoulli", "allow_grey_levels": True}},
    ))
    x = torch.full((2, 784), 0.3)
    vae.model(x)  # accepted under validation
    logits = torch.randn(2, 1, 784)
    # log_prob is then the negative binary cross-entropy
    expected = -torch.nn.functional.binary_cross_entropy_with_logits(
        logits[:, 0], x, reduction="none").sum(-1)
    torch.testing.assert_close(vae.likelihood.distribution(logits).log_prob(x), expected)


@pytest.mark.parametrize("likelihood", ["continuous_bernoulli", "beta"])
@pytest.mark.parametrize("binarize", ["dynamic", "static"])
def test_grey_level_densities_refuse_binarized_data(likelihood, binarize):
    with pytest.raises(ConfigError, match=f"model.likelihood.type = '{likelihood}' is a density "
                       f"on grey levels.*data.binarize = '{binarize}'.*'none'"):
        VAE.from_config(tiny_config(data={"binarize": binarize},
                                    model={"likelihood": {"type": likelihood}}))


def test_learned_scales_are_parameters():
    for kind in ("gaussian", "laplace"):
        fixed = build({"type": kind, "scale": 0.5}, data_dim=5)
        assert not list(fixed.parameters())
        glob = build({"type": kind, "scale": "learned", "init_scale": 0.2}, data_dim=5)
        per_pixel = build({"type": kind, "scale": "learned_per_pixel"}, data_dim=5)
        assert [p.shape for p in glob.parameters()] == [()]
        assert [p.shape for p in per_pixel.parameters()] == [(5,)]
        d = glob.distribution(torch.zeros(3, 1, 5))
        torch.testing.assert_close(d.base_dist.scale, torch.full((3, 5), 0.2, dtype=torch.float64))
