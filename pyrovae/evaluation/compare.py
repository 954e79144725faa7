"""Paired model comparison: which of several models gives the test examples the higher
log p(x), and by how much, with error bars that account for both sources of noise.

Every model is scored on the *same* examples, so the per-example difference
``d_i = log p^_B(x_i) - log p^_A(x_i)`` cancels the spread between examples (some digits are
simply harder than others) that dominates each model's own standard error. Reported for each
model after the first (A, the reference):

* the mean difference ``mean_i d_i`` and its paired standard error ``std_i(d_i) / sqrt(N)``
  (sampling of the test examples and the estimators' noise together);
* each estimate's Monte Carlo error: the standard deviation of the reported mean that comes
  from the estimator's own random draws alone, from ``R >= 2`` independent repeats,
  ``sqrt(sum_i var_r(log p^_r(x_i))) / N``. A difference is resolved when it is large against
  both. Importance sampling's error is also biased (a lower bound): its repeats do not show
  the bias, which is what ``method="ais"`` and the PSIS diagnostic are for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..errors import ConfigError
from ..models.program import as_program
from .ais import DEFAULT_NUM_STEPS
from .estimator import DEFAULT_MAX_BATCH_ELEMENTS
from .log_likelihood import Method, default_num_samples, log_likelihood
from .standard_error import mean_and_se

__all__ = [
    "Comparison",
    "ModelScore",
    "PairedDifference",
    "check_same_test_set",
    "compare",
    "identify_test_set",
]


@dataclass(frozen=True)
class ModelScore:
    """One model's mean log p^(x) over the examples (nats per example)."""

    name: str
    log_likelihood: float
    #: standard error across examples
    se: float | None
    #: Monte Carlo error of the mean (from repeats), ``None`` with one repeat
    mc_error: float | None


@dataclass(frozen=True)
class PairedDifference:
    """``name`` minus the reference model, per example, averaged (nats per example)."""

    name: str
    reference: str
    mean: float
    #: paired standard error, ``std_i(d_i) / sqrt(N)``
    se: float | None
    #: Monte Carlo error of the mean difference (from repeats), ``None`` with one repeat
    mc_error: float | None


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare`."""

    method: str
    num_examples: int
    num_repeats: int
    settings: dict[str, Any]
    scores: list[ModelScore]
    differences: list[PairedDifference]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """The comparison as a plain-text table."""
        width = max(len(s.name) for s in self.scores)
        lines = [
            f"{'model':<{width}}  {'log p(x)':>9}  {'± SE':>6}  {'± MC':>6}  "
            f"{'difference':>10}  {'± paired SE':>11}  {'± MC':>6}"
        ]
        differences = {d.name: d for d in self.differences}
        for score in self.scores:
            row = (
                f"{score.name:<{width}}  {score.log_likelihood:9.2f}  {_fmt(score.se)}  "
                f"{_fmt(score.mc_error)}"
            )
            diff = differences.get(score.name)
            if diff is None:
                row += f"  {'(reference)':>10}"
            else:
                row += f"  {diff.mean:+10.3f}  {_fmt(diff.se, 11)}  {_fmt(diff.mc_error)}"
            lines.append(row.rstrip())
        return "\n".join(lines)


def _fmt(value: float | None, width: int = 6) -> str:
    return f"{value:{width}.3f}" if value is not None else f"{'-':>{width}}"


def _mc_error(repeats: torch.Tensor) -> float | None:
    """Monte Carlo error of the mean over examples of ``(R, N)`` repeated estimates."""
    if repeats.shape[0] < 2:
        return None
    return math.sqrt(float(repeats.var(dim=0).sum())) / repeats.shape[1]


def compare(
    models: Mapping[str, Any],
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    method: Method = "is",
    num_samples: int | None = None,
    num_steps: int | None = None,
    num_repeats: int = 2,
    seed: int = 0,
    max_batch_elements: int = DEFAULT_MAX_BATCH_ELEMENTS,
    progress: bool = False,
) -> Comparison:
    """Score every model on the same examples ``x`` and compare each with the first.

    Args:
        models: ``{name: module}``, the first being the reference; each a module with Pyro
            programs ``model(x, y)`` and ``guide(x, y)`` (a :class:`~pyrovae.VAE`).
        x: ``(N, data_dim)`` the examples, the same for every model; ``y``: their labels
            (passed to the models whose prior uses them).
        method, num_samples, num_steps, seed, max_batch_elements, progress: as in
            :func:`pyrovae.log_likelihood`; every model gets the same seed.
        num_repeats: R >= 2 independent repeats per model, for the Monte Carlo errors
            (R = 1: none are reported).

    Example::

        result = compare({"standard normal": vae_a, "vamp": vae_b}, x_test[:500])
        print(result.table())
    """
    if len(models) < 2:
        raise ConfigError(f"compare needs at least two models; got {len(models)}")
    repeats: dict[str, torch.Tensor] = {}
    for name, module in models.items():
        program = as_program(module, what=f"model {name!r}")
        ll, diagnostics = log_likelihood(
            program,
            x,
            program.model_labels(y),
            num_samples,
            method=method,
            num_steps=num_steps,
            seed=seed,
            num_repeats=num_repeats,
            max_batch_elements=max_batch_elements,
            progress=progress,
            return_diagnostics=True,
        )
        repeats[name] = ll.unsqueeze(0) if diagnostics.repeats is None else diagnostics.repeats
    reference = next(iter(models))
    return Comparison(
        method=method,
        num_examples=x.shape[0],
        num_repeats=num_repeats,
        settings={
            "num_samples": default_num_samples(method) if num_samples is None else num_samples,
            "num_steps": DEFAULT_NUM_STEPS if method == "ais" and num_steps is None else num_steps,
            "seed": seed,
        },
        scores=[_score(name, r) for name, r in repeats.items()],
        differences=[
            _difference(name, reference, r - repeats[reference])
            for name, r in repeats.items()
            if name != reference
        ],
    )


def _score(name: str, repeats: torch.Tensor) -> ModelScore:
    """A model's score from its ``(R, N)`` repeated estimates (row 0: the reported one)."""
    log_likelihood, se = mean_and_se(repeats[0], float64=True)
    return ModelScore(name=name, log_likelihood=log_likelihood, se=se, mc_error=_mc_error(repeats))


def _difference(name: str, reference: str, d: torch.Tensor) -> PairedDifference:
    """The paired difference ``name`` minus ``reference`` from its ``(R, N)`` repeats."""
    mean, se = mean_and_se(d[0], float64=True)
    return PairedDifference(name=name, reference=reference, mean=mean, se=se, mc_error=_mc_error(d))


def identify_test_set(data_config: Mapping[str, Any]) -> dict[str, Any]:
    """What fixes a run's test examples: the data set, its size limit and how the test set is
    binarized (once, with ``binarization_seed``, whenever the training data is binary).
    Runs compare example by example only when these agree."""
    binary = data_config["binarize"] != "none"
    return {
        "data.dataset": data_config["dataset"],
        "data.test_limit": data_config["test_limit"],
        "test binarization": "static" if binary else "none",
        **({"data.binarization_seed": data_config["binarization_seed"]} if binary else {}),
        **_own_data_identity(data_config),
    }


def _own_data_identity(data_config: Mapping[str, Any]) -> dict[str, Any]:
    """For people's own data (a folder, an array, data given in Python): the files' hash and
    how the test set was split off."""
    if data_config["dataset"] not in ("folder", "array", "tensors"):
        return {}
    keys = ("sha256", "test_path", "test_fraction", "split_seed")
    return {f"data.{key}": data_config.get(key) for key in keys}


def check_same_test_set(configs: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise :class:`ConfigError` naming the first difference when the runs ``{name: config}``
    were not evaluated on the same test examples (see :func:`identify_test_set`)."""
    items = list(configs.items())
    ref_name, ref = items[0][0], identify_test_set(items[0][1]["data"])
    for name, config in items[1:]:
        other = identify_test_set(config["data"])
        for key in [*ref, *(key for key in other if key not in ref)]:
            if ref.get(key) != other.get(key):
                raise ConfigError(
                    f"runs '{ref_name}' and '{name}' have different test sets ({key}: "
                    f"{ref.get(key, 'unset')!r} vs {other.get(key, 'unset')!r}), so their "
                    "log-likelihoods cannot be compared example by example; compare runs "
                    "trained on the same data set with the same binarization"
                )
