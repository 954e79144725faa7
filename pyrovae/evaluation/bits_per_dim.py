"""Bits per dimension: a log-likelihood in nats per example as bits per data element.

For a probability mass on the discrete values of each of the ``D`` elements of an example
(the 256 levels of 8-bit pixels: ``discretized_logistic``; binary pixels: ``bernoulli``),

    bits/dim = -log p(x) / (D ln 2),

the number the literature reports for 8-bit images (e.g. CIFAR-10). On binary data it is bits
per *binary* pixel: a valid number, but not comparable with bits per dimension of 8-bit data.

A *density* on [0, 1] (``continuous_bernoulli``, ``beta``, ``gaussian``, ``laplace``) has no
bits per dimension: its value at the levels ``k/255`` is not a probability, and can exceed
any bound. It converts only under uniform dequantization (Theis et al., 2016): for data
``(k + u) / 256`` with ``u ~ U[0, 1)^D``, a density ``p`` on [0, 1]^D gives the mass bound
``-log P(k) <= E_u[-log p((k + u) / 256)] + D ln 256`` nats, i.e. ``bits/dim <= -E log p /
(D ln 2) + 8``; pyrovae evaluates densities at the levels themselves, not at dequantized
data, so it reports no bits per dimension for them (``None``, with the reason).
"""

from __future__ import annotations

import math
from typing import overload

import torch
from torch import nn

from ..errors import ConfigError
from ..models.program import Program, as_program

__all__ = ["bits_per_dim", "bits_per_dim_note", "defines_bits_per_dim"]


def _levels(model: Program) -> int | None:
    likelihood = model.likelihood_component()
    return None if likelihood is None else likelihood.levels_per_element


def defines_bits_per_dim(model: nn.Module) -> bool:
    """Whether ``model``'s likelihood is a mass on discrete levels
    (:attr:`~pyrovae.models.likelihoods.Likelihood.levels_per_element`), so that its
    log-likelihoods have bits per dimension."""
    return _levels(as_program(model)) is not None


def bits_per_dim_note(model: nn.Module) -> str:
    """What :func:`bits_per_dim` means for ``model``'s likelihood, or why it is not defined.

    Example::

        bits_per_dim_note(vae)   # 'a mass on the 256 levels of each of the 784 elements ...'
    """
    program = as_program(model)
    likelihood = program.likelihood_component()
    if likelihood is None:
        return "not defined: the model declares no likelihood"
    levels, name = likelihood.levels_per_element, likelihood.type_name
    if levels == 2:
        return (
            f"a mass on binary pixels: bits per binary pixel (-log p(x) / (D ln 2), D = "
            f"{program.data_dim}), not comparable with bits per dimension of 8-bit data"
        )
    if levels is not None:
        return (
            f"a mass on the {levels} levels of each of the D = {program.data_dim} elements: "
            "-log p(x) / (D ln 2)"
        )
    if likelihood.unnormalised:
        return f"not defined: {name!r} with {likelihood.unnormalised}, not a normalised likelihood"
    return (
        f"not defined: {name!r} is a density, not a mass on discrete levels; a density in nats "
        "converts to bits per dimension only on dequantized data (x + uniform noise / 256: "
        "+ D ln 256 nats), which is not what was scored; use 'discretized_logistic' for 8-bit "
        "images"
    )


@overload
def bits_per_dim(vae: nn.Module, log_likelihood: torch.Tensor) -> torch.Tensor: ...
@overload
def bits_per_dim(vae: nn.Module, log_likelihood: float) -> float: ...
def bits_per_dim(vae: nn.Module, log_likelihood: torch.Tensor | float) -> torch.Tensor | float:
    """``-log p(x) / (D ln 2)`` of log-likelihoods in nats per example (a number, or a
    tensor of one per example; ``D = vae.data_dim``), for a VAE whose likelihood is a mass
    on discrete levels; raises :class:`~pyrovae.errors.ConfigError` with the reason
    (:func:`bits_per_dim_note`) for a density.

    Example::

        ll = pyrovae.log_likelihood(vae, x, num_samples=100)
        bpd = bits_per_dim(vae, ll)   # (N,) bits per dimension
    """
    program = as_program(vae)
    if _levels(program) is None or program.data_dim is None:
        raise ConfigError(f"bits per dimension are {bits_per_dim_note(program)}")
    return -log_likelihood / (program.data_dim * math.log(2))
