"""pyrovae.viz.figures: every figure kind of a VAE is a legible Figure that saves as a real
picture; figures that need a 2-D latent space, a class-conditional prior or a factorised model
refuse others clearly; the helpers pick what the figures show."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

import pyrovae
from pyrovae import ConfigError
from pyrovae.viz import FIGURE_KINDS, NEEDS_DATA, figures, save_figure

from conftest import tiny_config, tiny_vae
from png_checks import assert_legible, assert_picture

#: texts each kind's figure must show
TEXTS = {
    "samples": ["z ~ p(z)"],
    "reconstructions": ["input", "reconstruction"],
    "curves": ["ELBO (nats per example)", "epoch"],
    "latent": ["posterior mean of $z_1$", "class"],
    "manifold": ["$z_1$", "$z_2$"],
    "interpolation": ["input A", "input B"],
    "classes": ["class y", "0", "9"],
    "kl_per_dimension": ["KL per latent dimension: ", "of 2 active"],
}


def test_every_kind_has_texts():
    assert set(TEXTS) == set(FIGURE_KINDS) and set(NEEDS_DATA) <= set(FIGURE_KINDS)


@pytest.fixture(scope="module")
def trained() -> pyrovae.Trainer:
    """A VAE with a 2-D latent space trained for one tiny epoch (so its pictures show some
    structure), with its data and metrics."""
    config = tiny_config(model={"latent_dim": 2}, data={"train_limit": 256, "test_limit": 256})
    return pyrovae.train(config, progress=False)


@pytest.mark.parametrize("kind", FIGURE_KINDS)
def test_draw_makes_each_kind_a_legible_picture(kind, trained, tmp_path):
    if kind == "classes":
        vae = tiny_vae(latent_dim=2, prior={"type": "conditional", "init_spread": 3.0})
    else:
        vae = trained.vae
    fig = figures.draw(kind, vae, data=trained.data, metrics=trained.metrics)
    assert isinstance(fig, Figure)
    assert_legible(fig, TEXTS[kind])
    assert_picture(save_figure(fig, tmp_path / f"{kind}.png"))


def test_draw_is_reproducible_and_needs_data_only_for_some_kinds(trained):
    vae = trained.vae
    for kind in FIGURE_KINDS:
        if kind in NEEDS_DATA:
            with pytest.raises(ValueError, match=f"the '{kind}' figure needs the data set"):
                figures.draw(kind, vae, metrics=trained.metrics)
    with pytest.raises(ValueError, match="unknown figure kind 'histogram'"):
        figures.draw("histogram", vae)
    # fixed seeds: the same figure twice, and the caller's random stream is left alone
    state = torch.get_rng_state()
    a = figures.samples_figure(vae, num=16, seed=3).axes[0].images[0].get_array()
    b = figures.samples_figure(vae, num=16, seed=3).axes[0].images[0].get_array()
    assert (a == b).all() and torch.equal(torch.get_rng_state(), state)


def test_classes_figure_draws_one_row_per_class_and_needs_a_conditional_prior(tmp_path):
    vae = tiny_vae(prior={"type": "conditional", "init_spread": 3.0})
    fig = figures.classes_figure(vae, per_class=4)
    texts = assert_legible(fig, ["class y"])
    assert {str(c) for c in range(10)} <= set(texts)  # a label per row
    assert_picture(save_figure(fig, tmp_path / "classes.png"))
    # the marginal p(z) (a mixture over classes) draws without labels
    assert_picture(save_figure(figures.draw("samples", vae), tmp_path / "samples.png"))
    with pytest.raises(ConfigError, match=r"model\.prior = 'standard_normal'.*conditional"):
        figures.classes_figure(tiny_vae())


@pytest.mark.parametrize("kind", ["latent", "manifold"])
def test_two_dimensional_figures_refuse_other_latent_sizes(kind):
    vae = tiny_vae(latent_dim=8)
    x, y = torch.rand(16, vae.data_dim), torch.arange(16) % 10
    draw = {"latent": lambda: figures.latent_figure(vae, x, y),
            "manifold": lambda: figures.manifold_figure(vae)}[kind]
    with pytest.raises(ConfigError, match=r"latent_dim = 8.*model\.latent_dim = 2"):
        draw()


@pytest.mark.parametrize("model, named", [
    ({"prior": {"type": "vamp", "components": 5}}, "model.prior = 'vamp'"),
    ({"guide": {"type": "iaf"}}, "model.guide = 'iaf'"),
])
def test_kl_per_dimension_figure_refuses_models_that_do_not_factorise(model, named):
    with pytest.raises(ConfigError, match=f"one Normal per dimension.*{named}"):
        # binary data, as the Bernoulli likelihood needs (pyrovae.VAE.check_data)
        figures.kl_per_dimension_figure(tiny_vae(**model), torch.rand(4, 784).round())


def test_posterior_means_are_the_guide_means():
    vae = tiny_vae()
    x = torch.rand(30, 784)
    with torch.no_grad():
        loc, _ = vae.guide_family.loc_scale(vae.encoder(x))
    torch.testing.assert_close(figures.posterior_means(vae, x, batch_size=7), loc)
    # a flow guide has no closed-form mean: the mean of 64 draws, near its base's mean
    iaf = tiny_vae(guide={"type": "iaf", "hidden": [16]})
    means = figures.posterior_means(iaf, x[:3])
    assert means.shape == (3, 8) and torch.isfinite(means).all()


def test_interpolation_pairs_join_different_classes_reproducibly():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3, 3])
    pairs = figures.interpolation_pairs(labels, 4, seed=1)
    assert pairs.shape == (4, 2)
    assert (labels[pairs[:, 0]] != labels[pairs[:, 1]]).all()
    assert len(set(pairs.flatten().tolist())) == 8  # no example used twice
    assert torch.equal(pairs, figures.interpolation_pairs(labels, 4, seed=1))
    with pytest.raises(pyrovae.DataError, match="found only 0"):
        figures.interpolation_pairs(torch.zeros(10, dtype=torch.long), 1)


def test_interpolation_pairs_of_unlabelled_examples_join_different_examples():
    pairs = figures.interpolation_pairs(torch.full((7,), -1), 6, seed=1)
    assert pairs.shape == (3, 2) and len(set(pairs.flatten().tolist())) == 6  # 7 // 2 pairs
    with pytest.raises(pyrovae.DataError, match="two test examples or more"):
        figures.interpolation_pairs(torch.full((1,), -1), 6)
