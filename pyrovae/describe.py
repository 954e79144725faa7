"""The run a config defines, in words and math: the data, the model p(x, z) with its guide,
and the objective. Backs ``pyrovae describe``; nothing is trained and no data is read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import resolve_config
from .infer.objectives import OBJECTIVES
from .models.factory import build_model

__all__ = ["describe"]


def describe(config: Mapping[str, Any]) -> str:
    """The run ``config`` defines (validated and completed first), one factor per line, each
    followed by the config keys that choose it.

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
        ]
    )
