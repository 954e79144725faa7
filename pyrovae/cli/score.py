"""``pyrovae evaluate`` and ``pyrovae compare``: score trained runs on their test set.

Both start alike (:func:`load_for_scoring`): load each run's program, check that the runs
share one test set, choose the estimator, load the test data on the first program's device,
keep its first ``--limit`` examples and choose the seed of the draws (by default the one
``train`` used for its own estimate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..errors import PyrovaeError
from ..registry import PositiveInt, Seed
from . import report
from .options import Estimator, Method, check_cost, check_options, choose_estimator

if TYPE_CHECKING:
    import torch

    from ..config import Config
    from ..data import ImageData
    from ..data.streaming import StreamingImageData
    from ..evaluation.local_elbo import LocalOptimization
    from ..models.program import Program
    from ..training.run import Checkpoint


@dataclass(frozen=True)
class Scoring:
    """Trained runs ready to be scored on the same test examples.

    Attributes:
        programs, configs, states: each run's model, resolved config and checkpoint state,
            by run directory in the order given.
        estimator: how log p(x) is estimated (``--method``, ``--num-samples``,
            ``--num-steps`` and their defaults for the first run).
        data: the runs' data set, on the first program's device.
        x: ``(N, *example_shape)`` the first ``limit`` test examples (all where it is 0).
        y: ``(N,)`` their class labels as the data set holds them (``Program.model_labels``
            gives the labels a program gets).
        seed: the seed of the draws.
    """

    programs: dict[str, Program]
    configs: dict[str, Config]
    states: dict[str, dict[str, Any]]
    estimator: Estimator
    data: ImageData | StreamingImageData
    x: torch.Tensor
    y: torch.Tensor
    seed: int


def load_for_scoring(
    run_dirs: Sequence[str],
    *,
    method: Method,
    num_samples: int | None,
    num_steps: int | None,
    limit: int | None,
    seed: int | None,
    checkpoint: Checkpoint,
    device: str,
    data_root: str | None,
) -> Scoring:
    """The runs ``run_dirs`` loaded on ``device`` (each its state ``checkpoint``: best, last,
    or ``None``: the best where there is one) with their test set (its first ``limit``
    examples; ``None`` or 0: all), the estimator the options choose and the seed (``None``:
    the one ``train`` uses for its estimate). Several runs must share one test set."""
    from ..data import load_data
    from ..evaluation.compare import check_same_test_set
    from ..training import EVAL_SEED
    from ..training.run import load_program

    loaded = {name: load_program(name, device=device, checkpoint=checkpoint) for name in run_dirs}
    configs = {name: config for name, (_, config, _) in loaded.items()}
    if len(configs) > 1:
        check_same_test_set(configs)
    reference = configs[run_dirs[0]]
    estimator = choose_estimator(method, num_samples, num_steps, reference["eval"]["num_samples"])
    programs = {name: program for name, (program, _, _) in loaded.items()}
    data = load_data(reference["data"], device=programs[run_dirs[0]].device, root=data_root)
    x, y = data.test_images, data.test_labels
    if limit:
        x, y = x[:limit], y[:limit]
    check_cost(estimator, x.shape[0])
    return Scoring(
        programs=programs,
        configs=configs,
        states={name: state for name, (_, _, state) in loaded.items()},
        estimator=estimator,
        data=data,
        x=x,
        y=y,
        seed=EVAL_SEED if seed is None else seed,
    )


def evaluate(
    run_dir: str,
    *,
    method: Method | None,
    num_samples: int | None,
    num_steps: int | None,
    limit: int | None,
    seed: int | None,
    max_batch_elements: int | None,
    as_json: bool,
    quiet: bool,
    device: str,
    data_root: str | None,
    checkpoint: Checkpoint = None,
    gaps: bool = False,
    num_elbo_samples: int | None = None,
    max_local_steps: int | None = None,
) -> None:
    """Print the test-set ELBO and log-likelihood of the run ``run_dir`` estimated by
    ``method`` (``"is"``, the default, ``"ais"``), or the bounds of ``"bdmc"`` on data
    simulated from its model, in nats per example (on the first ``limit`` test examples;
    bdmc: 100 by default), of the run's state ``checkpoint`` (best, last; ``None``: the best
    where there is one); with ``gaps``, the inference gaps instead (:func:`_gaps`; ``"ais"``
    by default)."""
    from ..evaluation import LocalOptimization
    from ..evaluation.bdmc import DEFAULT_NUM_EXAMPLES
    from ..evaluation.importance import DEFAULT_MAX_BATCH_ELEMENTS

    check_options(
        ("--limit", limit, PositiveInt),
        ("--max-batch-elements", max_batch_elements, PositiveInt),
        ("--seed", seed, Seed),
        ("--num-elbo-samples", num_elbo_samples, PositiveInt),
        ("--max-local-steps", max_local_steps, PositiveInt),
    )
    method = _gaps_method(method, gaps, num_elbo_samples, max_local_steps)
    runs = load_for_scoring(
        [run_dir],
        method=method,
        num_samples=num_samples,
        num_steps=num_steps,
        limit=(limit or DEFAULT_NUM_EXAMPLES) if method == "bdmc" else limit,
        seed=seed,
        checkpoint=checkpoint,
        device=device,
        data_root=data_root,
    )
    max_batch_elements = max_batch_elements or DEFAULT_MAX_BATCH_ELEMENTS
    if method == "bdmc":
        _bdmc(run_dir, runs, max_batch_elements, as_json=as_json, quiet=quiet)
        return
    if gaps:
        local = LocalOptimization(
            **({} if max_local_steps is None else {"max_steps": max_local_steps})
        )
        _gaps(run_dir, runs, max_batch_elements, num_elbo_samples, local, as_json, quiet)
        return
    _test_set(run_dir, runs, limit, max_batch_elements, as_json=as_json, quiet=quiet)


def _test_set(
    run_dir: str,
    runs: Scoring,
    limit: int | None,
    max_batch_elements: int,
    *,
    as_json: bool,
    quiet: bool,
) -> None:
    """``evaluate`` with IS or AIS: the test ELBO and log-likelihood of the run's first
    ``limit`` test examples (all where ``None``)."""
    from ..evaluation import evaluate_test_set

    program, config = runs.programs[run_dir], runs.configs[run_dir]
    estimator = runs.estimator
    assert estimator.method != "bdmc"  # evaluate runs BDMC apart
    result = evaluate_test_set(
        program,
        runs.data,
        config,
        num_samples=estimator.num_samples,
        method=estimator.method,
        num_steps=estimator.num_steps,
        seed=runs.seed,
        limit=limit or 0,
        max_batch_elements=max_batch_elements,
        progress=not quiet,
    )
    result["epoch"] = int(runs.states[run_dir]["epoch"])
    result["checkpoint"] = runs.states[run_dir]["checkpoint"]
    print(
        report.evaluation(
            result, run_dir=run_dir, seed=runs.seed, estimator=estimator, as_json=as_json
        )
    )


def _gaps_method(
    method: Method | None, gaps: bool, num_elbo_samples: int | None, max_local_steps: int | None
) -> Method:
    """The estimator of log p(x) ``evaluate`` uses (``is``; with ``--gaps``, ``ais``, unless
    ``--method`` says), after refusing the options of ``--gaps`` without it, and ``bdmc``
    with it."""
    method = method or ("ais" if gaps else "is")
    if gaps and method == "bdmc":
        raise PyrovaeError(
            "--gaps estimates log p(x) of the test examples with --method ais (the default) or "
            "is; --method bdmc simulates its own data: drop one of them"
        )
    for flag, value in (
        ("--num-elbo-samples", num_elbo_samples),
        ("--max-local-steps", max_local_steps),
    ):
        if value is not None and not gaps:
            raise PyrovaeError(f"{flag} {value} is an option of --gaps: add --gaps or drop it")
    return method


def _bdmc(
    run_dir: str, runs: Scoring, max_batch_elements: int, *, as_json: bool, quiet: bool
) -> None:
    """``evaluate --method bdmc``: AIS forward and in reverse on ``runs.x.shape[0]`` examples
    simulated from the run's model with the labels of ``runs.y``; their gap bounds AIS's error
    at ``runs.estimator.num_steps`` steps."""
    from ..evaluation.bdmc import bdmc

    program, estimator = runs.programs[run_dir], runs.estimator
    assert estimator.num_steps is not None  # AIS's estimators always have steps
    result = bdmc(
        program,
        runs.x,
        program.model_labels(runs.y),
        estimator.num_samples,
        estimator.num_steps,
        seed=runs.seed,
        max_batch_elements=max_batch_elements,
        progress=not quiet,
    )
    state = runs.states[run_dir]
    summary = {**result.summary(), "seed": runs.seed, "dataset": runs.data.name}
    summary.update(epoch=int(state["epoch"]), checkpoint=state["checkpoint"])
    print(report.bdmc(summary, run_dir=run_dir, num_chains=estimator.num_samples, as_json=as_json))


def _check_distinct(run_dirs: list[str]) -> None:
    """Refuse a run given twice, under one spelling or two (``RUN`` and ``RUN/``, a symbolic
    link, a relative and an absolute path): a run compared with itself."""
    import os

    seen: dict[str, str] = {}
    for name in run_dirs:
        real = os.path.realpath(name)
        if real in seen:
            raise PyrovaeError(
                f"a run directory is given twice, as '{seen[real]}' and as '{name}' (the same "
                "run); compare different runs"
            )
        seen[real] = name


def _gaps(
    run_dir: str,
    runs: Scoring,
    max_batch_elements: int,
    num_elbo_samples: int | None,
    local: LocalOptimization,
    as_json: bool,
    quiet: bool,
) -> None:
    """``evaluate --gaps``: the inference gaps of the run's first ``runs.x.shape[0]`` test
    examples (:func:`pyrovae.inference_gaps`), log p(x) by ``runs.estimator``."""
    from ..evaluation.inference_gaps import inference_gaps
    from ..evaluation.local_elbo import DEFAULT_NUM_ELBO_SAMPLES

    program, estimator = runs.programs[run_dir], runs.estimator
    assert estimator.method != "bdmc"
    result = inference_gaps(
        program,
        runs.x,
        program.model_labels(runs.y),
        method=estimator.method,
        num_samples=estimator.num_samples,
        num_steps=estimator.num_steps,
        num_elbo_samples=num_elbo_samples or DEFAULT_NUM_ELBO_SAMPLES,
        local=local,
        max_batch_elements=max_batch_elements,
        seed=runs.seed,
        progress=not quiet,
    )
    epoch = int(runs.states[run_dir]["epoch"])
    summary = {**result.summary(), "seed": runs.seed, "dataset": runs.data.name, "epoch": epoch}
    summary["num_samples"], summary["num_steps"] = estimator.num_samples, estimator.num_steps
    print(report.gaps(summary, run_dir=run_dir, estimator=estimator, as_json=as_json))


def compare(
    run_dirs: list[str],
    *,
    method: Literal["is", "ais"],
    num_samples: int | None,
    num_steps: int | None,
    num_repeats: int,
    limit: int | None,
    seed: int | None,
    max_batch_elements: int | None,
    as_json: bool,
    quiet: bool,
    device: str,
    data_root: str | None,
    checkpoint: Checkpoint = None,
) -> None:
    """Print each run's test log-likelihood on the same test examples and, for every run after
    the first, the mean per-example difference from the first with its paired standard error
    and the Monte Carlo errors of ``num_repeats`` independent estimates."""
    from ..evaluation.compare import compare as compare_runs
    from ..evaluation.importance import DEFAULT_MAX_BATCH_ELEMENTS

    check_options(
        ("--limit", limit, PositiveInt),
        ("--max-batch-elements", max_batch_elements, PositiveInt),
        ("--num-repeats", num_repeats, PositiveInt),
        ("--seed", seed, Seed),
    )
    _check_run_dirs(run_dirs)
    runs = load_for_scoring(
        run_dirs,
        method=method,
        num_samples=num_samples,
        num_steps=num_steps,
        limit=limit,
        seed=seed,
        checkpoint=checkpoint,
        device=device,
        data_root=data_root,
    )
    estimator = runs.estimator
    result = compare_runs(
        runs.programs,
        runs.x,
        runs.y,
        method=method,
        num_samples=estimator.num_samples,
        num_steps=estimator.num_steps,
        num_repeats=num_repeats,
        seed=runs.seed,
        max_batch_elements=max_batch_elements or DEFAULT_MAX_BATCH_ELEMENTS,
        progress=not quiet,
    )
    text = report.comparison(
        result,
        dataset=runs.data.name,
        seed=runs.seed,
        estimator=estimator,
        num_repeats=num_repeats,
        as_json=as_json,
    )
    print(text)


def _check_run_dirs(run_dirs: list[str]) -> None:
    """``compare`` takes two or more run directories, each once."""
    if len(run_dirs) < 2:
        raise PyrovaeError(f"compare needs at least two run directories; got {len(run_dirs)}")
    _check_distinct(run_dirs)
