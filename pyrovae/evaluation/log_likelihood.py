"""Importance-sampled marginal likelihood log p(x) of a VAE, in nats per example.

For each example ``x_i`` and ``K`` draws ``z_k ~ q(z|x_i)`` from the guide::

    log p^(x_i) = log (1/K) sum_k exp(log p(x_i, z_k) - log q(z_k|x_i))

This is the K-sample importance-weighted bound: a lower bound on log p(x_i) in expectation,
equal to the ELBO in expectation at ``K = 1``, non-decreasing in ``K`` and consistent as
``K -> inf`` (Burda et al., 2016). The log-weights are read from Pyro traces of the VAE's own
model and guide (:func:`pyrovae.infer.log_weights`), vectorized over the K draws with a
particle plate, so any model/guide pair built by the library is handled.

Work is split into chunks of at most ``max_batch_elements`` (sample, example) pairs, over
samples and over examples, so peak memory does not grow with ``K`` or ``N``; the sums over
sample chunks are combined with a running log-sum-exp, which never overflows. The draws
depend on ``seed`` and on the chunk layout; for fixed draws the chunked result equals the
one-pass result to float rounding.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Literal, overload

import pyro
import torch
from tqdm.auto import tqdm

from ..infer.log_weights import log_weights
from ..models.vae import VAE
from ..registry import PositiveInt, Seed, check_value
from ..resources import check_batch_fits, example_bytes
from ..rng import fixed_rng

__all__ = [
    "DEFAULT_MAX_BATCH_ELEMENTS",
    "ImportanceDiagnostics",
    "RunningLogMeanExp",
    "log_likelihood",
]

#: default bound on (sample, example) pairs per vectorized pass: peak memory is that many
#: pairs' activations of the encoder, decoder and likelihood
DEFAULT_MAX_BATCH_ELEMENTS = 2**14


class RunningLogMeanExp:
    """Streaming ``log mean_k exp(a_k)`` and effective sample size over chunks of log-weights.

    Feed ``(k, N)`` chunks of log-weights ``a`` with :meth:`update`; the result is the same
    (to float rounding) however the K draws are split into chunks. Tracks
    ``log sum_k exp(a_k)`` and ``log sum_k exp(2 a_k)`` with :func:`torch.logaddexp`.
    """

    def __init__(self, num_examples: int, dtype: torch.dtype, device: torch.device) -> None:
        self.log_sum = torch.full((num_examples,), -math.inf, dtype=dtype, device=device)
        self.log_sum_sq = self.log_sum.clone()
        self.count = 0

    def update(self, log_w: torch.Tensor) -> None:
        """Add a chunk of log-weights of shape ``(k, N)``."""
        self.log_sum = torch.logaddexp(self.log_sum, log_w.logsumexp(dim=0))
        self.log_sum_sq = torch.logaddexp(self.log_sum_sq, (2 * log_w).logsumexp(dim=0))
        self.count += log_w.shape[0]

    def log_mean(self) -> torch.Tensor:
        """``log (1/K) sum_k exp(a_k)`` per example, ``(N,)``."""
        return self.log_sum - math.log(self.count)

    def ess(self) -> torch.Tensor:
        """Effective sample size ``(sum_k w_k)^2 / sum_k w_k^2`` per example, in ``[1, K]``."""
        return torch.exp(2 * self.log_sum - self.log_sum_sq)


@dataclass(frozen=True)
class ImportanceDiagnostics:
    """How much an importance-sampled log p(x) can be trusted, per example.

    Attributes:
        num_samples: K, the draws per example.
        ess: ``(N,)`` effective sample size of the normalized importance weights, between 1
            (one draw dominates: the estimate is unreliable) and K (all weights equal).
        repeats: ``(R, N)`` R independent K-sample estimates when ``num_repeats = R > 1``
            (row 0 is the returned estimate), else ``None``.
    """

    num_samples: int
    ess: torch.Tensor
    repeats: torch.Tensor | None = None

    @property
    def repeat_std(self) -> torch.Tensor | None:
        """``(N,)`` standard deviation across the repeated estimates (nats), or ``None``."""
        return None if self.repeats is None else self.repeats.std(dim=0)


@overload
def log_likelihood(
    vae: VAE,
    x: torch.Tensor,
    y: torch.Tensor | None = ...,
    num_samples: int = ...,
    *,
    max_batch_elements: int = ...,
    seed: int = ...,
    num_repeats: int = ...,
    progress: bool = ...,
    return_diagnostics: Literal[False] = ...,
) -> torch.Tensor: ...


@overload
def log_likelihood(
    vae: VAE,
    x: torch.Tensor,
    y: torch.Tensor | None = ...,
    num_samples: int = ...,
    *,
    max_batch_elements: int = ...,
    seed: int = ...,
    num_repeats: int = ...,
    progress: bool = ...,
    return_diagnostics: Literal[True],
) -> tuple[torch.Tensor, ImportanceDiagnostics]: ...


@torch.no_grad()
def log_likelihood(
    vae: VAE,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    num_samples: int = 5000,
    *,
    max_batch_elements: int = DEFAULT_MAX_BATCH_ELEMENTS,
    seed: int = 0,
    num_repeats: int = 1,
    progress: bool = False,
    return_diagnostics: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, ImportanceDiagnostics]:
    """Importance-sampled estimate of log p(x_i) for each example, in nats.

    Args:
        vae: the model; evaluated in eval mode (its mode is restored afterwards).
        x: data ``(N, data_dim)`` on the VAE's device; ``y``: labels ``(N,)`` for
            label-conditional priors, else ``None``.
        num_samples: K, draws z ~ q(z|x) per example.
        max_batch_elements: most (sample, example) pairs evaluated in one vectorized pass;
            bounds peak memory. Results depend on it only through which draws are made.
        seed: seeds the draws (the outer RNG state is left untouched).
        num_repeats: R > 1 also computes R - 1 further independent estimates, reported in
            the diagnostics (their spread shows the estimator's noise); the returned
            estimate is always the first.
        progress: show a progress bar (on stderr).
        return_diagnostics: also return :class:`ImportanceDiagnostics`.

    Returns:
        ``(N,)`` estimates log p^(x_i), or ``(estimates, diagnostics)``.
    """
    for name, value in (
        ("num_samples", num_samples),
        ("max_batch_elements", max_batch_elements),
        ("num_repeats", num_repeats),
    ):
        check_value(value, PositiveInt, name)
    check_value(seed, Seed, "seed")
    vae.check_data(x, y)
    num_examples = x.shape[0]
    pairs = min(max_batch_elements, num_samples * num_examples)
    check_batch_fits(pairs, example_bytes(vae), "max_batch_elements")
    sample_chunk = min(num_samples, max_batch_elements)
    example_chunk = max(1, max_batch_elements // sample_chunk)

    estimates = torch.empty(num_repeats, num_examples, dtype=x.dtype, device=x.device)
    ess = torch.empty(num_examples, dtype=x.dtype, device=x.device)
    was_training = vae.training
    vae.eval()
    bar = tqdm(
        total=num_repeats * num_examples,
        desc=f"log p(x), K={num_samples}",
        unit="ex",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    try:
        with fixed_rng(seed, x.device), pyro.validation_enabled(False):
            for repeat in range(num_repeats):
                for start in range(0, num_examples, example_chunk):
                    stop = min(start + example_chunk, num_examples)
                    xb = x[start:stop]
                    yb = None if y is None else y[start:stop]
                    running = RunningLogMeanExp(stop - start, x.dtype, x.device)
                    for k_start in range(0, num_samples, sample_chunk):
                        k = min(sample_chunk, num_samples - k_start)
                        running.update(log_weights(vae.model, vae.guide, xb, yb, num_particles=k))
                    estimates[repeat, start:stop] = running.log_mean()
                    if repeat == 0:
                        ess[start:stop] = running.ess()
                    bar.update(stop - start)
    finally:
        bar.close()
        vae.train(was_training)
    if not return_diagnostics:
        return estimates[0]
    diagnostics = ImportanceDiagnostics(
        num_samples=num_samples, ess=ess, repeats=estimates if num_repeats > 1 else None
    )
    return estimates[0], diagnostics
