"""``AnalyticKL_ELBO``: the ELBO with exact KL divergences wherever they have a closed form.

For a model p(x, z) and a reparameterized, mean-field guide q(z|x), each latent site ``s``
contributes to the ELBO either

* ``-KL(q_s || p_s)``, computed exactly with :func:`torch.distributions.kl_divergence` when a
  closed form is registered for the pair of distribution types, or
* the Monte Carlo term ``log p_s(z_s) - log q_s(z_s)`` at the sampled ``z_s`` otherwise (the
  estimator of :class:`pyro.infer.Trace_ELBO`), with a one-time
  :class:`AnalyticKLFallbackWarning` naming the site and the two distribution types.

Observed sites contribute ``log p(x|z)`` at the sampled ``z``. Both estimates have the same
expectation (the ELBO, in nats); the analytic one has lower variance because the KL term
carries no sampling noise.

Site weights set with ``poutine.scale`` and ``poutine.mask`` are honoured exactly as
:class:`~pyro.infer.Trace_ELBO` honours them, so the expectation of the estimate is the same
for every weighting. When model and guide weight a site alike (the usual beta-VAE or KL
warm-up, scaling the site in both programs) the term is ``-w * KL``. When they differ
(e.g. only the model's site is scaled by ``w_p``, the guide's by ``w_q``), the term is
``-w_p * KL + (w_p - w_q) * log q_s(z_s)``, whose expectation is that of
``w_p log p_s - w_q log q_s``.

The guide must be fully reparameterized (every latent site has ``rsample``). The KL of a site
is the expectation of its term given the draws before it only when the model's distribution
there does not depend on latents the guide samples *after* it (the condition
:class:`pyro.infer.TraceMeanField_ELBO` assumes). That is decided from the order of the
sites, without reading the programs: a site takes the closed form only if every latent site
the model samples before it (all it can depend on) the guide samples before it too; other
sites take the Monte Carlo term, announced once. A VAE's single latent site takes the closed
form. In a hierarchy p(z2) p(z1 | z2) p(x | z1) with guide q(z1 | x) q(z2 | z1) (Burda et al.,
2016), z2 takes ``-KL(q(z2 | z1) || p(z2))`` at the sampled z1, and z1 the Monte Carlo term
``log p(z1 | z2) - log q(z1 | x)``: ``-KL(q(z1 | x) || p(z1 | z2))`` at the sampled z2 would be
biased, since z2 is drawn given z1.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from pyro.distributions.util import scale_and_mask
from pyro.poutine import Trace
from torch.distributions import kl_divergence

from ..errors import PyrovaeWarning
from .elbo import ELBO, describe_distribution, warn_if_nan_when_validating

__all__ = ["AnalyticKL_ELBO", "AnalyticKLFallbackWarning"]


class AnalyticKLFallbackWarning(PyrovaeWarning):
    """A latent site's KL divergence has no closed form; a Monte Carlo term is used for it."""


def _known_equal_weights(a: Any, b: Any) -> bool:
    """Whether two site scales (or masks) are equal, decided without reading tensor values:
    the same object, or equal numbers / ``None``. Two distinct tensors count as possibly
    different (comparing their values would wait for the device, and could not be recorded
    by :mod:`pyrovae.infer.replay`); the correction term added for different weights is then
    exactly zero, in value and gradient, when they happen to be equal."""
    if a is b:
        return True
    if torch.is_tensor(a) or torch.is_tensor(b):
        return False
    return a == b


class AnalyticKL_ELBO(ELBO):
    """The ELBO with exact KL terms where available, built by ``objective.type =
    "analytic_kl"`` and used like any Pyro ELBO::

        svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}),
                  loss=pyrovae.AnalyticKL_ELBO(num_particles=4, vectorize_particles=True))

    Args:
        num_particles: samples ``z ~ q`` averaged in each estimate.
        max_plate_nesting: bound on nested plates (guessed from a first run if not given).
        vectorize_particles: draw the particles in one vectorized pass (an extra plate on the
            left) instead of a Python loop.
        retain_graph: passed to ``backward`` in :meth:`loss_and_grads`.

    ``loss`` is the negative ELBO estimate summed over the batch (nats per batch);
    ``differentiable_loss`` is the same number as a tensor that can be backpropagated;
    ``loss_and_grads`` also backpropagates it. Calling ``AnalyticKL_ELBO()(model, guide)``
    gives a :class:`torch.nn.Module` computing ``differentiable_loss``.
    """

    requires_reparameterized: ClassVar[bool] = True
    closed_form_kl: ClassVar[bool] = True

    def __init__(
        self,
        num_particles: int = 1,
        max_plate_nesting: float = float("inf"),
        vectorize_particles: bool = False,
        retain_graph: bool | None = None,
    ) -> None:
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=vectorize_particles,
            retain_graph=retain_graph,
        )
        #: (site, guide type, model type) already warned about
        self._warned: set[tuple[str, str, str]] = set()

    # ------------------------------------------------------------------ estimate
    def _warn_once(self, key: tuple[str, str, str], reason: str) -> None:
        """Warn that latent site ``key[0]`` takes the Monte Carlo term, once per ``key``."""
        if key in self._warned:
            return
        self._warned.add(key)
        warnings.warn(
            f"AnalyticKL_ELBO: {reason}; using the Monte Carlo term log p(z) - log q(z) for "
            "this site",
            AnalyticKLFallbackWarning,
            stacklevel=4,
        )

    def _warn_fallback(self, name: str, guide_fn: Any, model_fn: Any) -> None:
        key = (name, describe_distribution(guide_fn), describe_distribution(model_fn))
        self._warn_once(
            key,
            f"no closed-form KL divergence for latent site {name!r} between guide {key[1]} "
            f"and model {key[2]}",
        )

    def _warn_order(self, name: str, later: str) -> None:
        self._warn_once(
            (name, "order", later),
            f"the model's distribution at latent site {name!r} may depend on {later!r}, which "
            f"the guide samples after {name!r}, so its KL given the earlier draws is not the "
            "expected term",
        )

    def _latent_site_elbo(
        self, name: str, model_site: Any, guide_site: Any, later: str | None = None
    ) -> torch.Tensor:
        """This latent site's contribution to the ELBO of one particle (a scalar); ``later``
        names a latent site the model samples before this one and the guide after it (so the
        closed form does not apply), or is ``None``."""
        guide_fn, model_fn = guide_site["fn"], model_site["fn"]
        monte_carlo = model_site["log_prob_sum"] - guide_site["log_prob_sum"]
        if later is not None:
            self._warn_order(name, later)
            return monte_carlo
        try:
            kl = kl_divergence(guide_fn, model_fn)
        except NotImplementedError:
            self._warn_fallback(name, guide_fn, model_fn)
            return monte_carlo
        batch_shape = torch.broadcast_shapes(guide_fn.batch_shape, model_fn.batch_shape)
        kl = torch.as_tensor(kl, dtype=guide_site["value"].dtype, device=guide_site["value"].device)
        kl = kl.expand(batch_shape)
        scale, mask = model_site["scale"], model_site["mask"]
        term = -scale_and_mask(kl, scale, mask).sum()
        same = _known_equal_weights(scale, guide_site["scale"]) and _known_equal_weights(
            mask, guide_site["mask"]
        )
        if not same:
            # E_q[w_p log p - w_q log q] = -w_p KL + E_q[(w_p - w_q) log q]
            log_q = guide_site["unscaled_log_prob"]
            term = term + (scale_and_mask(log_q, scale, mask) - guide_site["log_prob"]).sum()
        return term

    def _particle_elbo(self, model_trace: Trace, guide_trace: Trace) -> torch.Tensor:
        """The ELBO estimate of one (possibly vectorized) particle, summed over all plates."""
        elbo: Any = 0.0
        guide_order = [n for n, site in guide_trace.nodes.items() if site["type"] == "sample"]
        position = {n: i for i, n in enumerate(guide_order)}
        model_latents: list[str] = []  # the latent sites the model has sampled so far
        for name, model_site in model_trace.nodes.items():
            if model_site["type"] != "sample":
                continue
            if model_site["is_observed"]:
                elbo = elbo + model_site["log_prob_sum"]
                continue
            later = [n for n in model_latents if position.get(n, -1) > position[name]]
            elbo = elbo + self._latent_site_elbo(
                name, model_site, guide_trace.nodes[name], later[0] if later else None
            )
            model_latents.append(name)
        for name, guide_site in guide_trace.nodes.items():
            # auxiliary guide variables (absent from the model) enter as -log q
            if guide_site["type"] == "sample" and name not in model_trace.nodes:
                elbo = elbo - guide_site["log_prob_sum"]
        return torch.as_tensor(elbo)

    def differentiable_loss(
        self, model: Callable, guide: Callable, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """The negative ELBO estimate (nats, summed over the batch) as a differentiable tensor."""
        loss: Any = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            loss = loss - self._particle_elbo(model_trace, guide_trace) / self.num_particles
        warn_if_nan_when_validating(loss, "loss")
        return loss
