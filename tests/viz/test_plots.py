"""pyrovae.viz.plots on synthetic tensors: every plot function returns a Figure that has no
overlapping text and says what it shows, and save_figure writes it as a real picture; the
2-D-only pictures refuse other latent sizes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from pyrovae import ConfigError
from pyrovae.viz import plots, save_figure

from png_checks import assert_legible, assert_picture

SHAPE = (1, 28, 28)
DIM = 784


def images(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` random grey images ``(n, 784)`` in [0, 1]."""
    return torch.rand(n, DIM, generator=torch.Generator().manual_seed(seed))


METRICS = [{"epoch": e, "train_elbo": -150 + 3 * e, "test_elbo": -140 + 2.5 * e}
           for e in range(1, 11)]
KS = [1, 10, 100, 1000, 5000]

# name -> (draw() -> Figure, texts the figure must show)
CASES = {
    "samples": (lambda: plots.plot_samples(images(64), SHAPE), ["z ~ p(z)"]),
    "reconstructions": (
        lambda: plots.plot_reconstructions(images(13), images(13, 1), SHAPE),
        ["input", "reconstruction"],
    ),
    "samples_and_reconstructions": (
        lambda: plots.plot_samples_and_reconstructions(
            images(64), images(32), images(32, 1), SHAPE, title="epoch 3: -100.00 nats"),
        ["input", "recon.", "epoch 3: -100.00 nats"],
    ),
    "grids": (
        lambda: plots.plot_grids({f"prior {i}": images(64, i) for i in range(4)}, SHAPE,
                                   title="samples per prior"),
        ["prior 0", "prior 3", "samples per prior"],
    ),
    "class_rows": (
        lambda: plots.plot_class_rows(images(100).reshape(10, 10, DIM), SHAPE),
        ["class y", "0", "9"],
    ),
    "interpolations": (
        lambda: plots.plot_interpolations(images(60).reshape(6, 10, DIM), SHAPE,
                                            starts=images(6, 1), ends=images(6, 2)),
        ["input A", "input B", "t = 0 \u2192 1 in 10 equal steps"],
    ),
    "manifold": (
        lambda: plots.plot_manifold(images(225), plots.manifold_grid(2)[1], SHAPE),
        ["$z_2$", "1.64", "-1.64"],
    ),
    "latent_scatter": (
        lambda: plots.plot_latent_scatter(torch.randn(2000, 2),
                                            torch.arange(2000) % 10),
        ["class", "posterior mean of $z_1$", "0", "9"],
    ),
    "kl_per_dimension": (
        lambda: plots.plot_kl_per_dimension(torch.tensor([0.5, 0.0, 0.02, 0.005, 1.0])),
        ["KL per latent dimension: 3 of 5 active", "KL (nats per example)"],
    ),
    "kl_per_dimension_50": (
        lambda: plots.plot_kl_per_dimension(torch.linspace(2, 0, 50) ** 3),
        ["KL per latent dimension: 44 of 50 active"],  # (2(1 - i/49))^3 > 0.01 iff i <= 43
    ),
    "kl_per_dimension_per_beta": (
        lambda: plots.plot_kl_per_dimension(
            {"beta = 1": torch.tensor([0.5, 0.0, 0.02, 0.005]),
             "beta = 4": torch.tensor([0.3, 0.0, 0.001, 0.005])}),
        ["beta = 1: 2 of 4 latent dimensions active", "beta = 4: 1 of 4 latent dimensions active",
         "latent dimension (sorted by KL)", "active-unit threshold (0.01 nats)"],
    ),
    "elbo_curves": (
        lambda: plots.plot_elbo_curves(METRICS),
        ["ELBO (nats per example)", "epoch", "test (after the epoch)"],
    ),
    "log_likelihood_vs_k": (
        lambda: plots.plot_log_likelihood_vs_k(
            KS, [-100, -95, -93, -92.5, -92.3], [0.5] * 5, elbo=-100.1, elbo_se=0.5),
        ["ELBO (the K = 1 bound)", "log p\u0302(x) (nats per example)",
         "number of importance samples K (log scale)"],
    ),
    "ess_vs_k": (
        lambda: plots.plot_ess_vs_k(KS, [1, 5, 30, 200, 800],
                                      standard_errors=[0, 0.5, 3, 20, 80]),
        ["effective sample size (log scale)"],
    ),
    "log_likelihood_vs_compute": (
        lambda: plots.plot_log_likelihood_vs_compute(
            KS, [-100, -95, -93, -92.5, -92.3], [480, 2400, 9600], [-93.1, -92.0, -91.7],
            is_labels=[f"K = {k}" for k in KS], ais_labels=["T = 10", "T = 50", "T = 200"],
            bdmc_gap=[2.1, 0.6, 0.2], bdmc_gap_se=[0.2, 0.05, 0.02], elbo=-100.1,
            note="the same 100 test images"),
        ["IS: K forward passes", "AIS: S T (L + 1) gradient evaluations", "K = 5000", "T = 200",
         "BDMC gap (nats per example)", "AIS + BDMC gap at that T", "the same 100 test images",
         "mean log p\u0302(x) (nats per example)", "ELBO (IS with K = 1)"],
    ),
    "log_likelihood_vs_compute_without_bdmc": (
        lambda: plots.plot_log_likelihood_vs_compute([1, 10, 100], [-100, -95, -93], [480],
                                                     [-92.0], ais_labels=["T = 10"]),
        ["T = 10", "evaluations of log p(x, z) per example (log scale)"],
    ),
    "model_comparison": (
        lambda: plots.plot_model_comparison(
            ["standard_normal", "mog", "vamp", "flow"], [-99.5, -98.7, -97.9, -98.2],
            [0.5] * 4, log_likelihood=[-94.1, -93.5, -92.8, -93.0],
            log_likelihood_se=[0.45] * 4),
        ["vamp", "test ELBO", "log p\u0302(x)", "-97.90 \u00b1 0.50", "-92.80 \u00b1 0.45"],
    ),
    "model_comparison_elbo_only": (
        lambda: plots.plot_model_comparison(["bernoulli", "gaussian"], [-99.5, 700.1],
                                              [0.5, 3.0]),
        ["bernoulli", "700.10 \u00b1 3.00"],
    ),
    "rate_distortion": (
        lambda: plots.plot_rate_distortion([30, 20, 10, 5], [70, 80, 95, 120],
                                             labels=["beta = 0.5", "beta = 1", "beta = 2",
                                                     "beta = 4"]),
        ["beta = 0.5", "beta = 4"],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_figure_is_legible_and_saves_as_a_picture(name, tmp_path):
    draw, expected_texts = CASES[name]
    fig = draw()
    assert_legible(fig, expected_texts)  # a Figure, no overlapping text, says what it shows
    path = save_figure(fig, tmp_path / "sub" / f"{name}.png")  # creates the folder
    assert path == tmp_path / "sub" / f"{name}.png"
    assert_picture(path)


def test_drawing_writes_nothing_until_saved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fig = plots.plot_samples(images(4), SHAPE)
    assert isinstance(fig, Figure) and list(tmp_path.iterdir()) == []
    assert save_figure(fig, "s.png") == Path("s.png") and (tmp_path / "s.png").is_file()


def test_grey_figures_are_stored_as_grey_pngs_and_colour_ones_as_rgb(tmp_path):
    from PIL import Image

    grey = save_figure(plots.plot_samples(images(16), SHAPE), tmp_path / "grey.png")
    colour = save_figure(plots.plot_elbo_curves(METRICS), tmp_path / "colour.png")
    assert Image.open(grey).mode == "L" and Image.open(colour).mode == "RGB"


def test_image_grid_places_each_image_with_white_gaps():
    x = torch.arange(5.0)[:, None].expand(5, 6) / 10  # image i is 2x3 pixels of value i/10
    grid = plots.image_grid(x, (1, 2, 3), ncols=2)
    assert grid.shape == (3 * 3 - 1, 2 * 4 - 1)
    for i in range(5):
        r, c = divmod(i, 2)
        assert torch.all(grid[3 * r : 3 * r + 2, 4 * c : 4 * c + 3] == i / 10)
    assert torch.all(grid[2, :] == 1) and torch.all(grid[:, 3] == 1)  # gaps
    assert torch.all(grid[6:, 4:] == 1)  # the missing sixth image is blank


def test_pair_rows_puts_each_input_row_above_its_reconstructions():
    inputs, recon = torch.arange(5.0)[:, None], -torch.arange(5.0)[:, None]
    rows = plots.pair_rows(inputs, recon, ncols=3).reshape(-1)
    assert rows.tolist() == [0, 1, 2, -0, -1, -2, 3, 4, 1, -3, -4, 1]  # 1 = white filler
    with pytest.raises(ValueError, match="same shape"):
        plots.pair_rows(inputs, recon[:4], ncols=3)


def test_manifold_grid_is_at_standard_normal_quantiles_in_reading_order():
    z, values = plots.manifold_grid(2, n=15)
    p = torch.linspace(0.05, 0.95, 15)
    assert torch.allclose(values, torch.distributions.Normal(0.0, 1.0).icdf(p))
    # Phi^-1(0.95) = 1.6448536 (tables), and the quantiles are symmetric about 0
    assert math.isclose(values[-1].item(), 1.6448536, abs_tol=1e-5)
    assert torch.allclose(values, -values.flip(0), atol=1e-6)
    assert z.shape == (225, 2)
    grid = z.reshape(15, 15, 2)
    assert torch.equal(grid[0, :, 0], values)  # columns: z1 ascending left to right
    assert torch.equal(grid[:, 0, 1], values.flip(0))  # rows: z2 descending top to bottom


@pytest.mark.parametrize("latent_dim", [1, 8])
def test_two_dimensional_pictures_refuse_other_latent_sizes(latent_dim):
    with pytest.raises(ConfigError, match=rf"latent_dim = {latent_dim}.*model\.latent_dim = 2"):
        plots.manifold_grid(latent_dim)
    with pytest.raises(ConfigError, match=rf"latent_dim = {latent_dim}.*model\.latent_dim = 2"):
        plots.plot_latent_scatter(torch.zeros(10, latent_dim), torch.zeros(10))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="no metrics"):
        plots.plot_elbo_curves([])
    with pytest.raises(ValueError, match="10 images given for a 15x15"):
        plots.plot_manifold(images(10), plots.manifold_grid(2)[1], SHAPE)
    with pytest.raises(ValueError, match="3 class names given for 10 rows"):
        plots.plot_class_rows(images(20).reshape(10, 2, DIM), SHAPE, class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="2 BDMC gaps given for 3 AIS estimates"):
        plots.plot_log_likelihood_vs_compute([1], [-100], [1, 2, 3], [-99, -98, -97],
                                             bdmc_gap=[1, 0.5])
    with pytest.raises(ValueError, match="lengths differ"):
        plots.plot_log_likelihood_vs_compute([1, 10], [-100], [1], [-99])


# ---------------------------------------------------------------------------- colour
RGB_SHAPE = (3, 8, 8)


def rgb_images(n: int) -> torch.Tensor:
    """``n`` flat 3x8x8 images, each pure red, green or blue in turn: ``(n, 192)``."""
    colours = torch.eye(3)[torch.arange(n) % 3]  # (n, 3)
    return colours[:, :, None].expand(n, 3, 64).reshape(n, 192).contiguous()


# every figure of images, on a red/green/blue data set
COLOUR_CASES = {
    "samples": lambda: plots.plot_samples(rgb_images(9), RGB_SHAPE),
    "reconstructions": lambda: plots.plot_reconstructions(rgb_images(6), rgb_images(6), RGB_SHAPE),
    "samples_and_reconstructions": lambda: plots.plot_samples_and_reconstructions(
        rgb_images(9), rgb_images(6), rgb_images(6), RGB_SHAPE),
    "grids": lambda: plots.plot_grids({"a": rgb_images(9)}, RGB_SHAPE),
    "class_rows": lambda: plots.plot_class_rows(rgb_images(9).reshape(3, 3, 192), RGB_SHAPE),
    "interpolations": lambda: plots.plot_interpolations(
        rgb_images(9).reshape(3, 3, 192), RGB_SHAPE, starts=rgb_images(3), ends=rgb_images(3)),
    "manifold": lambda: plots.plot_manifold(rgb_images(225), plots.manifold_grid(2)[1],
                                            RGB_SHAPE),
}


@pytest.mark.parametrize("name", list(COLOUR_CASES))
def test_colour_images_are_drawn_in_colour(name, tmp_path):
    """A PNG of pure red, green and blue images holds each hue: many pixels whose one channel
    is near 255 and the two others near 0 (drawn in grey, all three would be equal)."""
    from PIL import Image

    path = save_figure(COLOUR_CASES[name](), tmp_path / f"{name}.png")
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).astype(int)
    for channel in range(3):
        others = [c for c in range(3) if c != channel]
        pure = (pixels[:, channel] > 200) & (pixels[:, others] < 55).all(axis=1)
        assert pure.sum() >= 64, f"{name}: {pure.sum()} pixels of hue {'RGB'[channel]}"


def test_image_grid_keeps_three_channels_and_tiles_like_grey():
    grid = plots.image_grid(rgb_images(5), RGB_SHAPE, ncols=2)
    assert grid.shape == (3 * 9 - 1, 2 * 9 - 1, 3)
    assert torch.equal(grid[0, 0], torch.tensor([1.0, 0.0, 0.0]))  # image 0: red
    assert torch.equal(grid[0, 9], torch.tensor([0.0, 1.0, 0.0]))  # image 1: green
    assert torch.all(grid[8, :] == 1) and torch.all(grid[18:, 9:] == 1)  # gap; blank cell
