"""Guide families: the encoder's numbers become q(z|x) as documented (the IAF guide's density
is checked against its samples in test_priors.py)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from pyrovae import GUIDES
from pyrovae.errors import ConfigError


def test_diag_normal_is_the_documented_gaussian():
    guide = GUIDES.build({"type": "diag_normal", "min_scale": 0.01}, "model.guide", latent_dim=3)
    assert guide.num_params == 6
    params = torch.tensor([[0.5, -1.0, 2.0, -3.0, 0.0, 1.0]])
    loc, scale = guide.loc_scale(params)
    assert torch.equal(loc, params[:, :3])
    torch.testing.assert_close(scale, F.softplus(params[:, 3:]) + 0.01)
    q = guide.distribution(params)
    assert q.batch_shape == (1,) and q.event_shape == (3,) and q.has_rsample
    z = torch.tensor([[0.0, 0.0, 0.0]])
    expected = (-0.5 * ((z - loc) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)).sum()
    torch.testing.assert_close(q.log_prob(z)[0], expected)


def test_iaf_guide_takes_a_context_and_keeps_shapes():
    guide = GUIDES.build({"type": "iaf", "hidden": [16], "context_dim": 5}, "model.guide",
                         latent_dim=4)
    assert guide.num_params == 2 * 4 + 5
    q = guide.distribution(torch.randn(7, guide.num_params))
    assert q.batch_shape == (7,) and q.event_shape == (4,) and q.has_rsample
    z = q.rsample()
    assert z.shape == (7, 4) and torch.isfinite(q.log_prob(z)).all()
    assert "2 inverse autoregressive flows conditioned on a 5-d context" in guide.describe()


@pytest.mark.parametrize("spec,message", [
    ({"type": "diag_normal", "min_scale": -1e-3},
     r"model\.guide\.min_scale = -0\.001 must be >= 0"),
    ({"type": "iaf", "num_flows": 0}, r"model\.guide\.num_flows = 0 must be at least 1"),
    ({"type": "iaf", "hidden": []}, r"model\.guide\.type = 'iaf': hidden = \[\] must hold at "
                                    "least one layer size"),
])
def test_bad_guides_are_refused_naming_the_key(spec, message):
    with pytest.raises(ConfigError, match=message):
        GUIDES.build(spec, "model.guide", latent_dim=4)
