"""Out-of-distribution scores built on log p(x), per example.

Raw log p(x) is known to fail as a detector: a generative model gives higher likelihood to
simpler inputs than its own data (Nalisnick et al. 2019, "Do Deep Generative Models Know What
They Don't Know?"). The published repairs are scores built on it; :func:`ood_scores` computes
each (every score: larger means *more* out-of-distribution, the orientation of
:mod:`~pyrovae.evaluation.detection`):

* ``log_likelihood``: ``-log p(x)`` (nats), the raw score;
* ``llr``: ``-(log p(x) - log p_B(x))`` (nats), against a *background* model trained on
  perturbed data (``data.mutation_rate``), which learns the population-level statistics
  that dominate log p(x) (Ren et al. 2019, "Likelihood Ratios for Out-of-Distribution
  Detection");
* ``complexity``: ``-log2 p(x) - L(x)`` (bits), ``L(x)`` a lossless compressor's code length
  (Serrà et al. 2020; :mod:`~pyrovae.evaluation.complexity`);
* ``typicality``: ``|-log p(x) - H|`` (nats), the distance of the example's negative
  log-likelihood from ``H``, its mean over training examples (Nalisnick et al. 2019b, "Detecting
  Out-of-Distribution Inputs to Deep Generative Models Using Typicality", with one example
  per test).

The log-likelihoods are :func:`pyrovae.log_likelihood`'s (importance sampling by default, with
the PSIS ``k`` of each example; or AIS), sharded under ``torchrun`` with progress bars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..models.program import as_program
from .complexity import code_length_bits, complexity_score
from .detection import detection_metrics
from .log_likelihood import Method
from .log_likelihood import log_likelihood as estimate_log_likelihood

__all__ = ["SCORES", "OODScores", "ood_scores", "score_log_likelihood"]

#: the scores, in the order they are reported
SCORES = ("log_likelihood", "llr", "complexity", "typicality")


@dataclass(frozen=True)
class OODScores:
    """The scores of one set of examples.

    Attributes:
        scores: ``{name: (N,)}`` each score of :data:`SCORES` that was computed (``llr`` only
            with a background model), larger for more out-of-distribution.
        columns: ``{name: (N,)}`` what the scores are made of: ``log_likelihood`` (nats),
            ``pareto_k`` (PSIS k of its importance weights; NaN for AIS),
            ``background_log_likelihood`` and ``background_pareto_k``, ``code_length_bits``.
    """

    scores: dict[str, torch.Tensor]
    columns: dict[str, torch.Tensor] = field(default_factory=dict)


def score_log_likelihood(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, **estimator: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(x) ``(N,)`` in nats and the PSIS k of each estimate ``(N,)`` (NaN for AIS, which
    has none), by :func:`pyrovae.log_likelihood` with the ``estimator`` settings."""
    ll, diagnostics = estimate_log_likelihood(model, x, y, return_diagnostics=True, **estimator)
    k = getattr(diagnostics, "pareto_k", None)
    return ll, torch.full_like(ll, math.nan) if k is None else k


def ood_scores(
    model: nn.Module,
    x: torch.Tensor,
    *,
    train_nll: float,
    image_shape: tuple[int, ...],
    background: nn.Module | None = None,
    compressor: str = "png",
    method: Method = "is",
    num_samples: int | None = None,
    num_steps: int | None = None,
    max_batch_elements: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> OODScores:
    """The scores (module docstring) of the examples ``x`` ``(N, data_dim)``.

    Args:
        model: the model trained on the in-distribution data.
        train_nll: ``H``, the mean of ``-log p(x)`` over training examples (nats).
        image_shape: the shape of one example, for the compressor.
        background: the background model of the likelihood ratio (``None``: no ``llr``).
        compressor: ``"png"`` or ``"zlib"``.
        method, num_samples, num_steps, max_batch_elements, seed, progress: the
            log-likelihood estimator's, as for :func:`pyrovae.log_likelihood`.
    """
    estimator: dict[str, Any] = {"method": method, "num_samples": num_samples, "seed": seed}
    estimator |= {"num_steps": num_steps, "progress": progress}
    if max_batch_elements is not None:
        estimator["max_batch_elements"] = max_batch_elements
    ll, k = score_log_likelihood(model, x, None, **estimator)
    bits = code_length_bits(x, image_shape, compressor)
    columns = {"log_likelihood": ll, "pareto_k": k, "code_length_bits": bits}
    scores = {"log_likelihood": -ll.double()}
    if background is not None:
        as_program(background, what="the background model").check_data(x, name="x")
        ll_b, k_b = score_log_likelihood(background, x, None, **estimator)
        columns |= {"background_log_likelihood": ll_b, "background_pareto_k": k_b}
        scores["llr"] = -(ll.double() - ll_b.double())
    scores["complexity"] = complexity_score(ll, bits.to(ll.device))
    scores["typicality"] = (-ll.double() - train_nll).abs()
    return OODScores(scores=scores, columns=columns)


def detection_table(scores_in: OODScores, scores_out: OODScores) -> dict[str, dict[str, float]]:
    """``{score: {"auroc", "aupr", "fpr95"}}`` of each score both sets have."""
    return {
        name: detection_metrics(scores_in.scores[name].cpu(), scores_out.scores[name].cpu())
        for name in SCORES
        if name in scores_in.scores and name in scores_out.scores
    }
