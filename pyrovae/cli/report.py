"""What the commands print: every result as text, or as one strict JSON object (``--json``).

Log-likelihoods and ELBOs are in nats per example, as means over the examples with their
standard errors across examples (``± SE``); bits per dimension are
:mod:`pyrovae.evaluation.bits_per_dim`'s. Each text report is returned as one string, its
lines joined by newlines, for the command to print.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..evaluation.compare import Comparison
    from ..training.selection import Selection
    from .options import Estimator


def to_json(value: Any) -> str:
    """``value`` as strict JSON (RFC 8259, which has no infinities or NaN): non-finite numbers,
    such as a Pareto k of ``inf`` where a few draws carry all the weight, become the strings
    ``"inf"``, ``"-inf"`` and ``"nan"``."""

    def strict(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        if isinstance(v, dict):
            return {k: strict(item) for k, item in v.items()}
        if isinstance(v, list | tuple):
            return [strict(item) for item in v]
        return v

    return json.dumps(strict(value), allow_nan=False)


def how_estimated(estimator: Estimator) -> str:
    """How log p(x) was estimated, in words: ``importance sampling, K=100`` or ``AIS, S=16
    chains of T=500 steps``."""
    if estimator.method == "is":
        return f"importance sampling, K={estimator.num_samples}"
    return f"AIS, S={estimator.num_samples} chains of T={estimator.num_steps} steps"


def _se(se: float | None) -> str:
    """`` ± SE`` (nats, two decimals), or nothing where there is no standard error."""
    return f" ± {se:.2f}" if se is not None else ""


def _bits_per_dim(result: Mapping[str, Any]) -> str:
    """The bits per dimension of an evaluation's mapping and what they are, or why there are
    none (:mod:`pyrovae.evaluation.bits_per_dim`)."""
    bpd, note = result["bits_per_dim"], result["bits_per_dim_note"]
    if bpd is None:
        return note
    se = result["bits_per_dim_se"]
    return f"{bpd:.4f}{f' ± {se:.4f}' if se is not None else ''} ({note})"


def _pareto_k(pareto_k_max: float | None, num_above: int, num_examples: int) -> str:
    """The PSIS Pareto k diagnostic of importance sampling's weights, one line."""
    if pareto_k_max is None:
        return "PSIS Pareto k: not estimated (K < 46 leaves too few tail samples to fit)"
    return (
        f"PSIS Pareto k per example: max {pareto_k_max:.2f}, above 0.7 (unreliable) for "
        f"{num_above} of {num_examples}"
    )


def _test_binarization(binarize: str) -> str:
    """How the test set was binarized, in words: once, with a fixed seed, for every run
    trained on binary data (``"dynamic"`` or ``"static"``), so that runs compare."""
    if binarize == "none":
        return " (not binarized)"
    return " (binarized once with a fixed seed, as for every run on binary data)"


def training_elbo(last_epoch: Mapping[str, Any]) -> str:
    """The test ELBO of a run's last epoch (a line of its ``metrics.jsonl``)."""
    return (
        f"test ELBO after {last_epoch['epoch']} epochs: {last_epoch['test_elbo']:.2f} nats/example"
    )


def best_epoch(selection: Selection, run_dir: Path) -> str:
    """The epoch of a run with a validation split whose state ``best.pt`` keeps, and whether
    training stopped early."""
    stopped = " (stopped early)" if selection.stopped else ""
    return (
        f"best validation ELBO: {selection.best:.2f} nats/example at epoch "
        f"{selection.best_epoch}{stopped}, kept as best.pt (`pyrovae evaluate "
        f"{shlex.quote(str(run_dir))}` scores it; train's own estimate is the last epoch's)"
    )


def training_end(
    run_dir: Path, result: Mapping[str, Any] | None = None, estimator: Estimator | None = None
) -> str:
    """The end of ``train``: the test log-likelihood ``result`` of
    :func:`~pyrovae.evaluation.evaluate.evaluate_test_set` estimated by importance sampling
    (where ``eval.num_samples`` > 0) with its bits per dimension, then the run directory.

    The estimate's line says, once, for how many examples the PSIS diagnostic finds it
    unreliable (Pareto k > 0.7) and the command that gives a number to trust, in place of a
    warning."""
    lines = []
    if result is not None and estimator is not None:
        run = shlex.quote(str(run_dir))
        unreliable = result["num_pareto_k_above_0_7"]
        if unreliable:
            note = (
                f"unreliable for {unreliable} of {result['num_examples']} examples by PSIS "
                f"(Pareto k > 0.7; likely too low): `pyrovae evaluate {run} --num-samples "
                "5000` or `--method ais` gives a number to trust"
            )
        else:
            note = f"`pyrovae evaluate {run} --num-samples 5000` for K=5000"
        lines += [
            f"test log-likelihood: {result['log_likelihood']:.2f}"
            f"{_se(result['log_likelihood_se'])} nats/example ({how_estimated(estimator)}; "
            f"{note})",
            f"test bits/dim: {_bits_per_dim(result)}",
        ]
    return "\n".join([*lines, f"run directory: {run_dir}"])


def evaluation(
    result: Mapping[str, Any], *, run_dir: str, seed: int, estimator: Estimator, as_json: bool
) -> str:
    """``evaluate``'s report of an IS or AIS ``result`` (the mapping of
    :func:`~pyrovae.evaluation.evaluate.evaluate_test_set` with the run's ``epoch``)."""
    if as_json:
        return to_json(result)
    lines = [
        f"run {run_dir} (epoch {result['epoch']}, {_state(result['checkpoint'])}), "
        f"{result['num_examples']} test examples of "
        f"{result['dataset']}{_test_binarization(result['binarize'])}, seed {seed}:",
        f"  test ELBO:           {result['elbo']:.2f}{_se(result['elbo_se'])} nats/example",
        f"  test log-likelihood: {result['log_likelihood']:.2f}"
        f"{_se(result['log_likelihood_se'])} nats/example ({how_estimated(estimator)})",
        f"  test bits/dim:       {_bits_per_dim(result)}",
    ]
    if estimator.method == "ais":
        lines.append(
            f"  HMC acceptance rate {result['acceptance_rate']:.2f}; spread of the chains' "
            f"log-weights {result['chain_log_weight_std']:.2f} nats per example "
            f"(`--method bdmc --num-steps {estimator.num_steps}` bounds AIS's error)"
        )
        return "\n".join(lines)
    k = _pareto_k(result["pareto_k_max"], result["num_pareto_k_above_0_7"], result["num_examples"])
    lines += [
        f"  effective sample size per example: mean {result['ess_mean']:.1f}, median "
        f"{result['ess_median']:.1f}, min {result['ess_min']:.1f} (of K={estimator.num_samples})",
        f"  {k}",
    ]
    return "\n".join(lines)


def _state(checkpoint: str) -> str:
    """Which state of a run was scored, in words."""
    if checkpoint == "best":
        return "best.pt: the best validation ELBO"
    return "checkpoint.pt: the last epoch"


def bdmc(summary: Mapping[str, Any], *, run_dir: str, num_chains: int, as_json: bool) -> str:
    """``evaluate --method bdmc``'s report: the bounds of a
    :class:`~pyrovae.evaluation.bdmc.BDMCResult`'s summary (with its ``seed``, ``dataset``,
    the run's ``epoch`` and which ``checkpoint`` was scored) and their gap."""
    if as_json:
        return to_json(summary)
    steps = summary["num_steps"]
    return "\n".join(
        [
            f"run {run_dir} (epoch {summary['epoch']}, {_state(summary['checkpoint'])}), BDMC "
            f"on {summary['num_examples']} "
            f"examples simulated from the model, S={num_chains} chains of T={steps} steps, "
            f"seed {summary['seed']}:",
            f"  forward AIS (stochastic lower bound): {summary['bdmc_lower']:.2f}"
            f"{_se(summary['bdmc_lower_se'])} nats/example",
            f"  reverse AIS (stochastic upper bound): {summary['bdmc_upper']:.2f}"
            f"{_se(summary['bdmc_upper_se'])} nats/example",
            f"  gap: {summary['bdmc_gap']:.3f}{_se(summary['bdmc_gap_se'])} nats/example "
            f"(max {summary['bdmc_gap_max']:.3f}): on data like the model's own, AIS with "
            f"T={steps} is within about this much of log p(x); raise --num-steps until it is "
            "below the differences you measure",
        ]
    )


def gaps(summary: Mapping[str, Any], *, run_dir: str, estimator: Estimator, as_json: bool) -> str:
    """``evaluate --gaps``' report: the summary of
    :class:`~pyrovae.evaluation.inference_gaps.InferenceGaps` (with ``seed``, ``dataset``,
    ``epoch``), one quantity a line, mean ± standard error over the examples."""
    if as_json:
        return to_json(summary)
    rows = [
        ("log-likelihood", "log_likelihood", f"({how_estimated(estimator)})"),
        ("local ELBO", "local_elbo", f"(MC error {summary['local_elbo_mc_se']:.3f})"),
        ("ELBO", "elbo", f"(MC error {summary['elbo_mc_se']:.3f})"),
        ("approximation gap", "approximation_gap", "log p(x) - local ELBO: the guide family"),
        ("amortization gap", "amortization_gap", "local ELBO - ELBO: the encoder"),
    ]
    lines = [
        f"run {run_dir} (epoch {summary['epoch']}), inference gaps of "
        f"{summary['num_examples']} test examples of {summary['dataset']}, seed "
        f"{summary['seed']}, nats/example:"
    ]
    lines += [
        f"  {label + ':':<19} {summary[key]:8.2f}{_se(summary[f'{key}_se'])}  {note}"
        for label, key, note in rows
    ]
    lines.append(
        f"  local ELBO: SVI per example until its ELBO moves < tolerance per window "
        f"({summary['local_optimization']}); converged for {summary['converged']:.0%} of the "
        f"examples, at most {summary['max_steps_taken']} steps; ELBOs from "
        f"{summary['num_elbo_samples']} draws per example"
    )
    return "\n".join(lines)


def ood(summary: Mapping[str, Any], *, estimator: Estimator, as_json: bool) -> str:
    """``ood``'s report: each score's AUROC, AUPR and FPR at 95% TPR (out-of-distribution
    examples as positives), how log p(x) was estimated and where the scores are."""
    if as_json:
        return to_json(summary)
    background = f", background run {summary['background']}" if summary["background"] else ""
    lines = [
        f"run {summary['run']} (epoch {summary['epoch']}, {_state(summary['checkpoint'])})"
        f"{background}: "
        f"{summary['num_in']} in-distribution examples ({summary['in']}) against "
        f"{summary['num_out']} out-of-distribution ({summary['out']}); log p(x) by "
        f"{how_estimated(estimator)}, seed {summary['seed']}",
        f"  {'score':<16}{'AUROC':>8}{'AUPR':>8}{'FPR@95%TPR':>12}",
    ]
    for name, m in summary["metrics"].items():
        lines.append(f"  {name:<16}{m['auroc']:8.3f}{m['aupr']:8.3f}{m['fpr95']:12.3f}")
    flagged = summary["psis_flagged"]
    lines += [
        f"  complexity: -log2 p(x) minus the code length of {summary['compressor']}; "
        f"typicality: |-log p(x) - {summary['train_nll']:.2f}|, the mean over "
        f"{summary['num_train']} training examples",
        f"  PSIS k > 0.7 (unreliable log p(x)): {flagged['--in']} in, {flagged['--out']} out",
        f"  scores: {summary['csv']}; histograms: {summary['figure']}",
    ]
    return "\n".join(lines)


def comparison(
    result: Comparison,
    *,
    dataset: str,
    seed: int,
    estimator: Estimator,
    num_repeats: int,
    as_json: bool,
) -> str:
    """``compare``'s report: each run's log p(x) and its paired difference from the first
    (:class:`~pyrovae.evaluation.compare.Comparison`), on the test set of ``dataset``."""
    if as_json:
        return to_json({**result.as_dict(), "dataset": dataset})
    return (
        f"{result.num_examples} test examples of {dataset}, log p(x) in nats/example "
        f"({how_estimated(estimator)}; seed {seed}; MC: Monte Carlo error from {num_repeats} "
        f"repeats):\n{result.table()}"
    )
