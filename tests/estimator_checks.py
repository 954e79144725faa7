"""Helpers of the estimator tests: seeded calls, gradients, Monte Carlo means with standard
errors, and replicated loss estimates."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pyro
import torch
from torch import nn


def seeded(fn: Callable[..., Any], *args: Any, seed: int = 0) -> Any:
    """``fn(*args)`` after seeding Pyro's (and torch's) RNG with ``seed``."""
    pyro.set_rng_seed(seed)
    return fn(*args)


def grads(module: nn.Module, loss: torch.Tensor) -> list[torch.Tensor]:
    """The gradient of ``loss`` with respect to each parameter of ``module`` (None if unused)."""
    return list(torch.autograd.grad(loss, list(module.parameters()), allow_unused=True))


def mean_and_se(values: torch.Tensor) -> tuple[float, float]:
    """The mean of ``values`` and its standard error ``std / sqrt(n)``."""
    return values.mean().item(), (values.std() / math.sqrt(values.numel())).item()


def replicated_losses(elbo, model, guide, x, copies: int, calls: int) -> torch.Tensor:
    """``calls`` independent estimates of the mean per-example loss of ``x``, each averaging
    ``copies`` independent draws per example (``x`` repeated ``copies`` times)."""
    xs = x.repeat(copies, 1)
    return torch.tensor([elbo.loss(model, guide, xs) / xs.shape[0] for _ in range(calls)],
                        dtype=torch.float64)
