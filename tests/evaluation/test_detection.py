"""AUROC, AUPR and FPR at 95% TPR against brute-force computations, ties counted one half."""

from __future__ import annotations

import pytest
import torch

from pyrovae.errors import DataError
from pyrovae.evaluation.detection import aupr, auroc, detection_metrics, fpr_at_tpr


def brute_auroc(s_in, s_out):
    """Every (out, in) pair: 1 when the out score is larger, 1/2 when equal."""
    total = sum(
        1.0 if o > i else 0.5 if o == i else 0.0 for o in s_out.tolist() for i in s_in.tolist()
    )
    return total / (len(s_in) * len(s_out))


def brute_aupr(s_in, s_out):
    """Precision at every distinct threshold, weighted by the recall it adds."""
    ap, last_recall = 0.0, 0.0
    for t in sorted(set(s_in.tolist() + s_out.tolist()), reverse=True):
        tp = sum(o >= t for o in s_out.tolist())
        fp = sum(i >= t for i in s_in.tolist())
        recall = tp / len(s_out)
        ap += (recall - last_recall) * tp / (tp + fp)
        last_recall = recall
    return ap


def brute_fpr(s_in, s_out, level=0.95):
    for t in sorted(set(s_in.tolist() + s_out.tolist()), reverse=True):
        if sum(o >= t for o in s_out.tolist()) / len(s_out) >= level:
            return sum(i >= t for i in s_in.tolist()) / len(s_in)
    raise AssertionError("unreachable: the lowest threshold has TPR 1")


@pytest.mark.parametrize("seed", range(6))
def test_metrics_equal_brute_force_with_many_ties(seed):
    gen = torch.Generator().manual_seed(seed)
    # integer scores from a few levels: most scores are tied with others
    s_in = torch.randint(0, 6, (int(torch.randint(5, 40, (), generator=gen)),), generator=gen)
    s_out = torch.randint(2, 8, (int(torch.randint(5, 40, (), generator=gen)),), generator=gen)
    s_in, s_out = s_in.float(), s_out.float()
    # float64 sums of a few hundred terms against Python's: agreement to rounding
    assert auroc(s_in, s_out) == pytest.approx(brute_auroc(s_in, s_out), abs=1e-12)
    assert aupr(s_in, s_out) == pytest.approx(brute_aupr(s_in, s_out), abs=1e-12)
    assert fpr_at_tpr(s_in, s_out) == pytest.approx(brute_fpr(s_in, s_out), abs=1e-12)


def test_perfect_chance_and_reversed_scores():
    s_in, s_out = torch.arange(10.0), torch.arange(10.0) + 10
    assert detection_metrics(s_in, s_out) == {"auroc": 1.0, "aupr": 1.0, "fpr95": 0.0}
    assert auroc(s_out, s_in) == 0.0
    same = torch.zeros(7)
    assert auroc(same, torch.zeros(3)) == 0.5  # all tied: one half each
    assert fpr_at_tpr(same, torch.zeros(3)) == 1.0
    assert aupr(same, torch.zeros(3)) == pytest.approx(0.3)  # the share of positives


def test_empty_or_nan_scores_are_refused_in_one_line():
    with pytest.raises(DataError, match="out-of-distribution scores must be a non-empty"):
        auroc(torch.zeros(3), torch.zeros(0))
    with pytest.raises(DataError, match="in-distribution scores hold NaN"):
        aupr(torch.tensor([float("nan")]), torch.zeros(2))
