"""beta and KL warm-up: scale_latents weights the latent sites of model and guide (not the
observed ones, not a plate's subsample site), and the Trainer applies the warm-up weight of
each step that way."""

from __future__ import annotations

import math
import warnings

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch

from pyrovae import OBJECTIVES, VAE, Trainer, load_data, resolve_config, scale_latents
from pyrovae.infer import LatentScaleMessenger

from conftest import DATA_ROOT, tiny_config


def test_scale_applies_to_latent_sites_of_model_and_guide_only():
    vae = VAE.from_config(tiny_config())
    x = torch.bernoulli(torch.full((4, 784), 0.3))
    scale = torch.tensor(0.25)
    guide_trace = poutine.trace(scale_latents(vae.guide, scale)).get_trace(x)
    model_trace = poutine.trace(
        poutine.replay(scale_latents(vae.model, scale), trace=guide_trace)).get_trace(x)
    assert guide_trace.nodes["z"]["scale"] == 0.25
    assert model_trace.nodes["z"]["scale"] == 0.25
    assert model_trace.nodes["x"]["scale"] == 1.0
    unscaled = poutine.trace(vae.guide).get_trace(x)  # the programs themselves are unchanged
    assert unscaled.nodes["z"]["scale"] == 1.0


def test_scale_multiplies_other_scales_and_spares_subsample_sites():
    """Inside a subsampled plate the latent site's scale is the plate's N/n times the weight;
    the plate's own subsample site and the observed site keep theirs."""

    def model():
        with pyro.plate("data", 10, subsample_size=4) as index:
            z = pyro.sample("z", dist.Normal(torch.zeros(4), 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=index.float())

    trace = poutine.trace(scale_latents(model, 0.5)).get_trace()
    assert trace.nodes["z"]["scale"] == pytest.approx(0.5 * 10 / 4)
    assert trace.nodes["x"]["scale"] == pytest.approx(10 / 4)
    assert trace.nodes["data"]["scale"] == 1.0
    # the messenger is also usable as a context, like poutine.scale
    with poutine.trace() as tracer, LatentScaleMessenger(2.0):
        model()
    assert tracer.trace.nodes["z"]["scale"] == pytest.approx(2.0 * 10 / 4)
    with pytest.raises(ValueError):
        scale_latents(model, -1.0)  # checked as poutine.scale checks it


def test_a_tensor_weight_is_read_at_every_call():
    vae = VAE.from_config(tiny_config())
    x = torch.bernoulli(torch.full((2, 784), 0.3))
    weight = torch.tensor(0.1)
    guide = scale_latents(vae.guide, weight)
    assert poutine.trace(guide).get_trace(x).nodes["z"]["scale"] == pytest.approx(0.1)
    weight.fill_(0.7)  # refilled in place, as the Trainer does between steps
    assert poutine.trace(guide).get_trace(x).nodes["z"]["scale"] == pytest.approx(0.7)


def test_scaled_elbo_weights_the_kl_term():
    """-loss = log p(x|z) + beta (log p(z) - log q(z|x)) for the same draw of z."""
    vae = VAE.from_config(tiny_config())
    x = torch.bernoulli(torch.full((6, 784), 0.3))
    beta = 0.3
    pyro.set_rng_seed(5)
    guide_trace = poutine.trace(vae.guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(x)
    model_trace.compute_log_prob()
    guide_trace.compute_log_prob()
    reconstruction = model_trace.nodes["x"]["log_prob_sum"]
    kl_term = model_trace.nodes["z"]["log_prob_sum"] - guide_trace.nodes["z"]["log_prob_sum"]
    for objective in OBJECTIVES.names():
        pyro.set_rng_seed(5)
        elbo = OBJECTIVES.build({"type": objective, "num_particles": 1, "beta": beta},
                                "objective").elbo()
        weight = torch.tensor(beta)
        with warnings.catch_warnings():  # trace_enum_elbo on a VAE: Pyro notes it enumerates none
            warnings.filterwarnings("ignore", "TraceEnum_ELBO found no sample sites")
            loss = elbo.differentiable_loss(scale_latents(vae.model, weight),
                                            scale_latents(vae.guide, weight), x)
        if objective == "analytic_kl":  # the closed-form KL in place of its one-draw estimate
            q, p = guide_trace.nodes["z"]["fn"], model_trace.nodes["z"]["fn"]
            expected = reconstruction - beta * torch.distributions.kl_divergence(q, p).sum()
        else:
            expected = reconstruction + beta * kl_term
        torch.testing.assert_close(-loss, expected, msg=objective)


def scales_seen_by(vae: VAE) -> list[float]:
    """Replace ``vae.model`` by the same program that records the scale of its latent site
    "z" (as the ELBO sees it, outer weights included) at every call."""
    model, seen = vae.model, []

    def recording_model(x, y=None):
        with poutine.trace() as tracer:
            z = model(x, y)
        seen.append(float(tracer.trace.nodes["z"]["scale"]))
        return z

    vae.model = recording_model  # type: ignore[method-assign]
    return seen


def test_trainer_sets_the_warmup_weight_every_step():
    config = resolve_config(tiny_config(
        data={"train_limit": 128, "test_limit": 64},
        objective={"beta": 0.5, "kl_warmup_epochs": 4},
        # the programs run at every step, so that the model sees each weight
        # (replayed steps use it too: tests/infer/test_replay.py)
        train={"batch_size": 32, "epochs": 2, "replay_steps": False},
    ))
    vae = VAE.from_resolved_config(config)
    data = load_data(config["data"], root=DATA_ROOT)
    trainer = Trainer(vae, data, config, torch.device("cpu"), progress=False)
    seen = scales_seen_by(vae)
    trainer.fit()
    # 4 steps per epoch, 2 epochs of a 4-epoch warm-up: 0.5 * (1..8) / 16, and after each
    # epoch the test ELBO, which is the plain ELBO (weight 1)
    expected = [0.5 * k / 16 for k in range(1, 5)] + [1.0] + [0.5 * k / 16 for k in range(5, 9)]
    assert seen == pytest.approx([*expected, 1.0])


def test_no_weight_when_the_objective_is_the_plain_elbo():
    config = resolve_config(tiny_config(data={"train_limit": 64, "test_limit": 32},
                                        train={"batch_size": 32, "replay_steps": False}))
    vae = VAE.from_resolved_config(config)
    data = load_data(config["data"], root=DATA_ROOT)
    trainer = Trainer(vae, data, config, torch.device("cpu"), progress=False)
    assert trainer.kl_scale is None
    seen = scales_seen_by(vae)
    train_elbo = trainer.train_epoch()
    assert seen == [1.0, 1.0]  # two steps, both unweighted
    # and the reported training ELBO is the plain one: finite and below 0 (Bernoulli masses)
    assert math.isfinite(train_elbo) and train_elbo < 0
