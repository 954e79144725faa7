"""The memory a model needs, measured on the model itself (pyrovae.models.size): its size from
a build on the meta device, exact for every ready config; refusals with the numbers for what
cannot fit; evaluation passes measured on fake tensors and shrunk to the memory there is."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

import pyrovae
from pyrovae import VAE, ConfigError, load_config, memory, peak_memory, resolve_config
from pyrovae.cli import main
from pyrovae.config import dumps_toml
from pyrovae.infer import Trace_ELBO
from pyrovae.infer.log_weights import log_weights
from pyrovae.models import size
from pyrovae.models.factory import build_model, builtin_size
from pyrovae.models.program import as_program
from pyrovae.models.size import LAYERS, MAX_LAYERS, PASS_SHARE, ModelSize, check_model_fits

from conftest import ROOT, tiny_config

CONFIGS = sorted((ROOT / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_the_measured_size_is_that_of_the_built_model(path):
    config = load_config(path)
    measured = builtin_size(config)
    model = build_model(config)
    assert measured.parameters == sum(p.numel() for p in model.parameters())
    assert measured.buffers == sum(b.numel() for b in model.buffers())
    assert measured.layers == sum(isinstance(m, LAYERS) for m in model.modules())
    assert measured == ModelSize.of(model)


def test_measuring_leaves_the_random_state_as_it_was():
    # the IAF guide's MADE networks draw their masks' randperm on the CPU during the build
    config = load_config(ROOT / "configs" / "guide_iaf.toml")
    state = torch.get_rng_state()
    builtin_size(config)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(0)
    direct = build_model(config).state_dict()
    torch.manual_seed(0)
    builtin_size(config)
    after = build_model(config).state_dict()
    assert all(torch.equal(direct[k], after[k]) for k in direct)


def test_a_wide_model_is_measured_without_being_allocated():
    # 10^12 parameters (4 TB) in the decoder, and MADE masks of 10^12 numbers in the prior
    config = resolve_config(tiny_config(model={
        "decoder": {"type": "mlp", "hidden": [10**6, 10**6]},
        "prior": {"type": "flow", "hidden": [10**6, 10**6]},
    }))
    measured = builtin_size(config)
    assert measured.parameters > 2 * 10**12
    with pytest.raises(ConfigError, match=r"parameters in \d+ layers and needs about [\d,.]+ GB"):
        check_model_fits(measured)


@pytest.mark.parametrize("key", ["encoder", "decoder"])
def test_too_many_layers_stop_the_build_naming_the_component(key):
    config = resolve_config(tiny_config(model={key: {"type": "mlp", "hidden": [4] * MAX_LAYERS}}))
    with pytest.raises(ConfigError, match=rf"^model\.{key}\.type = 'mlp': with it the model has "
                                          rf"more than the {MAX_LAYERS:,} layers pyrovae builds"):
        VAE.from_resolved_config(config)


def test_a_model_larger_than_memory_is_refused_with_the_numbers(monkeypatch):
    config = resolve_config(tiny_config())
    measured = builtin_size(config)
    monkeypatch.setattr(memory, "available_memory", lambda device=None: measured.bytes() - 1)
    numbers = rf"has {measured.parameters:,} parameters in {measured.layers} layers"
    with pytest.raises(ConfigError, match=rf"{numbers} and needs about [\d.]+ [kMG]?B of memory "
                                          r"to hold, but only"):
        VAE.from_resolved_config(config)
    monkeypatch.setattr(memory, "available_memory", lambda device=None: measured.bytes())
    check_model_fits(measured)  # fits exactly
    with pytest.raises(ConfigError, match="to train"):
        check_model_fits(measured, training=True)  # gradients and Adam's moments do not


def test_network_shape_errors_name_the_key():
    config = tiny_config(model={"encoder": {"type": "conv", "channels": [8, 8, 8, 8, 8]}})
    with pytest.raises(ConfigError, match=r"^model\.encoder\.type = 'conv': channels"):
        builtin_size(resolve_config(config))


# ---------------------------------------------------------------------- passes
@pytest.fixture(scope="module")
def tiny_vae():
    vae = VAE.from_resolved_config(resolve_config(tiny_config()))
    x = torch.bernoulli(torch.full((40, vae.data_dim), 0.5))
    return vae, x


def test_a_pass_measured_on_fake_tensors_holds_what_the_real_pass_holds(tiny_vae):
    vae, x = tiny_vae
    measured = size.pass_bytes(vae, x[:5], None, 30)
    with vae.evaluating(), torch.no_grad(), peak_memory.LiveBytes() as live:
        log_weights(vae.model, vae.guide, x[:5], None, num_particles=30)
    assert measured == live.peak
    # the decoder's Bernoulli logits alone: 30 x 5 pairs x 784 float32 numbers
    assert measured > 30 * 5 * vae.data_dim * 4
    with_gradients = size.pass_bytes(vae, x[:5], None, 30, gradients=True)
    assert with_gradients > measured  # the backward pass holds the forward's activations


def test_blocks_keep_their_size_when_memory_is_plenty(tiny_vae, monkeypatch):
    vae, x = tiny_vae
    monkeypatch.setattr(memory, "available_memory", lambda device=None: 1 << 50)
    assert size.fit_batch_elements(vae, x, None, 16384, 100) == 16384
    assert size.fit_batch_elements(vae, x, None, 10**15, 100) == 10**15


def test_blocks_shrink_to_the_memory_there_is(tiny_vae, monkeypatch):
    vae, x = tiny_vae
    requested, num_samples = 4000, 100  # passes of 100 draws x 40 examples
    full = size.pass_bytes(vae, x, None, num_samples)
    have = full // 3  # a pass of about a third of the pairs fits in PASS_SHARE of it
    monkeypatch.setattr(memory, "available_memory", lambda device=None: int(have / PASS_SHARE))
    fitted = size.fit_batch_elements(vae, x, None, requested, num_samples)
    assert 1 <= fitted < requested
    particles, examples = min(num_samples, fitted), max(1, fitted // min(num_samples, fitted))
    assert size.pass_bytes(vae, x[:examples], None, particles) <= have
    # the blocks of the shrunk run are those asked for explicitly: the same numbers
    shrunk = pyrovae.log_likelihood(vae, x, num_samples=num_samples, max_batch_elements=requested)
    monkeypatch.undo()
    assert torch.equal(shrunk, pyrovae.log_likelihood(vae, x, num_samples=num_samples,
                                                      max_batch_elements=fitted))


class ReadsItsValues(nn.Module):
    """A program whose Python reads a tensor's value: it cannot run on fake tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.loc = nn.Linear(4, 2)

    def model(self, x, y=None):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
            scale = 1.0 if float(x.sum()) > 0 else 2.0
            pyro.sample("x", dist.Normal(z @ torch.ones(2, 4), scale).to_event(1), obs=x)

    def guide(self, x, y=None):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(self.loc(x), 1.0).to_event(1))


def test_a_program_that_cannot_be_measured_gets_the_pass_it_asks_for(monkeypatch):
    program = as_program(ReadsItsValues())
    monkeypatch.setattr(memory, "available_memory", lambda device=None: 1)
    assert size.fit_batch_elements(program, torch.randn(8, 4), None, 500, 10) == 500
    size.check_training_step_fits(program, Trace_ELBO(), torch.randn(8, 4), None, "x")


def test_a_training_step_that_cannot_fit_is_refused_with_the_settings(tiny_vae, monkeypatch):
    vae, x = tiny_vae
    elbo = Trace_ELBO(num_particles=50, vectorize_particles=True, max_plate_nesting=1)
    what = "objective.num_particles x train.batch_size = 50 x 40"
    size.check_training_step_fits(vae, elbo, x, None, what)  # fits in this machine's memory
    monkeypatch.setattr(memory, "available_memory", lambda device=None: 1000)
    with pytest.raises(ConfigError, match=rf"^{what} needs about [\d.]+ [kMG]?B of memory per "
                                          r"training step, but only 800 B is available"):
        size.check_training_step_fits(vae, elbo, x, None, what)


def test_training_ends_with_its_estimate_when_the_evaluation_blocks_must_shrink(
    tmp_path, monkeypatch, capsys
):
    # the CIFAR case in small: colour images, conv nets, 8-bit likelihood, K = 50
    path = tmp_path / "colour.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (60, 8, 8, 3), dtype=np.uint8))
    config = {
        "data": {"dataset": "array", "path": str(path), "binarize": "none"},
        "model": {"latent_dim": 4, "likelihood": {"type": "discretized_logistic", "components": 2},
                  "encoder": {"type": "conv", "channels": [4, 8]},
                  "decoder": {"type": "conv", "channels": [4, 8]}},
        "train": {"epochs": 1, "batch_size": 16, "device": "cpu"},
        "eval": {"num_samples": 50},
    }
    (tmp_path / "colour.toml").write_text(dumps_toml(config))
    recorded = {**config["data"], "shape": [3, 8, 8]}  # as a run records it
    program = build_model(resolve_config({**config, "data": recorded}))
    x = torch.rand(6, program.data_dim)  # the 6 test images: a tenth of 60
    one = size.pass_bytes(program, x[:1], None, 50)
    have = int(2.5 * one / PASS_SHARE)  # passes of about 2 of the 6 examples fit
    assert size.pass_bytes(program, x, None, 50) > PASS_SHARE * have
    monkeypatch.setattr(memory, "available_memory", lambda device=None: have)
    fitted, fit = [], size._fit

    def recorded_fit(*args):
        fitted.append(fit(*args))
        return fitted[-1]

    monkeypatch.setattr(size, "_fit", recorded_fit)
    code = main(["train", "--config", str(tmp_path / "colour.toml"), "--out",
                 str(tmp_path / "run"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "test log-likelihood: " in out and "nats/example" in out
    assert fitted and 50 <= fitted[-1] < 16384  # blocks of K draws for fewer examples
