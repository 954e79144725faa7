"""Encoders and decoders: MLPs and conv nets map batches with any leading dimensions, describe
their shapes, and refuse layer sizes that do not fit, naming the config key."""

from __future__ import annotations

import pytest
import torch

from pyrovae import DECODERS, ENCODERS, VAE
from pyrovae.errors import ConfigError

from conftest import tiny_config


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


def test_conv_maps_each_example_alone():
    """Folding the leading dimensions into one batch must not mix examples: a batch of
    (3, 5) inputs gives what each input gives alone."""
    encoder = ENCODERS.build({"type": "conv", "channels": [4, 8]}, "model.encoder",
                             in_features=784, out_features=6, image_shape=(1, 28, 28))
    decoder = DECODERS.build({"type": "conv", "channels": [4, 8]}, "model.decoder",
                             in_features=6, out_features=2 * 784, image_shape=(1, 28, 28))
    x, z = torch.rand(3, 5, 784), torch.randn(3, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x)[2, 4], encoder(x[2, 4:5])[0])
        torch.testing.assert_close(decoder(z)[1, 3], decoder(z[1, 3:4])[0])


@pytest.mark.parametrize("hidden,expected", [([], "linear map 784 -> 16"),
                                             ([32, 8], "MLP 784 -> 32 -> 8 -> 16 (relu)")])
def test_mlp_layers_and_description(hidden, expected):
    mlp = ENCODERS.build({"type": "mlp", "hidden": hidden}, "model.encoder",
                         in_features=784, out_features=16)
    assert mlp.describe() == expected
    linear = [m for m in mlp.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == list(
        zip([784, *hidden], [*hidden, 16]))
    assert mlp(torch.zeros(2, 3, 784)).shape == (2, 3, 16)


@pytest.mark.parametrize("model,message", [
    ({"encoder": {"type": "conv", "channels": [8, 8, 8]}},
     r"model\.encoder\.type = 'conv': channels = \[8, 8, 8\] halves the 28x28 image 3 times, "
     "so height and width must be divisible by 8"),
    ({"decoder": {"type": "conv", "channels": []}},
     r"model\.decoder\.type = 'conv': channels = \[\] must hold at least one channel count"),
    ({"encoder": {"type": "mlp", "hidden": [64, 0]}},
     r"model\.encoder\.hidden\[1\] = 0 must be at least 1"),
    ({"decoder": {"type": "conv", "channels": [4, -2]}},
     r"model\.decoder\.channels\[1\] = -2 must be at least 1"),
    ({"encoder": {"type": "mlp", "activation": "sigmoid"}},
     r"model\.encoder\.activation = 'sigmoid' is not a valid choice; expected one of 'relu'"),
])
def test_bad_networks_are_refused_naming_the_key(model, message):
    with pytest.raises(ConfigError, match=message):
        VAE.from_config(tiny_config(model=model))
