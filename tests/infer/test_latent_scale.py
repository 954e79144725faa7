"""beta and KL warm-up: poutine.scale on the latent site "z" in model and guide."""

from __future__ import annotations

import pyro
import pyro.poutine as poutine
import pytest
import torch

from pyrovae import VAE, Trainer, load_data
from pyrovae.objectives import OBJECTIVES

from conftest import DATA_ROOT, tiny_config


def test_schedule_is_linear_per_step_and_never_zero():
    objective = OBJECTIVES.build({"type": "trace_elbo", "beta": 2.0, "kl_warmup_epochs": 4},
                                 "objective")
    steps = 10
    assert objective.kl_scale(0, 0, steps) == pytest.approx(2.0 * 1 / 40)
    assert objective.kl_scale(1, 4, steps) == pytest.approx(2.0 * 15 / 40)
    assert objective.kl_scale(3, 9, steps) == pytest.approx(2.0)  # last warm-up step
    assert objective.kl_scale(7, 3, steps) == pytest.approx(2.0)
    plain = OBJECTIVES.build({"type": "trace_elbo", "beta": 0.5}, "objective")
    assert plain.kl_scale(0, 0, steps) == 0.5 and plain.scales_kl
    assert not OBJECTIVES.build("trace_elbo", "objective").scales_kl


def test_scale_applies_to_z_in_model_and_guide_only():
    vae = VAE.from_config(tiny_config())
    x = torch.bernoulli(torch.full((4, 784), 0.3))
    scale = torch.tensor(0.25)
    guide_trace = poutine.trace(vae.guide).get_trace(x, kl_scale=scale)
    model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(
        x, kl_scale=scale)
    assert guide_trace.nodes["z"]["scale"] == 0.25
    assert model_trace.nodes["z"]["scale"] == 0.25
    assert model_trace.nodes["x"]["scale"] == 1.0
    unscaled = poutine.trace(vae.guide).get_trace(x)
    assert unscaled.nodes["z"]["scale"] == 1.0


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
    pyro.set_rng_seed(5)
    elbo = OBJECTIVES.build({"type": "trace_elbo", "beta": beta}, "objective").elbo()
    loss = elbo.differentiable_loss(vae.model, vae.guide, x, kl_scale=torch.tensor(beta))
    torch.testing.assert_close(-loss, reconstruction + beta * kl_term)


def test_trainer_sets_the_warmup_weight_every_step():
    config = tiny_config(data={"train_limit": 128, "test_limit": 64},
                         objective={"beta": 0.5, "kl_warmup_epochs": 4},
                         # the programs run at every step, so that the model sees each weight
                         # (replayed steps use it too: tests/test_replay.py)
                         train={"batch_size": 32, "epochs": 2, "replay_steps": False})
    vae = VAE.from_config(config)
    data = load_data(vae.config["data"], root=DATA_ROOT)
    trainer = Trainer(vae, data, vae.config, torch.device("cpu"), progress=False)
    seen: list[float | None] = []
    model = vae.model

    def recording_model(x, y=None, kl_scale=None):
        seen.append(None if kl_scale is None else float(kl_scale))
        return model(x, y, kl_scale)

    vae.model = recording_model  # type: ignore[method-assign]
    trainer.fit()
    # 4 steps per epoch, 2 epochs of a 4-epoch warm-up: 0.5 * (1..8) / 16, and after each
    # epoch the test ELBO, which is the plain ELBO (no scale)
    expected = [0.5 * k / 16 for k in range(1, 5)] + [None] + [0.5 * k / 16 for k in range(5, 9)]
    assert seen == pytest.approx(expected + [None])


def test_no_scale_is_passed_when_the_objective_is_the_plain_elbo():
    config = tiny_config(data={"train_limit": 64, "test_limit": 32}, train={"batch_size": 32})
    vae = VAE.from_config(config)
    data = load_data(vae.config["data"], root=DATA_ROOT)
    trainer = Trainer(vae, data, vae.config, torch.device("cpu"), progress=False)
    assert trainer.kl_scale is None
    trainer.train_epoch()
