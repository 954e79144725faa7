"""Replayed training steps compute exactly what the Pyro programs compute.

:class:`pyrovae.infer.replay.ELBOGradient` records the loss-and-gradient graph of a Pyro ELBO once
per input signature and replays it. On CPU a replay runs the same torch operations, in the
same order, on the same random draws as the eager programs, so the loss, every gradient and
the random state afterwards are bitwise equal: these tests use ``torch.equal``, no tolerance.
"""

from __future__ import annotations

import warnings
from typing import Any

import pyro
import pytest
import torch

from pyrovae import OBJECTIVES, VAE, Trainer, load_data, scale_latents
from pyrovae.config import resolve_config
from pyrovae.errors import DataError
from pyrovae.infer.replay import ELBOGradient

from conftest import tiny_config

# the Monte Carlo fallback of AnalyticKL_ELBO is announced by design for non-Gaussian pairs
pytestmark = [
    pytest.mark.filterwarnings("ignore::pyrovae.AnalyticKLFallbackWarning"),
    pytest.mark.usefixtures("one_torch_thread"),
]

LATENT_DIM, BATCH = 4, 8

#: model sections covering every kind of component the programs can contain
MODELS: dict[str, dict[str, Any]] = {
    "default": {},
    "normal-prior": {"prior": {"type": "normal"}},
    "mog-prior": {"prior": {"type": "mog", "components": 3}},
    "vamp-prior": {"prior": {"type": "vamp", "components": 5}},
    "flow-prior": {"prior": {"type": "flow", "hidden": [16]}},
    "conditional-prior": {"prior": {"type": "conditional"}},
    "gaussian": {"likelihood": {"type": "gaussian"}},
    "continuous-bernoulli": {"likelihood": {"type": "continuous_bernoulli"}},
    "laplace": {"likelihood": {"type": "laplace"}},
    "beta": {"likelihood": {"type": "beta"}},
    "discretized-logistic": {"likelihood": {"type": "discretized_logistic", "components": 3}},
    "iaf-guide": {"guide": {"type": "iaf", "hidden": [16], "context_dim": 4}},
    "conv": {"encoder": {"type": "conv"}, "decoder": {"type": "conv"}},
    # two stochastic layers (2 + 2 = LATENT_DIM dimensions), sites z1 and z2
    "hierarchical": {"latents": [{"dim": 2}, {"dim": 2}]},
    "hierarchical-iaf-conditional": {
        "latents": [{"dim": 2, "guide": {"type": "iaf", "hidden": [16], "context_dim": 4}},
                    {"dim": 2}],
        "prior": {"type": "conditional"},
    },
}


def config_for(model: str, objective: str, **objective_params: Any) -> dict[str, Any]:
    sections = {
        "latent_dim": LATENT_DIM,
        "encoder": {"type": "mlp", "hidden": [16]},
        "decoder": {"type": "mlp", "hidden": [16]},
        **MODELS[model],
    }
    grey = "likelihood" in MODELS[model]
    return resolve_config(tiny_config(
        data={"binarize": "none" if grey else "dynamic"},
        model=sections,
        objective={"type": objective, **objective_params},
    ))


def batch(config: dict[str, Any], size: int = BATCH, seed: int = 0):
    """Pixels in (0, 1) (valid for every likelihood: binary ones for Bernoulli) and labels."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(size, 784, generator=generator) * 0.9 + 0.05
    if config["data"]["binarize"] != "none":
        x = torch.bernoulli(x, generator=generator)
    if config["model"]["likelihood"]["type"] == "discretized_logistic":
        x = (x * 255).round() / 255  # 8-bit levels
    return x, torch.randint(0, 10, (size,), generator=generator)


def run(gradient: ELBOGradient, vae: VAE, seed: int, *inputs):
    """One call from a seeded random state: loss, gradients, random state afterwards."""
    pyro.set_rng_seed(seed)
    loss = gradient(*inputs)
    return loss, [p.grad for p in vae.parameters()], torch.get_rng_state()


def assert_same(eager, replayed) -> None:
    (loss, grads, rng), (loss_r, grads_r, rng_r) = eager, replayed
    assert torch.equal(loss, loss_r)
    for g, g_r in zip(grads, grads_r):
        assert (g is None and g_r is None) or torch.equal(g, g_r)
    assert torch.equal(rng, rng_r)  # the same random numbers were drawn


def compare(config: dict[str, Any], calls: list[tuple[int, int]], kl_scale=None) -> ELBOGradient:
    """Call an eager and a replaying ELBOGradient of the same VAE on the same batches (size,
    seed) from the same random states; every call must agree bitwise. Returns the replaying
    one (to inspect its records)."""
    vae = VAE.from_config(config)
    objective = OBJECTIVES.build(config["objective"], "objective")
    eager = ELBOGradient(objective.elbo(), vae, replay=False)
    replayed = ELBOGradient(objective.elbo(), vae, replay=True)
    with pyro.validation_enabled(False):
        for size, seed in calls:
            x, y = batch(config, size, seed)
            y = vae.model_labels(y)
            assert_same(run(eager, vae, seed, x, y, kl_scale),
                        run(replayed, vae, seed, x, y, kl_scale))
    return replayed


#: the objectives whose loss records as a graph (Pyro's TraceEnum_ELBO reads tensor values in
#: Python, so it runs eagerly: test_trace_enum_elbo_falls_back_to_eager_steps)
REPLAYABLE = [name for name in OBJECTIVES.names() if name != "trace_enum_elbo"]
CASES = [(model, objective) for model in MODELS for objective in REPLAYABLE]


@pytest.mark.parametrize("model,objective", CASES, ids=[f"{m}-{o}" for m, o in CASES])
def test_replay_equals_running_the_programs(model, objective):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no program falls back to eager
        replayed = compare(config_for(model, objective), [(BATCH, 0), (BATCH, 1), (BATCH, 2)])
    # recorded once, checked on its first replay, then replayed
    assert list(replayed.records.values()) == ["replayed"]


def test_trace_enum_elbo_falls_back_to_eager_steps():
    with pytest.warns(RuntimeWarning, match="run the Pyro programs at every step"):
        replayed = compare(config_for("default", "trace_enum_elbo"), [(BATCH, 0), (BATCH, 1)])
    assert list(replayed.records.values()) == ["eager"]


@pytest.mark.parametrize("objective", REPLAYABLE)
def test_kl_weight_is_read_at_every_replay(objective):
    """The weight of "z" (beta x warm-up) is a tensor refilled in place between steps: each
    replay must use its current value, as the eager programs do."""
    config = config_for("default", objective, beta=0.5)
    vae = VAE.from_config(config)
    elbo = OBJECTIVES.build(config["objective"], "objective").elbo
    eager, replayed = ELBOGradient(elbo(), vae, replay=False), ELBOGradient(elbo(), vae)
    kl_scale = torch.ones(())
    x, _ = batch(config)
    with pyro.validation_enabled(False):
        for seed, weight in enumerate([0.1, 0.1, 0.5, 2.0]):
            kl_scale.fill_(weight)
            assert_same(run(eager, vae, seed, x, None, kl_scale),
                        run(replayed, vae, seed, x, None, kl_scale))
        losses = [run(replayed, vae, 0, x, None, kl_scale.fill_(w))[0] for w in (0.1, 2.0)]
    assert not torch.equal(*losses)  # the weight did change the replayed loss


def test_each_input_signature_is_recorded_once():
    """The last, smaller batch of an epoch (and labels or no labels) get their own records."""
    replayed = compare(config_for("default", "trace_elbo"),
                       [(BATCH, 0), (BATCH, 1), (3, 2), (3, 3), (BATCH, 4)])
    assert len(replayed.records) == 2
    assert all(v == "replayed" for v in replayed.records.values())


def test_strided_batches_get_their_own_record():
    """A batch that is a strided view (every other column of a wider tensor) is recorded
    apart from contiguous batches of the same shape, and replays correctly."""
    config = config_for("default", "trace_elbo")
    vae = VAE.from_config(config)
    objective = OBJECTIVES.build(config["objective"], "objective")
    eager = ELBOGradient(objective.elbo(), vae, replay=False)
    replayed = ELBOGradient(objective.elbo(), vae)
    x, _ = batch(config)
    strided = torch.stack([x, x], dim=-1).flatten(-2)[:, ::2]
    assert torch.equal(strided, x) and not strided.is_contiguous()
    with pyro.validation_enabled(False):
        for seed, batch_x in enumerate([x, x, strided, strided, x]):
            assert_same(run(eager, vae, seed, batch_x, None, None),
                        run(replayed, vae, seed, batch_x, None, None))
    assert len(replayed.records) == 2
    assert all(v == "replayed" for v in replayed.records.values())


def test_validation_runs_the_programs():
    config = config_for("default", "trace_elbo")
    vae = VAE.from_config(config)
    gradient = ELBOGradient(OBJECTIVES.build(config["objective"], "objective").elbo(), vae)
    x, _ = batch(config)
    with pyro.validation_enabled(True):
        gradient(x)
        with pytest.raises(DataError):  # the programs ran: the likelihood checked the data
            gradient(x * 2)
    assert not gradient.records


def test_unrecordable_programs_run_eagerly_with_a_warning():
    """A VampPrior over an IAF guide inverts the flow with data-dependent indexing, which
    cannot be recorded: those steps run the programs (same results) and say so once."""
    config = config_for("iaf-guide", "trace_elbo")
    config["model"]["prior"] = {"type": "vamp", "components": 5}
    with pytest.warns(RuntimeWarning, match="recording the programs as a graph failed"):
        replayed = compare(config, [(BATCH, 0), (BATCH, 1), (BATCH, 2)])
    assert list(replayed.records.values()) == ["eager"]


def test_programs_reading_changing_python_state_are_caught():
    """The record freezes Python values the programs read. A model whose latent weight is a
    Python number changing at every call disagrees with its record on the first replay's
    check: that signature then runs eagerly, with a warning, and the results are the eager
    ones."""
    config = config_for("default", "trace_elbo")
    vae = VAE.from_config(config)
    model, calls = vae.model, [0]

    def model_with_changing_weight(x, y=None):
        calls[0] += 1
        return scale_latents(model, 1.0 + calls[0])(x, y)

    vae.model = model_with_changing_weight
    gradient = ELBOGradient(OBJECTIVES.build(config["objective"], "objective").elbo(), vae)
    x, _ = batch(config)
    with pyro.validation_enabled(False):
        with pytest.warns(RuntimeWarning, match="disagreed with the eager programs"):
            loss = gradient(x)
        assert list(gradient.records.values()) == ["eager"]
        before = calls[0]
        gradient(x)
    assert calls[0] == before + 1  # the model ran (a replay would not have called it)
    assert torch.isfinite(loss)


def test_records_say_what_each_signature_does():
    """A signature's first call without validation records it and checks the record against
    the programs: it is "replayed" from then on. With replay off nothing is recorded."""
    config = config_for("default", "trace_elbo")
    vae = VAE.from_config(config)
    elbo = OBJECTIVES.build(config["objective"], "objective").elbo
    gradient, eager = ELBOGradient(elbo(), vae), ELBOGradient(elbo(), vae, replay=False)
    x, _ = batch(config)
    assert not gradient.records
    with pyro.validation_enabled(False):
        gradient(x)
        assert list(gradient.records.values()) == ["replayed"]
        (signature,) = gradient.records
        assert signature[0] is True  # vae.training is part of the signature
        vae.eval()
        gradient(x)  # eval mode is another signature
        eager(x)
    assert sorted(gradient.records.values()) == ["replayed", "replayed"]
    assert not eager.records


@pytest.mark.parametrize("model,objective", [("default", "trace_elbo"),
                                             ("conditional-prior", "analytic_kl"),
                                             ("hierarchical", "analytic_kl")])
def test_trainer_epochs_are_the_same_with_and_without_replay(model, objective):
    """Two epochs of the Trainer (KL warm-up refilling the weight every step, a ragged last
    batch, labels for the conditional prior) train bitwise the same parameters and report
    the same ELBO with replayed steps as with the programs run at every step."""
    config = config_for(model, objective, kl_warmup_epochs=2)
    config["data"].update(train_limit=200, binarize="dynamic")  # batches of 64, 64, 64, 8
    config["train"]["epochs"] = 2
    results = []
    for replay in (True, False):
        config["train"]["replay_steps"] = replay
        pyro.set_rng_seed(0)
        trainer = Trainer(VAE.from_config(config), load_data(config["data"]), config,
                          torch.device("cpu"), progress=False)
        elbos = []
        for _ in range(2):
            elbos.append(trainer.train_epoch())
            trainer.epoch += 1
        results.append((elbos, [p.detach().clone() for p in trainer.vae.parameters()]))
    (elbos, params), (elbos_eager, params_eager) = results
    assert elbos == elbos_eager
    for p, q in zip(params, params_eager):
        assert torch.equal(p, q)
