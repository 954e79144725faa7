"""Bidirectional Monte Carlo (BDMC): a sandwich around log p(x) that measures AIS's error.

On data simulated from the model, ``(z, x) ~ p(z) p(x|z)``, the simulated ``z`` is an exact
draw from the posterior ``p(z|x)``. Forward AIS (from ``q0`` to the posterior) gives a
stochastic lower bound on log p(x); reverse AIS, started from the exact posterior draw and run
through the same intermediate distributions and HMC kernels in reverse order, gives an
unbiased estimate of ``1 / p(x)`` and so a stochastic upper bound. The gap between the two
bounds the error of forward AIS at that schedule on data like the model's own (Grosse,
Ghahramani and Adams, "Sandwiching the marginal likelihood using bidirectional Monte Carlo",
2015; Grosse, Ancha and Roy, "Measuring the reliability of MCMC inference with bidirectional
Monte Carlo", NeurIPS 2016; for VAEs, Wu et al. 2017).

Each block of examples draws from its own seed, so in a run of several processes (``torchrun``)
each process simulates and anneals a contiguous share of the blocks and the results are
gathered: the numbers of one process.

Use it to choose T: increase ``num_steps`` until the gap is as small as the differences being
measured (a fraction of a nat), then evaluate real data with
``pyrovae.log_likelihood(vae, x, method="ais", num_steps=T)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyro.poutine as poutine
import torch
from torch import nn

from .. import distributed
from ..models.program import Program, as_program, latent_sites
from ..rng import derived_seed, fixed_rng
from .ais import (
    DEFAULT_NUM_CHAINS,
    DEFAULT_NUM_LEAPFROG_STEPS,
    DEFAULT_NUM_STEPS,
    INITIAL_STEP_SIZE,
    AnnealingTarget,
    Init,
    anneal,
    annealing_run,
    block_size,
    blocks,
    check_settings,
    initial_step_sizes,
    sigmoid_schedule,
)
from .importance import DEFAULT_MAX_BATCH_ELEMENTS

__all__ = ["DEFAULT_NUM_EXAMPLES", "BDMCResult", "bdmc", "simulate"]

#: default number of simulated examples of ``pyrovae evaluate --method bdmc``
DEFAULT_NUM_EXAMPLES = 100


@dataclass(frozen=True)
class BDMCResult:
    """Forward and reverse AIS on simulated data, per simulated example (nats).

    Attributes:
        x: ``(N, data_dim)`` the simulated data.
        lower: ``(N,)`` forward AIS estimates: stochastic lower bounds on log p(x).
        upper: ``(N,)`` reverse AIS estimates: stochastic upper bounds on log p(x).
        forward_acceptance, reverse_acceptance: ``(N,)`` mean HMC acceptance probabilities.
        num_chains, num_steps, num_leapfrog_steps, init: the AIS settings (as in
            :class:`~pyrovae.evaluation.ais.AISDiagnostics`).
    """

    x: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor
    forward_acceptance: torch.Tensor
    reverse_acceptance: torch.Tensor
    num_chains: int
    num_steps: int
    num_leapfrog_steps: int
    init: str

    @property
    def gap(self) -> torch.Tensor:
        """``(N,)`` upper minus lower bound: how far forward AIS may be below log p(x) (nats)."""
        return self.upper - self.lower

    def summary(self) -> dict[str, Any]:
        """Means over the simulated examples with standard errors across them (nats per
        example), as ``pyrovae evaluate --method bdmc --json`` prints them."""
        summary: dict[str, Any] = {
            "method": "bdmc",
            "num_samples": self.num_chains,
            "num_steps": self.num_steps,
            "num_leapfrog_steps": self.num_leapfrog_steps,
            "init": self.init,
            "num_examples": self.x.shape[0],
        }
        for key, values in (("lower", self.lower), ("upper", self.upper), ("gap", self.gap)):
            summary[f"bdmc_{key}"] = values.mean().item()
            n = values.shape[0]
            summary[f"bdmc_{key}_se"] = values.std().item() / n**0.5 if n > 1 else None
        summary["bdmc_gap_max"] = self.gap.max().item()
        summary["acceptance_rate"] = self.forward_acceptance.mean().item()
        summary["reverse_acceptance_rate"] = self.reverse_acceptance.mean().item()
        return summary


@torch.no_grad()
def simulate(
    module: Program, x: torch.Tensor, y: torch.Tensor | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Draw ``(z, x) ~ p(z) p(x|z)`` from a module's ``model``, one per row of ``x``.

    ``x`` ``(N, data_dim)`` serves only as the template of the observations (their number,
    shape, dtype and device; its values are not used); ``y`` are the labels passed to the
    model (label-conditional priors draw ``z`` given them).

    Returns:
        the simulated data ``(N, data_dim)`` (site ``"x"``) and the latent values
        ``{site: (N, *event)}`` that produced them.
    """
    with module.quiet():
        trace = poutine.trace(poutine.uncondition(module.model)).get_trace(x, y)
    latents = {name: site["value"].detach() for name, site in latent_sites(trace).items()}
    simulated: Any = trace.nodes["x"]["value"]
    return simulated.detach(), latents


@torch.no_grad()
def bdmc(
    vae: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    num_chains: int = DEFAULT_NUM_CHAINS,
    num_steps: int = DEFAULT_NUM_STEPS,
    *,
    num_leapfrog_steps: int = DEFAULT_NUM_LEAPFROG_STEPS,
    init: Init = "guide",
    initial_step_size: float = INITIAL_STEP_SIZE,
    max_batch_elements: int = DEFAULT_MAX_BATCH_ELEMENTS,
    seed: int = 0,
    progress: bool = False,
) -> BDMCResult:
    """Bidirectional Monte Carlo on ``x.shape[0]`` examples simulated from ``vae``'s model.

    Args:
        vae: a module with Pyro programs ``model(x, y)`` and ``guide(x, y)``.
        x: ``(N, data_dim)`` template of the simulated data (see :func:`simulate`), e.g. the
            first N test examples; ``y``: their labels for label-conditional priors.
        num_chains, num_steps, num_leapfrog_steps, init, initial_step_size,
        max_batch_elements: as in :func:`pyrovae.evaluation.ais.ais_log_likelihood`; the
            reverse chains run the forward pass's adapted step sizes in reverse order.
        seed: seeds the simulation and the chains.
        progress: show a progress bar (on stderr).

    Example::

        result = bdmc(vae, x[:100], num_steps=200)
        print(result.lower.mean(), result.upper.mean(), result.gap.mean())
    """
    vae = as_program(vae)
    vae.check_data(x, y, name="the template x")
    check_settings(
        num_chains, num_steps, num_leapfrog_steps, initial_step_size, max_batch_elements, init
    )
    # this process's share of whole seeded blocks (all of them in a one-process run)
    total = x.shape[0]
    first, stop = distributed.block_shard(total, block_size(num_chains, max_batch_elements))
    x, y = x[first:stop], None if y is None else y[first:stop]
    num_examples = x.shape[0]
    layout = blocks(num_examples, num_chains, max_batch_elements)
    schedule = sigmoid_schedule(num_steps, dtype=x.dtype).to(x.device)
    simulated = torch.empty_like(x)
    outputs = {
        key: torch.empty(num_examples, dtype=x.dtype, device=x.device)
        for key in ("lower", "upper", "forward_acceptance", "reverse_acceptance")
    }
    desc = f"BDMC S={num_chains} T={num_steps}"
    progress = progress and distributed.is_main()
    with annealing_run(vae, 2 * len(layout) * num_steps, desc, progress) as bar:
        for start, stop in layout:
            yb = None if y is None else y[start:stop]
            with fixed_rng(derived_seed(seed, "bdmc", first + start), x.device):
                xb, latents = simulate(vae, x[start:stop], yb)
                target = AnnealingTarget(vae.model, vae.guide, xb, yb, num_chains, init)
                eps = initial_step_sizes(stop - start, initial_step_size, x)
                forward = anneal(
                    target,
                    target.initial(),
                    schedule,
                    eps,
                    num_leapfrog_steps=num_leapfrog_steps,
                    on_step=bar.update,
                )
                exact = target.pack(
                    {
                        name: value.expand(num_chains, *value.shape)
                        for name, value in latents.items()
                        if name in target.sites
                    }
                )
                reverse = anneal(
                    target,
                    exact,
                    schedule,
                    eps,
                    num_leapfrog_steps=num_leapfrog_steps,
                    reverse=True,
                    step_sizes=forward.step_sizes,
                    on_step=bar.update,
                )
            simulated[start:stop] = xb
            outputs["lower"][start:stop] = forward.log_mean_weight
            outputs["upper"][start:stop] = -reverse.log_mean_weight
            outputs["forward_acceptance"][start:stop] = forward.acceptance_rate
            outputs["reverse_acceptance"][start:stop] = reverse.acceptance_rate
    outputs = {key: distributed.gather_examples(v, total) for key, v in outputs.items()}
    return BDMCResult(
        x=distributed.gather_examples(simulated.T, total).T.contiguous(),
        num_chains=num_chains,
        num_steps=num_steps,
        num_leapfrog_steps=num_leapfrog_steps,
        init=init,
        **outputs,
    )
