"""The fast training path computes exactly what plain Pyro computes.

``SyncFreeTrace_ELBO`` must give Trace_ELBO's loss and gradients on the same draws, the
Trainer's step (registration off, validation off after the first step) must train the same
parameters as a plain ``Trace_ELBO`` loop, and its loss must need no host reads.
"""

from __future__ import annotations

import importlib.util
import math
import sys

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import Trace_ELBO

from pyrovae import OBJECTIVES, SyncFreeTrace_ELBO, Trainer, VAE, load_data
from pyrovae.config import resolve_config

from conftest import ROOT

#: float32 unit roundoff
EPS32 = torch.finfo(torch.float32).eps


def loss_and_grads(elbo, model, guide, params, x, seed=0):
    """The ELBO's differentiable loss and its gradients w.r.t. ``params``, with seeded draws."""
    pyro.set_rng_seed(seed)
    loss = elbo.differentiable_loss(model, guide, x)
    return loss.detach(), torch.autograd.grad(loss, params)


def sum_of_abs_site_terms(elbo_kwargs, model, guide, x, seed=0):
    """Sum over sample sites of |log_prob_sum| (per particle) on the same draws: the scale of
    the float rounding in adding the sites up."""
    elbo = Trace_ELBO(**elbo_kwargs)
    pyro.set_rng_seed(seed)
    total = 0.0
    for traces in elbo._get_traces(model, guide, (x,), {}):  # the traces Trace_ELBO sums
        total += sum(abs(site["log_prob_sum"].item()) for trace in traces
                     for site in trace.nodes.values() if site["type"] == "sample")
    return total / elbo.num_particles


def assert_same_loss_and_grads(model, guide, params, x, **elbo_kwargs):
    ref_loss, ref_grads = loss_and_grads(Trace_ELBO(**elbo_kwargs), model, guide, params, x)
    loss, grads = loss_and_grads(SyncFreeTrace_ELBO(**elbo_kwargs), model, guide, params, x)
    # Both compute every site's log_prob_sum identically; only adding the n <= 6 site terms
    # differs: Trace_ELBO adds Python floats (float64) and rounds the result to float32 once,
    # SyncFreeTrace_ELBO adds in float32, each addition rounding by at most EPS32/2 of a
    # partial sum <= S = sum of |terms|; with the final roundings, |difference| <= 4 EPS32 S.
    bound = 4 * EPS32 * sum_of_abs_site_terms(elbo_kwargs, model, guide, x)
    assert abs(loss - ref_loss).item() <= bound
    # The gradients flow through the same autograd graph seeded with the same exact weights
    # (+-1 or 1/num_particles), so they are equal bit for bit.
    for g, ref in zip(grads, ref_grads):
        assert torch.equal(g, ref)
    return loss


@pytest.fixture
def vae_and_batch(tiny):
    vae = VAE.from_config(tiny)
    x = torch.bernoulli(torch.full((16, 784), 0.3), generator=torch.Generator().manual_seed(1))
    return vae, x, list(vae.parameters())


def test_same_loss_and_grads_single_particle(vae_and_batch):
    vae, x, params = vae_and_batch
    loss = assert_same_loss_and_grads(vae.model, vae.guide, params, x, max_plate_nesting=1)
    assert loss > 0  # a negative ELBO of Bernoulli pixels is positive


def test_same_loss_and_grads_vectorized_particles(vae_and_batch):
    vae, x, params = vae_and_batch
    assert_same_loss_and_grads(vae.model, vae.guide, params, x, max_plate_nesting=1,
                               num_particles=3, vectorize_particles=True)


def scale_site(fn, name: str, scale: float):
    """``fn`` with the log-density of its sample site ``name`` multiplied by ``scale`` (what a
    beta / KL warm-up weight on "z" does)."""

    class ScaleSite(poutine.messenger.Messenger):
        def _process_message(self, msg):
            if msg["name"] == name:
                msg["scale"] = scale * msg["scale"]

    return ScaleSite()(fn)


def test_same_loss_and_grads_with_a_weight_on_z(vae_and_batch):
    vae, x, params = vae_and_batch
    assert_same_loss_and_grads(scale_site(vae.model, "z", 0.3), scale_site(vae.guide, "z", 0.3),
                               params, x, max_plate_nesting=1)


def test_same_loss_and_grads_with_score_function_sites():
    """A guide with a non-reparameterized site (score-function gradient) next to a
    reparameterized one, and a masked model site."""
    loc = torch.tensor([0.3, -0.2, 0.5], requires_grad=True)
    logit = torch.tensor([0.1, -0.4, 0.2], requires_grad=True)
    x = torch.tensor([0.5, 1.5, -0.7])

    def model(x):
        with pyro.plate("data", 3):
            b = pyro.sample("b", dist.Bernoulli(0.5))
            z = pyro.sample("z", dist.Normal(b, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0).mask(torch.tensor([True, True, False])), obs=x)

    def guide(x):
        with pyro.plate("data", 3):
            pyro.sample("b", dist.Bernoulli(logits=logit))
            pyro.sample("z", dist.Normal(loc, 1.0).has_rsample_(False))

    assert_same_loss_and_grads(model, guide, [loc, logit], x, max_plate_nesting=1)
    assert_same_loss_and_grads(model, guide, [loc, logit], x, max_plate_nesting=1,
                               num_particles=4, vectorize_particles=True)


# ---------------------------------------------------------------------- the Trainer's step
def test_registration_off_leaves_param_store_alone(tiny):
    vae = VAE.from_config(tiny)
    x = torch.zeros(4, 784)
    with vae.param_store_registration(False):
        trace = poutine.trace(vae.guide).get_trace(x)
    assert not any(site["type"] == "param" for site in trace.nodes.values())
    assert len(pyro.get_param_store()) == 0
    # on again after the block: every parameter is a param site, as pyro.infer.SVI needs
    trace = poutine.trace(vae.guide).get_trace(x)
    params = {name for name, site in trace.nodes.items() if site["type"] == "param"}
    assert len(params) == len(list(vae.parameters())) == len(pyro.get_param_store())


def test_trainer_epoch_equals_plain_trace_elbo_loop(tiny):
    """An epoch of the Trainer and of the textbook loop (Trace_ELBO, pyro.module
    registration, validation on every step) from the same state give the same parameters."""
    config = resolve_config(tiny)
    data = load_data(config["data"])
    vae = VAE.from_config(config)
    initial = {k: v.clone() for k, v in vae.state_dict().items()}
    trainer = Trainer(vae, data, config, torch.device("cpu"), progress=False)
    pyro.set_rng_seed(0)  # the Monte Carlo draws of both loops come from the global RNG
    train_elbo = trainer.train_epoch()

    plain = VAE.from_config(config)
    plain.load_state_dict(initial)
    reference = Trainer(plain, data, config, torch.device("cpu"), progress=False)  # same seeds
    pyro.set_rng_seed(0)
    elbo = Trace_ELBO(max_plate_nesting=1)
    total, seen = 0.0, 0
    for x, _ in data.train_batches(config["train"]["batch_size"], reference.data_generator):
        loss = elbo.differentiable_loss(plain.model, plain.guide, x) / x.shape[0]
        reference.optimizer.zero_grad()
        loss.backward()
        reference.optimizer.step()
        total, seen = total + loss.item() * x.shape[0], seen + x.shape[0]

    for (name, p), q in zip(vae.named_parameters(), plain.parameters()):
        assert torch.equal(p, q), name  # same draws, bitwise-same gradients and updates
    # the reported mean ELBO: per batch, the two losses differ by the site-sum rounding
    # (<= 4 EPS32 relative, the data term dominating |terms|) and the reference's divide-then-
    # multiply by N (<= 2 EPS32); the Trainer adds the 8 positive batch losses in float32
    # (<= 7 EPS32/2) and the reference in float64: 16 EPS32 relative bounds the total
    assert math.isclose(train_elbo, -total / seen, rel_tol=16 * EPS32)


class HostReadCounter:
    """Counts Python-level reads of tensor values to the host (``.item()``, ``bool(t)``,
    ``float(t)``, ``int(t)``, ``.tolist()``, ``.numpy()``): each one waits for a GPU."""

    METHODS = ("item", "__bool__", "__float__", "__int__", "tolist", "numpy")

    def __init__(self, monkeypatch) -> None:
        self.calls: list[str] = []
        for name in self.METHODS:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._counted(name, original))

    def _counted(self, name, original):
        def counted(tensor, *args, **kwargs):
            self.calls.append(name)
            return original(tensor, *args, **kwargs)

        return counted


@pytest.mark.parametrize("beta", [1.0, 0.5])
@pytest.mark.parametrize("objective", OBJECTIVES.names())
def test_trainer_loss_needs_no_host_reads(tiny, monkeypatch, objective, beta):
    """Every objective's loss and gradient, as the Trainer computes them after its first
    (validated) step (recorded, checked against the programs once, then replayed), read
    nothing back from the device: on a GPU no step waits. With beta != 1 the "z" site is
    weighted by a device tensor."""
    tiny["objective"] = {"type": objective, "beta": beta}
    config = resolve_config(tiny)
    data = load_data(config["data"])
    trainer = Trainer(VAE.from_config(config), data, config, torch.device("cpu"), progress=False)
    batches = data.train_batches(config["train"]["batch_size"], trainer.data_generator)

    def loss_and_gradient():  # Trainer.train_step without the optimizer (CPU-specific)
        x, y = next(batches)
        trainer.elbo_gradient(x, trainer.vae.model_labels(y), trainer.kl_scale)

    counter = HostReadCounter(monkeypatch)
    with pyro.validation_enabled(True):
        loss_and_gradient()
    assert counter.calls  # the validated first step checks values: the counter sees them
    counter.calls.clear()
    with pyro.validation_enabled(False):
        for _ in range(3):  # record and check, replay, replay
            loss_and_gradient()
    assert counter.calls == [], f"{objective}: host reads {counter.calls} in one step"
    assert all(r is not None and r.checked for r in trainer.elbo_gradient._records.values())


def test_plain_trace_elbo_reads_values_back(tiny, monkeypatch):
    """What SyncFreeTrace_ELBO avoids: Trace_ELBO reads every site's log-density back and
    checks the loss for NaN (and the counter above sees such reads)."""
    vae = VAE.from_config(tiny)
    counter = HostReadCounter(monkeypatch)
    with pyro.validation_enabled(False):
        Trace_ELBO(max_plate_nesting=1).differentiable_loss(vae.model, vae.guide,
                                                            torch.zeros(4, 784))
    assert counter.calls.count("item") == 4 and "__bool__" in counter.calls


# ---------------------------------------------------------------------- the benchmark script
def load_bench():
    path = ROOT / "bench" / "train_speed.py"
    spec = importlib.util.spec_from_file_location("train_speed", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_bench_runs_and_reports_every_registered_objective(capsys):
    bench = load_bench()
    results = bench.main([
        "--threads", "1", "--hidden", "16", "--batch-size", "32", "--train-limit", "128",
        "--test-limit", "64", "--steps", "2", "--repeats", "1", "--warmup", "1", "--pool", "2",
        "--epochs", "1",
    ])
    rows = {row["contender"]: row for row in results["rows"]}

    for objective, _, estimator in bench.OBJECTIVES:
        pyrovae_rows = [r for name, r in rows.items() if name.startswith(f"pyrovae {objective}")]
        if objective in OBJECTIVES:
            row, eager = sorted(pyrovae_rows, key=lambda r: r["contender"])  # "..., replay off"
            assert eager["contender"].endswith("replay off")
            for r in (row, eager):
                assert r["reference"] == f"hand {estimator}" and r["reference"] in rows
                assert r["ratio_wall"] > 0
            assert math.isfinite(row["test_elbo"])
            assert math.isfinite(rows[row["reference"]]["test_elbo"])
        else:
            assert not pyrovae_rows
            assert any(objective in line for line in results["meta"]["skipped"])
    assert any(name.startswith("pyro SVI") for name in rows)
    assert "ratio" in capsys.readouterr().out


def test_bench_cuda_without_gpu_says_so(monkeypatch):
    bench = load_bench()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        bench.main(["--device", "cuda"])
    assert "no CUDA GPU is available" in str(exc.value)
