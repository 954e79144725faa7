"""Every prior x likelihood x guide builds, traces with the right sites and shapes, trains a
few steps with each objective and gets a finite held-out score.

To extend: objectives are taken from the registry (every registered objective is tested, with
its defaults plus :data:`OBJECTIVE_PARAMS`), and :func:`held_out_score` is the one place that
says how a trained model is scored on held-out data.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from typing import Any

import pyro.poutine as poutine
import pytest
import torch

from pyrovae import (
    GUIDES,
    LIKELIHOODS,
    OBJECTIVES,
    PRIORS,
    VAE,
    Trainer,
    load_data,
    log_likelihood,
    resolve_config,
)
from pyrovae.data import ImageData, binarize_once

from conftest import DATA_ROOT, tiny_config

# the Monte Carlo fallback of AnalyticKL_ELBO is announced by design for non-Gaussian pairs
pytestmark = pytest.mark.filterwarnings("ignore::pyrovae.AnalyticKLFallbackWarning")

LATENT_DIM = 4
N_TRAIN, N_TEST, BATCH = 64, 32, 32

#: small parameters for components whose defaults are sized for real runs
SMALL: dict[str, dict[str, Any]] = {
    "mog": {"components": 3},
    "vamp": {"components": 5},
    "flow": {"hidden": [16]},
    "iaf": {"hidden": [16], "context_dim": 4},
    "discretized_logistic": {"components": 2},
}

#: objective parameters for these tests beyond the objective's defaults, by type
OBJECTIVE_PARAMS: dict[str, dict[str, Any]] = {}

#: the data preparation each likelihood is declared for
BINARIZE = {
    "bernoulli": "static",
    "continuous_bernoulli": "none",
    "gaussian": "none",
    "laplace": "none",
    "beta": "none",
    "discretized_logistic": "none",  # MNIST's grey levels are 8-bit levels k/255
}


def held_out_score(vae: VAE, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """Per-example importance-sampled log p(x) of held-out data in nats, ``(N,)`` (small K:
    the test checks that the estimator runs on every model, not its accuracy)."""
    return log_likelihood(vae, x, y, num_samples=8, seed=0)


@pytest.fixture(scope="module")
def grey_mnist() -> ImageData:
    config = {"dataset": "mnist", "binarize": "none", "binarization_seed": 0,
              "train_limit": N_TRAIN, "test_limit": N_TEST}
    return load_data(config, root=DATA_ROOT)


def data_for(likelihood: str, grey: ImageData) -> ImageData:
    if BINARIZE[likelihood] == "none":
        return grey
    return dataclasses.replace(
        grey, binarize="static",
        train_images=binarize_once(grey.train_images, 0),
        test_images=binarize_once(grey.test_images, 1),
    )


def config_for(prior: str, likelihood: str, guide: str, objective: str) -> dict[str, Any]:
    return resolve_config(tiny_config(
        data={"binarize": BINARIZE[likelihood], "train_limit": N_TRAIN, "test_limit": N_TEST},
        model={
            "latent_dim": LATENT_DIM,
            "prior": {"type": prior, **SMALL.get(prior, {})},
            "likelihood": {"type": likelihood, **SMALL.get(likelihood, {})},
            "encoder": {"type": "mlp", "hidden": [32]},
            "decoder": {"type": "mlp", "hidden": [32]},
            "guide": {"type": guide, **SMALL.get(guide, {})},
        },
        objective={"type": objective, **OBJECTIVE_PARAMS.get(objective, {})},
        train={"batch_size": BATCH, "eval_batch_size": N_TEST},
    ))


def test_every_component_is_covered():
    assert set(BINARIZE) == set(LIKELIHOODS.names())
    assert set(PRIORS.names()) == {
        "standard_normal", "normal", "mog", "vamp", "flow", "conditional"
    }
    assert set(GUIDES.names()) == {"diag_normal", "iaf"}


#: trace_enum_elbo sums out enumerated discrete sites, which no VAE has: for a VAE it is
#: Trace_ELBO (tests/test_programs.py trains it on a program with a discrete site)
VAE_OBJECTIVES = [name for name in OBJECTIVES.names() if name != "trace_enum_elbo"]
COMBINATIONS = list(itertools.product(
    PRIORS.names(), LIKELIHOODS.names(), GUIDES.names(), VAE_OBJECTIVES
))


@pytest.mark.parametrize("prior,likelihood,guide,objective", COMBINATIONS,
                         ids=["-".join(c) for c in COMBINATIONS])
def test_builds_traces_trains_and_scores(prior, likelihood, guide, objective, grey_mnist):
    config = config_for(prior, likelihood, guide, objective)
    data = data_for(likelihood, grey_mnist)
    vae = VAE.from_resolved_config(config)
    x = data.train_images[:BATCH]
    y = data.train_labels[:BATCH] if vae.prior.uses_labels else None

    # sites and shapes: z is latent in both programs, x observed, both in the "data" plate
    guide_trace = poutine.trace(vae.guide).get_trace(x, y)
    model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(x, y)
    z_site, x_site = model_trace.nodes["z"], model_trace.nodes["x"]
    assert not z_site["is_observed"] and x_site["is_observed"]
    assert z_site["value"].shape == (BATCH, LATENT_DIM)
    assert z_site["fn"].event_shape == (LATENT_DIM,) and z_site["fn"].batch_shape == (BATCH,)
    assert guide_trace.nodes["z"]["fn"].event_shape == (LATENT_DIM,)
    assert x_site["fn"].event_shape == (784,) and x_site["fn"].batch_shape == (BATCH,)
    for site in (z_site, x_site, guide_trace.nodes["z"]):
        assert [f.name for f in site["cond_indep_stack"]] == ["data"]
    model_trace.compute_log_prob()
    assert torch.isfinite(model_trace.nodes["x"]["log_prob"]).all()

    # a few training steps (validation on for the first, then recorded and replayed) change
    # the parameters; every program can be recorded but a VampPrior over an IAF guide, whose
    # flow inversion indexes by data (tests/infer/test_replay.py)
    before = [p.detach().clone() for p in vae.parameters()]
    trainer = Trainer(vae, data, config, torch.device("cpu"), progress=False)
    if (prior, guide) == ("vamp", "iaf"):
        with pytest.warns(RuntimeWarning, match="recording the programs as a graph failed"):
            train_elbo = trainer.train_epoch()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            train_elbo = trainer.train_epoch()
    assert torch.isfinite(torch.tensor(train_elbo))
    changed = sum(not torch.equal(b, p) for b, p in zip(before, vae.parameters()))
    assert changed >= len(before) - 1  # a fixed-scale likelihood or such may have none

    vae.eval()
    y_test = data.test_labels if vae.prior.uses_labels else None
    score = held_out_score(vae, data.test_images, y_test)
    assert score.shape == (N_TEST,) and torch.isfinite(score).all()
    if objective == OBJECTIVES.names()[0]:  # AIS does not depend on the objective
        # every latent of every model can be annealed with HMC (a short, cheap schedule)
        ais = log_likelihood(vae, data.test_images[:8], None if y_test is None else y_test[:8],
                             num_samples=2, method="ais", num_steps=3, seed=0)
        assert ais.shape == (8,) and torch.isfinite(ais).all()
    assert vae.sample(3).shape == (3, 784)
