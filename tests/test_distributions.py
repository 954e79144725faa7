"""pyrovae's Normals compute what torch's Normal computes, with fewer operations.

``StandardNormal`` must give bitwise ``Normal(0, 1).log_prob``; ``ReparameterizedNormal``
must give the same log-density of its own samples and the same gradients with respect to
``loc`` and ``scale`` as ``Normal`` (up to float32 rounding), and be a ``Normal`` for Pyro
(expand, closed-form KL).
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch.distributions import kl_divergence

from pyrovae.distributions import ReparameterizedNormal, StandardNormal


def test_standard_normal_log_prob_is_bitwise_torchs():
    z = torch.randn(64, 5, generator=torch.Generator().manual_seed(0)) * 3
    ours = StandardNormal(torch.zeros(5), torch.ones(5))
    assert torch.equal(ours.log_prob(z), dist.Normal(torch.zeros(5), torch.ones(5)).log_prob(z))
    expanded = ours.expand([64, 5])
    assert isinstance(expanded, StandardNormal) and expanded.batch_shape == (64, 5)


def scored_sample(cls, loc, scale, seed=0):
    """log q(z) of a reparameterized sample z ~ q and its gradients w.r.t. loc and scale."""
    torch.manual_seed(seed)
    q = cls(loc, scale).expand([3, *loc.shape])  # as Pyro's broadcasting expands a site
    z = q.rsample()
    log_q = q.log_prob(z).sum()
    grads = torch.autograd.grad(log_q, (loc, scale), allow_unused=True)
    # log q of its own sample does not depend on loc at all: exactly, not just in value
    return z, log_q, [torch.zeros_like(t) if g is None else g for g, t in zip(grads, (loc, scale))]


def test_own_samples_score_like_normal_with_the_same_gradients():
    generator = torch.Generator().manual_seed(1)
    loc = torch.randn(7, generator=generator).requires_grad_()
    scale = (torch.rand(7, generator=generator) + 0.05).requires_grad_()
    z, log_q, grads = scored_sample(ReparameterizedNormal, loc, scale)
    z_ref, log_q_ref, grads_ref = scored_sample(dist.Normal, loc, scale)
    assert torch.equal(z, z_ref)  # the same draws and the same sample
    # Both sum 21 float32 log-densities; they differ only in how (z - loc) / scale is
    # rounded (recomputed by Normal, exact eps here): a few float32 ulps of each term,
    # well inside assert_close's float32 tolerances (rtol 1.3e-6, atol 1e-5).
    torch.testing.assert_close(log_q, log_q_ref)
    # The gradients through z and through (loc, scale) cancel exactly in Normal's formula
    # (leaving 0 for loc and -1/scale for scale); here they are never formed. Same float32
    # tolerances.
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref)


def test_other_values_are_scored_as_by_normal():
    loc, scale = torch.zeros(4), torch.full((4,), 2.0)
    q = ReparameterizedNormal(loc, scale)
    q.rsample()
    z = torch.tensor([0.5, -1.0, 3.0, 0.0])
    assert torch.equal(q.log_prob(z), dist.Normal(loc, scale).log_prob(z))
    fresh = ReparameterizedNormal(loc, scale)  # never sampled
    assert torch.equal(fresh.log_prob(z), dist.Normal(loc, scale).log_prob(z))


def test_closed_form_kl_is_normals():
    q = ReparameterizedNormal(torch.tensor([0.3, -1.0]), torch.tensor([0.5, 2.0]))
    p = StandardNormal(torch.zeros(2), torch.ones(2))
    reference = kl_divergence(dist.Normal(q.loc, q.scale), dist.Normal(p.loc, p.scale))
    assert torch.equal(kl_divergence(q, p), reference)
