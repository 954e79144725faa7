"""Training objectives: each builds the Pyro ELBO that SVI minimises.

All objectives are Pyro :class:`~pyro.infer.ELBO` instances; their ``loss`` is the negative
bound summed over the mini-batch (nats per batch).
"""

from __future__ import annotations

from typing import ClassVar

import pyro.infer

from .registry import Registry
from .trace_elbo import SyncFreeTrace_ELBO

#: the model has one plate ("data"); vectorized particles add one more on the left
MAX_PLATE_NESTING = 1


class Objective:
    """Base class: a declarative description of a Pyro ELBO."""

    type_name: ClassVar[str]

    def __init__(self, *, num_particles: int = 1) -> None:
        if num_particles < 1:
            from .errors import ConfigError

            raise ConfigError(
                f"objective.num_particles = {num_particles} must be at least 1"
            )
        self.num_particles = num_particles

    def elbo(self) -> pyro.infer.ELBO:
        """A fresh Pyro ELBO implementing this objective."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_particles={self.num_particles})"


OBJECTIVES: Registry[Objective] = Registry("objective")


@OBJECTIVES.register("trace_elbo")
class TraceELBOObjective(Objective):
    """Pyro's ``Trace_ELBO``: Monte Carlo estimate of E_q[log p(x,z) - log q(z|x)].

    Built as :class:`pyrovae.SyncFreeTrace_ELBO`, a ``Trace_ELBO`` with the same loss and
    gradients whose ``differentiable_loss`` does not wait for the device."""

    def elbo(self) -> pyro.infer.ELBO:
        return SyncFreeTrace_ELBO(
            num_particles=self.num_particles,
            vectorize_particles=self.num_particles > 1,
            max_plate_nesting=MAX_PLATE_NESTING,
        )
