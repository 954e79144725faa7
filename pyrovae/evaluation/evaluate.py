"""Held-out evaluation of a trained VAE: the ELBO and the importance-sampled log-likelihood
of each example, summarized as means with standard errors across examples (nats per example),
and for masses on 8-bit (or binary) data in bits per dimension too.

:func:`evaluate` works on tensors; :func:`evaluate_test_set` on a data set's test split, as
``pyrovae train`` and ``pyrovae evaluate`` report it. Both warn
(:class:`~pyrovae.errors.UnreliableEstimateWarning`) when the PSIS diagnostic flags examples
whose log-likelihood estimate cannot be trusted (Pareto k > 0.7).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from .. import distributed
from ..data import ImageData, StreamingImageData
from ..errors import UnreliableEstimateWarning
from ..models.program import Program, as_program
from .ais import AISDiagnostics
from .bits_per_dim import bits_per_dim, bits_per_dim_note, defines_bits_per_dim
from .estimator import DEFAULT_MAX_BATCH_ELEMENTS
from .importance import ImportanceDiagnostics
from .log_likelihood import Method, default_num_samples, log_likelihood
from .metrics import elbo_per_example
from .psis import PARETO_K_THRESHOLD
from .standard_error import mean_and_se

__all__ = ["Evaluation", "evaluate", "evaluate_test_set", "mean_and_se"]


@dataclass(frozen=True)
class Evaluation:
    """Held-out ELBO and log-likelihood of a VAE (nats per example).

    ``*_se`` are standard errors of the means across examples (``None`` for one example).
    ``method`` is how log p(x) was estimated: ``"is"`` (``num_samples`` = K importance
    samples) or ``"ais"`` (``num_samples`` = S chains of ``num_steps`` annealing steps).

    Importance sampling only (``None`` for AIS): ``ess_*`` summarize the per-example
    effective sample sizes (out of ``num_samples``); ``pareto_k_max`` is the largest PSIS
    Pareto k of the examples' importance weights (:mod:`pyrovae.evaluation.psis`; ``inf``
    when a few draws carry all the weight of an example, ``None`` when K < 46 leaves no tail
    to fit) and ``num_pareto_k_above_0_7`` the number of examples with k > 0.7, whose
    estimates are unreliable (typically too low).

    AIS only (``None`` for IS): ``acceptance_rate`` is the mean HMC acceptance probability
    and ``chain_log_weight_std`` the mean over examples of the spread of the chains'
    log-weights (nats; near 0 when the schedule is long enough).

    ``bits_per_dim`` (and its standard error) is the log-likelihood as ``-log p(x) / (D ln
    2)`` when the likelihood is a mass on discrete levels (``discretized_logistic`` on 8-bit
    levels; ``bernoulli`` on binary pixels, per binary pixel), else ``None``;
    ``bits_per_dim_note`` says which, or why there is none
    (:mod:`pyrovae.evaluation.bits_per_dim`)."""

    elbo: float
    elbo_se: float | None
    log_likelihood: float
    log_likelihood_se: float | None
    method: str
    num_samples: int
    num_steps: int | None
    num_examples: int
    seed: int
    ess_mean: float | None = None
    ess_median: float | None = None
    ess_min: float | None = None
    pareto_k_max: float | None = None
    num_pareto_k_above_0_7: int | None = None
    acceptance_rate: float | None = None
    chain_log_weight_std: float | None = None
    bits_per_dim: float | None = None
    bits_per_dim_se: float | None = None
    bits_per_dim_note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(
    vae: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    num_samples: int | None = None,
    method: Method = "is",
    num_steps: int | None = None,
    seed: int = 0,
    elbo_batch_size: int = 1000,
    max_batch_elements: int = DEFAULT_MAX_BATCH_ELEMENTS,
    progress: bool = False,
) -> Evaluation:
    """The single-sample ELBO and the estimated log p(x) of each example of ``x``,
    summarized as means with standard errors across examples (see :func:`log_likelihood`
    for the arguments and their defaults).

    With importance sampling, issues an :class:`~pyrovae.errors.UnreliableEstimateWarning`
    (one line) when any example's importance weights have Pareto shape k > 0.7 (Vehtari et
    al., "Pareto smoothed importance sampling"): the log-likelihood of those examples is
    unreliable.

    Example::

        result = pyrovae.evaluate(vae, x, num_samples=1000)
        print(result.log_likelihood, result.num_pareto_k_above_0_7)
    """
    if num_samples is None:
        num_samples = default_num_samples(method)
    program = as_program(vae)
    elbo = _elbo_per_example(program, x, y, elbo_batch_size, seed)
    ll, diagnostics = log_likelihood(
        program,
        x,
        y,
        num_samples,
        method=method,
        num_steps=num_steps,
        max_batch_elements=max_batch_elements,
        seed=seed,
        progress=progress,
        return_diagnostics=True,
    )
    elbo_mean, elbo_se = mean_and_se(elbo)
    ll_mean, ll_se = mean_and_se(ll)
    bpd_mean, bpd_se = None, None
    if defines_bits_per_dim(program):
        # a linear map of the nats: the standard error scales by its factor (converting the
        # summaries, not the float32 per-example values, keeps them exactly in proportion)
        bpd_mean = bits_per_dim(program, ll_mean)
        bpd_se = None if ll_se is None else abs(bits_per_dim(program, ll_se))
    return Evaluation(
        elbo=elbo_mean,
        elbo_se=elbo_se,
        log_likelihood=ll_mean,
        log_likelihood_se=ll_se,
        method=method,
        num_samples=num_samples,
        num_examples=x.shape[0],
        seed=seed,
        bits_per_dim=bpd_mean,
        bits_per_dim_se=bpd_se,
        bits_per_dim_note=bits_per_dim_note(program),
        **_diagnostics_summary(diagnostics, num_samples),
    )


def _elbo_per_example(
    program: Program, x: torch.Tensor, y: torch.Tensor | None, batch_size: int, seed: int
) -> torch.Tensor:
    """:func:`~pyrovae.evaluation.metrics.elbo_per_example` in eval mode; in a run of several
    processes, rank 0's (one draw per example, cheap next to log p(x)), shared."""
    with program.evaluating():
        if distributed.world_size() == 1:
            return elbo_per_example(program, x, y, batch_size=batch_size, seed=seed)
        elbo = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        if distributed.is_main():
            elbo = elbo_per_example(program, x, y, batch_size=batch_size, seed=seed)
        return distributed.broadcast_tensor(elbo)


def _diagnostics_summary(
    diagnostics: ImportanceDiagnostics | AISDiagnostics, num_samples: int
) -> dict[str, Any]:
    """The :class:`Evaluation` fields that summarize the estimator's diagnostics: the AIS
    chains' acceptance and spread, or IS's effective sample sizes and Pareto k (warning
    when k > 0.7)."""
    if isinstance(diagnostics, AISDiagnostics):
        return {
            "num_steps": diagnostics.num_steps,
            "acceptance_rate": diagnostics.acceptance_rate.mean().item(),
            "chain_log_weight_std": diagnostics.log_weight_std.mean().item(),
        }
    ess = diagnostics.ess
    pareto_k_max, num_above = _summarize_pareto_k(diagnostics.pareto_k, num_samples)
    return {
        "num_steps": None,
        "ess_mean": ess.mean().item(),
        "ess_median": ess.median().item(),
        "ess_min": ess.min().item(),
        "pareto_k_max": pareto_k_max,
        "num_pareto_k_above_0_7": num_above,
    }


def evaluate_test_set(
    vae: Program,
    data: ImageData | StreamingImageData,
    config: Mapping[str, Any],
    *,
    num_samples: int | None,
    seed: int,
    method: Method = "is",
    num_steps: int | None = None,
    limit: int = 0,
    max_batch_elements: int = DEFAULT_MAX_BATCH_ELEMENTS,
    progress: bool = True,
) -> dict[str, Any]:
    """:func:`evaluate` on the test split of ``data`` (its first ``limit`` examples; 0: all),
    as the JSON-ready mapping printed by ``pyrovae evaluate`` (nats per example; the keys of
    :class:`Evaluation`), plus the data set and the test set's binarization."""
    x, y = data.test_images, vae.model_labels(data.test_labels)
    if limit:
        x, y = x[:limit], None if y is None else y[:limit]
    result = evaluate(
        vae,
        x,
        y,
        num_samples=num_samples,
        method=method,
        num_steps=num_steps,
        seed=seed,
        elbo_batch_size=config["train"]["eval_batch_size"],
        max_batch_elements=max_batch_elements,
        progress=progress,
    ).as_dict()
    result["dataset"] = data.name
    # the test set is binarized once whenever the model sees binary data (see pyrovae.data)
    result["binarize"] = "static" if data.binarize != "none" else "none"
    result["binarization_seed"] = config["data"]["binarization_seed"]
    return result


def _summarize_pareto_k(pareto_k: torch.Tensor, num_samples: int) -> tuple[float | None, int]:
    """The largest defined (not NaN) Pareto k of ``(N,)`` per-example values (``None`` if
    none is defined) and the number of examples with k > 0.7, warning with an
    :class:`~pyrovae.errors.UnreliableEstimateWarning` when that number is not 0."""
    defined = pareto_k[~pareto_k.isnan()]
    pareto_k_max = defined.max().item() if defined.numel() else None
    num_above = int((pareto_k > PARETO_K_THRESHOLD).sum())
    if num_above:
        warnings.warn(
            UnreliableEstimateWarning(
                f"the importance-sampled log-likelihood is unreliable for {num_above} of "
                f"{pareto_k.shape[0]} examples (PSIS Pareto k > {PARETO_K_THRESHOLD}, max "
                f"{pareto_k_max:.2f}; likely too low): use more samples than K={num_samples}, "
                'a better guide, or AIS (method="ais"; pyrovae evaluate --method ais)'
            ),
            stacklevel=4,
        )
    return pareto_k_max, num_above
