"""Training objectives: each builds the Pyro ELBO that SVI minimises.

All objectives are Pyro :class:`~pyro.infer.ELBO` instances; their ``loss`` is the negative
bound summed over the mini-batch (nats per batch). Chosen in the config's ``[objective]``
section: ``type = "trace_elbo"`` (default), ``"analytic_kl"`` or ``"iwae"``, and
``num_particles``.

Every objective also carries two knobs on the latent site ``"z"`` (see :class:`Objective`):
``beta``, the weight of the KL term, and ``kl_warmup_epochs``, a linear warm-up of that weight.
The model and guide apply the weight with ``poutine.scale`` on ``"z"`` (both sides, so the
Monte Carlo KL ``log q(z|x) - log p(z)`` and an analytic KL are scaled alike), which makes every
Pyro ELBO honour them without knowing about them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pyro.infer

from .errors import ConfigError
from .elbo import AnalyticKL_ELBO
from .iwae import IWAE_ELBO
from .registry import Registry
from .trace_elbo import SyncFreeTrace_ELBO

#: the model has one plate ("data"); vectorized particles add one more on the left
MAX_PLATE_NESTING = 1


class Objective:
    """Base class: a declarative description of a Pyro ELBO.

    Args:
        num_particles: Monte Carlo samples of z per example and step.
        beta: weight of the KL term E_q[log q(z|x) - log p(z)] (beta-VAE); 1 is the ELBO.
        kl_warmup_epochs: the weight grows linearly from ~0 to ``beta`` over this many epochs
            (0: no warm-up).

    Subclasses that take their own parameters should accept ``**kwargs`` and pass them on,
    so they inherit ``beta`` and ``kl_warmup_epochs`` as config parameters.
    """

    type_name: ClassVar[str]
    #: the bound being maximised, in words (shown by :meth:`describe`)
    summary: ClassVar[str] = ""

    def __init__(
        self, *, num_particles: int = 1, beta: float = 1.0, kl_warmup_epochs: int = 0
    ) -> None:
        if num_particles < 1:
            raise ConfigError(f"objective.num_particles = {num_particles} must be at least 1")
        if not beta > 0:
            raise ConfigError(
                f"objective.beta = {beta} must be positive (1 is the plain ELBO; a KL weight "
                "of 0 would make the model an autoencoder with no prior)"
            )
        if kl_warmup_epochs < 0:
            raise ConfigError(
                f"objective.kl_warmup_epochs = {kl_warmup_epochs} must be >= 0 (0: no warm-up)"
            )
        self.num_particles = num_particles
        self.beta = beta
        self.kl_warmup_epochs = kl_warmup_epochs

    def elbo(self) -> pyro.infer.ELBO:
        """A fresh Pyro ELBO implementing this objective."""
        raise NotImplementedError

    @property
    def scales_kl(self) -> bool:
        """Whether the ``"z"`` site is ever weighted by something other than 1."""
        return self.beta != 1.0 or self.kl_warmup_epochs > 0

    def kl_scale(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        """The weight of the ``"z"`` site at training ``step`` (0-based) of ``epoch`` (0-based):
        ``beta * min(1, (epoch + (step + 1) / steps_per_epoch) / kl_warmup_epochs)``.

        Always positive (Pyro's ``poutine.scale`` requires it): the first step of a warm-up
        uses ``beta / (kl_warmup_epochs * steps_per_epoch)``, the last step of epoch
        ``kl_warmup_epochs - 1`` reaches ``beta``."""
        if self.kl_warmup_epochs == 0:
            return self.beta
        progress = (epoch + (step + 1) / steps_per_epoch) / self.kl_warmup_epochs
        return self.beta * min(1.0, progress)

    def describe(self) -> str:
        """The objective in words, for :meth:`pyrovae.VAE.describe`."""
        particles = f"{self.num_particles} particle{'s' * (self.num_particles > 1)}"
        text = f"{self.summary}, {particles} per example"
        if self.scales_kl:
            text += f"; KL weighted by beta = {self.beta:g}"
            if self.kl_warmup_epochs:
                text += f", warmed up linearly from 0 over {self.kl_warmup_epochs} epochs"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_particles={self.num_particles}, beta={self.beta}, "
            f"kl_warmup_epochs={self.kl_warmup_epochs})"
        )


OBJECTIVES: Registry[Objective] = Registry("objective")


@OBJECTIVES.register("trace_elbo")
class TraceELBOObjective(Objective):
    """Pyro's ``Trace_ELBO``: Monte Carlo estimate of E_q[log p(x,z) - log q(z|x)].

    Built as :class:`pyrovae.SyncFreeTrace_ELBO`, a ``Trace_ELBO`` with the same loss and
    gradients whose ``differentiable_loss`` does not wait for the device."""

    summary = "maximise the ELBO E_q(z|x)[log p(x|z) + log p(z) - log q(z|x)] (Pyro Trace_ELBO)"

    def elbo(self) -> pyro.infer.ELBO:
        return SyncFreeTrace_ELBO(
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

    def __init__(self, *, num_particles: int = 5, **kwargs: Any) -> None:
        super().__init__(num_particles=num_particles, **kwargs)

    def elbo(self) -> pyro.infer.ELBO:
        return IWAE_ELBO(num_particles=self.num_particles, max_plate_nesting=MAX_PLATE_NESTING)
