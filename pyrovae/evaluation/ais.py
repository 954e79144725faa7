"""Annealed importance sampling (AIS) of log p(x), with Hamiltonian Monte Carlo transitions.

AIS (Neal, "Annealed importance sampling", Statistics and Computing 2001; for VAEs as in Wu,
Burda, Salakhutdinov and Grosse, "On the quantitative analysis of decoder-based generative
models", ICLR 2017) moves each chain from a normalized start ``q0(z)`` to the posterior
``p(z|x) ∝ p(x, z)`` through the geometric path

    log f_t(z) = (1 - beta_t) log q0(z) + beta_t log p(x, z),   0 = beta_0 < ... < beta_T = 1,

accumulating the log-weight ``sum_t (beta_t - beta_{t-1}) (log p(x, z_{t-1}) - log q0(z_{t-1}))``
while an HMC transition that leaves ``f_t`` invariant moves ``z_{t-1}`` to ``z_t``. The weight
of a chain is an unbiased estimate of p(x), so the log of the mean of ``S`` chains' weights,

    log p^(x) = log (1/S) sum_s exp(log w_s),

is a stochastic lower bound on log p(x) that tends to it as ``T`` grows. ``q0`` is the guide
``q(z|x)`` (``init="guide"``, the default: it starts close to the posterior) or the prior
``p(z)`` (``init="prior"``, as in Wu et al.; then ``f_t(z) = p(z) p(x|z)^beta_t``).

The densities are read from Pyro traces of the VAE's own ``model`` (conditioned on the chains'
latent values) and ``guide``, so every model the library builds is covered: any number of
continuous, unconstrained latent sites, flattened into one vector per chain for the
integrator. The leapfrog integrator is Pyro's :func:`pyro.ops.integrator.velocity_verlet`.

Each HMC transition draws a fresh momentum ``r ~ N(0, I)``, takes ``L`` leapfrog steps of size
``eps`` and accepts by Metropolis-Hastings. ``eps`` is per example (shared by its chains) and
adapted during the run toward a target acceptance probability (0.65, as in Wu et al.):
``log eps += rate * (mean acceptance probability of the example's chains - target)`` after
every transition, so it follows the posterior as it narrows with ``beta``. Choosing later
kernels from the chains' own past acceptance is a small departure from the exact AIS
construction (whose kernels are fixed in advance), made by Wu et al. as well; with 16 chains
sharing a step size no single chain steers it much, and the weights' mean stays p(x) within
Monte Carlo error in the tests. :mod:`pyrovae.evaluation.bdmc` runs its reverse chains with
the forward pass's step sizes, fixed.

The settings of a run are one :class:`AISSettings`, checked once. Examples are processed in
blocks of at most ``max_batch_elements`` (chain, example) pairs, so memory does not grow with
the number of examples; each block draws from its own seed (:func:`pyrovae.rng.derived_seed`
of ``seed``, the repeat and the block's first example), so results do not depend on which
other blocks are computed, or where (:class:`AnnealedImportanceSampling` is a
:class:`~pyrovae.evaluation.estimator.BlockEstimator`, whose driver owns the blocks).
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from pyro.ops.integrator import potential_grad, velocity_verlet
from torch import nn

from ..errors import ConfigError
from ..infer.log_weights import MAX_PLATE_NESTING, trace_log_weights
from ..models.program import Program, as_program, latent_sites
from ..registry import PositiveFloat, PositiveInt, check_value
from .estimator import DEFAULT_MAX_BATCH_ELEMENTS, Block, BlockEstimator, Results

__all__ = [
    "AISDiagnostics",
    "AISSettings",
    "AnnealResult",
    "AnnealedImportanceSampling",
    "AnnealingTarget",
    "DEFAULT_NUM_CHAINS",
    "DEFAULT_NUM_STEPS",
    "ais_log_likelihood",
    "anneal",
    "block_size",
    "sigmoid_schedule",
]

#: default S, independent chains per example
DEFAULT_NUM_CHAINS = 16
#: default T, annealing steps (intermediate distributions)
DEFAULT_NUM_STEPS = 500
#: default L, leapfrog steps per HMC transition
DEFAULT_NUM_LEAPFROG_STEPS = 2
#: the acceptance probability the step size is adapted toward (Wu et al., 2017)
TARGET_ACCEPT = 0.65
#: the step size's adaptation rate: ``log eps`` moves by ``rate * (accept - target)`` per step
ADAPT_RATE = 0.5
#: the step size every example starts from
INITIAL_STEP_SIZE = 0.1

Init = Literal["guide", "prior"]


def sigmoid_schedule(num_steps: int, delta: float = 4.0, dtype: torch.dtype = torch.float64):
    """``(T + 1,)`` inverse temperatures from 0 to 1, spaced by a sigmoid: dense near both
    ends, where the intermediate distributions change fastest (Grosse, Maddison and
    Salakhutdinov, "Annealing between distributions by averaging moments", 2013; the schedule
    of Wu et al., 2017)::

        beta_t = (sigmoid(delta (2t/T - 1)) - sigmoid(-delta)) / (sigmoid(delta) - sigmoid(-delta))
    """
    t = torch.linspace(-delta, delta, num_steps + 1, dtype=dtype)
    s = torch.sigmoid(t)
    beta = (s - s[0]) / (s[-1] - s[0])
    beta[0], beta[-1] = 0.0, 1.0
    return beta


@dataclass(frozen=True)
class AISDiagnostics:
    """How an AIS estimate of log p(x) came about, per example.

    Attributes:
        num_chains: S, independent chains per example.
        num_steps: T, annealing steps.
        num_leapfrog_steps: L, leapfrog steps per HMC transition.
        init: where the chains started: ``"guide"`` (q(z|x)) or ``"prior"`` (p(z)).
        log_weights: ``(S, N)`` the chains' accumulated log-weights (nats); the estimate is
            their log-mean-exp over chains.
        acceptance_rate: ``(N,)`` mean HMC acceptance probability over chains and transitions
            (near the 0.65 the step size is adapted toward, unless the run was too short for
            the adaptation to settle).
        step_size: ``(N,)`` the leapfrog step size at the end of the run.
        repeats: ``(R, N)`` R independent estimates when ``num_repeats = R > 1`` (row 0 is the
            returned estimate), else ``None``.
    """

    num_chains: int
    num_steps: int
    num_leapfrog_steps: int
    init: str
    log_weights: torch.Tensor
    acceptance_rate: torch.Tensor
    step_size: torch.Tensor
    repeats: torch.Tensor | None = None

    @property
    def log_weight_std(self) -> torch.Tensor:
        """``(N,)`` spread (standard deviation) of the chains' log-weights, in nats: near 0
        when the chains agree, i.e. when T is long enough for this example."""
        if self.log_weights.shape[0] < 2:
            return torch.zeros_like(self.log_weights[0])
        return self.log_weights.std(dim=0)

    @property
    def ess(self) -> torch.Tensor:
        """``(N,)`` effective number of chains ``(sum_s w_s)^2 / sum_s w_s^2`` of the chains'
        weights, in ``[1, S]`` (float64)."""
        weights = self.log_weights.double().softmax(dim=0)  # (S, N), normalized
        return 1.0 / weights.square().sum(dim=0)

    @property
    def repeat_std(self) -> torch.Tensor | None:
        """``(N,)`` standard deviation across the repeated estimates (nats), or ``None``."""
        return None if self.repeats is None else self.repeats.std(dim=0)


@dataclass(frozen=True)
class AISSettings:
    """The settings of an AIS run, shared by :func:`ais_log_likelihood` and
    :func:`pyrovae.evaluation.bdmc.bdmc`; checked once, when made.

    Attributes:
        num_chains: S, independent chains per example (``num_samples`` in
            :func:`pyrovae.log_likelihood` and on the command line, and so in its errors).
        num_steps: T, annealing steps; cost is ``T * (L + 1)`` gradient evaluations per chain.
        num_leapfrog_steps: L, leapfrog steps per HMC transition.
        max_batch_elements: most (chain, example) pairs in one block; bounds memory.
        initial_step_size: the leapfrog step size every example starts from.
        init: ``"guide"`` (start from q(z|x)) or ``"prior"`` (from p(z)).

    Raises:
        ConfigError: a setting out of its range, in one line naming it (e.g.
            ``num_steps = 0 must be at least 1``).
    """

    num_chains: PositiveInt = field(default=DEFAULT_NUM_CHAINS, metadata={"key": "num_samples"})
    num_steps: PositiveInt = DEFAULT_NUM_STEPS
    num_leapfrog_steps: PositiveInt = DEFAULT_NUM_LEAPFROG_STEPS
    max_batch_elements: PositiveInt = DEFAULT_MAX_BATCH_ELEMENTS
    initial_step_size: PositiveFloat = INITIAL_STEP_SIZE
    init: Init = "guide"

    def __post_init__(self) -> None:
        types = typing.get_type_hints(AISSettings, include_extras=True)
        for setting in fields(self):
            if setting.name != "init":
                key = setting.metadata.get("key", setting.name)
                value = check_value(getattr(self, setting.name), types[setting.name], key)
                object.__setattr__(self, setting.name, value)
        if self.init not in ("guide", "prior"):
            raise ConfigError(f"init must be 'guide' or 'prior'; got {self.init!r}")

    def schedule(self, like: torch.Tensor) -> torch.Tensor:
        """``(T + 1,)`` the inverse temperatures (:func:`sigmoid_schedule`), in ``like``'s
        dtype and on its device."""
        return sigmoid_schedule(self.num_steps, dtype=like.dtype).to(like.device)

    def start_step_sizes(self, like: torch.Tensor) -> torch.Tensor:
        """``(n,)`` the step size each of the ``n`` examples of ``like`` ``(n, ...)`` starts
        from."""
        return torch.full((like.shape[0],), self.initial_step_size, dtype=like.dtype).to(
            like.device
        )

    def forward(
        self, program: Program, x: torch.Tensor, y: torch.Tensor | None, on_step: Callable[[], Any]
    ) -> tuple[AnnealingTarget, AnnealResult]:
        """A forward pass of :func:`anneal` from ``q0`` over a block of examples ``x``
        ``(n, data_dim)`` (labels ``y``), and the target it annealed to."""
        target = AnnealingTarget(program.model, program.guide, x, y, self.num_chains, self.init)
        result = anneal(
            target,
            target.initial(),
            self.schedule(x),
            self.start_step_sizes(x),
            num_leapfrog_steps=self.num_leapfrog_steps,
            on_step=on_step,
        )
        return target, result


class AnnealingTarget:
    """The densities AIS anneals between, for one block of examples, from the VAE's programs.

    Args:
        model, guide: the Pyro programs (called as ``model(x, y)``, ``guide(x, y)``), their
            examples in a plate at dim -1 (:data:`~pyrovae.infer.log_weights.MAX_PLATE_NESTING`).
        x: ``(n, data_dim)`` data; ``y``: labels ``(n,)`` or ``None``.
        num_chains: S; the programs are run under a ``"particles"`` plate of that size.
        init: the start ``q0``: ``"guide"`` or ``"prior"``.

    Latent values are handled as one flat tensor ``(S, n, D)``, ``D`` the total size of the
    latent sites' events, in the order the model samples them.
    """

    def __init__(
        self,
        model: Callable,
        guide: Callable,
        x: torch.Tensor,
        y: torch.Tensor | None,
        num_chains: int,
        init: Init,
    ) -> None:
        self.x, self.y, self.init = x, y, init
        particles = pyro.plate("particles", num_chains, dim=-1 - MAX_PLATE_NESTING)
        self.model, self.guide = particles(model), particles(guide)
        prior_trace = poutine.trace(self.model).get_trace(x, y)
        self.sites = _latent_sites(prior_trace, "model")
        nodes: dict[str, Any] = prior_trace.nodes
        self.event_shapes = {name: nodes[name]["fn"].event_shape for name in self.sites}
        self.batch_shape = nodes[self.sites[0]]["value"].shape[:2]
        self._start_trace = prior_trace
        self._guide_fn: Any = None
        if init == "guide":
            guide_trace = poutine.trace(self.guide).get_trace(x, y)
            guide_sites = _latent_sites(guide_trace, "guide")
            if sorted(guide_sites) != sorted(self.sites):
                raise ConfigError(
                    f"AIS from the guide needs the guide to sample the model's latent sites "
                    f"{self.sites}, but it samples {guide_sites}; use init='prior'"
                )
            self._start_trace = guide_trace
            if len(guide_sites) == 1:
                # q(z|x) depends on x alone: score new values with the same distribution
                self._guide_fn = guide_trace.nodes[guide_sites[0]]["fn"]

    def initial(self) -> torch.Tensor:
        """``(S, n, D)`` draws from ``q0`` (made when the target was built)."""
        nodes: dict[str, Any] = self._start_trace.nodes
        values = {name: nodes[name]["value"] for name in self.sites}
        return self.pack(values).detach()

    def pack(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """Site values ``{name: (S, n, *event)}`` -> ``(S, n, D)``."""
        return torch.cat([values[name].reshape(*self.batch_shape, -1) for name in self.sites], -1)

    def unpack(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(S, n, D)`` -> site values ``{name: (S, n, *event)}``."""
        values, start = {}, 0
        for name in self.sites:
            shape = self.event_shapes[name]
            size = math.prod(shape)
            values[name] = z[..., start : start + size].reshape(*z.shape[:-1], *shape)
            start += size
        return values

    def log_densities(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log p(x, z), log q0(z))`` of each chain, each ``(S, n)`` in nats,
        differentiable in ``z``."""
        values = self.unpack(z)
        model_trace = poutine.trace(poutine.condition(self.model, data=values)).get_trace(
            self.x, self.y
        )
        log_joint = trace_log_weights(model_trace, None)
        if self.init == "prior":
            log_q0 = trace_log_weights(model_trace, None, sites=self.sites)
        elif self._guide_fn is not None:
            log_q0 = self._guide_fn.log_prob(values[self.sites[0]])
        else:
            guide_trace = poutine.trace(poutine.condition(self.guide, data=values)).get_trace(
                self.x, self.y
            )
            log_q0 = trace_log_weights(guide_trace, None)
        return log_joint, log_q0


def _latent_sites(trace: Any, program: str) -> list[str]:
    """The latent sites of ``trace`` (:func:`~pyrovae.models.program.latent_sites`), each
    checked to be continuous on all of R^d, as HMC needs."""
    sites = []
    for name, site in latent_sites(trace).items():
        support = site["fn"].support
        # Independent and mixture constraints wrap the support of one coordinate
        while hasattr(support, "base_constraint"):
            support = support.base_constraint
        if support is not dist.constraints.real:
            raise ConfigError(
                f"AIS moves latent sites with Hamiltonian Monte Carlo, which needs continuous "
                f"latents on all of R^d, but the {program}'s site {name!r} has support "
                f"{support}; use method='is' for this model"
            )
        sites.append(name)
    if not sites:
        raise ConfigError(f"the {program} has no latent sample sites: nothing to anneal")
    return sites


@dataclass
class AnnealResult:
    """One pass of :func:`anneal` over a block of ``n`` examples with ``S`` chains each."""

    #: ``(S, n)`` the chains' accumulated log-weights (nats)
    log_weights: torch.Tensor
    #: ``(n,)`` sum over transitions of the chains' mean acceptance probability
    accept_sum: torch.Tensor
    #: ``(T + 1, n)`` the step size of each transition (row t: the kernel at ``beta_t``)
    step_sizes: torch.Tensor
    #: ``(n,)`` the adapted step size after the last transition
    final_step_size: torch.Tensor

    @property
    def acceptance_rate(self) -> torch.Tensor:
        """``(n,)`` mean acceptance probability over the chains and the ``T - 1``
        transitions."""
        return self.accept_sum / max(1, self.step_sizes.shape[0] - 2)

    @property
    def log_mean_weight(self) -> torch.Tensor:
        """``(n,)`` ``log (1/S) sum_s exp(log w_s)``: the AIS estimate of log p(x) of a
        forward pass, or minus the upper bound of a reverse one."""
        return self.log_weights.logsumexp(dim=0) - math.log(self.log_weights.shape[0])


def anneal(
    target: AnnealingTarget,
    z: torch.Tensor,
    schedule: torch.Tensor,
    step_size: torch.Tensor,
    *,
    num_leapfrog_steps: int = DEFAULT_NUM_LEAPFROG_STEPS,
    reverse: bool = False,
    step_sizes: torch.Tensor | None = None,
    on_step: Callable[[], None] | None = None,
) -> AnnealResult:
    """Run one AIS pass over ``target``; the low-level loop of :func:`ais_log_likelihood` and
    of :func:`pyrovae.evaluation.bdmc.bdmc`.

    Forward (``reverse=False``): ``z`` ``(S, n, D)`` are draws from ``q0``; for t = 1..T the
    log-weight gains ``(beta_t - beta_{t-1}) (log p(x, z) - log q0(z))`` and, for t < T, an
    HMC transition leaving ``f_t`` invariant moves ``z``, with the step size ``step_size``
    ``(n,)`` adapted after every transition.

    Reverse (``reverse=True``; Grosse, Ghahramani and Adams 2015): ``z`` are exact posterior
    draws; for t = T..1 the log-weight gains ``-(beta_t - beta_{t-1}) (log p(x, z) -
    log q0(z))`` and, for t > 1, the transition at ``beta_{t-1}`` moves ``z``, with the step
    sizes ``step_sizes`` recorded by a forward pass (so the reverse chain runs the forward
    kernels in reverse order); ``-log mean exp`` of its log-weights is a stochastic upper bound
    on log p(x).
    """
    num_steps = schedule.shape[0] - 1
    betas = schedule.tolist()  # Python floats: no device syncs in the loop
    log_joint, log_q0 = (t.detach() for t in target.log_densities(z))
    log_w = torch.zeros_like(log_joint)
    accept_sum = torch.zeros_like(step_size)
    record = torch.zeros(num_steps + 1, *step_size.shape, dtype=step_size.dtype, device=z.device)
    steps = range(num_steps, 0, -1) if reverse else range(1, num_steps + 1)
    for t in steps:
        delta = betas[t] - betas[t - 1]
        log_w = log_w + (-delta if reverse else delta) * (log_joint - log_q0)
        kernel = t - 1 if reverse else t
        if kernel == 0 or kernel == num_steps:
            if on_step is not None:
                on_step()
            continue
        beta = betas[kernel]
        eps = step_size if step_sizes is None else step_sizes[kernel]
        record[kernel] = eps
        z, log_joint, log_q0, accept_prob = _hmc_transition(
            target, z, log_joint, log_q0, beta, eps, num_leapfrog_steps
        )
        chains_accept = accept_prob.mean(0)
        accept_sum = accept_sum + chains_accept
        if step_sizes is None:
            step_size = step_size * torch.exp(ADAPT_RATE * (chains_accept - TARGET_ACCEPT))
        if on_step is not None:
            on_step()
    return AnnealResult(log_w, accept_sum, record, step_size)


def _hmc_transition(
    target: AnnealingTarget,
    z: torch.Tensor,
    log_joint: torch.Tensor,
    log_q0: torch.Tensor,
    beta: float,
    eps: torch.Tensor,
    num_leapfrog_steps: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Metropolis-adjusted HMC transition per chain, leaving ``f_beta`` invariant."""
    last: dict[str, torch.Tensor] = {}

    def potential_fn(values: dict[str, torch.Tensor]) -> torch.Tensor:
        lj, lq = target.log_densities(values["z"])
        last["log_joint"], last["log_q0"] = lj.detach(), lq.detach()
        # the chains are independent: the gradient of the sum is each chain's gradient
        return -((1 - beta) * lq + beta * lj).sum()

    momentum = torch.randn_like(z)
    with torch.enable_grad():
        z_grads, _ = potential_grad(potential_fn, {"z": z})
        proposal, new_momentum, _, _ = velocity_verlet(
            {"z": z},
            {"z": momentum},
            potential_fn,
            _identity_kinetic_grad,
            eps.unsqueeze(-1),
            num_leapfrog_steps,
            z_grads,
        )
    new_joint, new_q0 = last["log_joint"], last["log_q0"]
    energy = -((1 - beta) * log_q0 + beta * log_joint) + 0.5 * momentum.square().sum(-1)
    new_energy = -((1 - beta) * new_q0 + beta * new_joint) + 0.5 * new_momentum["z"].square().sum(
        -1
    )
    log_accept = (energy - new_energy).clamp(max=0.0)
    log_accept = torch.where(torch.isnan(log_accept), -math.inf, log_accept)
    accept_prob = log_accept.exp()
    accept = torch.rand_like(accept_prob) < accept_prob
    z = torch.where(accept.unsqueeze(-1), proposal["z"].detach(), z)
    log_joint = torch.where(accept, new_joint, log_joint)
    log_q0 = torch.where(accept, new_q0, log_q0)
    return z, log_joint, log_q0, accept_prob


def _identity_kinetic_grad(r: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return r  # kinetic energy r^T r / 2 (identity mass matrix)


def block_size(num_chains: int, max_batch_elements: int) -> int:
    """The number of examples annealed together (and seeded together): at most
    ``max_batch_elements`` (chain, example) pairs, and at least one example."""
    return max(1, max_batch_elements // num_chains)


class AnnealedImportanceSampling(BlockEstimator[tuple[torch.Tensor, AISDiagnostics]]):
    """AIS (see the module docstring) as a
    :class:`~pyrovae.evaluation.estimator.BlockEstimator`: the per-block work of
    :func:`ais_log_likelihood`.

    A block of :func:`block_size` examples runs one forward pass of its S chains from the seed
    ``derived_seed(seed, "ais", repeat, index of its first example)``; progress counts
    annealing steps. Arguments as in :func:`ais_log_likelihood`.
    """

    seed_name = "ais"
    progress_unit = "step"
    takes_gradients = True

    def __init__(
        self,
        program: Program,
        settings: AISSettings,
        *,
        seed: int = 0,
        num_repeats: int = 1,
        progress: bool = False,
    ) -> None:
        super().__init__(
            program,
            settings.num_chains,
            settings.max_batch_elements,
            seed=seed,
            num_repeats=num_repeats,
            progress=progress,
        )
        self.settings = settings

    def block_size(self, max_batch_elements: int) -> int:
        return block_size(self.settings.num_chains, max_batch_elements)

    def progress_units(self, num_examples: int) -> int:
        return self.settings.num_steps

    def progress_description(self) -> str:
        return f"log p(x), AIS S={self.settings.num_chains} T={self.settings.num_steps}"

    def result_shapes(self, x: torch.Tensor, repeat: int) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {"log_likelihood": ()}
        if repeat == 0:
            shapes |= {"log_weights": (self.settings.num_chains,), "acceptance_rate": ()}
            shapes["step_size"] = ()
        return shapes

    def estimate_block(self, block: Block) -> Results:
        """The AIS estimate of the block's examples; in the first repeat also the chains'
        log-weights, acceptance rates and final step sizes."""
        _, result = self.settings.forward(self.program, block.x, block.y, block.advance)
        results = {"log_likelihood": result.log_mean_weight}
        if block.repeat == 0:
            results["log_weights"] = result.log_weights
            results["acceptance_rate"] = result.acceptance_rate
            results["step_size"] = result.final_step_size
        return results

    def collect(self, results: list[Results]) -> tuple[torch.Tensor, AISDiagnostics]:
        estimates = torch.stack([r["log_likelihood"] for r in results])
        first, settings = results[0], self.settings
        diagnostics = AISDiagnostics(
            num_chains=settings.num_chains,
            num_steps=settings.num_steps,
            num_leapfrog_steps=settings.num_leapfrog_steps,
            init=settings.init,
            log_weights=first["log_weights"],
            acceptance_rate=first["acceptance_rate"],
            step_size=first["step_size"],
            repeats=estimates if self.num_repeats > 1 else None,
        )
        return estimates[0], diagnostics


def ais_log_likelihood(
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
    num_repeats: int = 1,
    progress: bool = False,
    first_index: int = 0,
) -> tuple[torch.Tensor, AISDiagnostics]:
    """AIS estimate of log p(x_i) for each example, in nats, and its diagnostics.

    :func:`pyrovae.log_likelihood` with ``method="ais"`` runs the same estimator
    (:class:`AnnealedImportanceSampling`); see the module docstring for the algorithm.

    Args:
        vae: a module with Pyro programs ``model(x, y)`` and ``guide(x, y)``.
        x: ``(N, data_dim)`` data on the module's device; ``y``: ``(N,)`` labels or ``None``.
        num_chains, num_steps, num_leapfrog_steps, init, initial_step_size,
        max_batch_elements: the :class:`AISSettings` (S chains per example, T annealing
            steps, L leapfrog steps per transition, the start ``"guide"`` or ``"prior"``,
            the step size every example starts from, the most (chain, example) pairs in one
            block).
        seed: seeds the draws, per block (the outer RNG state is left untouched).
        num_repeats: R > 1 also computes R - 1 further independent estimates (diagnostics).
        progress: show a progress bar (on stderr).
        first_index: the index of ``x[0]`` in the whole data set, when ``x`` is a part of it
            that starts at a block boundary (a multiple of :func:`block_size`): its blocks are
            then seeded, and draw, as they do in the whole.

    Returns:
        ``(N,)`` estimates and :class:`AISDiagnostics`.
    """
    program = as_program(vae)
    settings = AISSettings(
        num_chains=num_chains,
        num_steps=num_steps,
        num_leapfrog_steps=num_leapfrog_steps,
        max_batch_elements=max_batch_elements,
        initial_step_size=initial_step_size,
        init=init,
    )
    estimator = AnnealedImportanceSampling(
        program, settings, seed=seed, num_repeats=num_repeats, progress=progress
    )
    return estimator(x, y, first_index=first_index)
