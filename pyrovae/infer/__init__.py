"""Inference: pyrovae's ELBOs (one per file, all derived from :class:`ELBO`), the objectives
registry that builds them from a config, the latent-site weighting behind beta and KL warm-up,
the shared importance log-weights, and the replayed training step.

* :mod:`~pyrovae.infer.elbo`: :class:`ELBO`, the base class;
* :mod:`~pyrovae.infer.trace_elbo`: :class:`Trace_ELBO` (``objective.type = "trace_elbo"``);
* :mod:`~pyrovae.infer.analytic_kl_elbo`: :class:`AnalyticKL_ELBO` (``"analytic_kl"``);
* :mod:`~pyrovae.infer.iwae_elbo`: :class:`IWAE_ELBO` (``"iwae"``);
* :mod:`~pyrovae.infer.trace_enum_elbo`: :class:`TraceEnum_ELBO` (``"trace_enum_elbo"``);
* :mod:`~pyrovae.infer.objectives`: :class:`Objective` and :data:`OBJECTIVES`;
* :mod:`~pyrovae.infer.latent_scale`: :func:`scale_latents`;
* :mod:`~pyrovae.infer.log_weights`: :func:`log_weights`, :func:`trace_pair`;
* :mod:`~pyrovae.infer.replay`: :class:`ELBOGradient`.
"""

from .analytic_kl_elbo import AnalyticKL_ELBO, AnalyticKLFallbackWarning
from .elbo import ELBO
from .iwae_elbo import IWAE_ELBO
from .latent_scale import LatentScaleMessenger, scale_latents
from .log_weights import log_weights, trace_log_weights, trace_pair
from .objectives import OBJECTIVES, Objective
from .replay import ELBOGradient
from .trace_elbo import Trace_ELBO
from .trace_enum_elbo import TraceEnum_ELBO

__all__ = [
    "ELBO",
    "OBJECTIVES",
    "AnalyticKLFallbackWarning",
    "AnalyticKL_ELBO",
    "ELBOGradient",
    "IWAE_ELBO",
    "LatentScaleMessenger",
    "Objective",
    "TraceEnum_ELBO",
    "Trace_ELBO",
    "log_weights",
    "scale_latents",
    "trace_log_weights",
    "trace_pair",
]
