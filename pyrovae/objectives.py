"""Training objectives: each builds the Pyro ELBO that SVI minimises.

All objectives are Pyro :class:`~pyro.infer.ELBO` instances; their ``loss`` is the negative
bound summed over the mini-batch (nats per batch). Chosen in the config's ``[objective]``
section: ``type = "trace_elbo"`` (default), ``"analytic_kl"`` or ``"iwae"``, and
``num_particles``.
"""

from __future__ import annotations

from typing import ClassVar

import pyro.infer

from .elbo import AnalyticKL_ELBO
from .iwae import IWAE_ELBO
from .registry import Registry

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
    """Pyro's ``Trace_ELBO``: Monte Carlo estimate of E_q[log p(x,z) - log q(z|x)]."""

    def elbo(self) -> pyro.infer.ELBO:
        return pyro.infer.Trace_ELBO(
            num_particles=self.num_particles,
            vectorize_particles=self.num_particles > 1,
            max_plate_nesting=MAX_PLATE_NESTING,
        )


@OBJECTIVES.register("analytic_kl")
class AnalyticKLObjective(Objective):
    """:class:`pyrovae.AnalyticKL_ELBO`: E_q[log p(x|z)] - KL(q||p), with the exact KL where
    the prior/guide pair has a closed form (falling back to Monte Carlo per site otherwise)."""

    def elbo(self) -> pyro.infer.ELBO:
        return AnalyticKL_ELBO(
            num_particles=self.num_particles,
            vectorize_particles=self.num_particles > 1,
            max_plate_nesting=MAX_PLATE_NESTING,
        )


@OBJECTIVES.register("iwae")
class IWAEObjective(Objective):
    """:class:`pyrovae.IWAE_ELBO`: the importance-weighted bound with ``num_particles``
    samples per example (vectorized); ``num_particles = 1`` is the ordinary ELBO."""

    def __init__(self, *, num_particles: int = 5) -> None:
        super().__init__(num_particles=num_particles)

    def elbo(self) -> pyro.infer.ELBO:
        return IWAE_ELBO(num_particles=self.num_particles, max_plate_nesting=MAX_PLATE_NESTING)
