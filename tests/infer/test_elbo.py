"""The ELBO base class: every pyrovae ELBO derives from it and gets loss, loss_and_grads, the
reparameterization check and NaN checks (only while Pyro validation is on) from it."""

from __future__ import annotations

import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyrovae import ELBO, IWAE_ELBO, OBJECTIVES, VAE, AnalyticKL_ELBO, Trace_ELBO
from pyrovae.infer.elbo import describe_distribution, warn_if_nan_when_validating

ELBOS = [Trace_ELBO, AnalyticKL_ELBO, IWAE_ELBO]


def test_every_pyrovae_elbo_derives_from_the_base():
    for elbo_type in ELBOS:
        assert issubclass(elbo_type, ELBO) and issubclass(elbo_type, pyro.infer.ELBO)
    for name in OBJECTIVES.names():
        assert isinstance(OBJECTIVES.build(name, "objective").elbo(), ELBO)


@pytest.mark.parametrize("elbo_type", ELBOS, ids=lambda t: t.__name__)
def test_loss_and_loss_and_grads_come_from_differentiable_loss(elbo_type, tiny):
    vae = VAE.from_config(tiny)
    x = torch.bernoulli(torch.full((8, 784), 0.3))
    elbo = elbo_type(num_particles=2, max_plate_nesting=1)
    pyro.set_rng_seed(1)
    expected = elbo.differentiable_loss(vae.model, vae.guide, x)
    grads = torch.autograd.grad(expected, list(vae.parameters()))
    pyro.set_rng_seed(1)
    assert elbo.loss(vae.model, vae.guide, x) == pytest.approx(expected.item(), rel=1e-6)
    vae.zero_grad()
    pyro.set_rng_seed(1)
    value = elbo.loss_and_grads(vae.model, vae.guide, x)
    assert value == pytest.approx(expected.item(), rel=1e-6)
    for p, g in zip(vae.parameters(), grads):
        torch.testing.assert_close(p.grad, g)


def non_reparameterized_programs():
    loc = torch.zeros(3, requires_grad=True)

    def model(x):
        with pyro.plate("data", 3):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(x):
        with pyro.plate("data", 3):
            pyro.sample("z", dist.Normal(loc, 1.0).has_rsample_(False))

    return model, guide


@pytest.mark.parametrize("elbo_type", [AnalyticKL_ELBO, IWAE_ELBO], ids=lambda t: t.__name__)
def test_reparameterized_estimators_name_the_site_and_the_way_out(elbo_type):
    model, guide = non_reparameterized_programs()
    with pytest.raises(NotImplementedError) as error:
        elbo_type(max_plate_nesting=1).differentiable_loss(model, guide, torch.zeros(3))
    message = str(error.value)
    assert message.startswith(f"{elbo_type.__name__} needs a reparameterized guide, but guide "
                              "site 'z' samples from Normal, which has no rsample")
    assert message.endswith("or Trace_ELBO (objective.type = 'trace_elbo'), which handles "
                            "sites without rsample")
    # ... and Trace_ELBO does handle it
    loss = Trace_ELBO(max_plate_nesting=1).differentiable_loss(model, guide, torch.zeros(3))
    assert torch.isfinite(loss)


def test_describe_distribution_looks_through_pyros_wrappers():
    normal = dist.Normal(torch.zeros(2, 3), 1.0)
    assert describe_distribution(normal) == "Normal"
    assert describe_distribution(normal.to_event(1)) == "Independent(Normal)"
    assert describe_distribution(normal.to_event(1).expand([4, 2])) == "Independent(Normal)"
    assert describe_distribution(
        dist.StudentT(3.0, torch.zeros(2), 1.0).to_event(1).mask(torch.tensor([True, False]))
    ) == "Masked(Independent(StudentT))"


def test_nan_checks_only_while_validating():
    nan = torch.tensor(float("nan"))
    with pyro.validation_enabled(True), pytest.warns(UserWarning, match="loss"):
        assert warn_if_nan_when_validating(nan, "loss") is nan
    with pyro.validation_enabled(False), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_nan_when_validating(nan, "loss") is nan
