"""A table of per-example log-likelihoods with their diagnostics: what ``pyrovae score``
writes.

:func:`example_scores` runs :func:`~pyrovae.log_likelihood` once (so its numbers are that
function's for the same seed, and under ``torchrun`` each process estimates its share of the
blocks) and returns one row per example:

* ``index``: the example's position in ``x``;
* ``log_likelihood``: the estimate of log p(x_i), in nats;
* ``se``: its Monte Carlo standard error, in nats, by the delta method on the normalized
  weights w (Owen 2013, *Monte Carlo theory, methods and examples*, ch. 9): the estimate is
  log of the mean of K weights, whose relative variance is (K / ESS - 1) / K, so
  ``se = sqrt(1 / ESS - 1 / K)``; with IS the weights are the K importance weights, with AIS
  the S chains' final weights. It understates the error where the weights are heavy-tailed,
  which ``pareto_k`` shows;
* ``pareto_k``: PSIS's Pareto shape of the largest importance weights (IS only; ``nan`` for
  AIS and for K < 46); above 0.7 the estimate is unreliable;
* ``ess``: the effective sample size of the weights (1 to K);
* ``label``: the example's class, when the examples have labels.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.program import as_program
from ..registry import PositiveInt, check_value
from .ais import AISDiagnostics
from .estimator import DEFAULT_MAX_BATCH_ELEMENTS
from .log_likelihood import Method, log_likelihood

__all__ = ["COLUMNS", "example_scores"]

#: the columns of :func:`example_scores`, in order (``label`` only with labels)
COLUMNS = ("index", "log_likelihood", "se", "pareto_k", "ess", "label")


def example_scores(
    vae: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    method: Method = "is",
    num_samples: int | None = None,
    num_steps: int | None = None,
    seed: int = 0,
    max_batch_elements: int = DEFAULT_MAX_BATCH_ELEMENTS,
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """One row per example of ``x``: the columns of :data:`COLUMNS` (see the module's
    docstring), each ``(N,)`` on the CPU.

    ``y``: the examples' labels, given to the model (its :meth:`~pyrovae.Program.model_labels`)
    and written as ``label``. The other arguments are :func:`~pyrovae.log_likelihood`'s.

    Example::

        vae, _, _ = pyrovae.load_run("runs/mnist")
        table = example_scores(vae, x, num_samples=1000)
        table["log_likelihood"]   # == pyrovae.log_likelihood(vae, x, num_samples=1000)
    """
    program = as_program(vae)
    if num_samples is not None:
        check_value(num_samples, PositiveInt, "num_samples")
    estimates, diagnostics = log_likelihood(
        program,
        x,
        program.model_labels(y),
        num_samples,
        method=method,
        num_steps=num_steps,
        max_batch_elements=max_batch_elements,
        seed=seed,
        progress=progress,
        return_diagnostics=True,
    )
    if isinstance(diagnostics, AISDiagnostics):
        ess, k = diagnostics.ess, diagnostics.num_chains
        pareto_k = torch.full_like(estimates, float("nan"))
    else:
        ess, k, pareto_k = diagnostics.ess.double(), diagnostics.num_samples, diagnostics.pareto_k
    se = (1.0 / ess - 1.0 / k).clamp(min=0).sqrt()
    table = {
        "index": torch.arange(x.shape[0]),
        "log_likelihood": estimates,
        "se": se.to(estimates.dtype),
        "pareto_k": pareto_k,
        "ess": ess.to(estimates.dtype),
    }
    if y is not None:
        table["label"] = y
    return {name: column.detach().cpu() for name, column in table.items()}
