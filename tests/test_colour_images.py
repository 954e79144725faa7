"""Colour 8-bit images end to end: a VAE with conv networks and the discretized-logistic
likelihood on 3x32x32 images trains through the Trainer with replayed steps bitwise equal to
eager ones, evaluates with bits per dimension, and `pyrovae evaluate --json` reports them.

The images are synthetic 8-bit levels (k/255) built here; a run through the CLI uses MNIST's
8-bit grey levels, the colour data sources being data sets of their own."""

from __future__ import annotations

import json
import math

import pyro
import pytest
import torch

from pyrovae import GUIDES, LIKELIHOODS, PRIORS, VAE, Trainer, evaluate, train
from pyrovae.cli import main
from pyrovae.config import resolve_config
from pyrovae.data import ImageData
from pyrovae.models.networks import DECODERS, ENCODERS

from conftest import tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHAPE = (3, 32, 32)
DATA_DIM = 3 * 32 * 32
LATENT_DIM = 4


def colour_vae(components: int = 2) -> VAE:
    """A tiny colour VAE built from the registered components (conv nets of 4 and 8
    channels: 3x32x32 -> 4x16x16 -> 8x8x8)."""
    likelihood = LIKELIHOODS.build({"type": "discretized_logistic", "components": components},
                                   "model.likelihood", data_dim=DATA_DIM)
    guide = GUIDES.build("diag_normal", "model.guide", latent_dim=LATENT_DIM)
    nets = {"type": "conv", "channels": [4, 8]}
    encoder = ENCODERS.build(nets, "model.encoder", in_features=DATA_DIM,
                             out_features=guide.num_params, image_shape=SHAPE)
    decoder = DECODERS.build(nets, "model.decoder", in_features=LATENT_DIM,
                             out_features=likelihood.params_per_element * DATA_DIM,
                             image_shape=SHAPE)
    prior = PRIORS.build("standard_normal", "model.prior", latent_dim=LATENT_DIM,
                         data_dim=DATA_DIM, num_classes=None)
    return VAE(prior, likelihood, encoder, decoder, guide, DATA_DIM, SHAPE)


def colour_data(n_train: int = 40, n_test: int = 8) -> ImageData:
    """Smooth random colour images quantised to 8-bit levels: a per-image colour plus a
    horizontal ramp, so there is structure to learn."""
    gen = torch.Generator().manual_seed(0)
    n = n_train + n_test
    colour = torch.rand(n, 3, 1, 1, generator=gen)
    ramp = torch.linspace(0, 1, 32).reshape(1, 1, 1, 32)
    images = ((0.7 * colour + 0.3 * ramp).expand(n, *SHAPE) * 255).round() / 255
    flat = images.reshape(n, DATA_DIM).contiguous()
    labels = torch.zeros(n, dtype=torch.long)
    return ImageData("synthetic", "none", flat[:n_train], labels[:n_train], flat[n_train:],
                     labels[n_train:], SHAPE, 10)


def run_config(objective: str = "trace_elbo") -> dict:
    """The trainer's settings (the model is built above, not from this config)."""
    return resolve_config(tiny_config(
        data={"binarize": "none"}, model={"likelihood": "discretized_logistic"},
        objective={"type": objective, "kl_warmup_epochs": 2},
        train={"batch_size": 16, "eval_batch_size": 8},
    ))


@pytest.mark.parametrize("objective", ["trace_elbo", "analytic_kl"])
def test_colour_training_replays_bitwise_what_the_programs_compute(objective):
    """Two epochs (batches of 16, 16, 8, KL warm-up refilled every step): the same ELBOs and
    bitwise the same parameters with replayed steps as with the programs run every step."""
    results = []
    for replay in (True, False):
        config = run_config(objective)
        config["train"]["replay_steps"] = replay
        pyro.set_rng_seed(0)
        trainer = Trainer(colour_vae(), colour_data(), config, torch.device("cpu"),
                          progress=False)
        elbos = []
        for _ in range(2):
            elbos.append(trainer.train_epoch())
            trainer.epoch += 1
        if replay:
            assert set(trainer.elbo_gradient.records.values()) == {"replayed"}
        results.append((elbos, [p.detach().clone() for p in trainer.vae.parameters()]))
    (elbos, params), (elbos_eager, params_eager) = results
    assert elbos == elbos_eager
    assert all(torch.equal(p, q) for p, q in zip(params, params_eager))


def test_a_colour_vae_learns_and_reports_bits_per_dim():
    pyro.set_rng_seed(0)
    data = colour_data()
    config = run_config()
    config["train"]["lr"] = 3e-3
    trainer = Trainer(colour_vae(), data, config, torch.device("cpu"), progress=False)
    before = evaluate(trainer.vae, data.test_images, num_samples=4)
    for _ in range(3):
        trainer.train_epoch()
        trainer.epoch += 1
    after = evaluate(trainer.vae, data.test_images, num_samples=4)
    # 8 bits per dimension is a uniform mass on 256 levels; a trained model of these smooth
    # images does better than its random start (differences of several standard errors)
    assert after.log_likelihood > before.log_likelihood + 4 * after.log_likelihood_se
    assert after.bits_per_dim == pytest.approx(-after.log_likelihood / (DATA_DIM * math.log(2)),
                                               rel=1e-6)
    assert after.bits_per_dim_se == pytest.approx(after.log_likelihood_se
                                                  / (DATA_DIM * math.log(2)), rel=1e-6)
    assert "256 levels" in after.bits_per_dim_note
    # pictures: means and samples are C x H x W images of values in [0, 1]
    mean = trainer.vae.sample(3)
    assert mean.shape == (3, DATA_DIM) and ((mean >= 0) & (mean <= 1)).all()


def test_evaluate_json_reports_bits_per_dim(tmp_path, capsys):
    """A run on MNIST's 8-bit grey levels: `pyrovae evaluate --json` has bits_per_dim =
    -log p(x) / (784 ln 2) and says what it is; the text has a bits/dim line."""
    config = tiny_config(
        data={"binarize": "none", "train_limit": 128, "test_limit": 16},
        model={"likelihood": {"type": "discretized_logistic", "components": 2},
               "encoder": {"type": "conv", "channels": [4, 8]},
               "decoder": {"type": "conv", "channels": [4, 8]}},
        eval={"num_samples": 4},
    )
    train(config, out=tmp_path / "run", progress=False)
    assert main(["evaluate", str(tmp_path / "run"), "--num-samples", "8", "--json",
                 "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bits_per_dim"] == pytest.approx(
        -result["log_likelihood"] / (784 * math.log(2)), rel=1e-6)
    assert result["bits_per_dim_se"] > 0 and "256 levels" in result["bits_per_dim_note"]
    assert main(["evaluate", str(tmp_path / "run"), "--num-samples", "8", "--quiet"]) == 0
    assert f"test bits/dim:       {result['bits_per_dim']:.4f}" in capsys.readouterr().out
