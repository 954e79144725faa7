"""Declaring a run: the ready configs, --set overrides, defaults, and validation errors that
name the key before any training (the range and type checks themselves: test_registry.py;
the CLI's one-line errors: test_cli.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import pyrovae
from pyrovae import LIKELIHOODS, PRIORS, VAE, resolve_config
from pyrovae.config import apply_overrides, dumps_toml, load_config, section_defaults
from pyrovae.errors import ConfigError

from conftest import ROOT, TINY_CONFIG, tiny_config

CONFIG_FILES = sorted((ROOT / "configs").glob("*.toml"))


def test_there_is_a_ready_config_for_each_prior_and_likelihood():
    names = {path.stem for path in CONFIG_FILES}
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
    assert pyrovae.describe(config).startswith(f"data: {config['data']['dataset']}, ")


def test_resolved_configs_round_trip_through_toml(tmp_path):
    config = resolve_config(apply_overrides(load_config(ROOT / "configs" / "mnist.toml"),
                                            ["model.prior.type=mog", "train.lr=3e-4"]))
    path = tmp_path / "config.toml"
    path.write_text(dumps_toml(config))
    assert load_config(path) == config


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
    ({"model": {"likelihood": {"type": "gaussian", "scale": -1.0}}, "data": {"binarize": "none"}},
     "model.likelihood.scale = -1.0 must be positive"),
    ({"model": {"encoder": {"type": "conv", "channels": [8, 8, 8, 8, 8]}}},
     "model.encoder.type = 'conv': channels = \\[8, 8, 8, 8, 8\\] halves the 28x28 image 5 "
     "times"),
    ({"model": {"latent_dim": 1, "guide": "iaf"}},
     "model.guide.type = 'iaf': needs model.latent_dim >= 2 \\(got 1\\)"),
    ({"model": {"latent_dim": 1, "prior": "flow"}},
     "model.prior.type = 'flow': needs model.latent_dim >= 2 \\(got 1\\)"),
    ({"model": {"encoder": {"hidden": [0]}}}, "model.encoder.hidden\\[0\\] = 0 must be at least 1"),
    ({"model": {"latent_dim": 0}}, "model.latent_dim = 0 must be at least 1"),
    ({"objective": {"beta": 0.0}}, "objective.beta = 0.0 must be positive"),
    ({"objective": {"kl_warmup_epochs": -1}}, "objective.kl_warmup_epochs = -1 must be >= 0"),
    ({"objective": {"type": "iwae", "num_particles": 0}},
     "objective.num_particles = 0 must be at least 1"),
    ({"train": {"lr": float("nan")}}, "train.lr = nan must be positive"),
    ({"train": {"batch_size": 0}}, "train.batch_size = 0 must be at least 1"),
    ({"data": {"test_limit": -5}}, "data.test_limit = -5 must be >= 0 \\(0 means all\\)"),
    ({"eval": {"num_samples": -1}}, "eval.num_samples = -1 must be >= 0"),
    ({"data": {"binarize": "none"}, "model": {"likelihood": "bernoulli"}},
     "model.likelihood.type = 'bernoulli' needs binary data but data.binarize = 'none'"),
    ({"model": {"likelihood": {"type": "beta", "eps": 0.7}}, "data": {"binarize": "none"}},
     "model.likelihood.eps = 0.7 must be in \\(0, 0.5\\)"),
])
def test_bad_declarations_fail_before_training_naming_the_key(config, message):
    with pytest.raises(ConfigError, match=message):
        VAE.from_config(config)


def test_eval_section_is_validated():
    assert resolve_config(TINY_CONFIG)["eval"] == {"num_samples": 100}
    assert resolve_config(tiny_config(eval={"num_samples": 0}))["eval"] == {"num_samples": 0}
    with pytest.raises(ConfigError,
                       match=r"eval\.num_samples = -1 must be >= 0 and at most 1000000 \(0 skips"):
        resolve_config(tiny_config(eval={"num_samples": -1}))


def test_the_resolved_config_is_typed_so_mypy_rejects_a_misspelled_key(tmp_path):
    """Inside pyrovae the resolved config is a :class:`pyrovae.config.Config`: mypy (with the
    project's settings, and its cache when CI has just run it) finds a misspelled key."""
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "from pyrovae.config import Config\n\n\n"
        "def learning_rate(config: Config) -> float:\n"
        "    return config['train']['lrr']\n\n\n"
        "def epochs(config: Config) -> int:\n"
        "    return config['train']['epochs']\n"
    )
    mypy = Path(sys.executable).with_name("mypy")
    proc = subprocess.run([str(mypy), "--config-file", str(ROOT / "pyproject.toml"),
                           str(snippet)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1 and 'TypedDict "TrainConfig" has no key "lrr"' in errors[0], errors


def test_every_key_has_one_declaration_with_its_default():
    """The typed sections are the schema: resolving an empty config gives their defaults."""
    resolved = resolve_config({})
    for section in ("data", "eval"):
        assert resolved[section] == section_defaults(section)
    # [train]: its plain keys, then a table of its own and two components
    plain = section_defaults("train")
    assert {k: v for k, v in resolved["train"].items() if k in plain} == plain
    assert set(resolved["train"]) - set(plain) == {"early_stopping", "optimizer", "lr_schedule"}
    assert resolved["train"]["early_stopping"] == {"patience": 0, "min_delta": 0.0}
    assert section_defaults("model") == {"latent_dim": 50, "program": ""}
