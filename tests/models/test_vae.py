"""The VAE's model and guide are Pyro programs with the public sites "z" and "x"."""

import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam

from pyrovae import VAE


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
    # the observed likelihood is Bernoulli with logits
    base = x_site["fn"].base_dist
    assert isinstance(base, pyro.distributions.Bernoulli) and "logits" in base.__dict__
    # both programs run under the "data" plate
    assert any(f.name == "data" for f in z_site["cond_indep_stack"])


def test_elbo_finite_and_svi_step_changes_parameters(tiny):
    vae = VAE.from_config(tiny)
    x = torch.bernoulli(torch.full((16, 784), 0.3))
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), loss=Trace_ELBO())
    loss = svi.step(x)
    assert torch.isfinite(torch.tensor(loss)) and loss > 0
    changed = [k for k, v in vae.state_dict().items() if not torch.equal(v, before[k])]
    assert "encoder.net.0.weight" in changed and "decoder.net.0.weight" in changed
