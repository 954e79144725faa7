"""The VAE's model and guide are Pyro programs with the public sites "z" and "x"; it is built
from a config, registers in Pyro's param store only when asked, and describes itself."""

import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import SVI
from pyro.infer import Trace_ELBO as PyroTrace_ELBO
from pyro.optim import Adam

from pyrovae import VAE, resolve_config

from conftest import tiny_config


def test_trace_sites_shapes_and_event_dims(tiny):
    vae = VAE.from_config(tiny)
    x = torch.bernoulli(torch.full((5, 784), 0.3))
    guide_trace = poutine.trace(vae.guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(x)
    z_site, x_site = model_trace.nodes["z"], model_trace.nodes["x"]
    assert not z_site["is_observed"] and x_site["is_observed"]
    assert z_site["value"].shape == (5, 8) and z_site["fn"].event_shape == (8,)
    assert x_site["value"].shape == (5, 784) and x_site["fn"].event_shape == (784,)
    assert x_site["fn"].batch_shape == (5,) and z_site["fn"].batch_shape == (5,)
    assert guide_trace.nodes["z"]["fn"].event_shape == (8,)
    # the observed likelihood is Bernoulli parameterised by logits: exactly the decoder output
    base = x_site["fn"].base_dist
    assert isinstance(base, pyro.distributions.Bernoulli)
    assert torch.equal(base.logits, vae.decode(z_site["value"]).squeeze(-2))
    # both programs run under the "data" plate
    assert any(f.name == "data" for f in z_site["cond_indep_stack"])


def test_programs_take_only_data_and_labels(tiny):
    """A KL weight is applied from outside (pyrovae.scale_latents): the programs' signature
    is (x, y=None) and their sites are unscaled."""
    vae = VAE.from_config(tiny)
    x = torch.bernoulli(torch.full((3, 784), 0.3))
    with pytest.raises(TypeError):
        vae.model(x, None, kl_scale=0.5)
    with pytest.raises(TypeError):
        vae.guide(x, None, kl_scale=0.5)
    trace = poutine.trace(vae.model).get_trace(x)
    assert trace.nodes["z"]["scale"] == 1.0 and trace.nodes["x"]["scale"] == 1.0


def test_elbo_finite_and_svi_step_changes_parameters(tiny):
    vae = VAE.from_config(tiny)
    x = torch.bernoulli(torch.full((16, 784), 0.3))
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), loss=PyroTrace_ELBO())
    loss = svi.step(x)
    assert torch.isfinite(torch.tensor(loss)) and loss > 0
    changed = [k for k, v in vae.state_dict().items() if not torch.equal(v, before[k])]
    assert "encoder.net.0.weight" in changed and "decoder.net.0.weight" in changed


def test_registration_off_leaves_param_store_alone(tiny):
    vae = VAE.from_config(tiny)
    x = torch.zeros(4, 784)
    with vae.param_store_registration(False):
        trace = poutine.trace(vae.guide).get_trace(x)
    assert not any(site["type"] == "param" for site in trace.nodes.values())
    assert len(pyro.get_param_store()) == 0
    # on again after the block: every parameter is a param site, as pyro.infer.SVI needs
    trace = poutine.trace(vae.guide).get_trace(x)
    params = {name for name, site in trace.nodes.items() if site["type"] == "param"}
    assert len(params) == len(list(vae.parameters())) == len(pyro.get_param_store())


def test_from_config_is_resolve_then_from_resolved_config():
    config = tiny_config(model={"prior": {"type": "mog", "components": 3}})
    resolved = resolve_config(config)
    pyro.set_rng_seed(0)
    a = VAE.from_config(config)
    pyro.set_rng_seed(0)
    b = VAE.from_resolved_config(resolved)
    assert a.describe() == b.describe()
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)  # same initial weights


def test_describe_shows_the_model_in_words_and_math():
    vae = VAE.from_config(tiny_config(
        model={"prior": {"type": "vamp", "components": 12}, "guide": "iaf"},
        objective={"beta": 0.5, "kl_warmup_epochs": 2},
    ))
    text = repr(vae)
    assert text == vae.describe()
    num_params = sum(p.numel() for p in vae.parameters())
    assert text.splitlines()[0] == (
        f"VAE: x in 1x28x28 = 784 elements; latent z in R^8; {num_params:,} parameters")
    for expected in [
        "p(x, z) = p(x | z) p(z)",
        "p(z) = (1/12) sum_k q(z | u_k), VampPrior over 12 learned pseudo-inputs",
        "p(x | z) = prod_d Bernoulli(x_d | p_d = sigmoid(f(z)_d))",
        "f(z) = decoder: MLP 8 -> 64 -> 784 (relu)",
        "q(z | x) = N(mu(x), diag sigma(x)^2) pushed through 2 inverse autoregressive flows",
        "encoder: MLP 784 -> 64 -> 32 (relu)",
        "[model.prior = vamp]",
    ]:
        assert expected in text, (expected, text)
    # the model only: the data and objective are pyrovae.describe's (tests/test_describe.py)
    assert "objective" not in text and "beta" not in text and "data:" not in text
    conditional = VAE.from_config(tiny_config(model={"prior": "conditional"}))
    assert "p(x, z | y) = p(x | z) p(z | y)" in repr(conditional)

