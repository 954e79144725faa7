"""User programs that break the contract, one way each, for tests/test_robustness.py
(``model.program = "bad_programs:FACTORY"``): each factory returns a small Gaussian-latent
program of MNIST-sized binary data with one fault."""

from __future__ import annotations

from typing import Any

import pyro
import pyro.distributions as dist
import torch
from torch import nn

D, LATENT = 784, 2


class Program(nn.Module):
    """z ~ N(0, I), x | z ~ Bernoulli(sigmoid(W z)); q(z | x) = N(V x, I). ``fault`` names
    what is wrong with it (``""``: nothing)."""

    def __init__(self, fault: str = "") -> None:
        super().__init__()
        self.fault = fault
        self.decoder = nn.Linear(LATENT, D)
        self.encoder = nn.Linear(D, LATENT)

    def model(self, x: torch.Tensor, y: Any = None) -> None:
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(LATENT), 1.0).to_event(1))
            logits = self.decoder(z)
            if self.fault == "nan":
                logits = logits * float("nan")
                pyro.sample("x", dist.Normal(logits, 1.0, validate_args=False).to_event(1), obs=x)
                return
            if self.fault == "shape":
                logits = logits[..., :-1]  # one pixel short
            name = "obs" if self.fault == "no_x" else "x"
            pyro.sample(name, dist.Bernoulli(logits=logits, validate_args=False).to_event(1), obs=x)

    def guide(self, x: torch.Tensor, y: Any = None) -> None:
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(self.encoder(x), 1.0).to_event(1))
            if self.fault == "extra":
                pyro.sample("w", dist.Normal(torch.zeros(x.shape[0]), 1.0))


def raising(config: dict[str, Any]) -> nn.Module:
    raise FileNotFoundError("the pretrained weights 'encoder.pt' are missing")


def good(config: dict[str, Any]) -> nn.Module:
    return Program()


def no_x(config: dict[str, Any]) -> nn.Module:
    return Program("no_x")


def nan(config: dict[str, Any]) -> nn.Module:
    return Program("nan")


def shape(config: dict[str, Any]) -> nn.Module:
    return Program("shape")


def extra(config: dict[str, Any]) -> nn.Module:
    return Program("extra")
