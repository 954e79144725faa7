"""The ELBO of the amortized guide and of the best member of its family per example, in nats
(Cremer, Li and Duvenaud 2018, "Inference Suboptimality in Variational Autoencoders").

For each example ``x_i``:

* ``elbo``: ``E_q[log p(x_i, z) - log q(z|x_i)]`` of the guide as trained (the encoder's
  output), the mean of ``K`` log-weights, with its Monte Carlo standard error
  ``std / sqrt(K)`` (``elbo_mc_se``);
* ``local_elbo``: the same for ``q(z; lambda_i)``, the guide's family with the per-example
  variational parameters ``lambda_i`` (:meth:`~pyrovae.models.program.Program.local_parameters`)
  started at the encoder's output and optimized by Pyro's :class:`~pyro.infer.SVI`
  (:class:`~pyro.infer.Trace_ELBO`, ``num_particles`` vectorized draws per step,
  :class:`~pyro.optim.ClippedAdam` whose learning rate decays by ``lr_decay`` per step),
  the model's parameters held fixed.

**Convergence criterion.** Every ``window`` steps the ELBO of each example is estimated at the
current parameters from the same ``num_particles`` standard draws each time (common random
numbers, so the change between two checks is the change of the parameters, not new noise);
the optimization stops when no example's estimate changed by more than ``tolerance`` nats
over the last window, or after ``max_steps`` steps (``converged`` says which). As the
learning rate decays, a window's change shrinks; the ELBO then moves by less than
``tolerance`` per window at the point where it stops.

A block of examples is optimized together (its loss is the sum of the examples' negative
ELBOs, so each example's gradient is its own; Adam scales each coordinate by itself); the
driver (:class:`~pyrovae.evaluation.estimator.BlockEstimator`) seeds each block, shards the
blocks under ``torchrun`` and shows the progress. The parameters are read back after.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

import pyro
import pyro.optim
import pyro.poutine as poutine
import torch
from pyro.infer import SVI, Trace_ELBO

from ..infer.log_weights import MAX_PLATE_NESTING, log_weights
from ..models.program import LocalParameters, Program
from ..registry import PositiveFloat, PositiveInt, check_value
from ..rng import derived_seed, fixed_rng
from .estimator import Block, BlockEstimator, Results

__all__ = ["LocalELBO", "LocalELBOResult", "LocalOptimization"]

#: default K, draws per example of each final ELBO estimate
DEFAULT_NUM_ELBO_SAMPLES = 1000
#: the prefix of the local parameters' names in Pyro's (scoped) param store
PARAM_PREFIX = "pyrovae.local."


@dataclass(frozen=True)
class LocalOptimization:
    """How the per-example variational parameters are optimized (module docstring).

    Attributes:
        num_particles: draws per example in each SVI step (and in each convergence check).
        learning_rate: ClippedAdam's first learning rate.
        lr_decay: the factor the learning rate is multiplied by after each step.
        window: steps between two convergence checks.
        tolerance: nats per example: the largest change of an example's ELBO over a window
            at which the optimization has converged.
        max_steps: the most SVI steps.
    """

    num_particles: int = 16
    learning_rate: float = 0.05
    lr_decay: float = 0.997
    window: int = 100
    tolerance: float = 0.001
    max_steps: int = 5000

    def __post_init__(self) -> None:
        for name in ("num_particles", "window", "max_steps"):
            check_value(getattr(self, name), PositiveInt, name)
        for name in ("learning_rate", "tolerance"):
            check_value(getattr(self, name), PositiveFloat, name)
        if not 0.0 < self.lr_decay <= 1.0:
            from ..errors import ConfigError

            raise ConfigError(f"lr_decay must be in (0, 1]; got {self.lr_decay}")

    def describe(self) -> str:
        """The settings in one line, for reports."""
        return ", ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))


@dataclass(frozen=True)
class LocalELBOResult:
    """Per-example ELBOs of the amortized and the locally optimized guide (nats).

    Attributes:
        elbo, elbo_mc_se: ``(N,)`` the amortized guide's ELBO and its Monte Carlo standard
            error (``num_elbo_samples`` draws).
        local_elbo, local_elbo_mc_se: ``(N,)`` the same for the optimized parameters.
        steps: ``(N,)`` SVI steps taken (shared by the examples of a block).
        converged: ``(N,)`` whether the criterion stopped the optimization (else
            ``max_steps`` did).
        parameters: the optimized per-example parameters ``{name: (N, ...)}``.
        num_elbo_samples: K, the draws of each ELBO estimate.
        settings: the :class:`LocalOptimization`.
    """

    elbo: torch.Tensor
    elbo_mc_se: torch.Tensor
    local_elbo: torch.Tensor
    local_elbo_mc_se: torch.Tensor
    steps: torch.Tensor
    converged: torch.Tensor
    parameters: LocalParameters
    num_elbo_samples: int
    settings: LocalOptimization


class LocalELBO(BlockEstimator[LocalELBOResult]):
    """The amortized and the per-example optimized ELBO (module docstring), as a
    :class:`~pyrovae.evaluation.estimator.BlockEstimator`.

    Args:
        program: the model; its :meth:`~pyrovae.models.program.Program.local_parameters` and
            :meth:`~pyrovae.models.program.Program.local_guide` declare the family.
        settings: the optimization (:class:`LocalOptimization`).
        num_elbo_samples: K, draws per example of each final ELBO estimate.
        max_batch_elements: most (draw, example) pairs in one pass; a block holds
            ``max_batch_elements // num_particles`` examples.
        seed, progress: as for every estimator.
    """

    seed_name = "local_elbo"
    #: the bar counts SVI steps, up to ``max_steps`` per block (a block that converges
    #: earlier adds the steps it did not need)
    progress_unit = "step"
    takes_gradients = True

    def __init__(
        self,
        program: Program,
        settings: LocalOptimization,
        num_elbo_samples: int,
        max_batch_elements: int,
        *,
        seed: int = 0,
        progress: bool = False,
    ) -> None:
        check_value(num_elbo_samples, PositiveInt, "num_elbo_samples")
        check_value(max_batch_elements, PositiveInt, "max_batch_elements")
        super().__init__(
            program, settings.num_particles, max_batch_elements, seed=seed, progress=progress
        )
        self.settings = settings
        self.num_elbo_samples = num_elbo_samples
        self._shapes: dict[str, tuple[int, ...]] = {}

    def block_size(self, max_batch_elements: int) -> int:
        return max(1, max_batch_elements // self.settings.num_particles)

    def progress_description(self) -> str:
        return f"local ELBO, {self.settings.num_particles} draws/step"

    def progress_units(self, num_examples: int) -> int:
        return self.settings.max_steps

    def result_shapes(self, x: torch.Tensor, repeat: int) -> dict[str, tuple[int, ...]]:
        with torch.no_grad():
            params = self.program.local_parameters(x[:1], None)
        self._shapes = {name: tuple(value.shape[1:]) for name, value in params.items()}
        names = ("elbo", "elbo_mc_se", "local_elbo", "local_elbo_mc_se", "steps", "converged")
        shapes: dict[str, tuple[int, ...]] = dict.fromkeys(names, ())
        return shapes | {PARAM_PREFIX + name: shape for name, shape in self._shapes.items()}

    def estimate_block(self, block: Block) -> Results:
        """Both ELBOs of the block's examples, the steps taken and the optimized parameters
        (each ``(*shape, n)``, the examples last)."""
        x, y = block.x, block.y
        chunk = max(1, block.max_batch_elements // x.shape[0])
        elbo, elbo_se = self._elbo(self.program.guide, x, y, chunk)
        start = {
            name: value.detach() for name, value in self.program.local_parameters(x, y).items()
        }
        params, steps, converged = self._optimize(start, x, y, block.advance)
        local_guide = _local_guide(self.program, params)
        local, local_se = self._elbo(local_guide, x, y, chunk)
        results = {"elbo": elbo, "elbo_mc_se": elbo_se, "local_elbo": local}
        results |= {"local_elbo_mc_se": local_se, "steps": torch.full_like(elbo, steps)}
        results["converged"] = torch.full_like(elbo, float(converged))
        return results | {PARAM_PREFIX + k: v.movedim(0, -1) for k, v in params.items()}

    def _elbo(
        self, guide: Callable[..., Any], x: torch.Tensor, y: torch.Tensor | None, chunk: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean of ``num_elbo_samples`` log-weights per example and its standard error,
        in chunks of at most ``chunk`` draws."""
        total = x.new_zeros(x.shape[0], dtype=torch.float64)
        total_sq = total.clone()
        for k_start in range(0, self.num_elbo_samples, chunk):
            k = min(chunk, self.num_elbo_samples - k_start)
            log_w = log_weights(
                self.program.model, guide, x, y, num_particles=k, enumerated="expect"
            ).double()
            total += log_w.sum(0)
            total_sq += log_w.square().sum(0)
        num = self.num_elbo_samples
        mean = total / num
        var = (total_sq / num - mean.square()).clamp(min=0.0) * num / max(num - 1, 1)
        return mean.to(x.dtype), (var / num).sqrt().to(x.dtype)

    def _optimize(
        self,
        start: LocalParameters,
        x: torch.Tensor,
        y: torch.Tensor | None,
        advance: Callable[..., Any],
    ) -> tuple[LocalParameters, int, bool]:
        """SVI on the per-example parameters from ``start`` until the criterion (module
        docstring) or ``max_steps``: the parameters, the steps taken and whether it
        converged."""
        s = self.settings
        check_seed = derived_seed(self.seed, "local_elbo_check", int(torch.randint(2**62, ())))
        names = list(start)
        model = poutine.block(self.program.model, hide_types=["param"])

        def guide(x: torch.Tensor, y: torch.Tensor | None) -> Any:
            params = {name: pyro.param(PARAM_PREFIX + name, start[name].clone()) for name in names}
            return _local_guide(self.program, params)(x, y)

        optim = pyro.optim.ClippedAdam({"lr": s.learning_rate, "lrd": s.lr_decay})
        loss = Trace_ELBO(
            num_particles=s.num_particles,
            vectorize_particles=True,
            max_plate_nesting=MAX_PLATE_NESTING,
        )
        svi = SVI(model, guide, optim, loss)
        store = pyro.get_param_store()
        with store.scope(), torch.enable_grad(), _frozen(self.program):
            previous = self._check(guide, x, y, check_seed)
            for step in range(1, s.max_steps + 1):
                svi.step(x, y)
                if step % s.window == 0 or step == s.max_steps:
                    advance(step - (step - 1) // s.window * s.window)
                if step % s.window == 0:
                    current = self._check(guide, x, y, check_seed)
                    if bool(((current - previous).abs() <= s.tolerance).all()):
                        advance(s.max_steps - step)
                        return _read(store, names), step, True
                    previous = current
            return _read(store, names), s.max_steps, False

    @torch.no_grad()
    def _check(
        self, guide: Callable[..., Any], x: torch.Tensor, y: torch.Tensor | None, seed: int
    ) -> torch.Tensor:
        """Each example's ELBO at the current parameters from the same draws every time."""
        with fixed_rng(seed, x.device):
            log_w = log_weights(
                self.program.model,
                guide,
                x,
                y,
                num_particles=self.settings.num_particles,
                enumerated="expect",
            )
        return log_w.mean(0)

    def collect(self, results: list[Results]) -> LocalELBOResult:
        r = results[0]
        return LocalELBOResult(
            elbo=r["elbo"],
            elbo_mc_se=r["elbo_mc_se"],
            local_elbo=r["local_elbo"],
            local_elbo_mc_se=r["local_elbo_mc_se"],
            steps=r["steps"].long(),
            converged=r["converged"].bool(),
            parameters={name: r[PARAM_PREFIX + name].movedim(-1, 0) for name in self._shapes},
            num_elbo_samples=self.num_elbo_samples,
            settings=self.settings,
        )


def _local_guide(program: Program, params: LocalParameters) -> Callable[..., Any]:
    """The program's guide with per-example parameters ``params``, registering none of the
    module's parameters (so that SVI optimizes ``params`` alone)."""
    local = poutine.block(program.local_guide, hide_types=["param"])

    def guide(x: torch.Tensor, y: torch.Tensor | None = None) -> Any:
        return local(params, x, y)

    return guide


def _read(store: Any, names: list[str]) -> LocalParameters:
    return {name: store[PARAM_PREFIX + name].detach().clone() for name in names}


@contextlib.contextmanager
def _frozen(program: Program) -> Iterator[None]:
    """The module's parameters without gradients for the block (restored after): SVI's
    backward pass reaches the local parameters alone."""
    params = [p for p in program.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)
