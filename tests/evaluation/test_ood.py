"""Out-of-distribution scores (pyrovae.evaluation.ood) and the compressor's code length."""

from __future__ import annotations

import math

import pytest
import torch

from pyrovae.errors import ConfigError, DataError
from pyrovae.evaluation.complexity import code_length_bits, complexity_score
from pyrovae.evaluation.ood import SCORES, detection_table, ood_scores

from conftest import binary_images, tiny_vae


@pytest.mark.parametrize("compressor", ["png", "zlib"])
def test_a_black_image_compresses_far_better_than_noise(compressor):
    black, noise = (
        torch.zeros(1, 784),
        torch.rand(1, 784, generator=torch.Generator().manual_seed(0)),
    )
    bits = code_length_bits(torch.cat([black, noise]), (1, 28, 28), compressor)
    # 784 random bytes cannot be coded in much under 784 * 8 bits; zeros take a few dozen bytes
    assert bits[1] > 6000 and bits[0] < 1000
    colour = code_length_bits(torch.zeros(2, 3 * 4 * 4), (3, 4, 4), compressor)
    assert colour.shape == (2,) and bool((colour > 0).all())


def test_unknown_compressors_and_shapes_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="compressor must be one of"):
        code_length_bits(torch.zeros(1, 4), (4,), "gzip")
    with pytest.raises(DataError, match=r"shape \(N, 784\)"):
        code_length_bits(torch.zeros(1, 4), (1, 28, 28))


def test_scores_are_the_stated_functions_of_log_p():
    vae = tiny_vae()
    x_in, x_out = binary_images(6, seed=1), torch.zeros(4, 784)
    kwargs = {"train_nll": 500.0, "image_shape": (1, 28, 28), "num_samples": 8}
    s_in = ood_scores(vae, x_in, background=vae, **kwargs)
    ll = s_in.columns["log_likelihood"].double()
    torch.testing.assert_close(s_in.scores["log_likelihood"], -ll)
    # the background is the model itself, scored from the same seeds: a ratio of exactly 1
    assert bool((s_in.scores["llr"] == 0).all())
    torch.testing.assert_close(s_in.scores["typicality"], (-ll - 500.0).abs())
    bits = code_length_bits(x_in, (1, 28, 28))
    torch.testing.assert_close(s_in.scores["complexity"], -ll / math.log(2) - bits)
    torch.testing.assert_close(complexity_score(ll, bits), s_in.scores["complexity"])
    assert s_in.columns["pareto_k"].isnan().all()  # K = 8 < 46: too few draws for a tail fit
    s_out = ood_scores(vae, x_out, **kwargs)
    table = detection_table(s_in, s_out)
    assert list(table) == [name for name in SCORES if name != "llr"]  # no background there
    assert all(0 <= m["auroc"] <= 1 for m in table.values())
