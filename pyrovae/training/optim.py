"""The optimizer and the learning-rate schedule of ``[train]``: torch's own, chosen by name.

``train.optimizer = { type = "adam" | "adamw" | "adamax" | "rmsprop" | "sgd", ... }`` builds
the :mod:`torch.optim` optimizer of that name with its own parameters (``betas``, ``eps``,
``weight_decay``, ``momentum``...) at the base learning rate ``train.lr``;
``train.lr_schedule = { type = "constant" | "step" | "exponential" | "cosine" | "burda",
warmup_epochs = W, ... }`` builds the :mod:`torch.optim.lr_scheduler` scheduler of that name,
after a linear warm-up of ``W`` epochs (:class:`~torch.optim.lr_scheduler.LinearLR`, joined to
the schedule by :class:`~torch.optim.lr_scheduler.SequentialLR`; the schedule's own epochs
count from the end of the warm-up).

The learning rate changes between epochs (the trainer steps the scheduler once per epoch): a
step reads nothing back from the device, and the replayed loss-and-gradient graph
(:class:`~pyrovae.infer.replay.ELBOGradient`) does not contain the update, so a schedule never
forces a new record. The defaults (Adam with torch's defaults, a constant rate) are the
trainer's historical fused Adam at ``train.lr``, to the bit.

``"burda"`` is the schedule of Burda, Grosse and Salakhutdinov (2016, "Importance Weighted
Autoencoders", section 5): ``3**i`` passes at ``lr * 10**(-i/7)`` for ``i = 0 .. stages - 1``
(with ``lr = 1e-3`` and 8 stages, 3,280 passes), then the last rate: a
:class:`~torch.optim.lr_scheduler.MultiStepLR` with milestones at the stage ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import accumulate
from typing import Annotated, Any, ClassVar

import torch
from torch.optim import lr_scheduler

from ..errors import ConfigError
from ..registry import NonNegativeFloat, NonNegativeInt, PositiveInt, Range, Registry

__all__ = ["LR_SCHEDULES", "OPTIMIZERS", "LRSchedule", "Optimizer", "burda_milestones"]

OPTIMIZERS: Registry[Optimizer] = Registry("optimizer")
LR_SCHEDULES: Registry[LRSchedule] = Registry("lr_schedule", context=("epochs",))

#: a decay rate of an exponential average (Adam's betas, RMSprop's alpha): in [0, 1)
Decay = Annotated[float, Range(min=0, lt=1)]
#: the term added to a denominator for numerical stability
Epsilon = Annotated[float, Range(gt=0)]
#: a factor that multiplies the learning rate
Factor = Annotated[float, Range(gt=0, max=1, note="1 keeps the rate")]


class Optimizer:
    """Base class: a :mod:`torch.optim` optimizer described by its config parameters.

    Subclasses store their parameters in :attr:`options` (torch's keyword arguments) and set
    :attr:`torch_class`; :attr:`fused` says whether torch has one fused kernel for all
    parameters of that class (then used), else its ``foreach`` kernels are."""

    type_name: ClassVar[str]
    torch_class: ClassVar[Callable[..., torch.optim.Optimizer]]
    fused: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        self.options = options

    def build(self, params: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
        """The torch optimizer over ``params`` at learning rate ``lr``."""
        kernel: dict[str, Any] = {"fused": True} if self.fused else {"foreach": True}
        return self.torch_class(params, lr=lr, **self.options, **kernel)


def _betas(betas: tuple[float, ...]) -> tuple[float, float]:
    if len(betas) != 2:
        raise ConfigError(
            f"betas = {list(betas)} must hold 2 decay rates [beta1, beta2], e.g. [0.9, 0.999]"
        )
    return float(betas[0]), float(betas[1])


@OPTIMIZERS.register("adam")
class Adam(Optimizer):
    """:class:`torch.optim.Adam` (Kingma and Ba 2015), fused."""

    torch_class = torch.optim.Adam
    fused = True

    def __init__(
        self,
        *,
        betas: tuple[Decay, ...] = (0.9, 0.999),
        eps: Epsilon = 1e-8,
        weight_decay: NonNegativeFloat = 0.0,
    ) -> None:
        super().__init__(betas=_betas(betas), eps=eps, weight_decay=weight_decay)


@OPTIMIZERS.register("adamw")
class AdamW(Optimizer):
    """:class:`torch.optim.AdamW` (Loshchilov and Hutter 2019: decoupled weight decay), fused."""

    torch_class = torch.optim.AdamW
    fused = True

    def __init__(
        self,
        *,
        betas: tuple[Decay, ...] = (0.9, 0.999),
        eps: Epsilon = 1e-8,
        weight_decay: NonNegativeFloat = 1e-2,
    ) -> None:
        super().__init__(betas=_betas(betas), eps=eps, weight_decay=weight_decay)


@OPTIMIZERS.register("adamax")
class Adamax(Optimizer):
    """:class:`torch.optim.Adamax` (Adam with the infinity norm; Kingma and Ba 2015)."""

    torch_class = torch.optim.Adamax

    def __init__(
        self,
        *,
        betas: tuple[Decay, ...] = (0.9, 0.999),
        eps: Epsilon = 1e-8,
        weight_decay: NonNegativeFloat = 0.0,
    ) -> None:
        super().__init__(betas=_betas(betas), eps=eps, weight_decay=weight_decay)


@OPTIMIZERS.register("rmsprop")
class RMSprop(Optimizer):
    """:class:`torch.optim.RMSprop` (Tieleman and Hinton 2012)."""

    torch_class = torch.optim.RMSprop

    def __init__(
        self,
        *,
        alpha: Decay = 0.99,
        eps: Epsilon = 1e-8,
        weight_decay: NonNegativeFloat = 0.0,
        momentum: NonNegativeFloat = 0.0,
        centered: bool = False,
    ) -> None:
        super().__init__(
            alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered
        )


@OPTIMIZERS.register("sgd")
class SGD(Optimizer):
    """:class:`torch.optim.SGD`, with optional (Nesterov) momentum, fused."""

    torch_class = torch.optim.SGD
    fused = True

    def __init__(
        self,
        *,
        momentum: NonNegativeFloat = 0.0,
        nesterov: bool = False,
        weight_decay: NonNegativeFloat = 0.0,
    ) -> None:
        if nesterov and momentum == 0:
            raise ConfigError("nesterov = true needs momentum > 0 (Nesterov momentum)")
        super().__init__(momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)


class LRSchedule:
    """Base class: a :mod:`torch.optim.lr_scheduler` schedule, stepped once per epoch, after a
    linear warm-up.

    Args:
        warmup_epochs: epochs of linear warm-up before the schedule: epoch ``e < W`` trains at
            ``lr * (e + 1) / (W + 1)``; the schedule then starts at ``lr`` (0: none).
        epochs: the run's ``train.epochs`` (supplied by pyrovae, for schedules whose length is
            the run's).
    """

    type_name: ClassVar[str]

    def __init__(self, *, warmup_epochs: NonNegativeInt = 0, epochs: int = 1) -> None:
        self.warmup_epochs = warmup_epochs
        self.epochs = epochs

    def schedule(self, optimizer: torch.optim.Optimizer) -> lr_scheduler.LRScheduler | None:
        """The schedule after the warm-up (``None``: the rate stays)."""
        return None

    def build(self, optimizer: torch.optim.Optimizer) -> lr_scheduler.LRScheduler | None:
        """The scheduler of ``optimizer`` (``None`` for a constant rate without warm-up); its
        ``step()`` is called at the end of each epoch."""
        main = self.schedule(optimizer)
        w = self.warmup_epochs
        if not w:
            return main
        warmup = lr_scheduler.LinearLR(optimizer, start_factor=1 / (w + 1), total_iters=w)
        if main is None:
            return warmup
        return lr_scheduler.SequentialLR(optimizer, [warmup, main], milestones=[w])


@LR_SCHEDULES.register("constant")
class Constant(LRSchedule):
    """The base rate ``train.lr`` throughout (after the warm-up, if any)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)


@LR_SCHEDULES.register("step")
class Step(LRSchedule):
    """:class:`~torch.optim.lr_scheduler.StepLR`: the rate times ``gamma`` every
    ``step_epochs`` epochs."""

    def __init__(self, *, step_epochs: PositiveInt = 30, gamma: Factor = 0.1, **kwargs: Any):
        super().__init__(**kwargs)
        self.step_epochs, self.gamma = step_epochs, gamma

    def schedule(self, optimizer: torch.optim.Optimizer) -> lr_scheduler.LRScheduler:
        return lr_scheduler.StepLR(optimizer, step_size=self.step_epochs, gamma=self.gamma)


@LR_SCHEDULES.register("exponential")
class Exponential(LRSchedule):
    """:class:`~torch.optim.lr_scheduler.ExponentialLR`: the rate times ``gamma`` each epoch."""

    def __init__(self, *, gamma: Factor = 0.99, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gamma = gamma

    def schedule(self, optimizer: torch.optim.Optimizer) -> lr_scheduler.LRScheduler:
        return lr_scheduler.ExponentialLR(optimizer, gamma=self.gamma)


@LR_SCHEDULES.register("cosine")
class Cosine(LRSchedule):
    """:class:`~torch.optim.lr_scheduler.CosineAnnealingLR` (Loshchilov and Hutter 2017,
    without restarts): from ``lr`` down to ``min_lr`` over ``cosine_epochs`` epochs (0: the
    run's epochs after the warm-up)."""

    def __init__(
        self,
        *,
        cosine_epochs: Annotated[int, Range(min=0, note="0: the run's epochs")] = 0,
        min_lr: NonNegativeFloat = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cosine_epochs, self.min_lr = cosine_epochs, min_lr

    def schedule(self, optimizer: torch.optim.Optimizer) -> lr_scheduler.LRScheduler:
        length = self.cosine_epochs or max(1, self.epochs - self.warmup_epochs)
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=length, eta_min=self.min_lr)


def burda_milestones(stages: int) -> list[int]:
    """The epochs at which Burda et al.'s schedule lowers the rate: the ends of stages of
    ``3**i`` passes, ``i = 0 .. stages - 2`` (``[1, 4, 13, 40, 121, 364, 1093]`` for 8)."""
    return list(accumulate(3**i for i in range(stages - 1)))


@LR_SCHEDULES.register("burda")
class Burda(LRSchedule):
    """Burda et al. (2016): ``3**i`` epochs at ``lr * 10**(-i/7)``, ``i = 0 .. stages - 1``
    (:class:`~torch.optim.lr_scheduler.MultiStepLR`); the last rate stays after the last
    stage."""

    def __init__(self, *, stages: Annotated[int, Range(min=1, max=20)] = 8, **kwargs: Any):
        super().__init__(**kwargs)
        self.stages = stages

    def schedule(self, optimizer: torch.optim.Optimizer) -> lr_scheduler.LRScheduler | None:
        milestones = burda_milestones(self.stages)
        if not milestones:
            return None
        return lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=10 ** (-1 / 7))
