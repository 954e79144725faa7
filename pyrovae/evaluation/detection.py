"""How well a score tells two sets of examples apart: AUROC, AUPR and the false-positive rate
at 95% true-positive rate, for out-of-distribution detection.

The *positive* examples are the out-of-distribution ones, and a larger score says "more
out-of-distribution" (so a log-likelihood enters as its negative). Ties between scores are
counted as the papers count them:

* **AUROC** is the probability that a positive's score is above a negative's, a tie counting
  one half (the Mann-Whitney U statistic over ``n_pos * n_neg``, with average ranks);
* **AUPR** is the average precision: the precision at each distinct score, weighted by the
  recall it adds, where every example with a score at or above the threshold is called
  positive (tied examples enter together);
* **FPR@95%TPR** is the false-positive rate at the highest threshold whose true-positive rate
  (examples at or above it) is at least 0.95.

Every function takes the scores of the two sets, ``(N_in,)`` and ``(N_out,)``.
"""

from __future__ import annotations

import torch

from ..errors import DataError

__all__ = ["TPR_LEVEL", "auroc", "aupr", "detection_metrics", "fpr_at_tpr"]

#: the true-positive rate of :func:`fpr_at_tpr`
TPR_LEVEL = 0.95


def _check(scores_in: torch.Tensor, scores_out: torch.Tensor) -> None:
    for name, s in (("in-distribution", scores_in), ("out-of-distribution", scores_out)):
        if s.dim() != 1 or s.shape[0] == 0:
            raise DataError(
                f"the {name} scores must be a non-empty (N,) tensor, got {tuple(s.shape)}"
            )
        if bool(s.isnan().any()):
            raise DataError(f"the {name} scores hold NaN; score every example")


def auroc(scores_in: torch.Tensor, scores_out: torch.Tensor) -> float:
    """P(score_out > score_in) + P(score_out = score_in) / 2, from average ranks."""
    _check(scores_in, scores_out)
    both = torch.cat([scores_in, scores_out]).double()
    _, inverse, counts = torch.unique(both, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    ranks = (ends - (counts - 1) / 2)[inverse]  # 1-based, ties at their average rank
    n_in, n_out = scores_in.shape[0], scores_out.shape[0]
    u = ranks[n_in:].sum() - n_out * (n_out + 1) / 2
    return float(u / (n_in * n_out))


def _counts_above(
    scores_in: torch.Tensor, scores_out: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each distinct score, from the largest down: the positives and the negatives at or
    above it, each ``(U,)``."""
    both = torch.cat([scores_in, scores_out]).double()
    values, inverse = torch.unique(both, return_inverse=True)
    is_out = torch.zeros_like(both)
    is_out[scores_in.shape[0] :] = 1.0
    pos = torch.zeros_like(values).index_add_(0, inverse, is_out)
    neg = torch.zeros_like(values).index_add_(0, inverse, 1.0 - is_out)
    return pos.flip(0).cumsum(0), neg.flip(0).cumsum(0)


def aupr(scores_in: torch.Tensor, scores_out: torch.Tensor) -> float:
    """Average precision with the out-of-distribution examples as positives."""
    _check(scores_in, scores_out)
    tp, fp = _counts_above(scores_in, scores_out)
    recall_added = torch.diff(tp, prepend=tp.new_zeros(1)) / scores_out.shape[0]
    return float((recall_added * tp / (tp + fp)).sum())


def fpr_at_tpr(
    scores_in: torch.Tensor, scores_out: torch.Tensor, level: float = TPR_LEVEL
) -> float:
    """The false-positive rate at the highest threshold whose true-positive rate is at least
    ``level``."""
    _check(scores_in, scores_out)
    tp, fp = _counts_above(scores_in, scores_out)
    reached = tp / scores_out.shape[0] >= level - 1e-12
    first = int(torch.nonzero(reached)[0])
    return float(fp[first] / scores_in.shape[0])


def detection_metrics(scores_in: torch.Tensor, scores_out: torch.Tensor) -> dict[str, float]:
    """``{"auroc", "aupr", "fpr95"}`` of one score."""
    return {
        "auroc": auroc(scores_in, scores_out),
        "aupr": aupr(scores_in, scores_out),
        "fpr95": fpr_at_tpr(scores_in, scores_out),
    }
