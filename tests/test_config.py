"""Declaring a model: ready configs, --set overrides, validation errors, describe, networks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pyrovae import VAE, resolve_config
from pyrovae.cli import main
from pyrovae.config import apply_overrides, load_config
from pyrovae.errors import ConfigError
from pyrovae.objectives import OBJECTIVES, Objective
from pyrovae.registry import Registry

from conftest import ROOT, tiny_config

CONFIG_FILES = sorted((ROOT / "configs").glob("*.toml"))


def test_there_is_a_ready_config_for_each_prior_and_likelihood():
    names = {path.stem for path in CONFIG_FILES}
    from pyrovae import LIKELIHOODS, PRIORS

    assert {f"prior_{p}" for p in PRIORS.names()} <= names
    assert {f"likelihood_{l}" for l in LIKELIHOODS.names()} <= names
    assert "conv" in names


@pytest.mark.parametrize("path", CONFIG_FILES, ids=[p.name for p in CONFIG_FILES])
def test_every_ready_config_resolves_and_builds(path: Path):
    config = load_config(path)  # resolve_config inside
    assert resolve_config(config) == config  # resolved configs are fixed points
    vae = VAE.from_config(config)
    stem = path.stem
    if stem.startswith("prior_"):
        assert vae.prior.type_name == stem.removeprefix("prior_")
    if stem.startswith("likelihood_"):
        assert vae.likelihood.type_name == stem.removeprefix("likelihood_")
    assert "p(x, z" in vae.describe()


# ---------------------------------------------------------------------- --set overrides
def test_set_switches_a_component_type_to_its_defaults():
    base = load_config(ROOT / "configs" / "prior_mog.toml")
    config = resolve_config(apply_overrides(base, ["model.prior.type=vamp"]))
    assert config["model"]["prior"] == {"type": "vamp", "components": 500}


@pytest.mark.parametrize("overrides", [
    ["model.prior.type=vamp", "model.prior.components=7"],
    ["model.prior.components=7", "model.prior.type=vamp"],  # order does not matter
    ["model.prior=vamp", "model.prior.components=7"],  # short form
])
def test_set_type_and_parameters(overrides):
    base = load_config(ROOT / "configs" / "mnist.toml")
    config = resolve_config(apply_overrides(base, overrides))
    assert config["model"]["prior"] == {"type": "vamp", "components": 7}


def test_set_objective_knobs_and_nested_values():
    config = resolve_config(apply_overrides(tiny_config(), [
        "objective.beta=0.5", "objective.kl_warmup_epochs=3", "model.encoder.hidden=[32, 16]",
        "model.likelihood.type=gaussian", "model.likelihood.scale=learned", "data.binarize=none",
    ]))
    assert config["objective"]["beta"] == 0.5 and config["objective"]["kl_warmup_epochs"] == 3
    assert config["model"]["encoder"]["hidden"] == [32, 16]
    assert config["model"]["likelihood"] == {"type": "gaussian", "scale": "learned",
                                             "init_scale": 1.0}


def test_a_table_without_type_means_the_default_type():
    config = resolve_config({"objective": {"beta": 2.0}, "model": {"guide": {"min_scale": 0.01}}})
    assert config["objective"]["type"] == "trace_elbo" and config["objective"]["beta"] == 2.0
    assert config["model"]["guide"] == {"type": "diag_normal", "min_scale": 0.01}


# ---------------------------------------------------------------------- validation errors
@pytest.mark.parametrize("config,message", [
    ({"model": {"prior": {"type": "vampp"}}},
     "model.prior.type = 'vampp' is not a known prior; valid choices: conditional, flow, mog, "
     "normal, standard_normal, vamp"),
    ({"model": {"guide": "normalizing"}},
     "model.guide.type = 'normalizing' is not a known guide; valid choices: diag_normal, iaf"),
    ({"model": {"prior": {"type": "mog", "component": 3}}},
     "model.prior.component is not a parameter of prior 'mog'; valid parameters: components, "
     "init_spread"),
    ({"model": {"prior": {"type": "vamp", "components": "many"}}},
     "model.prior.components = 'many' has the wrong type: expected int, got str"),
    ({"model": {"likelihood": {"type": "gaussian", "scale": "learnt"}}},
     "model.likelihood.scale = 'learnt' has the wrong type"),
    ({"model": {"encoder": {"type": "conv", "channels": [8, 8, 8]}}},
     "model.encoder.channels = \\[8, 8, 8\\] halves the 28x28 image 3 times"),
    ({"model": {"latent_dim": 1, "guide": "iaf"}},
     "model.guide.type = 'iaf' needs model.latent_dim >= 2"),
    ({"objective": {"beta": 0.0}}, "objective.beta = 0.0 must be positive"),
    ({"objective": {"kl_warmup_epochs": -1}}, "objective.kl_warmup_epochs = -1 must be >= 0"),
    ({"data": {"binarize": "none"}, "model": {"likelihood": "bernoulli"}},
     "model.likelihood.type = 'bernoulli' needs binary data but data.binarize = 'none'"),
    ({"model": {"likelihood": {"type": "beta", "eps": 0.7}}, "data": {"binarize": "none"}},
     "model.likelihood.eps = 0.7 must be in \\(0, 0.5\\)"),
])
def test_bad_declarations_fail_before_training_naming_the_key(config, message):
    with pytest.raises(ConfigError, match=message):
        VAE.from_config(config)


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


# ---------------------------------------------------------------------- describe
def test_print_vae_shows_the_model_in_words_and_math():
    vae = VAE.from_config(tiny_config(
        model={"prior": {"type": "vamp", "components": 12}, "guide": "iaf"},
        objective={"beta": 0.5, "kl_warmup_epochs": 2},
    ))
    text = repr(vae)
    assert text == vae.describe()
    for expected in [
        "p(x, z) = p(x | z) p(z)",
        "p(z) = (1/12) sum_k q(z | u_k), VampPrior over 12 learned pseudo-inputs",
        "p(x | z) = prod_d Bernoulli(x_d | p_d = sigmoid(f(z)_d))",
        "f(z) = decoder: MLP 8 -> 64 -> 784 (relu)",
        "q(z | x) = N(mu(x), diag sigma(x)^2) pushed through 2 inverse autoregressive flows",
        "encoder: MLP 784 -> 64 -> 32 (relu)",
        "beta = 0.5, warmed up linearly from 0 over 2 epochs",
        "[model.prior = vamp]",
    ]:
        assert expected in text, (expected, text)
    conditional = VAE.from_config(tiny_config(model={"prior": "conditional"}))
    assert "p(x, z | y) = p(x | z) p(z | y)" in repr(conditional)


def test_cli_describe_with_overrides(capsys):
    code = main(["describe", str(ROOT / "configs" / "mnist.toml"),
                 "--set", "model.prior.type=mog", "--set", "model.prior.components=3", "--toml"])
    out = capsys.readouterr().out
    assert code == 0
    assert "a learned mixture of 3 diagonal Gaussians" in out and "[model.prior = mog]" in out
    assert 'type = "mog"' in out and "components = 3" in out  # the resolved TOML


def test_cli_describe_reports_bad_config_in_one_line(capsys):
    code = main(["describe", str(ROOT / "configs" / "mnist.toml"),
                 "--set", "model.likelihood.type=beta"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "model.likelihood.type = 'beta' is a density on grey levels" in err


# ---------------------------------------------------------------------- networks
@pytest.mark.parametrize("likelihood,binarize", [("bernoulli", "dynamic"), ("beta", "none")])
def test_conv_networks_map_images_with_extra_batch_dims(likelihood, binarize):
    vae = VAE.from_config(tiny_config(
        data={"binarize": binarize},
        model={"likelihood": likelihood, "encoder": {"type": "conv", "channels": [4, 8]},
               "decoder": {"type": "conv", "channels": [4, 8]}},
    ))
    k = vae.likelihood.params_per_element
    x = torch.rand(3, 5, 784)  # (particles, batch, pixels)
    assert vae.encoder(x).shape == (3, 5, vae.guide_family.num_params)
    assert vae.decoder(torch.randn(3, 5, 8)).shape == (3, 5, k * 784)
    assert vae.decode(torch.randn(2, 8)).shape == (2, k, 784)
    assert "conv net 1x28x28 -> 4x14x14 -> 8x7x7" in vae.describe()


def test_cli_train_with_component_overrides_then_sample_a_class(tmp_path, capsys):
    run = tmp_path / "run"
    code = main([
        "train", "--config", str(ROOT / "configs" / "mnist.toml"), "--out", str(run),
        "--epochs", "1", "--quiet", "--device", "cpu",
        "--set", "model.prior.type=conditional", "--set", "model.latent_dim=4",
        "--set", "model.encoder.hidden=[32]", "--set", "model.decoder.hidden=[32]",
        "--set", "data.train_limit=256", "--set", "data.test_limit=64",
    ])
    assert code == 0, capsys.readouterr().err
    assert load_config(run / "config.toml")["model"]["prior"]["type"] == "conditional"
    code = main(["sample", str(run), "--label", "3", "--num", "4", "--out",
                 str(tmp_path / "threes.png"), "--device", "cpu"])
    assert code == 0 and (tmp_path / "threes.png").stat().st_size > 0
    code = main(["sample", str(run), "--label", "12", "--out", str(tmp_path / "x.png")])
    assert code == 2 and "class label 12 is out of range" in capsys.readouterr().err
    code = main(["describe", str(run)])  # a run directory describes its config.toml
    assert code == 0 and "p(x, z | y) = p(x | z) p(z | y)" in capsys.readouterr().out
