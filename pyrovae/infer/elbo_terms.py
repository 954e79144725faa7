"""The rate and distortion of a training step, read from the draws the step makes anyway.

The negative ELBO of a batch is the *distortion* -E_q[log p(x|z)] plus the *rate*
E_q[log q(z|x) - log p(z)] (an estimate of KL(q(z|x) || p(z)); Alemi et al. 2018, "Fixing a
Broken ELBO"). :class:`ELBOTerms` collects both while the objective runs the programs: a Pyro
effect handler that, after each sample site, adds up ``log_prob`` of the site's value under
its distribution (masked, not scaled: the rate is the KL itself, not the KL as beta or a
warm-up weight it). It draws nothing: the values are those the objective drew, so the step's
loss, gradients and random stream are what they are without it.

The terms are the mean over the objective's ``num_particles`` draws, summed over the batch
(nats per batch): for ``trace_elbo`` and ``analytic_kl`` (whose KL is computed in closed form,
and here estimated from the same draws) their sum is the unweighted negative ELBO; for
``iwae`` they are those of the K draws' ordinary ELBO, which bounds the IWAE bound from below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from pyro.distributions.util import scale_and_mask
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

from ..models.program import is_latent

if TYPE_CHECKING:
    from pyro.poutine.runtime import Message

__all__ = ["ELBOTerms"]


class ELBOTerms(Messenger):
    """Sums ``log_prob`` of the sample sites of the programs it wraps, as they run:
    :attr:`latent` over the latent sites, :attr:`observed` over the observed ones (0-d
    tensors, ``None`` until a site is seen).

    Example::

        model_terms, guide_terms = ELBOTerms(), ELBOTerms()
        loss = elbo.differentiable_loss(model_terms(vae.model), guide_terms(vae.guide), x)
        distortion = -model_terms.observed
        rate = guide_terms.latent - model_terms.latent   # one particle
    """

    def __init__(self) -> None:
        super().__init__()
        self.latent: torch.Tensor | None = None
        self.observed: torch.Tensor | None = None

    def _postprocess_message(self, msg: Message) -> None:
        if msg["type"] != "sample" or site_is_subsample(msg):
            return
        infer = msg["infer"] or {}
        if infer.get("_do_not_score", False):
            return
        fn: Any = msg["fn"]
        log_p = scale_and_mask(fn.log_prob(msg["value"]), mask=msg["mask"]).sum()
        if is_latent(msg):
            self.latent = log_p if self.latent is None else self.latent + log_p
        else:
            self.observed = log_p if self.observed is None else self.observed + log_p
