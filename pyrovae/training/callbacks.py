"""Callbacks: code of one's own run by the training loop, ``pyrovae.train(config,
callbacks=[...])``.

A callback is a :class:`Callback` overriding the hooks it needs (the base class's do
nothing); an object of another class with some of these methods is adapted to it once, where
it is given. The trainer calls, in this order:

* ``on_train_start(trainer)`` once, before the first epoch it trains (of a resumed run:
  after the checkpoint is loaded, ``trainer.epoch`` epochs done);
* ``on_step_end(trainer, row)`` every ``log.every_steps`` training steps (none by default):
  ``row`` holds ``epoch`` (the one in progress), ``step`` (counted from the run's start),
  and ``train_elbo``, ``train_rate``, ``train_distortion`` (nats per example; the last two in
  a run of one process) and ``examples_per_second`` of the batches since the previous step
  row (:attr:`Trainer.step_metrics` keeps them); the sums are read once per row, between two
  steps;
* ``on_epoch_end(trainer, row)`` after every epoch, once its checkpoint is written: ``row`` is
  the epoch's metrics row (:attr:`Trainer.metrics`, the line of ``metrics.jsonl``: ``epoch``,
  ``train_elbo`` and ``test_elbo`` in nats per example, ``train_rate`` and
  ``train_distortion`` (nats per example), ``examples_per_second``,
  ``wall_time`` in seconds since the run started, and whatever else the run reports);
  :attr:`Trainer.pictures` holds the epoch's samples and reconstructions when it drew them
  (every ``log.images_every`` epochs);
* ``on_train_end(trainer)`` once, when training ends, however it ends (the last epoch, a
  stop, or an error on the way: like a ``finally`` block).

A callback stops training by setting ``trainer.should_stop = True`` (in ``on_epoch_end``, or in
``on_step_end``: it takes effect when the epoch ends): the loop ends after that epoch, whose
checkpoint is written, so ``pyrovae.resume`` goes on from it. Under ``torchrun`` every process
calls its callbacks, and rank 0's ``should_stop`` decides for all of them; the built-in loggers
(:mod:`pyrovae.training.loggers`) exist on rank 0 only.

The callbacks run between the epochs, never inside the training step: they may read tensors
back from the device, and the training numbers are those of a run without them.

Example::

    class StopWhenGood(pyrovae.Callback):
        def on_epoch_end(self, trainer, row):
            if row["test_elbo"] > -100:
                trainer.should_stop = True

    pyrovae.train(config, out="runs/stop", callbacks=[StopWhenGood()])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError

#: the :class:`~pyrovae.training.trainer.Trainer` a hook gets (typed loosely here: the trainer
#: module imports this one)
Trainer = Any

__all__ = ["HOOKS", "Callback", "Pictures", "check_callbacks"]

#: the methods the trainer calls on a callback
HOOKS = ("on_train_start", "on_step_end", "on_epoch_end", "on_train_end")


class Callback:
    """A callback of the training loop: override the hooks you need (see the module's
    docstring); each one's default does nothing."""

    def on_train_start(self, trainer: Trainer) -> None:
        """Before the first epoch this call trains."""

    def on_step_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        """Every ``log.every_steps`` training steps; ``row`` is the step row."""

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        """After an epoch and its checkpoint; ``row`` is its metrics row."""

    def on_train_end(self, trainer: Trainer) -> None:
        """When training ends, however it ends."""


@dataclass(frozen=True)
class Pictures:
    """What the model draws every ``log.images_every`` epochs, each ``(N, C, H, W)`` (or
    ``(N, D)`` for vectors) on the model's device, in the likelihood's mean space (grey levels
    or colours in [0, 1] for images): ``samples`` E[x|z] for z ~ p(z) (64, fixed draws),
    ``originals`` the first 32 test examples and ``reconstructions`` E[x|z] for z ~ q(z|x) of
    them; ``epoch`` the epoch they are of."""

    epoch: int
    samples: torch.Tensor
    originals: torch.Tensor
    reconstructions: torch.Tensor


class _Adapted(Callback):
    """A callback object that does not subclass :class:`Callback`, seen through it: the hooks
    it has are its own, the others do nothing (asked once, where it is given)."""

    def __init__(self, callback: Any) -> None:
        self.callback = callback
        for hook in HOOKS:
            method = getattr(callback, hook, None)
            if callable(method):
                setattr(self, hook, lambda trainer, *args, _method=method: _method(trainer, *args))

    def __repr__(self) -> str:
        return repr(self.callback)


def check_callbacks(callbacks: Iterable[Any] | None) -> list[Callback]:
    """``callbacks`` as a list of :class:`Callback` (an object with some of the hooks but not
    of the class is adapted once, here); a :class:`ConfigError` naming the first that has none
    of the hooks (:data:`HOOKS`), or one that is a class rather than an instance."""
    if callbacks is None:
        return []
    if not isinstance(callbacks, Sequence) or isinstance(callbacks, str):
        raise ConfigError(
            f"callbacks must be a list of callback objects, got {type(callbacks).__name__}"
        )
    checked: list[Callback] = []
    for callback in callbacks:
        if isinstance(callback, type):
            raise ConfigError(
                f"callback {callback.__name__} is a class; pass an instance: {callback.__name__}()"
            )
        if isinstance(callback, Callback):
            checked.append(callback)
        elif any(callable(getattr(callback, hook, None)) for hook in HOOKS):
            checked.append(_Adapted(callback))
        else:
            raise ConfigError(
                f"callback {callback!r} has none of the methods {', '.join(HOOKS)}; subclass "
                "pyrovae.Callback and override the ones you need"
            )
    return checked
