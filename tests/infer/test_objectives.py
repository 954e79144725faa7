"""Objectives: the config layer over pyrovae's ELBOs. Each is selected by name, inherits the
latent-weight knobs (beta, KL warm-up), describes itself, and trains a VAE."""

from __future__ import annotations

import math
import re

import pytest
import torch

import pyrovae
from pyrovae import (
    ELBO,
    IWAE_ELBO,
    OBJECTIVES,
    VAE,
    AnalyticKL_ELBO,
    ConfigError,
    Objective,
    Trace_ELBO,
    Trainer,
    elbo_per_example,
    load_data,
    resolve_config,
)
from pyrovae.infer import TraceEnum_ELBO
from pyrovae.registry import Registry
from pyrovae.training import EVAL_SEED

from conftest import tiny_config

#: the ELBO each registered objective builds
ELBO_TYPES = {"trace_elbo": Trace_ELBO, "analytic_kl": AnalyticKL_ELBO, "iwae": IWAE_ELBO,
              "trace_enum_elbo": TraceEnum_ELBO}


def test_every_objective_is_covered():
    assert set(ELBO_TYPES) == set(OBJECTIVES.names())


def test_objectives_are_selected_by_config():
    for name, elbo_type in ELBO_TYPES.items():
        elbo = OBJECTIVES.build({"type": name, "num_particles": 3}, "objective").elbo()
        assert type(elbo) is elbo_type and isinstance(elbo, ELBO) and elbo.num_particles == 3
        assert elbo.vectorize_particles  # particles are drawn in one pass
    iwae = OBJECTIVES.build({"type": "iwae"}, "objective").elbo()
    assert isinstance(iwae, IWAE_ELBO) and iwae.num_particles == 5
    assert resolve_config({"objective": {"type": "iwae", "num_particles": 10}})[
        "objective"] == {"type": "iwae", "num_particles": 10, "beta": 1.0, "kl_warmup_epochs": 0}
    with pytest.raises(ConfigError, match=r"objective\.num_particles = 0 must be at least 1"):
        OBJECTIVES.build({"type": "iwae", "num_particles": 0}, "objective")


def test_objectives_inherit_beta_and_warmup_as_parameters():
    assert {"num_particles", "beta", "kl_warmup_epochs"} <= set(OBJECTIVES.parameters("trace_elbo"))
    registry: Registry[Objective] = Registry("objective")

    @registry.register("custom")
    class Custom(Objective):
        def __init__(self, *, alpha: float = 0.5, **kwargs) -> None:
            super().__init__(**kwargs)
            self.alpha = alpha

    assert set(registry.parameters("custom")) == {"alpha", "num_particles", "beta",
                                                  "kl_warmup_epochs"}
    built = registry.build({"type": "custom", "beta": 3.0}, "objective")
    assert (built.alpha, built.beta, built.num_particles) == (0.5, 3.0, 1)
    # the inherited knobs keep their declared ranges
    with pytest.raises(ConfigError, match=r"objective\.beta = -1\.0 must be positive"):
        registry.build({"type": "custom", "beta": -1.0}, "objective")


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


OBJECTIVE_LINE = re.compile(r"^  objective: (?P<summary>.*), (?P<n>\d+) particles? per example"
                            r"(?P<rest>.*)$")


@pytest.mark.parametrize("name", OBJECTIVES.names())
@pytest.mark.parametrize("num_particles", [1, 3])
def test_every_objective_describes_what_it_maximises(name, num_particles):
    """Every registered objective names its bound in pyrovae.describe (an objective without
    a summary once printed ``objective: , 1 particle per example``)."""
    text = pyrovae.describe({"objective": {"type": name, "num_particles": num_particles}})
    lines = text.splitlines()
    (line,) = [line for line in lines if line.startswith("  objective:")]
    match = OBJECTIVE_LINE.match(line)
    assert match, line
    summary = match["summary"].strip()
    assert summary and summary == OBJECTIVES.get(name).summary, line
    assert len(summary) > 20 and "maximise" in summary  # a sentence, not a placeholder
    assert int(match["n"]) == num_particles
    assert ("particles" in line) == (num_particles > 1)
    assert lines[lines.index(line) + 1] == f"      [objective = {name}]"


def test_objective_description_names_beta_and_warmup():
    objective = OBJECTIVES.build({"type": "analytic_kl", "beta": 0.5, "kl_warmup_epochs": 2},
                                 "objective")
    assert objective.describe().endswith(
        ", 1 particle per example; KL weighted by beta = 0.5, warmed up linearly from 0 over "
        "2 epochs")
    assert "beta" not in OBJECTIVES.build("iwae", "objective").describe()


@pytest.mark.parametrize("objective", [{"type": "trace_elbo", "num_particles": 1},
                                       {"type": "analytic_kl", "num_particles": 2},
                                       {"type": "iwae", "num_particles": 3}],
                         ids=lambda o: o["type"])
def test_trainer_trains_with_each_objective(objective):
    """One epoch (4 steps of 64 images) with each objective changes every parameter and raises
    the test ELBO. The per-example ELBOs before and after are paired (the same test images and
    the same seeded draws of the reparameterization noise): the mean gain must exceed 4
    standard errors of the paired differences."""
    assert objective["type"] in OBJECTIVES.names()
    config = resolve_config(tiny_config(objective=objective,
                                        data={"train_limit": 256, "test_limit": 64}))
    vae = VAE.from_resolved_config(config)
    trainer = Trainer(vae, load_data(config["data"]), config, torch.device("cpu"),
                      progress=False)
    assert type(trainer.elbo) is ELBO_TYPES[objective["type"]]
    assert trainer.elbo.num_particles == objective["num_particles"]
    x = trainer.data.test_images
    vae.eval()
    before = elbo_per_example(vae, x, seed=EVAL_SEED)
    initial = [p.detach().clone() for p in vae.parameters()]

    (row,) = trainer.fit()
    assert math.isfinite(row["train_elbo"]) and math.isfinite(row["test_elbo"])
    assert all(not torch.equal(p, q) for p, q in zip(vae.parameters(), initial))
    after = elbo_per_example(vae, x, seed=EVAL_SEED)
    assert row["test_elbo"] == pytest.approx(after.mean().item(), rel=1e-6)
    gain = after - before
    se = gain.std().item() / math.sqrt(len(gain))
    assert gain.mean().item() > 4 * se, (gain.mean().item(), se)
