"""Encoders and decoders: MLPs and conv nets map batches with any leading dimensions, describe
their shapes, and refuse layer sizes that do not fit, naming the config key."""

from __future__ import annotations

import pytest
import torch

from pyrovae import DECODERS, ENCODERS, GUIDES, LIKELIHOODS, PRIORS, VAE
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
    ({"encoder": {"type": "conv", "channels": [8, 8, 8, 8, 8]}},
     r"model\.encoder\.type = 'conv': channels = \[8, 8, 8, 8, 8\] halves the 28x28 image 5 "
     r"times, but after 4 halvings its 1x1 feature maps are too small for another stride-2 "
     r"convolution; use at most 4 layers"),
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


def conv_pair(image_shape, channels, out_per_pixel, latent_dim=6):
    c, h, w = image_shape
    encoder = ENCODERS.build({"type": "conv", "channels": channels}, "model.encoder",
                             in_features=c * h * w, out_features=2 * latent_dim,
                             image_shape=image_shape)
    decoder = DECODERS.build({"type": "conv", "channels": channels}, "model.decoder",
                             in_features=latent_dim, out_features=out_per_pixel * c * h * w,
                             image_shape=image_shape)
    return encoder, decoder


SHAPES = [((1, 28, 28), [4, 8], "8x7x7"), ((3, 32, 32), [4, 8], "8x8x8"),
          ((3, 15, 20), [4, 8], "8x3x5"), ((1, 28, 28), [4, 4, 4], "4x3x3"),
          ((3, 5, 2), [4], "4x2x1")]


@pytest.mark.parametrize("image_shape,channels,smallest", SHAPES,
                         ids=[f"{'x'.join(map(str, s))}-{len(c)}" for s, c, _ in SHAPES])
def test_conv_networks_fit_any_image_shape(image_shape, channels, smallest):
    """Sides that halve unevenly (odd sizes, 28 -> 14 -> 7 -> 3) come back to exactly
    C x H x W in the decoder, k numbers per pixel and channel in (k, C, H, W) order."""
    encoder, decoder = conv_pair(image_shape, channels, out_per_pixel=3)
    c, h, w = image_shape
    assert encoder(torch.rand(2, 5, c * h * w)).shape == (2, 5, 12)
    assert decoder.shapes[0][1:] == tuple(map(int, smallest.split("x")[1:]))
    out = decoder(torch.randn(2, 6))
    assert out.shape == (2, 3 * c * h * w)
    # the last transposed convolution's output channels are (k, C) in that order: the
    # flattened output reshapes to (k, C, H, W) with each block its own output channels
    with torch.no_grad():
        maps = decoder.deconv(decoder.linear(torch.randn(2, 6)).reshape(-1, *decoder.shapes[0]))
    assert maps.shape == (2, 3 * c, h, w)


def test_too_small_images_for_the_layers_are_refused():
    with pytest.raises(ConfigError, match=r"after 2 halvings its 1x2 feature maps are too small"):
        conv_pair((2, 7, 9), [4, 4, 4], out_per_pixel=1)


def test_a_colour_conv_vae_trains_a_step():
    """3x32x32 and an odd 3x15x20: one Adam step on a discretized-logistic VAE lowers the
    loss of its batch (a small step from a random start; the gradient is not 0)."""
    from pyro.infer import Trace_ELBO

    for image_shape in [(3, 32, 32), (3, 15, 20)]:
        torch.manual_seed(0)
        data_dim = image_shape[0] * image_shape[1] * image_shape[2]
        likelihood = LIKELIHOODS.build({"type": "discretized_logistic", "components": 2},
                                       "model.likelihood", data_dim=data_dim)
        encoder, decoder = conv_pair(image_shape, [4, 8], likelihood.params_per_element)
        vae = VAE(PRIORS.build("standard_normal", "model.prior", latent_dim=6, data_dim=data_dim,
                               num_classes=None),
                  likelihood, encoder, decoder,
                  GUIDES.build("diag_normal", "model.guide", latent_dim=6), data_dim, image_shape)
        x = torch.randint(0, 256, (4, data_dim)).float() / 255
        optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
        losses = []
        for _ in range(2):
            torch.manual_seed(1)  # the same draws at both evaluations
            loss = Trace_ELBO().differentiable_loss(vae.model, vae.guide, x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[1] < losses[0]
        assert vae.sample(2).shape == (2, data_dim)
        assert vae.reconstruct(x).shape == (4, data_dim)


def test_mnist_conv_networks_are_unchanged():
    """The 1x28x28 networks are today's, parameter for parameter and number for number: a
    hand-written copy of them (stride-2 4x4 convolutions without output padding) built from
    the same seed holds the same parameters and computes bitwise the same outputs."""
    from torch import nn

    torch.manual_seed(0)
    encoder, decoder = conv_pair((1, 28, 28), [32, 64], out_per_pixel=2)
    torch.manual_seed(0)
    ref_encoder = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1),
                                nn.ReLU(), nn.Flatten(), nn.Linear(64 * 7 * 7, 12))
    ref_decoder = nn.Sequential(nn.Linear(6, 64 * 7 * 7), nn.Unflatten(1, (64, 7, 7)), nn.ReLU(),
                                nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                                nn.ConvTranspose2d(32, 2, 4, 2, 1), nn.Flatten())
    for net, ref in [(encoder, ref_encoder), (decoder, ref_decoder)]:
        params, ref_params = list(net.parameters()), list(ref.parameters())
        assert [p.shape for p in params] == [p.shape for p in ref_params]
        assert all(torch.equal(p, q) for p, q in zip(params, ref_params))
    x, z = torch.rand(5, 784), torch.randn(5, 6)
    with torch.no_grad():
        assert torch.equal(encoder(x), ref_encoder(x.reshape(5, 1, 28, 28)))
        assert torch.equal(decoder(z), ref_decoder(z))
