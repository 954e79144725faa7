"""The checks of the commands' options that the parser cannot make (ranges, combinations),
and :class:`Estimator`, the log-likelihood estimator that ``--method``, ``--num-samples`` and
``--num-steps`` choose."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from ..errors import PyrovaeError
from ..registry import PositiveInt, Range, check_value

#: the estimators of log p(x) (``--method``)
Method = Literal["is", "ais", "bdmc"]

#: ``sample --num``: a picture of at most 100 x 100 images
SampleCount = Annotated[int, Range(min=1, max=10_000, note="a grid of at most 100x100 images")]


#: the most importance samples (IS) or chains (AIS) per example worth drawing: estimates of
#: log p(x) settle by thousands (Burda et al. 2016 use 5000)
MAX_PER_EXAMPLE = 1_000_000
#: the most evaluations of a model (samples, or chains x steps, times examples) one estimate
#: may take: 1e10 is hours even for the smallest models on a GPU
MAX_EVALUATIONS = 10**10


def check_cost(estimator: Estimator, num_examples: int) -> None:
    """Refuse, before any is drawn, an estimate of more than :data:`MAX_PER_EXAMPLE` samples
    per example or :data:`MAX_EVALUATIONS` model evaluations in all, saying what it would cost
    and the most that is sensible for ``num_examples`` examples."""
    steps = estimator.num_steps or 1
    per_example = estimator.num_samples * steps
    total = per_example * num_examples
    if estimator.num_samples <= MAX_PER_EXAMPLE and total <= MAX_EVALUATIONS:
        return
    sensible = max(1, min(MAX_PER_EXAMPLE, MAX_EVALUATIONS // (num_examples * steps)))
    what = (
        f"--num-samples {estimator.num_samples:,}"
        if estimator.num_steps is None
        else f"--num-samples {estimator.num_samples:,} x --num-steps {steps:,}"
    )
    raise PyrovaeError(
        f"{what} would evaluate the model {total:.3g} times ({per_example:.3g} per example x "
        f"{num_examples:,} examples): days of computing for no better estimate; the most that "
        f"is sensible here is --num-samples {sensible:,} (estimates settle by a few thousand; "
        "use --limit for fewer examples)"
    )


def check_options(*options: tuple[str, Any, object]) -> None:
    """Check each given option ``(flag, value, annotation)``, e.g. ``("--seed", 3, Seed)``,
    against its declared range (:func:`~pyrovae.registry.check_value`); an option that was not
    given (``None``) is not checked."""
    for flag, value, annotation in options:
        if value is not None:
            check_value(value, annotation, flag)


@dataclass(frozen=True)
class Estimator:
    """How log p(x) is estimated: ``method`` ``"is"`` (importance sampling from the guide,
    ``num_samples`` = K samples per example, no ``num_steps``), ``"ais"`` or ``"bdmc"``
    (annealed importance sampling, ``num_samples`` = S chains of ``num_steps`` = T steps)."""

    method: Method
    num_samples: int
    num_steps: int | None = None


def choose_estimator(
    method: Method, num_samples: int | None, num_steps: int | None, configured_num_samples: int
) -> Estimator:
    """The :class:`Estimator` of ``--method``, ``--num-samples`` and ``--num-steps``, with each
    method's defaults (IS: the run's ``eval.num_samples``, ``configured_num_samples``)."""
    from ..evaluation.ais import DEFAULT_NUM_CHAINS, DEFAULT_NUM_STEPS

    check_options(
        ("--num-samples", num_samples, PositiveInt), ("--num-steps", num_steps, PositiveInt)
    )
    if method == "is":
        if num_steps is not None:
            raise PyrovaeError(
                f"--num-steps {num_steps} sets AIS's annealing steps, but --method is "
                "(importance sampling) has none: drop --num-steps or use --method ais"
            )
        num_samples = num_samples or configured_num_samples
        if num_samples < 1:
            raise PyrovaeError(
                f"the run's eval.num_samples is {num_samples}; give --num-samples K (e.g. 5000)"
            )
        return Estimator(method, num_samples)
    return Estimator(method, num_samples or DEFAULT_NUM_CHAINS, num_steps or DEFAULT_NUM_STEPS)
