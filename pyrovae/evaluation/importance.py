"""Importance-sampled marginal likelihood log p(x) of a VAE, in nats per example
(``pyrovae.log_likelihood(..., method="is")``, the default).

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
one-pass result to float rounding. Each block of examples draws from its own seed
(:func:`pyrovae.rng.derived_seed` of ``seed``, the repeat and the index of the block's first
example), so the result does not depend on which other blocks are computed, or where: a run
of several processes (:mod:`pyrovae.distributed`) splits the blocks between them and gets the
numbers of one.

With ``return_diagnostics=True`` each example also gets its effective sample size and the
Pareto shape ``k`` of its largest weights (:mod:`pyrovae.evaluation.psis`; Vehtari et al.,
"Pareto smoothed importance sampling"): ``k > 0.7`` flags an estimate that cannot be trusted.
Only the largest few weights per example are kept for it, never all K.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..infer.log_weights import log_weights
from ..models.program import Program, as_program
from ..registry import PositiveInt, check_value
from .estimator import DEFAULT_MAX_BATCH_ELEMENTS, Block, BlockEstimator, Results
from .psis import RunningTail

__all__ = [
    "DEFAULT_MAX_BATCH_ELEMENTS",
    "DEFAULT_NUM_SAMPLES",
    "ImportanceDiagnostics",
    "ImportanceSampling",
    "RunningLogMeanExp",
    "block_size",
    "importance_log_likelihood",
]

#: default K, draws per example (as in Burda et al., 2016)
DEFAULT_NUM_SAMPLES = 5000


def block_size(num_samples: int, max_batch_elements: int) -> int:
    """The number of examples whose K draws are made together (and seeded together): as many
    as fit ``max_batch_elements`` (sample, example) pairs, at least one."""
    return max(1, max_batch_elements // min(num_samples, max_batch_elements))


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
        pareto_k: ``(N,)`` Pareto shape k of the largest importance weights of each example
            (PSIS; :mod:`pyrovae.evaluation.psis`) for the returned estimate (the first
            repeat), like ``ess`` in the data's dtype and on its device. Below 0.5 the
            weights have finite variance; above 0.7 the estimate is unreliable (typically
            too low). ``nan`` when K < 46 (too few draws for a tail fit), ``inf`` when fewer
            than 10 weights are within 1e-15 of the largest, ``-inf`` when the largest
            weights are equal to float rounding (e.g. an exact guide).
        repeats: ``(R, N)`` R independent K-sample estimates when ``num_repeats = R > 1``
            (row 0 is the returned estimate), else ``None``.
    """

    num_samples: int
    ess: torch.Tensor
    pareto_k: torch.Tensor
    repeats: torch.Tensor | None = None

    @property
    def repeat_std(self) -> torch.Tensor | None:
        """``(N,)`` standard deviation across the repeated estimates (nats), or ``None``."""
        return None if self.repeats is None else self.repeats.std(dim=0)


class ImportanceSampling(BlockEstimator[tuple[torch.Tensor, ImportanceDiagnostics | None]]):
    """Importance sampling from the guide (see the module docstring), as a
    :class:`~pyrovae.evaluation.estimator.BlockEstimator`: the per-block work of
    :func:`importance_log_likelihood`.

    A block of :func:`block_size` examples draws its K samples in chunks of at most
    ``max_batch_elements`` (sample, example) pairs, from the seed
    ``derived_seed(seed, "is", repeat, index of its first example)``; progress counts
    examples. Arguments as in :func:`importance_log_likelihood`.
    """

    seed_name = "is"
    progress_unit = "ex"

    def __init__(
        self,
        program: Program,
        num_samples: int = DEFAULT_NUM_SAMPLES,
        *,
        max_batch_elements: int = DEFAULT_MAX_BATCH_ELEMENTS,
        seed: int = 0,
        num_repeats: int = 1,
        progress: bool = False,
        return_diagnostics: bool = False,
    ) -> None:
        check_value(num_samples, PositiveInt, "num_samples")
        check_value(max_batch_elements, PositiveInt, "max_batch_elements")
        super().__init__(
            program,
            num_samples,
            max_batch_elements,
            seed=seed,
            num_repeats=num_repeats,
            progress=progress,
        )
        self.return_diagnostics = return_diagnostics

    def block_size(self, max_batch_elements: int) -> int:
        return block_size(self.num_samples, max_batch_elements)

    def progress_description(self) -> str:
        return f"log p(x), K={self.num_samples}"

    def result_shapes(self, x: torch.Tensor, repeat: int) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {"log_likelihood": ()}
        if repeat == 0:
            shapes["ess"] = ()
            if self.return_diagnostics:
                shapes["pareto_k"] = ()
        return shapes

    def estimate_block(self, block: Block) -> Results:
        """``log p^(x_i)`` of the block's examples; in the first repeat also their effective
        sample sizes and (with diagnostics) the Pareto k of their largest weights."""
        x, y, num_samples = block.x, block.y, self.num_samples
        sample_chunk = min(num_samples, block.max_batch_elements)
        running = RunningLogMeanExp(x.shape[0], x.dtype, x.device)
        tail = None
        if self.return_diagnostics and block.repeat == 0:
            tail = RunningTail(num_samples, x.shape[0], x.dtype, x.device)
        for k_start in range(0, num_samples, sample_chunk):
            k = min(sample_chunk, num_samples - k_start)
            log_w = log_weights(self.program.model, self.program.guide, x, y, num_particles=k)
            running.update(log_w)
            if tail is not None:
                tail.update(log_w)
        block.advance(x.shape[0])
        results = {"log_likelihood": running.log_mean()}
        if block.repeat == 0:
            results["ess"] = running.ess()
        if tail is not None:
            results["pareto_k"] = tail.pareto_k()
        return results

    def collect(self, results: list[Results]) -> tuple[torch.Tensor, ImportanceDiagnostics | None]:
        estimates = torch.stack([r["log_likelihood"] for r in results])
        if not self.return_diagnostics:
            return estimates[0], None
        diagnostics = ImportanceDiagnostics(
            num_samples=self.num_samples,
            ess=results[0]["ess"],
            pareto_k=results[0]["pareto_k"],
            repeats=estimates if self.num_repeats > 1 else None,
        )
        return estimates[0], diagnostics


def importance_log_likelihood(
    vae: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    *,
    max_batch_elements: int = DEFAULT_MAX_BATCH_ELEMENTS,
    seed: int = 0,
    num_repeats: int = 1,
    progress: bool = False,
    return_diagnostics: bool = False,
    first_index: int = 0,
) -> tuple[torch.Tensor, ImportanceDiagnostics | None]:
    """Importance-sampled estimate of log p(x_i) for each example, in nats.

    :func:`pyrovae.log_likelihood` (``method="is"``) runs the same estimator
    (:class:`ImportanceSampling`), after checking ``x``.

    Args:
        vae: the model; evaluated in eval mode (its mode is restored afterwards).
        x: data ``(N, data_dim)`` on the VAE's device; ``y``: labels ``(N,)`` for
            label-conditional priors, else ``None``.
        num_samples: K, draws z ~ q(z|x) per example.
        max_batch_elements: most (sample, example) pairs evaluated in one vectorized pass;
            bounds peak memory. Results depend on it only through which draws are made.
        seed: seeds the draws, per block of examples (the outer RNG state is left untouched).
        num_repeats: R > 1 also computes R - 1 further independent estimates, reported in
            the diagnostics (their spread shows the estimator's noise); the returned
            estimate is always the first.
        progress: show a progress bar (on stderr).
        return_diagnostics: also return :class:`ImportanceDiagnostics`, with the effective
            sample size and the PSIS Pareto k of each example (the draws and estimates are
            the same as without it).
        first_index: the index of ``x[0]`` in the whole data set, when ``x`` is a part of it
            that starts at a block boundary (a multiple of :func:`block_size`): its blocks are
            then seeded, and draw, as they do in the whole.

    Returns:
        ``(N,)`` estimates log p^(x_i) and the diagnostics (``None`` unless asked for).
    """
    estimator = ImportanceSampling(
        as_program(vae),
        num_samples,
        max_batch_elements=max_batch_elements,
        seed=seed,
        num_repeats=num_repeats,
        progress=progress,
        return_diagnostics=return_diagnostics,
    )
    return estimator(x, y, first_index=first_index)
