"""Priors: log_prob and sample agree, densities normalise, and the mixtures (MoG, VampPrior)
equal a direct computation."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from pyrovae import PRIORS, VAE, Trainer, load_data, resolve_config
from pyrovae.errors import ConfigError
from pyrovae.rng import fixed_rng

from conftest import DATA_ROOT, tiny_config

#: a 2-d latent: densities can be integrated on a grid and samples binned
LATENT_DIM = 2
NUM_SAMPLES = 20_000


def make_prior(prior: dict, guide: str = "diag_normal", latent_dim: int = LATENT_DIM) -> VAE:
    """A small VAE (so that a VampPrior is attached to an encoder and guide) whose prior's
    parameters are moved away from their initial values, so the tests see a generic density."""
    guide_spec = {"type": guide, "hidden": [16], "context_dim": 3} if guide == "iaf" else guide
    vae = VAE.from_config(tiny_config(model={
        "latent_dim": latent_dim, "prior": prior, "guide": guide_spec,
        "encoder": {"type": "mlp", "hidden": [16]},
    }))
    # flows get smaller moves: larger ones let the layers' scales reach e^3 each and make the
    # density too heavy-tailed for a grid (0.2 gives a KL of ~0.9 nats from N(0, I))
    amplitude = 0.2 if prior["type"] == "flow" else 0.5
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in vae.prior.named_parameters():
            if name != "pseudo_inputs":
                p.add_(amplitude * torch.randn(p.shape, generator=gen))
    return vae


def grid(half_width: float, n: int) -> tuple[torch.Tensor, float]:
    """Midpoints of an n x n grid of cells over [-half_width, half_width]^2, and the cell area."""
    h = 2 * half_width / n
    axis = -half_width + h * (torch.arange(n) + 0.5)
    zz = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    return zz, h * h


PRIOR_CASES = {
    "standard_normal": ({"type": "standard_normal"}, None),
    "normal": ({"type": "normal"}, None),
    "mog": ({"type": "mog", "components": 4}, None),
    "vamp": ({"type": "vamp", "components": 6}, None),
    "flow": ({"type": "flow", "hidden": [16]}, None),
    "conditional|y=3": ({"type": "conditional"}, 3),
    "conditional|marginal": ({"type": "conditional"}, None),
}


#: the IAF guide's q(z|x) is checked the same way: its density enters every ELBO
IAF_GUIDE = "guide=iaf"


def test_every_prior_has_a_case():
    assert {spec["type"] for spec, _ in PRIOR_CASES.values()} == set(PRIORS.names())


def case_distribution(case: str):
    if case == IAF_GUIDE:
        vae = make_prior({"type": "standard_normal"}, guide="iaf")
        gen = torch.Generator().manual_seed(2)
        with torch.no_grad():
            for p in vae.guide_family.parameters():  # move the flows away from their init
                p.add_(0.3 * torch.randn(p.shape, generator=gen))
            params = vae.encoder(torch.rand(784, generator=gen))
        return vae.guide_family.distribution(params)
    spec, label = PRIOR_CASES[case]
    vae = make_prior(spec)
    y = None if label is None else torch.tensor([label])
    return vae.prior.distribution(y)


@pytest.mark.parametrize("case", [*PRIOR_CASES, IAF_GUIDE])
def test_density_normalises_and_matches_samples(case):
    with torch.no_grad():
        prior = case_distribution(case)
        samples = prior.sample(torch.Size([NUM_SAMPLES])).reshape(NUM_SAMPLES, LATENT_DIM)
        half_width = math.ceil(1.5 * samples.abs().max().item()) + 1.0
        # midpoint rule, 600 x 600 cells
        n = 600
        zz, area = grid(half_width, n)
        density = prior.log_prob(zz.reshape(-1, *prior.batch_shape, 2)).reshape(n, n).exp()
    # The densities here are smooth with length scales >= ~0.3 and the cells are <= 0.1 wide:
    # the midpoint rule's error, ~h^2/24 * integral |laplacian p|, is below 1e-4, and the mass
    # beyond 1.5x the largest of 20000 draws is far smaller; float32 summation adds ~1e-6.
    total = density.sum().item() * area
    assert abs(total - 1.0) < 1e-3, total

    # Samples against the density: counts in a 10 x 10 grid of bins (cells with an expected
    # count below 5 pooled into one bin) by Pearson's chi-square. Under agreement the statistic
    # has mean df and sd sqrt(2 df); 6 sd above the mean is a ~1e-6 tail for these df.
    bins = 10
    cell = torch.arange(n) * bins // n
    bin_of_cell = (cell[:, None] * bins + cell[None, :]).reshape(-1)
    mass = torch.zeros(bins * bins, dtype=torch.float64)
    mass.index_add_(0, bin_of_cell, density.reshape(-1).double())
    expected = mass / mass.sum() * NUM_SAMPLES

    def chi_square(z: torch.Tensor) -> tuple[float, int]:
        index = ((z + half_width) / (2 * half_width) * bins).long().clamp(0, bins - 1)
        observed = torch.bincount(index[:, 0] * bins + index[:, 1], minlength=bins * bins)
        small = expected < 5
        exp = torch.cat([expected[~small], expected[small].sum().reshape(1)])
        obs = torch.cat([observed[~small], observed[small].sum().reshape(1)]).double()
        return ((obs - exp) ** 2 / exp.clamp_min(1e-12)).sum().item(), len(exp) - 1

    chi2, df = chi_square(samples)
    threshold = df + 6 * math.sqrt(2 * df)
    assert chi2 < threshold, (chi2, df)
    # power: the same test flags draws shifted by a fifth of a unit
    assert chi_square(samples + 0.2)[0] > threshold


def diag_normal_log_density(
    z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """log N(z | loc, diag scale^2) written out, summed over the last dimension."""
    return (-0.5 * ((z - loc) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)


def test_mixture_of_gaussians_equals_direct_computation():
    vae = make_prior({"type": "mog", "components": 5}, latent_dim=3)
    prior = vae.prior
    z = torch.randn(7, 3) * 2
    weights = torch.softmax(prior.logits, 0)
    direct = torch.log(sum(
        weights[k] * diag_normal_log_density(z, prior.locs[k], prior.log_scales[k].exp()).exp()
        for k in range(5)
    ))
    torch.testing.assert_close(prior.distribution().log_prob(z), direct, rtol=1e-5, atol=1e-5)


def test_vamp_prior_equals_direct_computation():
    vae = make_prior({"type": "vamp", "components": 6}, latent_dim=3)
    z = torch.randn(7, 3)
    loc, scale = vae.guide_family.loc_scale(vae.encoder(vae.prior.pseudo_inputs))
    per_component = torch.stack(
        [diag_normal_log_density(z, loc[k], scale[k]) for k in range(6)], -1
    )
    direct = torch.logsumexp(per_component, -1) - math.log(6)
    torch.testing.assert_close(vae.prior.distribution().log_prob(z), direct, rtol=1e-5, atol=1e-5)


def test_vamp_prior_over_an_iaf_guide_equals_direct_computation():
    """With a flow guide the components are conditional flows: scoring z inverts each one."""
    vae = make_prior({"type": "vamp", "components": 4}, guide="iaf", latent_dim=3)
    z = torch.randn(5, 3)
    with torch.no_grad():
        params = vae.encoder(vae.prior.pseudo_inputs)
        per_component = torch.stack([
            vae.guide_family.distribution(params[k]).log_prob(z.clone()) for k in range(4)
        ], -1)
        direct = torch.logsumexp(per_component, -1) - math.log(4)
        torch.testing.assert_close(vae.prior.distribution().log_prob(z), direct,
                                   rtol=1e-4, atol=1e-4)
        # and the inversion is right: scoring a fresh copy of a guide draw (no cached inverse)
        # gives the density computed on the forward pass
        q = vae.guide_family.distribution(params)
        draw = q.sample()
        torch.testing.assert_close(q.log_prob(draw), q.log_prob(draw.clone()),
                                   rtol=1e-4, atol=1e-4)


def test_latent_dim_too_small_for_a_flow_is_refused():
    message = r"model\.prior\.type = 'flow': needs model\.latent_dim >= 2 \(got 1\)"
    with pytest.raises(ConfigError, match=message):
        make_prior({"type": "flow"}, latent_dim=1)


def test_conditional_prior_generates_the_requested_class():
    """Train a small conditional VAE on digits 0-3; images generated for label c should look
    like c: nearest (Euclidean) to the mean test image of c among the four class means."""
    classes = (0, 1, 2, 3)
    full = load_data({"dataset": "mnist", "binarize": "dynamic", "binarization_seed": 0,
                      "train_limit": 4000, "test_limit": 1000}, root=DATA_ROOT)
    keep = torch.isin(full.train_labels, torch.tensor(classes))  # 1612 training images
    data = dataclasses.replace(full, train_images=full.train_images[keep],
                               train_labels=full.train_labels[keep])
    config = resolve_config(tiny_config(
        model={"latent_dim": 8, "prior": {"type": "conditional"},
               "encoder": {"type": "mlp", "hidden": [128]},
               "decoder": {"type": "mlp", "hidden": [128]}},
        train={"epochs": 3, "batch_size": 64, "lr": 1e-2},
    ))
    vae = VAE.from_resolved_config(config)
    Trainer(vae, data, config, torch.device("cpu"), progress=False).fit()

    class_means = torch.stack([full.test_images[full.test_labels == c].mean(0) for c in classes])
    per_label = 200
    confusion = torch.zeros(len(classes), len(classes), dtype=torch.long)
    with fixed_rng(0, torch.device("cpu")):
        for i, c in enumerate(classes):
            nearest = torch.cdist(vae.sample(per_label, y=c), class_means).argmin(1)
            confusion[i] = torch.bincount(nearest, minlength=len(classes))
    # each label's draws are mostly of that label (measured: 73-80% on the diagonal)
    assert (confusion.argmax(1) == torch.arange(len(classes))).all(), confusion
    # If samples ignored the label, the balanced accuracy would be 1/4 whatever they look
    # like; with 800 draws its standard error is sqrt(1/4 * 3/4 / 800) = 0.015: ask for 5 SE.
    accuracy = confusion.diag().sum().item() / confusion.sum().item()
    assert accuracy > 0.25 + 5 * math.sqrt(0.25 * 0.75 / 800), confusion


def test_sampling_with_a_label_needs_a_conditional_prior():
    vae = make_prior({"type": "standard_normal"})
    with pytest.raises(ConfigError, match="label-conditional prior"):
        vae.sample(2, y=3)
    conditional = make_prior({"type": "conditional"})
    with pytest.raises(ConfigError, match="class label 10 is out of range"):
        conditional.sample(2, y=10)
    assert conditional.sample(5, y=torch.arange(5)).shape == (5, 784)
