"""Pareto-smoothed importance sampling (PSIS) diagnostic of importance-sampled estimates.

For the importance weights ``w_k = p(x, z_k) / q(z_k|x)``, ``z_k ~ q(z|x)``, of one example,
the Pareto shape ``k`` of the distribution of the largest weights says how heavy their tail
is, and so whether the K-sample estimate of ``log p(x)`` can be trusted (Vehtari, Simpson,
Gelman, Yao, Gabry, "Pareto smoothed importance sampling", 2015/2024; Yao et al., "Yes, but
did it work?", 2018):

* ``k < 0.5``: the weights have finite variance; the estimate converges at the usual rate;
* ``0.5 <= k <= 0.7``: finite mean but infinite variance; still usable, slowly converging;
* ``k > 0.7``: the estimate is unreliable: it is typically far below log p(x) (it is
  dominated by the few largest weights drawn, and the ones not yet drawn matter), and the
  number of draws it would need grows quickly with k. Use more draws, a better guide, or
  annealed importance sampling.

The estimate of ``k`` follows :func:`pyro.infer.importance.psis_diagnostic`, per example
instead of one number per model: with ``M = ceil(min(0.2 K, 3 sqrt(K)))``, the weights are
taken relative to the largest one, the cutoff is the ``(M + 1)``-th largest of them (but at
least 1e-15), and a generalized Pareto distribution is fitted, with Pyro's
:func:`pyro.ops.stats.fit_generalized_pareto` (Zhang and Stephens, 2009, with the weakly
informative prior of Vehtari et al.), to the excesses over the cutoff of the (at most ``M``)
weights above it. Only the ``M + 1`` largest log-weights of each example matter, so
:class:`RunningTail` keeps just those while the K draws stream past in chunks.

Where Pyro's function returns ``inf`` whenever fewer than 10 weights lie above the cutoff,
this module tells the three reasons apart (see :meth:`RunningTail.pareto_k`).
"""

from __future__ import annotations

import contextlib
import math

import torch
from pyro.ops.stats import fit_generalized_pareto

__all__ = [
    "MIN_TAIL_SAMPLES",
    "PARETO_K_THRESHOLD",
    "RunningTail",
    "pareto_k",
    "pareto_tail_size",
]

#: ``k`` above this marks an unreliable importance-sampled estimate (Vehtari et al.)
PARETO_K_THRESHOLD = 0.7
#: fewest weights above the cutoff that a generalized Pareto fit is made to (as in Pyro)
MIN_TAIL_SAMPLES = 10
#: smallest cutoff relative to the largest weight (as in Pyro): weights below it add less
#: than float64 rounding to a sum that holds the largest weight
_LOG_CUTOFF_FLOOR = math.log(1.0e-15)


def pareto_tail_size(num_samples: int) -> int:
    """Number ``M = ceil(min(0.2 K, 3 sqrt(K)))`` of largest weights of ``K = num_samples``
    draws that the Pareto shape is fitted to (Vehtari et al.; as in Pyro)."""
    return math.ceil(min(0.2 * num_samples, 3.0 * math.sqrt(num_samples)))


class RunningTail:
    """The ``M + 1`` largest of ``K`` log importance weights per example, over chunks of draws.

    Feed ``(k, N)`` chunks of log-weights (draws along dim 0, examples along dim 1) with
    :meth:`update`, ``K = num_samples`` draws in all; memory is ``(M + 1, N)`` whatever K is
    (``M`` as in :func:`pareto_tail_size`). The kept values are exactly the largest ones of
    all draws fed so far, sorted in descending order, bitwise the same however the draws are
    split into chunks. :meth:`pareto_k` then gives the Pareto shape of each example.

    Args:
        num_samples: K, the draws per example that will be fed.
        num_examples: N.
        dtype, device: of the log-weights.
    """

    def __init__(
        self, num_samples: int, num_examples: int, dtype: torch.dtype, device: torch.device
    ) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples = {num_samples} must be at least 1 (the draws K)")
        self.num_samples = num_samples
        self.tail_size = pareto_tail_size(num_samples)
        self.size = min(num_samples, self.tail_size + 1)
        self.values = torch.empty(0, num_examples, dtype=dtype, device=device)
        self.count = 0

    def update(self, log_w: torch.Tensor) -> None:
        """Add a chunk of log-weights of shape ``(k, N)``."""
        if log_w.dim() != 2 or log_w.shape[1] != self.values.shape[1]:
            raise ValueError(
                f"log-weights must have shape (k, {self.values.shape[1]}); got shape "
                f"{tuple(log_w.shape)}"
            )
        if self.count + log_w.shape[0] > self.num_samples:
            raise ValueError(
                f"{self.count + log_w.shape[0]} draws fed to a RunningTail of num_samples = "
                f"{self.num_samples}; make one per K draws"
            )
        both = torch.cat([self.values, log_w])
        self.values = both.topk(min(self.size, both.shape[0]), dim=0).values
        self.count += log_w.shape[0]

    def pareto_k(self) -> torch.Tensor:
        """Pareto shape ``k`` of the largest importance weights of each example, ``(N,)``
        float64 on the CPU.

        ``k`` is a float where a generalized Pareto fit is made (at least 10 weights above
        the cutoff), and otherwise:

        * ``nan`` when ``K < 46``, where even distinct weights give fewer than 10 tail
          weights (``M < 10``): there is too little tail to estimate a shape from, so k says
          nothing (Pyro returns ``inf`` with a warning). Also where the largest log-weight
          is not finite (every weight is 0, or a weight is infinite or NaN).
        * ``inf`` when fewer than 10 weights lie within a factor 1e-15 of the largest one
          (the cutoff is the floor): a handful of draws carries all the weight, the
          heaviest tail there is: the estimate is unreliable (Pyro's answer too).
        * ``-inf`` when the weights are flat at the top: the ``M + 1`` largest log-weights
          differ by no more than float rounding (``sqrt(eps) * max(1, |log w|)`` nats, eps
          of their dtype), as when the guide is the exact posterior and every weight is
          p(x); or fewer than 10 of them exceed the cutoff, which lies within 1e-15 of the
          largest (they tie). Bounded weights: the most reliable case. (Pyro fits the
          rounding noise, or returns ``inf`` for the ties.)
        * ``nan`` also where the fit itself degenerates (Pyro's divides by zero).

        The fits run one example at a time (:func:`pyro.ops.stats.fit_generalized_pareto` is
        1-D, with data-dependent shapes and ``.item()`` calls, so ``torch.vmap`` cannot
        batch it): about 0.15 ms per example with K = 5000 (M = 213), 1.5 s for 10,000
        examples, a fraction of a percent of the importance sampling itself.
        """
        if self.count != self.num_samples:
            raise ValueError(
                f"{self.count} draws were fed to a RunningTail of num_samples = "
                f"{self.num_samples}; feed all K draws before asking for k"
            )
        return _pareto_k_of_largest(self.values, self.tail_size)


def pareto_k(log_weights: torch.Tensor) -> torch.Tensor:
    """Pareto shape ``k`` of the largest importance weights of each example, ``(N,)`` float64
    on the CPU, from all ``K`` log-weights ``(K, N)`` (draws along dim 0, in nats) at once;
    :class:`RunningTail` gives the same from chunks of draws, and documents the values of k
    where no fit is made (``nan``, ``inf``, ``-inf``)."""
    if log_weights.dim() != 2:
        raise ValueError(
            f"log-weights must have shape (K, N); got shape {tuple(log_weights.shape)}"
        )
    tail = RunningTail(
        log_weights.shape[0], log_weights.shape[1], log_weights.dtype, log_weights.device
    )
    tail.update(log_weights)
    return tail.pareto_k()


def _pareto_k_of_largest(largest: torch.Tensor, tail_size: int) -> torch.Tensor:
    """k per example from the ``(M + 1, N)`` largest log-weights in descending order."""
    num_examples = largest.shape[1]
    k = torch.full((num_examples,), math.nan, dtype=torch.float64)
    if tail_size < MIN_TAIL_SAMPLES:
        return k
    # log-weights are rounded to about eps * |log w| (times the number of terms summed);
    # a spread below sqrt(eps) * |log w| of the M + 1 largest ones is rounding, not a tail
    flat_tol = math.sqrt(torch.finfo(largest.dtype).eps)
    largest = largest.detach().to(device="cpu", dtype=torch.float64)
    top = largest[0]
    relative = largest - top  # log(w / max w), <= 0
    flat = -relative[tail_size] <= flat_tol * top.abs().clamp(min=1.0)
    floored = relative[tail_size] <= _LOG_CUTOFF_FLOOR
    log_cutoff = relative[tail_size].clamp(min=_LOG_CUTOFF_FLOOR)
    # excesses over the cutoff of the M largest weights; a tie with the cutoff is no excess
    excess = relative[:tail_size].exp() - log_cutoff.exp()
    num_tail = (excess > 0).sum(dim=0)
    for i in range(num_examples):
        if not math.isfinite(top[i].item()):
            continue
        if flat[i]:
            k[i] = -math.inf
        elif num_tail[i] >= MIN_TAIL_SAMPLES:
            # a degenerate fit (Pyro divides k = 0 by b = 0) leaves no estimate: nan
            with contextlib.suppress(ZeroDivisionError):
                k[i] = fit_generalized_pareto(excess[:, i][excess[:, i] > 0])[0]
        else:
            k[i] = math.inf if floored[i] else -math.inf
    return k
