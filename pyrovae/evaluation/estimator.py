"""The evaluation driver: what every estimator of log p(x) does around its per-block work.

An estimator (importance sampling, :mod:`~pyrovae.evaluation.importance`; annealed importance
sampling, :mod:`~pyrovae.evaluation.ais`; bidirectional Monte Carlo,
:mod:`~pyrovae.evaluation.bdmc`) is a :class:`BlockEstimator`: it says how many examples
make a block and what one block computes. The base class owns the rest, once:

* the block layout: blocks of :meth:`BlockEstimator.block_size` examples, from the bound on
  (sample, example) pairs that fits in memory (:func:`effective_max_batch_elements`);
* this process's share of whole blocks (:func:`pyrovae.distributed.block_shard`) and the
  gather of the per-example results on every process
  (:func:`pyrovae.distributed.gather_examples`): a run of several processes gets the numbers
  of one;
* repeats x blocks, each block drawing from its own seed (:meth:`BlockEstimator.block_seed`:
  :func:`pyrovae.rng.derived_seed` of the seed, the estimator's name, the repeat and the
  index of the block's first example, under :func:`pyrovae.rng.fixed_rng`), so a block's
  numbers do not depend on which other blocks are computed, or where, and the caller's
  random stream is left untouched;
* the progress bar (tqdm, on stderr; shown on the first process only, when asked for);
* eval mode and quiet programs (:meth:`~pyrovae.models.program.Program.evaluating`),
  restored on exit, an exception included.

As Pyro's ``TracePosterior`` owns the loop of its inference algorithms and each algorithm
only its traces, a subclass implements :meth:`~BlockEstimator.estimate_block` (and says which
per-example results a block gives, :meth:`~BlockEstimator.result_shapes`); ``__call__``
runs the blocks and hands the gathered results to :meth:`~BlockEstimator.collect`.
"""

from __future__ import annotations

import abc
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import torch
from tqdm.auto import tqdm

from .. import distributed
from ..models.program import Program
from ..models.size import fit_batch_elements
from ..registry import PositiveInt, check_value
from ..rng import derived_seed, fixed_rng

__all__ = [
    "DEFAULT_MAX_BATCH_ELEMENTS",
    "Block",
    "BlockEstimator",
    "Results",
    "effective_max_batch_elements",
]

#: default bound on (sample, example) pairs per vectorized pass: peak memory is that many
#: pairs' activations of the encoder, decoder and likelihood
DEFAULT_MAX_BATCH_ELEMENTS = 2**14

#: one repeat's per-example results, ``{name: (*shape, N)}``, the examples along the last
#: dimension
Results = dict[str, torch.Tensor]

ResultT = TypeVar("ResultT", covariant=True)


def effective_max_batch_elements(
    program: Program,
    x: torch.Tensor,
    y: torch.Tensor | None,
    per_example: int,
    requested: int,
    gradients: bool = False,
) -> int:
    """The bound on (sample, example) pairs per vectorized pass that an evaluation of ``x``
    ``(N, data_dim)`` (labels ``y``) by ``program`` uses, given the ``requested`` bound and
    ``per_example`` samples (or chains) per example: ``requested`` when its passes fit in the
    memory there is, else the largest that does, measured on the program's own passes
    (:func:`pyrovae.models.size.fit_batch_elements`; ``gradients``: a pass that also takes
    the gradient of the log-weights, as AIS's does).

    The one place where an evaluation decides how much it may hold at once: the driver calls
    it once per run, on every process, before the blocks are laid out, and sizes the blocks
    (and IS's sample chunks) from what it returns.
    """
    return fit_batch_elements(program, x, y, requested, per_example, gradients=gradients)


@dataclass(frozen=True)
class Block:
    """One block of examples, as :meth:`BlockEstimator.estimate_block` is given it.

    Attributes:
        x: ``(n, data_dim)`` the block's examples; ``y``: their labels ``(n,)`` or ``None``.
        repeat: which of the ``num_repeats`` independent estimates this block is part of.
        max_batch_elements: the run's bound on (sample, example) pairs per vectorized pass
            (:func:`effective_max_batch_elements`).
        advance: counts progress, in the estimator's :attr:`~BlockEstimator.progress_unit`.
    """

    x: torch.Tensor
    y: torch.Tensor | None
    repeat: int
    max_batch_elements: int
    advance: Callable[..., Any]


class BlockEstimator(abc.ABC, Generic[ResultT]):
    """An estimator run block by block over the examples (see the module docstring).

    Args:
        program: the model, adapted by :func:`~pyrovae.models.program.as_program`.
        num_samples: samples (IS) or chains (AIS) per example: with ``max_batch_elements``
            it sizes the blocks.
        max_batch_elements: the most (sample, example) pairs requested in one pass.
        seed: seeds the draws, per block (the outer RNG state is left untouched).
        num_repeats: R independent estimates (each block is run R times, with R seeds).
        progress: show a progress bar (on stderr, on the first process only).
    """

    #: the name the per-block seeds are derived with (:meth:`block_seed`)
    seed_name: ClassVar[str]
    #: what the progress bar counts
    progress_unit: ClassVar[str]
    #: whether a pass also takes the gradient of the log-weights (AIS's HMC steps): the
    #: memory of a pass is measured with it (:func:`effective_max_batch_elements`)
    takes_gradients: ClassVar[bool] = False

    def __init__(
        self,
        program: Program,
        num_samples: int,
        max_batch_elements: int,
        *,
        seed: int = 0,
        num_repeats: int = 1,
        progress: bool = False,
    ) -> None:
        check_value(num_repeats, PositiveInt, "num_repeats")
        self.program = program
        self.num_samples = num_samples
        self.max_batch_elements = max_batch_elements
        self.seed = seed
        self.num_repeats = num_repeats
        self.progress = progress

    # ------------------------------------------------------------------ what a subclass says
    @abc.abstractmethod
    def block_size(self, max_batch_elements: int) -> int:
        """The number of examples of a block (seeded together), at least one."""

    @abc.abstractmethod
    def result_shapes(self, x: torch.Tensor, repeat: int) -> dict[str, tuple[int, ...]]:
        """``{name: shape of one example's result}`` of the results :meth:`estimate_block`
        gives in ``repeat`` (stored in ``x``'s dtype, on its device)."""

    @abc.abstractmethod
    def estimate_block(self, block: Block) -> Results:
        """The per-example results of one block, ``{name: (*shape, n)}`` (the names of
        :meth:`result_shapes`), run under the block's seed."""

    @abc.abstractmethod
    def collect(self, results: list[Results]) -> ResultT:
        """The estimator's result from every repeat's gathered per-example results."""

    @abc.abstractmethod
    def progress_description(self) -> str:
        """The progress bar's label."""

    def progress_units(self, num_examples: int) -> int:
        """What a block of ``num_examples`` examples adds to the progress bar (default: its
        examples)."""
        return num_examples

    def block_seed(self, repeat: int, first: int) -> int:
        """The seed of the block whose first example has index ``first`` in the whole data:
        ``derived_seed(seed, seed_name, repeat, first)``."""
        return derived_seed(self.seed, self.seed_name, repeat, first)

    # ------------------------------------------------------------------ the driver
    def __call__(
        self, x: torch.Tensor, y: torch.Tensor | None = None, *, first_index: int = 0
    ) -> ResultT:
        """Run the estimator over the examples ``x`` ``(N, data_dim)`` (labels ``y``,
        ``(N,)`` or ``None``). ``first_index``: the index of ``x[0]`` in the whole data set,
        when ``x`` is a part of it that starts at a block boundary (its blocks are then
        seeded, and draw, as they do in the whole)."""
        return self.collect(self.run(x, y, first_index=first_index))

    @torch.no_grad()
    def run(
        self, x: torch.Tensor, y: torch.Tensor | None = None, *, first_index: int = 0
    ) -> list[Results]:
        """Every repeat's per-example results ``{name: (*shape, N)}`` over all of ``x``: this
        process's share of the blocks computed here, the others' gathered."""
        num_examples = x.shape[0]
        max_batch = effective_max_batch_elements(
            self.program, x, y, self.num_samples, self.max_batch_elements, self.takes_gradients
        )
        size = self.block_size(max_batch)
        first, last = distributed.block_shard(num_examples, size)
        layout = [(start, min(start + size, last)) for start in range(first, last, size)]
        units = sum(self.progress_units(stop - start) for start, stop in layout)
        bar = tqdm(
            total=self.num_repeats * units,
            desc=self.progress_description(),
            unit=self.progress_unit,
            disable=not (self.progress and distributed.is_main()),
            file=sys.stderr,
            dynamic_ncols=True,
        )
        try:
            with self.program.evaluating():
                local = [
                    self._run_repeat(x, y, repeat, layout, max_batch, first_index, bar.update)
                    for repeat in range(self.num_repeats)
                ]
        finally:
            bar.close()
        return [
            {name: distributed.gather_examples(value, num_examples) for name, value in r.items()}
            for r in local
        ]

    def _run_repeat(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None,
        repeat: int,
        layout: list[tuple[int, int]],
        max_batch_elements: int,
        first_index: int,
        advance: Callable[..., Any],
    ) -> Results:
        """One repeat over this process's blocks ``layout`` (``(start, stop)`` in ``x``):
        its per-example results ``{name: (*shape, n_local)}``."""
        offset = layout[0][0] if layout else 0
        num_local = layout[-1][1] - offset if layout else 0
        results = {
            name: x.new_empty(*shape, num_local)
            for name, shape in self.result_shapes(x, repeat).items()
        }
        for start, stop in layout:
            block = Block(
                x=x[start:stop],
                y=None if y is None else y[start:stop],
                repeat=repeat,
                max_batch_elements=max_batch_elements,
                advance=advance,
            )
            with fixed_rng(self.block_seed(repeat, first_index + start), x.device):
                values = self.estimate_block(block)
            for name, value in values.items():
                results[name][..., start - offset : stop - offset] = value
        return results
