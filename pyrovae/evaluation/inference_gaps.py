"""Where the nats go: the inference gaps of each example (Cremer, Li and Duvenaud 2018,
"Inference Suboptimality in Variational Autoencoders").

The gap between log p(x) and the ELBO of the amortized guide splits in two::

    log p(x) - elbo = [log p(x) - local_elbo] + [local_elbo - elbo]
                    =   approximation gap     +   amortization gap

``local_elbo`` is the ELBO of the best member of the guide's family for the example, found by
optimizing per-example variational parameters from the encoder's output
(:mod:`~pyrovae.evaluation.local_elbo`). The *approximation gap* is what the family cannot
reach (a richer guide, such as IAF, closes it); the *amortization gap* is what the encoder
misses within the family (a larger encoder, or more training, closes it).

``log_likelihood`` is estimated by AIS (default) or importance sampling
(:func:`pyrovae.log_likelihood`); both are stochastic lower bounds, so the approximation gap
is, if anything, under-estimated by the estimator's error. Every value is in nats per example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..models.program import as_program
from ..registry import PositiveInt, Seed, check_value
from .estimator import DEFAULT_MAX_BATCH_ELEMENTS
from .local_elbo import DEFAULT_NUM_ELBO_SAMPLES, LocalELBO, LocalELBOResult, LocalOptimization
from .log_likelihood import Diagnostics, Method, _check_method, default_num_samples
from .log_likelihood import log_likelihood as estimate_log_likelihood
from .standard_error import mean_and_se

__all__ = ["GAPS", "InferenceGaps", "inference_gaps"]

#: the per-example quantities of :class:`InferenceGaps`, in the order they are reported
GAPS = ("log_likelihood", "local_elbo", "elbo", "approximation_gap", "amortization_gap")


@dataclass(frozen=True)
class InferenceGaps:
    """The inference gaps of each example, in nats (see the module docstring).

    Attributes:
        log_likelihood, elbo, local_elbo: ``(N,)`` the estimates.
        approximation_gap: ``(N,)`` ``log_likelihood - local_elbo``.
        amortization_gap: ``(N,)`` ``local_elbo - elbo``.
        local: the ELBOs' details (Monte Carlo errors, SVI steps, convergence, the optimized
            parameters): :class:`~pyrovae.evaluation.local_elbo.LocalELBOResult`.
        diagnostics: the log-likelihood estimator's diagnostics (PSIS k for IS).
        method: ``"ais"`` or ``"is"``.
    """

    log_likelihood: torch.Tensor
    elbo: torch.Tensor
    local_elbo: torch.Tensor
    local: LocalELBOResult
    diagnostics: Diagnostics
    method: str

    @property
    def approximation_gap(self) -> torch.Tensor:
        return self.log_likelihood - self.local_elbo

    @property
    def amortization_gap(self) -> torch.Tensor:
        return self.local_elbo - self.elbo

    def summary(self) -> dict[str, Any]:
        """``{quantity: mean, quantity_se: standard error over examples}`` for each of
        :data:`GAPS`, the Monte Carlo errors of the mean ELBOs (``elbo_mc_se``,
        ``local_elbo_mc_se``: ``sqrt(sum se_i^2) / N``), the share of examples whose
        optimization converged and the settings."""
        out: dict[str, Any] = {"num_examples": int(self.elbo.shape[0]), "method": self.method}
        for name in GAPS:
            out[name], out[f"{name}_se"] = mean_and_se(getattr(self, name), float64=True)
        for name in ("elbo_mc_se", "local_elbo_mc_se"):
            se = getattr(self.local, name).double()
            out[name] = float(se.square().sum().sqrt()) / se.shape[0]
        out["converged"] = float(self.local.converged.double().mean())
        out["max_steps_taken"] = int(self.local.steps.max())
        out["num_elbo_samples"] = self.local.num_elbo_samples
        out["local_optimization"] = self.local.settings.describe()
        return out


def inference_gaps(
    vae: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    method: Method = "ais",
    num_samples: int | None = None,
    num_steps: int | None = None,
    num_elbo_samples: int = DEFAULT_NUM_ELBO_SAMPLES,
    local: LocalOptimization | None = None,
    max_batch_elements: int = DEFAULT_MAX_BATCH_ELEMENTS,
    seed: int = 0,
    progress: bool = False,
) -> InferenceGaps:
    """The approximation and amortization gaps of each example (module docstring).

    Args:
        vae: the model: pyrovae's VAE (diagonal-Normal or IAF guide), hierarchical VAE, or a
            program that declares its per-example variational parameters
            (:meth:`~pyrovae.models.program.Program.local_parameters` and
            :meth:`~pyrovae.models.program.Program.local_guide`).
        x: ``(N, data_dim)`` data on the model's device; ``y``: ``(N,)`` labels or ``None``.
        method: how log p(x) is estimated: ``"ais"`` (default) or ``"is"``.
        num_samples, num_steps: the log-likelihood estimator's (as for
            :func:`pyrovae.log_likelihood`).
        num_elbo_samples: K, draws per example of each ELBO estimate (its Monte Carlo error,
            ``std / sqrt(K)``, is reported).
        local: how the per-example parameters are optimized, and when they have converged
            (:class:`~pyrovae.evaluation.local_elbo.LocalOptimization`; default settings
            when ``None``).
        max_batch_elements: most (draw, example) pairs in one pass.
        seed: seeds the draws (the outer RNG state is left untouched).
        progress: show progress bars (on stderr).

    Raises:
        ConfigError: the model does not declare its local variational parameters, or a
            setting is out of range.

    Example::

        gaps = pyrovae.inference_gaps(vae, x[:100], method="is", num_samples=1000)
        print(gaps.summary()["amortization_gap"])
    """
    _check_method(method, num_steps)
    check_value(seed, Seed, "seed")
    check_value(max_batch_elements, PositiveInt, "max_batch_elements")
    program = as_program(vae)
    program.check_data(x, y)
    program.local_parameters(x[:1], None)  # refuses a program without them, before the work
    settings = local if local is not None else LocalOptimization()
    estimator = LocalELBO(
        program, settings, num_elbo_samples, max_batch_elements, seed=seed, progress=progress
    )
    elbos = estimator(x, y)
    ll, diagnostics = estimate_log_likelihood(
        program,
        x,
        y,
        default_num_samples(method) if num_samples is None else num_samples,
        method=method,
        num_steps=num_steps,
        max_batch_elements=max_batch_elements,
        seed=seed,
        progress=progress,
        return_diagnostics=True,
    )
    return InferenceGaps(
        log_likelihood=ll,
        elbo=elbos.elbo,
        local_elbo=elbos.local_elbo,
        local=elbos,
        diagnostics=diagnostics,
        method=method,
    )
