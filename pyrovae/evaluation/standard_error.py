"""The mean of per-example values and its standard error across the examples: the one
definition :func:`~pyrovae.evaluation.evaluate.evaluate`, :func:`~pyrovae.evaluation.compare`
and :meth:`~pyrovae.evaluation.bdmc.BDMCResult.summary` report."""

from __future__ import annotations

import math

import torch

__all__ = ["mean_and_se"]


def mean_and_se(values: torch.Tensor, *, float64: bool = False) -> tuple[float, float | None]:
    """Mean of per-example values ``(N,)`` and its standard error across examples,
    ``std / sqrt(N)`` (``std`` with Bessel's correction; ``None`` for a single example).

    Args:
        values: ``(N,)`` one value per example (e.g. nats per example).
        float64: divide the standard deviation by ``sqrt(N)`` as a Python float (double
            precision), as :func:`~pyrovae.evaluation.compare` and BDMC's summary report it;
            by default in the values' own dtype, as :func:`~pyrovae.evaluate` reports it. The
            two differ by the rounding of a float32 division (about 1e-7 relative).

    Example::

        mean, se = mean_and_se(pyrovae.log_likelihood(vae, x, num_samples=100))
    """
    n = values.shape[0]
    se: float | None = None
    if n > 1:
        std = values.std()
        se = std.item() / math.sqrt(n) if float64 else (std / math.sqrt(n)).item()
    return values.mean().item(), se
