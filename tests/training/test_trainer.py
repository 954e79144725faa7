"""The Trainer's fast step trains what the textbook Pyro loop trains, and needs no host reads.

Its step (registration off, validation on the first step only, the loss-and-gradient graph
recorded and replayed, the loss summed on the device) must train the same parameters as a
plain Pyro ``Trace_ELBO`` loop, and with validation off the loss and gradient of every
objective must read nothing back from the device.
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO as PyroTrace_ELBO

from pyrovae import OBJECTIVES, VAE, Trainer, load_data, resolve_config

#: float32 unit roundoff
EPS32 = torch.finfo(torch.float32).eps


def test_trainer_epoch_equals_plain_trace_elbo_loop(tiny):
    """An epoch of the Trainer and of the textbook loop (Pyro's Trace_ELBO, pyro.module
    registration, validation on every step) from the same state give the same parameters."""
    config = resolve_config(tiny)
    data = load_data(config["data"])
    vae = VAE.from_resolved_config(config)
    initial = {k: v.clone() for k, v in vae.state_dict().items()}
    trainer = Trainer(vae, data, config, torch.device("cpu"), progress=False)
    pyro.set_rng_seed(0)  # the Monte Carlo draws of both loops come from the global RNG
    train_elbo = trainer.train_epoch()

    plain = VAE.from_resolved_config(config)
    plain.load_state_dict(initial)
    reference = Trainer(plain, data, config, torch.device("cpu"), progress=False)  # same seeds
    pyro.set_rng_seed(0)
    elbo = PyroTrace_ELBO(max_plate_nesting=1)
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
# Pyro's TraceEnum_ELBO reads tensor values in Python (it runs eagerly, tests/infer/test_replay.py)
@pytest.mark.parametrize("objective", [n for n in OBJECTIVES.names() if n != "trace_enum_elbo"])
def test_trainer_loss_needs_no_host_reads(tiny, monkeypatch, objective, beta):
    """Every objective's loss and gradient, as the Trainer computes them after its first
    (validated) step (recorded, checked against the programs once, then replayed), read
    nothing back from the device: on a GPU no step waits. With beta != 1 the latent sites
    are weighted by a device tensor."""
    tiny["objective"] = {"type": objective, "beta": beta}
    config = resolve_config(tiny)
    data = load_data(config["data"])
    trainer = Trainer(VAE.from_resolved_config(config), data, config, torch.device("cpu"),
                      progress=False)
    batches = data.train_batches(config["train"]["batch_size"], trainer.data_generator)

    def loss_and_gradient():  # Trainer.train_step without the optimizer (CPU-specific)
        x, y = next(batches)
        return trainer.elbo_gradient(x, trainer.vae.model_labels(y), trainer.kl_scale)

    counter = HostReadCounter(monkeypatch)
    with pyro.validation_enabled(True):
        loss_and_gradient()
    # the counter works: with validation on, the VAE's model checks the data against the
    # likelihood's support, a read of tensor values (pyrovae's own documented check)
    assert counter.calls
    counter.calls.clear()
    with pyro.validation_enabled(False):
        losses = [loss_and_gradient() for _ in range(3)]  # record and check, replay, replay
    assert counter.calls == [], f"{objective}: host reads {counter.calls} in one step"
    records = trainer.elbo_gradient.records
    assert len(records) == 1 and all(v == "replayed" for v in records.values()), records
    # the losses are device tensors, detached: summing them is how the Trainer avoids reads
    assert all(isinstance(loss, torch.Tensor) and not loss.requires_grad for loss in losses)
    assert torch.isfinite(torch.stack(losses)).all()


def test_fit_records_one_row_per_epoch(tiny):
    """(That training improves the test ELBO: tests/infer/test_objectives.py and
    tests/training/test_run.py.)"""
    config = resolve_config({**tiny, "train": {**tiny["train"], "epochs": 2}})
    vae = VAE.from_resolved_config(config)
    trainer = Trainer(vae, load_data(config["data"]), config, torch.device("cpu"),
                      progress=False)
    rows = trainer.fit()
    assert rows is trainer.metrics and [r["epoch"] for r in rows] == [1, 2]
    assert trainer.epoch == 2
    assert all(math.isfinite(r["train_elbo"]) and math.isfinite(r["test_elbo"]) for r in rows)
    # the test ELBO is computed on fixed draws (EVAL_SEED): repeating it gives the same number
    assert trainer.test_elbo() == rows[-1]["test_elbo"]
    before = [p.detach().clone() for p in vae.parameters()]
    assert trainer.fit() == rows  # already at the configured epochs: nothing more to do
    assert all(torch.equal(p, q) for p, q in zip(vae.parameters(), before))
