"""The run a config defines, in words and math: the data, the model p(x, z) with its guide,
the objective and the training recipe. Backs ``pyrovae describe``; nothing is trained and no
data is read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import TrainConfig, resolve_config
from .infer.objectives import OBJECTIVES
from .models.factory import build_model

__all__ = ["describe"]


def describe(config: Mapping[str, Any]) -> str:
    """The run ``config`` defines (validated and completed first), one factor per line, each
    followed by the config keys that choose it; last, the training recipe (``[train]``).

    A config with ``model.program`` describes the module its factory builds (its own
    ``describe()``, or :meth:`pyrovae.models.program.Program.describe`).

    Example::

        print(pyrovae.describe({"model": {"latent_dim": 8}}))
    """
    config = resolve_config(config)
    model = build_model(config)
    objective = OBJECTIVES.build(config["objective"], "objective")
    data = config["data"]
    return "\n".join(
        [
            f"data: {data['dataset']}, data.binarize = {data['binarize']!r}",
            model.describe(),
            f"  objective: {objective.describe()}",
            f"      [objective = {objective.type_name}]",
            *describe_training(config["train"]),
        ]
    )


def _table(spec: Mapping[str, Any]) -> str:
    """A component's parameters, ``name value`` each (``type`` left out)."""
    return ", ".join(f"{k} {v}" for k, v in spec.items() if k != "type")


def describe_training(train: TrainConfig) -> list[str]:
    """The training recipe of a resolved ``[train]`` section: optimizer, learning-rate schedule,
    clipping, batches and epochs, the validation split and early stopping; then its keys."""
    optimizer, schedule = train["optimizer"], train["lr_schedule"]
    clip = f"gradient norm clipped at {train['grad_clip']:g}" if train["grad_clip"] else ""
    validation = train["validation"]
    held_out = f"{validation:g} of the training set" if 0 < validation < 1 else f"{validation:g}"
    patience, delta = train["early_stopping"]["patience"], train["early_stopping"]["min_delta"]
    selection = (
        f"{held_out} training examples held out to validate (seed {train['validation_seed']}); "
        "best.pt keeps the best validation ELBO"
        if validation
        else "no validation split"
    )
    if patience:
        selection += f"; early stopping after {patience} epochs without a gain > {delta:g} nats"
    recipe = [
        f"{optimizer['type']} ({_table(optimizer)}) at lr {train['lr']:g}",
        f"{schedule['type']} schedule ({_table(schedule)})",
        clip,
        f"batch {train['batch_size']}, {train['epochs']} epochs",
        selection,
    ]
    return [
        "  training: " + "; ".join(part for part in recipe if part),
        f"      [train.optimizer = {optimizer['type']}, train.lr_schedule = {schedule['type']}, "
        f"train.grad_clip = {train['grad_clip']:g}, train.validation = {validation:g}, "
        f"train.early_stopping.patience = {patience}]",
    ]
