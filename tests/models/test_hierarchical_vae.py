"""Declared hierarchies: ``model.latents`` builds the two-stochastic-layer VAE of Burda et al.
(2016), validated by the config, described as its factorisation, and trained, resumed,
evaluated, sampled and plotted like the one-layer VAE, which stays as it was without it."""

from __future__ import annotations

import copy

import pyro
import pytest
import torch

import pyrovae
from pyrovae import VAE, ConfigError
from pyrovae.cli import main
from pyrovae.config import apply_overrides, load_config, read_config_file, resolve_config
from pyrovae.models.hierarchical_vae import HierarchicalVAE
from pyrovae.training.run_dir import read_metrics

from conftest import ROOT, numbers, tiny_config

TWO_LAYERS = [{"dim": 6}, {"dim": 3, "encoder": {"hidden": [16]}, "decoder": {"hidden": [16]}}]


def tiny_hierarchy(**sections):
    config = tiny_config(**sections)
    config["model"] = {**config["model"], "latents": copy.deepcopy(TWO_LAYERS)}
    del config["model"]["latent_dim"]
    return config


# ---------------------------------------------------------------------- config
def test_without_latents_the_config_and_model_are_as_before():
    config = resolve_config(tiny_config())
    assert "latents" not in config["model"]
    assert type(VAE.from_resolved_config(config)) is VAE


def test_layers_inherit_the_model_tables_and_override_some_parameters():
    config = resolve_config(tiny_hierarchy())
    m = config["model"]
    assert m["latent_dim"] == 9  # the total latent size
    first, top = m["latents"]
    assert first["encoder"] == m["encoder"] and first["guide"] == m["guide"]
    assert top["encoder"] == {**m["encoder"], "hidden": [16]}
    assert top["prior"] == m["prior"] and "prior" not in first
    assert resolve_config(config) == config  # a resolved config passes unchanged


@pytest.mark.parametrize("latents,match", [
    ([{"dim": 5}], r"model.latents must be a list of 2 or more .*model.latent_dim"),
    ({"dim": 5}, r"model.latents must be a list"),
    ([{"dim": 5}, 3], r"model.latents\[1\] must be a table"),
    ([{"dim": 5}, {}], r"model.latents\[1\].dim is required"),
    ([{"dim": 0}, {"dim": 2}], r"model.latents\[0\].dim"),
    ([{"dim": 5, "size": 2}, {"dim": 2}], r"model.latents\[0\].size is not a known key"),
    ([{"dim": 5, "prior": "normal"}, {"dim": 2}], r"model.latents\[0\].prior: only the top"),
    ([{"dim": 5}, {"dim": 2, "encoder": {"hidden": ["a"]}}],
     r"model.latents\[1\].encoder.hidden"),
    ([{"dim": 5}, {"dim": 2, "guide": "nope"}], r"model.latents\[1\].guide.type = 'nope'"),
])
def test_bad_layers_are_refused_naming_the_key(latents, match):
    config = tiny_config()
    config["model"] = {**config["model"], "latents": latents}
    del config["model"]["latent_dim"]
    with pytest.raises(ConfigError, match=match):
        resolve_config(config)


def test_a_vamp_prior_on_top_is_refused_by_the_model_factory():
    config = tiny_hierarchy()
    config["model"]["latents"][1]["prior"] = "vamp"
    config = resolve_config(config)  # a valid config: the factory says what cannot be built
    with pytest.raises(ConfigError, match=r"model.latents\[1\].prior.type = 'vamp' .* is not "
                                          r"available for a hierarchical VAE"):
        pyrovae.build_model(config)
    with pytest.raises(ConfigError, match=r"'vamp'"):
        pyrovae.describe(config)


def test_the_layers_replace_a_latent_dim_of_the_base_config():
    config = tiny_hierarchy()
    config["model"]["latent_dim"] = 8  # e.g. configs/mnist.toml with --set model.latents=...
    assert resolve_config(config)["model"]["latent_dim"] == 9


def test_image_networks_above_the_first_layer_are_refused():
    config = tiny_hierarchy()
    config["model"]["latents"][1]["decoder"] = {"type": "conv"}
    with pytest.raises(ConfigError, match=r"model.latents\[1\].decoder.type = 'conv' is a "
                                          r"network of images"):
        VAE.from_config(config)


def test_the_config_file_is_the_command_line_form_of_the_docs():
    from_file = load_config(ROOT / "configs" / "hierarchical.toml")
    nets = [f"model.{n}.{k}={v}" for n in ("encoder", "decoder")
            for k, v in (("hidden", "[200, 200]"), ("activation", "tanh"))]
    latents = ("model.latents=[{dim=100},"
               "{dim=50,encoder={hidden=[100,100]},decoder={hidden=[100,100]}}]")
    base = read_config_file(ROOT / "configs" / "mnist.toml")
    from_set = resolve_config(apply_overrides(base, [*nets, latents]))
    assert from_set["model"] == from_file["model"]
    # Burda et al.'s two-layer architecture: 784-200-200-(100)-100-100-(50) and back
    assert VAE.from_resolved_config(from_file).dims == [100, 50]


# ---------------------------------------------------------------------- the model
@pytest.fixture
def vae() -> HierarchicalVAE:
    vae = VAE.from_config(tiny_hierarchy())
    assert isinstance(vae, HierarchicalVAE)
    return vae


def test_programs_have_sites_z1_z2_and_x_in_the_data_plate(vae):
    x = torch.bernoulli(torch.full((5, 784), 0.3))
    guide_trace = pyro.poutine.trace(vae.guide).get_trace(x)
    model_trace = pyro.poutine.trace(pyro.poutine.replay(vae.model, trace=guide_trace)).get_trace(x)
    def sites(trace):
        return [n for n, s in trace.nodes.items() if s["type"] == "sample" and n != "data"]

    assert sites(model_trace) == ["z2", "z1", "x"]  # ancestral order
    assert sites(guide_trace) == ["z1", "z2"]
    assert model_trace.nodes["z1"]["value"].shape == (5, 6)
    assert model_trace.nodes["z2"]["fn"].batch_shape == (5,)


def test_sample_reconstruct_and_check_data(vae):
    torch.manual_seed(0)
    samples = vae.sample(4)
    assert samples.shape == (4, 784) and bool(((samples >= 0) & (samples <= 1)).all())
    x = torch.bernoulli(torch.full((3, 784), 0.3))
    assert vae.reconstruct(x).shape == (3, 784)
    with pytest.raises(pyrovae.DataError, match="needs binary data"):
        vae.check_data(torch.full((2, 784), 0.5))
    assert vae.model_labels(torch.zeros(3, dtype=torch.long)) is None
    with pytest.raises(ConfigError, match="label-conditional prior"):
        vae.sample(2, y=1)
    with pytest.raises(ConfigError, match="2 latent sites z1, z2"):
        pyrovae.kl_per_dimension(vae, x)


def test_label_conditional_top_prior_samples_a_class():
    config = tiny_hierarchy()
    config["model"]["prior"] = {"type": "conditional"}
    vae = VAE.from_config(config)
    assert vae.model_labels(torch.zeros(2, dtype=torch.long)) is not None
    assert vae.sample(3, y=2).shape == (3, 784)


def test_describe_prints_the_factorisation_with_families_networks_and_keys(vae):
    text = vae.describe()
    for line in [
        "2 latent layers z1 in R^6, z2 in R^3",
        "p(x, z1, z2) = p(x | z1) p(z1 | z2) p(z2)",
        "p(z2) = N(z2 | 0, I)",
        "[model.latents[1].prior = standard_normal]",
        "p(z1 | z2) = N(z1 | mu(z2), diag sigma(z2)^2)",
        "decoder: MLP 3 -> 16 -> 12 (relu)",
        "[model.latents[1].decoder = mlp]",
        "p(x | z1) = prod_d Bernoulli(x_d | p_d = sigmoid(f(z1)_d))",
        "q(z1, z2 | x) = q(z1 | x) q(z2 | z1)",
        "q(z1 | x) = N(z1 | mu(x), diag sigma(x)^2)",
        "q(z2 | z1) = N(z2 | mu(z1), diag sigma(z1)^2)",
        "encoder: MLP 784 -> 64 -> 12 (relu)",
        "[model.latents[1].guide = diag_normal, model.latents[1].encoder = mlp]",
    ]:
        assert line in text, (line, text)
    assert f"{sum(p.numel() for p in vae.parameters()):,} parameters" in text


# ---------------------------------------------------------------------- runs
def test_train_resume_evaluate_describe_sample_and_plot_a_hierarchical_run(tmp_path, capsys):
    small = {"data": {"train_limit": 128, "test_limit": 64}, "eval": {"num_samples": 10}}
    full = pyrovae.train(tiny_hierarchy(train={"epochs": 2}, **small), out=tmp_path / "full",
                         progress=False)
    pyrovae.train(tiny_hierarchy(train={"epochs": 1}, **small), out=tmp_path / "split",
                  progress=False)
    resumed = pyrovae.resume(tmp_path / "split", epochs=2, progress=False)
    for key, value in full.vae.state_dict().items():  # bitwise, as for the one-layer VAE
        assert torch.equal(value, resumed.vae.state_dict()[key]), key
    assert numbers(read_metrics(tmp_path / "split")) == numbers(read_metrics(tmp_path / "full"))
    vae, config, _ = pyrovae.load_run(tmp_path / "full", device="cpu")
    assert isinstance(vae, HierarchicalVAE) and config["model"]["latents"][0]["dim"] == 6

    run = str(tmp_path / "full")
    assert main(["evaluate", run, "--num-samples", "10", "--quiet"]) == 0
    assert "PSIS Pareto k" in capsys.readouterr().out
    assert main(["describe", run]) == 0
    assert "q(z1, z2 | x) = q(z1 | x) q(z2 | z1)" in capsys.readouterr().out
    assert main(["sample", run, "--num", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["plot", run, "--kind", "reconstructions", "--out", str(tmp_path / "r.png")]) == 0
    capsys.readouterr()
    # figures of one latent space z are refused in one line, naming the sites
    assert main(["plot", run, "--kind", "kl_per_dimension", "--out", str(tmp_path / "k.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 latent sites z1, z2" in err, err


def test_three_layers_chain_the_same_way():
    config = tiny_config()
    config["model"] = {**config["model"], "latents": [{"dim": 6}, {"dim": 4}, {"dim": 2}]}
    vae = VAE.from_config(config)
    assert vae.sites == ["z1", "z2", "z3"] and vae.latent_dim == 12
    text = vae.describe()
    assert "p(x, z1, z2, z3) = p(x | z1) p(z1 | z2) p(z2 | z3) p(z3)" in text
    assert "q(z1, z2, z3 | x) = q(z1 | x) q(z2 | z1) q(z3 | z2)" in text
    x = torch.bernoulli(torch.full((2, 784), 0.3))
    assert pyrovae.log_likelihood(vae, x, num_samples=4).shape == (2,)
    assert vae.sample(2).shape == (2, 784)
