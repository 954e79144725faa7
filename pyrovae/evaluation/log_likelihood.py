"""The marginal likelihood log p(x) of each example, in nats: one entry point, two estimators.

* ``method="is"`` (the default): importance sampling from the guide
  (:mod:`pyrovae.evaluation.importance`; Burda et al., 2016). Fast, and exact when the guide
  is the posterior; when it is not, the estimate is too low by an amount its standard error
  does not show. Its diagnostics' PSIS Pareto ``k`` (:mod:`pyrovae.evaluation.psis`) flags the
  examples where that happens (``k > 0.7``).
* ``method="ais"``: annealed importance sampling with HMC transitions
  (:mod:`pyrovae.evaluation.ais`; Neal 2001, Wu et al. 2017). A stochastic lower bound too,
  but one that tends to log p(x) as the number of annealing steps ``num_steps`` grows,
  however poor the guide. Its cost per example is S chains x T steps x (L + 1) gradients
  of log p(x, z) (by default 16 x 500 x 3 = 24,000, against K = 5000 forward passes for IS).
  :func:`pyrovae.evaluation.bdmc.bdmc` measures how close it is at a given ``num_steps``, on
  data simulated from the model.

Both are seeded (the caller's random stream is left untouched), chunked so that memory does
not grow with the number of examples, and read the densities from Pyro traces of the model's
own ``model`` and ``guide``; one driver runs both
(:class:`~pyrovae.evaluation.estimator.BlockEstimator`). Each block of examples draws from
its own seed, so in a run of several processes (``torchrun``; :mod:`pyrovae.distributed`)
each process estimates a contiguous share of the blocks and the per-example estimates and
diagnostics are gathered on every process: the same numbers as one process computes.
"""

from __future__ import annotations

from typing import Literal, overload

import torch
from torch import nn

from ..errors import ConfigError
from ..models.program import as_program
from ..registry import PositiveInt, Seed, check_value
from .ais import DEFAULT_NUM_CHAINS, DEFAULT_NUM_STEPS, AISDiagnostics, ais_log_likelihood
from .estimator import DEFAULT_MAX_BATCH_ELEMENTS
from .importance import DEFAULT_NUM_SAMPLES, ImportanceDiagnostics, importance_log_likelihood

__all__ = ["METHODS", "Diagnostics", "Method", "default_num_samples", "log_likelihood"]

Method = Literal["is", "ais"]
#: the estimators :func:`log_likelihood` offers
METHODS: tuple[Method, ...] = ("is", "ais")
#: what ``return_diagnostics=True`` returns, by method
Diagnostics = ImportanceDiagnostics | AISDiagnostics


def default_num_samples(method: str) -> int:
    """The default ``num_samples`` of ``method``: K = 5000 importance samples for IS, S = 16
    chains for AIS."""
    return DEFAULT_NUM_SAMPLES if method == "is" else DEFAULT_NUM_CHAINS


@overload
def log_likelihood(
    vae: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = ...,
    num_samples: int | None = ...,
    *,
    method: Method = ...,
    num_steps: int | None = ...,
    max_batch_elements: int = ...,
    seed: int = ...,
    num_repeats: int = ...,
    progress: bool = ...,
    return_diagnostics: Literal[False] = ...,
) -> torch.Tensor: ...


@overload
def log_likelihood(
    vae: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = ...,
    num_samples: int | None = ...,
    *,
    method: Method = ...,
    num_steps: int | None = ...,
    max_batch_elements: int = ...,
    seed: int = ...,
    num_repeats: int = ...,
    progress: bool = ...,
    return_diagnostics: Literal[True],
) -> tuple[torch.Tensor, Diagnostics]: ...


def log_likelihood(
    vae: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    num_samples: int | None = None,
    *,
    method: Method = "is",
    num_steps: int | None = None,
    max_batch_elements: int = DEFAULT_MAX_BATCH_ELEMENTS,
    seed: int = 0,
    num_repeats: int = 1,
    progress: bool = False,
    return_diagnostics: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, Diagnostics]:
    """An estimate of log p(x_i) for each example, in nats.

    Args:
        vae: the model (a :class:`~pyrovae.models.program.Program`, or a module of one's own
            with Pyro programs ``model(x, y)`` and ``guide(x, y)``); evaluated in eval mode
            (its mode is restored afterwards).
        x: data ``(N, data_dim)`` on the VAE's device; ``y``: labels ``(N,)`` for
            label-conditional priors, else ``None``.
        num_samples: IS: K, draws z ~ q(z|x) per example (default 5000); AIS: S,
            independent chains per example (default 16).
        method: ``"is"`` (importance sampling) or ``"ais"`` (annealed importance sampling).
        num_steps: AIS only: T, annealing steps (default 500).
        max_batch_elements: most (sample or chain, example) pairs evaluated at once; bounds
            peak memory. Lowered to what fits in the memory available
            (:func:`~pyrovae.models.size.fit_batch_elements`); results depend on it only
            through which draws are made.
        seed: seeds the draws (the outer RNG state is left untouched).
        num_repeats: R > 1 also computes R - 1 further independent estimates, reported in
            the diagnostics' ``repeats`` (their spread is the estimator's noise); the
            returned estimate is always the first.
        progress: show a progress bar (on stderr).
        return_diagnostics: also return the method's diagnostics:
            :class:`~pyrovae.evaluation.importance.ImportanceDiagnostics` (effective sample
            size and PSIS Pareto k per example) or
            :class:`~pyrovae.evaluation.ais.AISDiagnostics` (the chains' log-weights,
            acceptance rates and step sizes).

    Returns:
        ``(N,)`` estimates log p^(x_i), or ``(estimates, diagnostics)``.

    Example::

        ll_is = pyrovae.log_likelihood(vae, x, num_samples=1000)
        ll_ais, d = pyrovae.log_likelihood(vae, x, method="ais", num_steps=200,
                                           return_diagnostics=True)
        print(d.acceptance_rate.mean(), d.log_weight_std.mean())
    """
    _check_method(method, num_steps)
    if num_samples is None:
        num_samples = default_num_samples(method)
    check_value(num_samples, PositiveInt, "num_samples")
    check_value(max_batch_elements, PositiveInt, "max_batch_elements")
    check_value(seed, Seed, "seed")
    program = as_program(vae)
    program.check_data(x, y)  # the data, checked once per call
    diagnostics: Diagnostics | None
    if method == "is":
        estimates, diagnostics = importance_log_likelihood(
            program,
            x,
            y,
            num_samples,
            max_batch_elements=max_batch_elements,
            seed=seed,
            num_repeats=num_repeats,
            progress=progress,
            return_diagnostics=return_diagnostics,
        )
    else:
        estimates, diagnostics = ais_log_likelihood(
            program,
            x,
            y,
            num_chains=num_samples,
            num_steps=DEFAULT_NUM_STEPS if num_steps is None else num_steps,
            max_batch_elements=max_batch_elements,
            seed=seed,
            num_repeats=num_repeats,
            progress=progress,
        )
    if not return_diagnostics:
        return estimates
    assert diagnostics is not None
    return estimates, diagnostics


def _check_method(method: str, num_steps: int | None) -> None:
    """Refuse an unknown ``method``, or ``num_steps`` with importance sampling, which has
    none (:class:`~pyrovae.errors.ConfigError`, one line)."""
    if method not in METHODS:
        hint = (
            "; BDMC bounds AIS's error on data simulated from the model: "
            "pyrovae.evaluation.bdmc.bdmc"
            if method == "bdmc"
            else ""
        )
        raise ConfigError(f"method must be one of {list(METHODS)}; got {method!r}{hint}")
    if method == "is" and num_steps is not None:
        raise ConfigError(
            f"num_steps = {num_steps} is the number of AIS annealing steps, but "
            "method = 'is' (importance sampling) has none: drop num_steps or use "
            "method = 'ais'"
        )
