"""The size of a config's model, known before it is built: exact parameter counts for every
ready config, and refusals with the numbers for what cannot fit."""

from __future__ import annotations

import pytest
from torch import nn

from pyrovae import VAE, ConfigError, load_config, resolve_config, resources
from pyrovae.resources import MAX_LAYERS, check_model_fits, model_footprint

from conftest import ROOT, tiny_config

CONFIGS = sorted((ROOT / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_the_estimate_is_the_parameter_count_of_the_built_model(path):
    config = load_config(path)
    vae = VAE.from_resolved_config(config)
    size = model_footprint(config)
    assert size.parameters == sum(p.numel() for p in vae.parameters())
    layers = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)  # Pyro's masked layers are Linear
    assert size.layers == sum(isinstance(m, layers) for m in vae.modules())


def test_too_many_layers_are_refused_before_building():
    config = resolve_config(tiny_config(model={"encoder": {"type": "mlp",
                                                           "hidden": [4] * MAX_LAYERS}}))
    with pytest.raises(ConfigError, match=rf"{MAX_LAYERS + 3:,} layers, more than"):
        VAE.from_resolved_config(config)


def test_a_model_larger_than_memory_is_refused_with_the_numbers(monkeypatch):
    config = resolve_config(tiny_config())
    size = model_footprint(config)
    monkeypatch.setattr(resources, "available_memory", lambda: size.bytes() - 1)
    with pytest.raises(ConfigError, match=rf"has {size.parameters:,} parameters .* about "
                                          r"[\d.]+ GB of memory to hold, but only"):
        VAE.from_resolved_config(config)
    monkeypatch.setattr(resources, "available_memory", lambda: size.bytes())
    check_model_fits(config)  # fits exactly
    with pytest.raises(ConfigError, match="to train"):
        check_model_fits(config, training=True)  # gradients and Adam's moments do not


def test_network_shape_errors_name_the_key():
    config = tiny_config(model={"encoder": {"type": "conv", "channels": [8, 8, 8]}})
    with pytest.raises(ConfigError, match=r"^model\.encoder\.type = 'conv': channels"):
        check_model_fits(resolve_config(config))
