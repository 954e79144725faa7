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

from ..models.program import Program, as_program, latent_sites
from ..rng import derived_seed
from .ais import (
    DEFAULT_NUM_CHAINS,
    DEFAULT_NUM_LEAPFROG_STEPS,
    DEFAULT_NUM_STEPS,
    INITIAL_STEP_SIZE,
    AISSettings,
    Init,
    anneal,
    block_size,
)
from .estimator import DEFAULT_MAX_BATCH_ELEMENTS, Block, BlockEstimator, Results
from .standard_error import mean_and_se

__all__ = [
    "DEFAULT_NUM_EXAMPLES",
    "BDMCResult",
    "BidirectionalMonteCarlo",
    "bdmc",
    "simulate",
]

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
            summary[f"bdmc_{key}"], summary[f"bdmc_{key}_se"] = mean_and_se(values, float64=True)
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


class BidirectionalMonteCarlo(BlockEstimator[BDMCResult]):
    """BDMC (see the module docstring) as a
    :class:`~pyrovae.evaluation.estimator.BlockEstimator`: the per-block work of :func:`bdmc`.

    A block of :func:`~pyrovae.evaluation.ais.block_size` template examples simulates its data
    and runs a forward and a reverse pass, from the seed ``derived_seed(seed, "bdmc", index
    of its first example)`` (one repeat); progress counts annealing steps, two passes' worth
    per block. Arguments as in :func:`bdmc`.
    """

    seed_name = "bdmc"
    progress_unit = "step"
    takes_gradients = True

    def __init__(
        self, program: Program, settings: AISSettings, *, seed: int = 0, progress: bool = False
    ) -> None:
        super().__init__(
            program, settings.num_chains, settings.max_batch_elements, seed=seed, progress=progress
        )
        self.settings = settings

    def block_seed(self, repeat: int, first: int) -> int:
        """``derived_seed(seed, "bdmc", first)``: BDMC has one repeat, and no repeat key."""
        return derived_seed(self.seed, self.seed_name, first)

    def block_size(self, max_batch_elements: int) -> int:
        return block_size(self.settings.num_chains, max_batch_elements)

    def progress_units(self, num_examples: int) -> int:
        return 2 * self.settings.num_steps

    def progress_description(self) -> str:
        return f"BDMC S={self.settings.num_chains} T={self.settings.num_steps}"

    def result_shapes(self, x: torch.Tensor, repeat: int) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {"x": tuple(x.shape[1:])}
        for key in ("lower", "upper", "forward_acceptance", "reverse_acceptance"):
            shapes[key] = ()
        return shapes

    def estimate_block(self, block: Block) -> Results:
        """Simulate the block's data, then anneal forward from ``q0`` and in reverse from the
        simulated latents, with the forward pass's step sizes."""
        settings, num_chains = self.settings, self.settings.num_chains
        x, latents = simulate(self.program, block.x, block.y)
        target, forward = settings.forward(self.program, x, block.y, block.advance)
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
            settings.schedule(x),
            settings.start_step_sizes(x),
            num_leapfrog_steps=settings.num_leapfrog_steps,
            reverse=True,
            step_sizes=forward.step_sizes,
            on_step=block.advance,
        )
        return {
            "x": x.movedim(0, -1),
            "lower": forward.log_mean_weight,
            "upper": -reverse.log_mean_weight,
            "forward_acceptance": forward.acceptance_rate,
            "reverse_acceptance": reverse.acceptance_rate,
        }

    def collect(self, results: list[Results]) -> BDMCResult:
        outputs, settings = results[0], self.settings
        return BDMCResult(
            x=outputs["x"].movedim(-1, 0).contiguous(),
            lower=outputs["lower"],
            upper=outputs["upper"],
            forward_acceptance=outputs["forward_acceptance"],
            reverse_acceptance=outputs["reverse_acceptance"],
            num_chains=settings.num_chains,
            num_steps=settings.num_steps,
            num_leapfrog_steps=settings.num_leapfrog_steps,
            init=settings.init,
        )


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
        num_chains, num_steps, num_leapfrog_steps, init, initial_step_size, max_batch_elements:
            the :class:`~pyrovae.evaluation.ais.AISSettings`, as in
            :func:`pyrovae.evaluation.ais.ais_log_likelihood`; the reverse chains run the
            forward pass's adapted step sizes in reverse order.
        seed: seeds the simulation and the chains.
        progress: show a progress bar (on stderr).

    Example::

        result = bdmc(vae, x[:100], num_steps=200)
        print(result.lower.mean(), result.upper.mean(), result.gap.mean())
    """
    program = as_program(vae)
    program.check_data(x, y, name="the template x")
    settings = AISSettings(
        num_chains=num_chains,
        num_steps=num_steps,
        num_leapfrog_steps=num_leapfrog_steps,
        max_batch_elements=max_batch_elements,
        initial_step_size=initial_step_size,
        init=init,
    )
    return BidirectionalMonteCarlo(program, settings, seed=seed, progress=progress)(x, y)
