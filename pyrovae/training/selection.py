"""Model selection on the validation split: the best epoch so far, and early stopping.

After each epoch the trainer reports the validation ELBO (nats per example, on the examples
``train.validation`` holds out of the training set, never the test set). An epoch whose ELBO
beats the best so far by more than ``train.early_stopping.min_delta`` is the new best (its
state is written as ``best.pt``); after ``patience`` epochs in a row without one, training
stops (Prechelt 1998, "Early stopping -- but when?"; Tomczak and Welling 2018 stop after 50).
The counters are part of the checkpoint, so a resumed run stops where an uninterrupted one
would.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Selection"]


@dataclass
class Selection:
    """The best validation ELBO seen and the early-stopping counter.

    Attributes:
        patience: epochs without improvement before stopping (0: never stop early).
        min_delta: the improvement (nats per example) an epoch must make to count.
        best: the best validation ELBO so far (``-inf`` before the first epoch).
        best_epoch: the epoch (1-based) that reached it (0: none yet).
        bad_epochs: epochs since the last improvement.
        stopped: whether training stopped early.
    """

    patience: int = 0
    min_delta: float = 0.0
    best: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped: bool = False

    def update(self, epoch: int, validation_elbo: float) -> bool:
        """Record ``epoch``'s validation ELBO; whether it is the new best (the first always
        is). Sets :attr:`stopped` when the patience has run out."""
        improved = self.best_epoch == 0 or validation_elbo > self.best + self.min_delta
        if improved:
            self.best, self.best_epoch, self.bad_epochs = validation_elbo, epoch, 0
        else:
            self.bad_epochs += 1
            self.stopped = bool(self.patience) and self.bad_epochs >= self.patience
        return improved

    def state_dict(self) -> dict[str, Any]:
        """The counters, for the checkpoint (plain numbers)."""
        return {k: v for k, v in asdict(self).items() if k not in ("patience", "min_delta")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])
        self.stopped = bool(state["stopped"])

    def summary(self) -> str:
        """The stop and the best epoch, in one line."""
        return (
            f"early stopping after epoch {self.best_epoch + self.bad_epochs}: the validation "
            f"ELBO has not improved by more than {self.min_delta:g} nats for {self.bad_epochs} "
            f"epochs; best epoch {self.best_epoch} (validation ELBO {self.best:.2f} "
            "nats/example, kept as best.pt)"
        )
