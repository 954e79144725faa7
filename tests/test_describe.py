"""pyrovae.describe: the whole run a config defines (data, model, objective) in words and math,
without training or reading data (every registered objective's summary:
tests/infer/test_objectives.py)."""

from __future__ import annotations

import pytest

import pyrovae
from pyrovae import VAE, ConfigError, resolve_config

from conftest import tiny_config


def test_describe_is_data_then_the_vae_then_the_objective():
    config = tiny_config(
        model={"prior": {"type": "vamp", "components": 12}, "guide": "iaf"},
        objective={"beta": 0.5, "kl_warmup_epochs": 2},
    )
    text = pyrovae.describe(config)
    lines = text.splitlines()
    assert lines[0] == "data: mnist, data.binarize = 'dynamic'"
    vae_text = VAE.from_config(config).describe()
    assert "\n".join(lines[1:-4]) == vae_text  # the model's own description, unchanged
    assert lines[-4] == (
        "  objective: maximise the ELBO E_q(z|x)[log p(x|z) + log p(z) - log q(z|x)] "
        "(Trace_ELBO), 1 particle per example; KL weighted by beta = 0.5, warmed up linearly "
        "from 0 over 2 epochs")
    assert lines[-3] == "      [objective = trace_elbo]"
    assert lines[-2].startswith("  training: adam (")  # the recipe last


def test_describe_of_the_defaults():
    lines = pyrovae.describe({}).splitlines()
    assert lines[0] == "data: mnist, data.binarize = 'dynamic'"
    assert lines[1].startswith("VAE: x in 1x28x28 = 784 elements; latent z in R^50; ")
    assert lines[1].endswith(" parameters")
    assert lines[-4].startswith("  objective: maximise the ELBO")
    assert lines[-4].endswith(", 1 particle per example")
    assert lines[-2] == (
        "  training: adam (betas [0.9, 0.999], eps 1e-08, weight_decay 0.0) at lr 0.001; "
        "constant schedule (warmup_epochs 0); batch 128, 10 epochs; no validation split")
    assert lines[-1] == (
        "      [train.optimizer = adam, train.lr_schedule = constant, train.grad_clip = 0, "
        "train.validation = 0, train.early_stopping.patience = 0]")


def test_describe_accepts_resolved_and_unresolved_configs_and_validates():
    config = tiny_config(data={"binarize": "none"}, model={"likelihood": "continuous_bernoulli"})
    assert pyrovae.describe(config) == pyrovae.describe(resolve_config(config))
    assert pyrovae.describe(config).startswith("data: mnist, data.binarize = 'none'\n")
    with pytest.raises(ConfigError, match=r"model\.likelihood\.type = 'beta' is a density on grey"):
        pyrovae.describe({"model": {"likelihood": "beta"}})
