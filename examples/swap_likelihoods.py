"""Swap the likelihood p(x|z): Bernoulli pixels on binarized digits against continuous
Bernoulli, Gaussian and Beta pixels on the grey levels.

The same networks, latent size and training budget for each; only `model.likelihood` (and
the data preparation it needs, `data.binarize`) changes. Writes into --out:
  samples.png          samples E[x|z], z ~ p(z), one panel per likelihood
  reconstructions.png  the same test digits (grey levels, and binarized), then each model's
                       reconstructions E[x|z], z ~ q(z|x), of its own version of them
and prints each model's test ELBO with an explanation of why these numbers must not be
compared across data types.

The defaults (10,000 training images, 10 epochs, four models) are a small run for a
CPU. The full-size run: --train-limit 0 --test-limit 0 --epochs 50.
"""

from __future__ import annotations

import argparse

import torch

import pyrovae
from pyrovae.viz import plots, save_figure

from _common import example_parser, run_config

#: likelihood name -> (its config, the data it models)
LIKELIHOODS = {
    "bernoulli": ({"type": "bernoulli"}, "dynamic"),
    "continuous_bernoulli": ({"type": "continuous_bernoulli"}, "none"),
    "gaussian": ({"type": "gaussian", "scale": "learned", "init_scale": 0.3}, "none"),
    "beta": ({"type": "beta"}, "none"),
}

WHY_NOT_COMPARABLE = """\
Why these numbers (ELBOs, lower bounds on log p(x)) are not comparable across data types:
  * bernoulli scores binarized images: p(x) is a probability MASS on {0, 1}^784, so
    log p(x) and its ELBO are <= 0 nats.
  * continuous_bernoulli, gaussian and beta score the grey levels: p(x) is a DENSITY over
    [0, 1]^784 (gaussian: over R^784). A density can exceed 1, so the numbers can be
    positive, and they depend on the units of x: grey levels measured in 0..255 instead of
    0..1 would lower each by 784 * log(255) = 4344 nats.
  * They are different data: a binarized image is a random 0/1 version of the grey levels.
    A mass on one data set and a density on another share no scale.
  * Even among the grey-level models the ranking is not a fair one: the grey levels are 8-bit
    values (a density can pile up on them; no dequantization here), and beta scores
    clamp(x, 1/510, 1 - 1/510), so its numbers depend on that clamping.
Compare log-likelihoods only between models of the same data with the same kind of
likelihood. To compare across likelihoods, look at the pictures, or score the same data."""


def parse_args() -> argparse.Namespace:
    p = example_parser(__doc__, "swap_likelihoods", latent_dim=20)
    p.add_argument("--likelihoods", nargs="+", choices=list(LIKELIHOODS),
                   default=list(LIKELIHOODS), help="which to train (default: all)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    show = 16  # test digits in the reconstructions picture
    samples, inputs, reconstructions, rows = {}, {}, {}, []
    for name in args.likelihoods:
        likelihood, binarize = LIKELIHOODS[name]
        config = run_config(args, data={"binarize": binarize}, likelihood=likelihood)
        print(f"training with model.likelihood = {name!r} on data.binarize = {binarize!r}")
        trainer = pyrovae.train(config, progress=not args.quiet)
        vae, data = trainer.vae, trainer.data
        elbo = pyrovae.elbo_per_example(vae, data.test_images)
        kind = "binarized {0,1}" if binarize != "none" else "grey levels [0,1]"
        rows.append((name, kind, elbo.mean().item(), (elbo.std() / len(elbo) ** 0.5).item()))

        x = data.test_images[:show]
        inputs["binarized inputs" if binarize != "none" else "grey-level inputs"] = x
        torch.manual_seed(args.seed)
        samples[name] = vae.sample(64)
        reconstructions[name] = vae.reconstruct(x)

    print(f"\n{'likelihood':<22}{'data':<20}test ELBO (nats per example)")
    for name, kind, mean, se in rows:
        print(f"{name:<22}{kind:<20}{mean:9.2f} \u00b1 {se:.2f}")
    print()
    print(WHY_NOT_COMPARABLE)
    print()

    shape = vae.image_shape
    figures = {
        "samples.png": plots.plot_grids(
            samples, shape, title="samples E[x|z], z ~ p(z), per likelihood p(x|z)"),
        "reconstructions.png": plots.plot_grids(
            {**dict(sorted(inputs.items(), reverse=True)), **reconstructions}, shape, ncols=4,
            title="the same test digits, and each model's reconstructions E[x|z], z ~ q(z|x) "
            "(bernoulli: of the binarized digits)"),
    }
    for name, figure in figures.items():
        print(f"wrote {save_figure(figure, args.out / name)}")


if __name__ == "__main__":
    main()
