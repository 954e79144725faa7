"""Training objectives, the config layer over pyrovae's ELBOs: ``[objective]`` in a config.

Each registered objective is a small declarative class whose :meth:`Objective.elbo` builds
one :class:`~pyrovae.infer.elbo.ELBO`:

* ``type = "trace_elbo"`` (default): :class:`~pyrovae.infer.trace_elbo.Trace_ELBO`, the
  Monte Carlo ELBO;
* ``"analytic_kl"``: :class:`~pyrovae.infer.analytic_kl_elbo.AnalyticKL_ELBO`, the ELBO with
  the KL in closed form where one exists;
* ``"iwae"``: :class:`~pyrovae.infer.iwae_elbo.IWAE_ELBO`, the K-sample importance-weighted
  bound;
* ``"trace_enum_elbo"``: :class:`~pyrovae.infer.trace_enum_elbo.TraceEnum_ELBO` (Pyro's),
  the ELBO with the guide's discrete sites marked for enumeration summed out exactly
  (programs with discrete latents,
  :mod:`pyrovae.models.program`);

each with ``num_particles`` draws per example (vectorized). The ELBO's ``loss`` is the negative
bound summed over the mini-batch (nats per batch).

Every objective also carries two knobs on the latent sites (see :class:`Objective`): ``beta``,
the weight of the KL term, and ``kl_warmup_epochs``, a linear warm-up of that weight. The
trainer applies the weight from outside the programs with
:func:`~pyrovae.infer.latent_scale.scale_latents` (model and guide alike, so the Monte Carlo
KL ``log q(z|x) - log p(z)`` and an analytic KL are weighted alike), which makes every ELBO
honour it without knowing about it.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import torch

from ..errors import ConfigError
from ..models.program import Program, latent_sites
from ..registry import PositiveInt, Range, Registry
from ..rng import preserved_rng
from .analytic_kl_elbo import AnalyticKL_ELBO
from .elbo import ELBO
from .iwae_elbo import IWAE_ELBO
from .log_weights import MAX_PLATE_NESTING, trace_pair
from .trace_elbo import Trace_ELBO
from .trace_enum_elbo import TraceEnum_ELBO

__all__ = ["OBJECTIVES", "Objective"]

#: a KL weight: positive
KLWeight = Annotated[
    float,
    Range(
        gt=0,
        note="1 is the plain ELBO; a KL weight of 0 would make the model an "
        "autoencoder with no prior",
    ),
]
#: epochs of KL warm-up: 0 or more
WarmupEpochs = Annotated[int, Range(min=0, note="0: no warm-up")]


class Objective:
    """Base class: a declarative description of a Pyro ELBO.

    Args:
        num_particles: Monte Carlo samples of z per example and step.
        beta: weight of the KL term E_q[log q(z|x) - log p(z)] (beta-VAE); 1 is the ELBO.
        kl_warmup_epochs: the weight grows linearly from ~0 to ``beta`` over this many epochs
            (0: no warm-up).

    Subclasses set :attr:`summary` and :attr:`estimator` (or override :meth:`elbo`); those
    that take their own parameters accept ``**kwargs`` and pass them on, so they inherit
    ``beta`` and ``kl_warmup_epochs`` as config parameters.
    """

    type_name: ClassVar[str]
    #: the bound being maximised, in words (shown by :meth:`describe`)
    summary: ClassVar[str]
    #: the ELBO class :meth:`elbo` builds, with ``num_particles`` draws (vectorized)
    estimator: ClassVar[type[ELBO]]

    def __init__(
        self,
        *,
        num_particles: PositiveInt = 1,
        beta: KLWeight = 1.0,
        kl_warmup_epochs: WarmupEpochs = 0,
    ) -> None:
        self.num_particles = num_particles
        self.beta = beta
        self.kl_warmup_epochs = kl_warmup_epochs

    def elbo(self) -> ELBO:
        """A fresh ELBO implementing this objective."""
        return self.estimator(
            num_particles=self.num_particles,
            vectorize_particles=self.num_particles > 1,
            max_plate_nesting=MAX_PLATE_NESTING,
        )

    @property
    def scales_kl(self) -> bool:
        """Whether the latent sites are ever weighted by something other than 1."""
        return self.beta != 1.0 or self.kl_warmup_epochs > 0

    def kl_scale(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        """The weight of the latent sites at training ``step`` (0-based) of ``epoch`` (0-based):
        ``beta * min(1, (epoch + (step + 1) / steps_per_epoch) / kl_warmup_epochs)``.

        Always positive (a site scale must be): the first step of a warm-up
        uses ``beta / (kl_warmup_epochs * steps_per_epoch)``, the last step of epoch
        ``kl_warmup_epochs - 1`` reaches ``beta``."""
        if self.kl_warmup_epochs == 0:
            return self.beta
        progress = (epoch + (step + 1) / steps_per_epoch) / self.kl_warmup_epochs
        return self.beta * min(1.0, progress)

    def check_program(
        self, program: Program, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> None:
        """Raise :class:`~pyrovae.errors.ConfigError` when this objective cannot train
        ``program``, from one run of its guide and model on the examples ``x`` (labels ``y``),
        leaving the random stream untouched (the trainer asks this of every model whose
        :attr:`~pyrovae.models.program.Program.trains_with_any_objective` is false).

        Discrete guide sites marked for enumeration need an ELBO that sums them out
        (``"trace_enum_elbo"``); the reparameterized ELBOs (``"analytic_kl"``, ``"iwae"``)
        need every latent guide site to have ``rsample``, and ``"analytic_kl"`` a guide that
        samples the latent sites in the model's order (Pyro's mean-field condition of
        ``TraceMeanField_ELBO``); every latent site of the model must be sampled by the
        guide."""
        with preserved_rng(x.device), program.quiet(), torch.no_grad():
            model_trace, guide_trace = trace_pair(
                program.model, program.guide, x, program.model_labels(y), enumerate_sites=True
            )
        elbo = self.elbo()
        name = self.type_name
        guide_sites = latent_sites(guide_trace)
        enumerated = [n for n, s in guide_sites.items() if s["infer"].get("enumerate")]
        if enumerated and not elbo.sums_out_enumerated:
            raise ConfigError(
                f"the program enumerates its guide sites {enumerated}, which objective.type = "
                f"{name!r} cannot sum out; use objective.type = 'trace_enum_elbo' (Pyro's "
                "TraceEnum_ELBO)"
            )
        if elbo.requires_reparameterized:
            for site_name, site in guide_sites.items():
                if not site["fn"].has_rsample:
                    raise ConfigError(
                        f"objective.type = {name!r} needs a reparameterized guide, but the "
                        f"program's guide site {site_name!r} samples "
                        f"{type(site['fn']).__name__}, which has no rsample; use "
                        "objective.type = 'trace_elbo' (score-function gradients) or enumerate "
                        "the site with 'trace_enum_elbo'"
                    )
        model_sites = latent_sites(model_trace)
        if elbo.closed_form_kl and [n for n in guide_sites if n in model_sites] != [
            n for n in model_sites if n in guide_sites
        ]:
            raise ConfigError(
                f"objective.type = {name!r} takes each site's KL given the latents sampled "
                f"before it, which needs the guide to sample the latent sites in the model's "
                f"order ({list(model_sites)}), but it samples {list(guide_sites)}; use "
                "objective.type = 'trace_elbo' or 'iwae'"
            )
        unguided = sorted(set(model_sites) - set(guide_sites))
        if unguided:
            raise ConfigError(
                f"the program's model samples the latent sites {unguided}, which its guide "
                "does not: every latent site of the model must be sampled (or enumerated) by "
                "the guide"
            )

    def describe(self) -> str:
        """The objective in words, for :func:`pyrovae.describe`."""
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
    """:class:`pyrovae.Trace_ELBO`: the Monte Carlo estimate of E_q[log p(x,z) - log q(z|x)],
    Pyro's ``Trace_ELBO`` estimator (same loss and gradients) without host syncs."""

    summary = "maximise the ELBO E_q(z|x)[log p(x|z) + log p(z) - log q(z|x)] (Trace_ELBO)"
    estimator = Trace_ELBO


@OBJECTIVES.register("analytic_kl")
class AnalyticKLObjective(Objective):
    """:class:`pyrovae.AnalyticKL_ELBO`: E_q[log p(x|z)] - KL(q||p), with the exact KL where
    the prior/guide pair has a closed form (falling back to Monte Carlo per site otherwise)."""

    summary = (
        "maximise the ELBO E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z)), the KL in closed form "
        "where one exists (AnalyticKL_ELBO)"
    )
    estimator = AnalyticKL_ELBO


@OBJECTIVES.register("iwae")
class IWAEObjective(Objective):
    """:class:`pyrovae.IWAE_ELBO`: the importance-weighted bound with ``num_particles``
    samples per example (vectorized); ``num_particles = 1`` is the ordinary ELBO."""

    summary = (
        "maximise the importance-weighted bound E[log (1/K) sum_k p(x, z_k) / q(z_k|x)], "
        "z_k ~ q(z|x) (IWAE_ELBO, Burda et al. 2016)"
    )

    estimator = IWAE_ELBO

    def __init__(self, *, num_particles: PositiveInt = 5, **kwargs: Any) -> None:
        super().__init__(num_particles=num_particles, **kwargs)

    def elbo(self) -> ELBO:
        return IWAE_ELBO(num_particles=self.num_particles, max_plate_nesting=MAX_PLATE_NESTING)


@OBJECTIVES.register("trace_enum_elbo")
class TraceEnumELBOObjective(Objective):
    """Pyro's :class:`pyro.infer.TraceEnum_ELBO`: the ELBO, with every guide site marked for
    parallel enumeration (``infer={"enumerate": "parallel"}``, ``config_enumerate``) summed
    over its values exactly instead of sampled; for programs with discrete latents."""

    summary = (
        "maximise the ELBO with the discrete latents summed out exactly, "
        "E_q[log p(x, y, z) - log q(y, z|x)] (TraceEnum_ELBO)"
    )
    estimator = TraceEnum_ELBO
